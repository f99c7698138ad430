package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

// flagsDoc renders docs/flags.md from the real flag set, so the reference
// never drifts from the program.
func flagsDoc() string {
	var cfg config
	fs := newFlagSet(&cfg)
	var b strings.Builder
	b.WriteString(`# Flags and environment variables

Generated from the program's flag set by ` + "`SHOAL_UPDATE_DOCS=1 go test ./node -run TestFlagsDoc`" + `;
the test fails when this file and the flags disagree. ` + "`shoal --help`" + ` prints the same.

Every flag may also be set by its environment variable; a flag given on the
command line wins over its variable. Durations are Go durations (` + "`500ms`, `5s`, `2m`" + `).

| flag | environment variable | default | meaning |
| --- | --- | --- | --- |
`)
	fs.VisitAll(func(f *flag.Flag) {
		typ, help := flag.UnquoteUsage(f)
		name := "`--" + f.Name
		if typ != "" {
			name += " " + typ
		}
		def := ""
		if f.DefValue != "" {
			def = "`" + f.DefValue + "`"
		}
		fmt.Fprintf(&b, "| %s` | `%s` | %s | %s |\n", name, envName(f.Name), def, strings.ReplaceAll(help, "|", `\|`))
	})
	return b.String()
}

func TestFlagsDoc(t *testing.T) {
	const path = "../docs/flags.md"
	want := flagsDoc()
	if os.Getenv("SHOAL_UPDATE_DOCS") != "" {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("docs/flags.md is not what the flags say: run SHOAL_UPDATE_DOCS=1 go test ./node -run TestFlagsDoc")
	}
}
