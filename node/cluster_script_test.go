package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/node/nodetest"
)

// scripts/cluster up 2, restart 1 (drained, started again, back in
// HAProxy), status, down.
func TestClusterScriptRestart(t *testing.T) {
	dir := t.TempDir()
	env := []string{
		"SHOAL_CLUSTER_DIR=" + dir,
		"SHOAL_CLUSTER_BIN=" + nodetest.Binary(t),
		"SHOAL_CLUSTER_LB=" + testenv.FreeAddr(t),
		"SHOAL_CLUSTER_STATS=" + testenv.FreeAddr(t),
		fmt.Sprintf("SHOAL_CLUSTER_REDIS_PORT=%d", testenv.FreePort(t)),
		fmt.Sprintf("SHOAL_CLUSTER_NATS_PORT=%d", testenv.PortWithOffsets(t, 4000)),
		fmt.Sprintf("SHOAL_CLUSTER_NODE_PORT=%d", testenv.PortWithOffsets(t, 1)),
		fmt.Sprintf("SHOAL_CLUSTER_GOSSIP_PORT=%d", testenv.PortWithOffsets(t, 1)),
	}
	script := func(args ...string) string {
		t.Helper()
		return testenv.RunEnv(t, env, filepath.Join("..", "scripts", "cluster"), args...)
	}
	t.Cleanup(func() { script("down") }) // says "nothing to stop" after the test's own down
	script("up", "2")
	pid := func() string {
		b, err := os.ReadFile(filepath.Join(dir, "run", "node1.pid"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	before := pid()
	start := time.Now()
	out := script("restart", "1")
	if !strings.Contains(out, "node1 drained and exited") || !strings.Contains(out, "node1 is back") {
		t.Fatalf("restart said:\n%s", out)
	}
	t.Logf("scripts/cluster restart 1 took %v", time.Since(start).Round(time.Millisecond))
	if pid() == before {
		t.Fatal("node1 has the same pid after restart")
	}
	if st := script("status"); strings.Count(st, " UP ") != 2 || strings.Contains(st, "dead") {
		t.Fatalf("status after restart:\n%s", st)
	}
	script("down")
}
