// Package archtest checks the import rules docs/ARCHITECTURE.md states, with
// go list, so that a change that breaks them fails here.
package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

// list runs go list with template tmpl over pkgs (from the module root)
// and returns one entry per line.
func list(t *testing.T, tmpl string, pkgs ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-f", tmpl}, pkgs...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", pkgs, err)
	}
	return strings.Fields(string(out))
}

const module = "github.com/shoal-rt/shoal/"

func forbid(t *testing.T, what string, got []string, bad ...string) {
	t.Helper()
	for _, p := range got {
		for _, b := range bad {
			if strings.HasPrefix(p, b) {
				t.Errorf("%s imports %s", what, p)
			}
		}
	}
}

var backends = []string{
	module + "store/redis", module + "bus/nats", module + "cluster",
	"github.com/redis/", "github.com/nats-io/", "github.com/hashicorp/memberlist",
}

func TestImportRules(t *testing.T) {
	// The floors: store, bus, cluster and testenv import no Shoal package.
	for _, p := range []string{"store", "bus", "cluster", "internal/testenv"} {
		forbid(t, p, list(t, `{{join .Imports " "}}`, "./"+p), module)
	}
	// sockjs (all it links) never reaches a backend or membership.
	deps := list(t, `{{join .Deps " "}}`, "./sockjs")
	if !strings.Contains(" "+strings.Join(deps, " ")+" ", " "+module+"store ") {
		t.Fatalf("go list shows sockjs without store among its dependencies: %v", deps)
	}
	forbid(t, "sockjs", deps, backends...)
	// Nor do sockjs's own tests, internal or external: the tests on the
	// real backends are in sockjs/clustertest, above both.
	forbid(t, "sockjs's tests", list(t, `{{join .TestImports " "}} {{join .XTestImports " "}}`, "./sockjs"), backends...)
	// The fan-out core sits below the rest of sockjs: of Shoal it imports
	// store and bus only (tests included), so no reference points up
	// from it into sockjs; and it reaches no backend.
	const fanout = "./sockjs/internal/fanout"
	shoalImports := list(t, `{{join .Imports " "}} {{join .TestImports " "}}`, fanout)
	for _, p := range shoalImports {
		if strings.HasPrefix(p, module) && p != module+"store" && p != module+"bus" && p != module+"internal/testenv" {
			t.Errorf("sockjs/internal/fanout imports %s; only store, bus (and testenv in tests) are allowed", p)
		}
	}
	forbid(t, "sockjs/internal/fanout", list(t, `{{join .Deps " "}}`, fanout), backends...)
	// node/ops knows no backend: applications pass theirs as checks.
	forbid(t, "node/ops", list(t, `{{join .Deps " "}}`, "./node/ops"),
		module+"store/redis", module+"bus/nats", "github.com/redis/", "github.com/nats-io/nats.go")
	// No test of a lower floor imports the program's packages.
	for _, p := range []string{"./sockjs/...", "./loadtest/...", "./store/...", "./bus/...", "./cluster/..."} {
		forbid(t, p+" tests", list(t, `{{join .TestImports " "}} {{join .XTestImports " "}}`, p), module+"node")
	}
}
