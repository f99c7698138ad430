package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/node/nodetest"
)

// The README's Go example is this program, to the letter; built and run, it
// echoes, answers /readyz and /metrics, and exits 0 after its drain.
func TestEchoExample(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), string(src)) {
		t.Error("README.md does not show examples/echo/main.go as it is: copy it there")
	}

	bin := filepath.Join(t.TempDir(), "echo")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr := testenv.FreeAddr(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "ECHO_ADDR="+addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	testenv.WaitTCP(t, addr)

	post := func(path, body string) string { return nodetest.Post(t, "http://"+addr+"/echo/000/s"+path, body) }
	if got := post("/xhr", ""); got != "o\n" {
		t.Fatalf("open: %q", got)
	}
	post("/xhr_send", `["hi"]`)
	if got := post("/xhr", ""); got != `a["hi"]`+"\n" {
		t.Fatalf("echo: %q", got)
	}
	for _, path := range []string{"/readyz", "/metrics"} {
		if code, body := nodetest.Get(t, "http://"+addr+path); code != 200 {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit 20 s after SIGTERM")
	}
}
