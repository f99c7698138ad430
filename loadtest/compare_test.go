package loadtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHAProxyConfigParses checks the comparison's balancer configs, the
// shipped one with the load test's nodes and its sticky variant for the
// sockjs-node trio, with the real haproxy (installed by scripts/test).
func TestHAProxyConfigParses(t *testing.T) {
	t.Parallel()
	hp, err := lookPathSbin("haproxy")
	if err != nil {
		t.Fatal("haproxy is not installed; scripts/test installs it")
	}
	nodes := []string{"127.0.0.1:18081", "127.0.0.1:18082", "127.0.0.1:18083"}
	parse := func(name, cfg string) {
		t.Helper()
		path := filepath.Join(t.TempDir(), name+".cfg")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		check := exec.Command(hp, "-c", "-f", path)
		check.Env = append(os.Environ(), haproxyEnv("127.0.0.1:18080", "127.0.0.1:18084")...)
		if out, err := check.CombinedOutput(); err != nil {
			t.Fatalf("%s: haproxy -c: %v\n%s", name, err, out)
		}
		// The rules themselves (round robin, no stickiness, http-no-delay)
		// are haproxy/haproxy_test.go's: here, only that the nodes replaced
		// the shipped servers.
		for i, n := range nodes {
			if want := fmt.Sprintf("server node%d %s", i+1, n); !strings.Contains(cfg, want) {
				t.Errorf("%s: %q missing", name, want)
			}
		}
		if strings.Contains(cfg, "node1:8080") {
			t.Errorf("%s: the shipped servers are still there", name)
		}
	}
	cfg, err := haproxyConfig(nodes)
	if err != nil {
		t.Fatal(err)
	}
	parse("shoal", cfg)
	sticky, err := stickyHAProxyConfig(nodes)
	if err != nil {
		t.Fatal(err)
	}
	parse("sticky", sticky)
	if !strings.Contains(sticky, "balance uri depth 3") || strings.Contains(sticky, "balance roundrobin") || !strings.Contains(sticky, "uri /echo/info") {
		t.Errorf("the sockjs-node trio's balancer must pin sessions by URL and check /echo/info:\n%s", sticky)
	}
}

// TestCompareRunsPeerAndReportsUnavailableCluster runs the comparison end
// to end on a small scale: sockjs-node is installed with npm, started,
// measured and stopped; the cluster target gets a node program that rejects
// --redis, as a node without cluster wiring does, and must come out as
// unavailable with the node's own words, after real Redis and NATS servers
// were started and stopped for it.
func TestCompareRunsPeerAndReportsUnavailableCluster(t *testing.T) {
	dir := t.TempDir()
	fakeNode := filepath.Join(dir, "shoal-node")
	script := "#!/bin/sh\necho 'flag provided but not defined: -redis' >&2\nexit 2\n"
	if err := os.WriteFile(fakeNode, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Compare(ctx, CompareConfig{
		Base:      Config{Sessions: 3, Rate: 100, Duration: time.Second, Warmup: 200 * time.Millisecond},
		Scenarios: []string{"ws-echo"},
		Targets:   []string{TargetSockJSNode, TargetShoalCluster},
		RepoRoot:  "..",
		ShoalBin:  fakeNode,
		Out:       dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Targets) != 2 || len(rep.Runs) != 2 {
		t.Fatalf("targets %+v, runs %+v", rep.Targets, rep.Runs)
	}
	node, cluster := rep.Runs[0], rep.Runs[1]
	if node.Result == nil {
		t.Fatalf("sockjs-node run failed: %s", node.Error)
	}
	if r := node.Result; r.DeliveryRatio < 0.99 || r.Counts.Errors != 0 || r.Server == nil || r.Server.CPUSeconds < 0 {
		t.Errorf("sockjs-node run: %s", r.Summary())
	}
	if rep.Targets[1].Available || !strings.Contains(cluster.Error, "unavailable") ||
		!strings.Contains(rep.Targets[1].Reason, "flag provided but not defined: -redis") {
		t.Errorf("cluster target = %+v, run error %q: want unavailable with the node's message", rep.Targets[1], cluster.Error)
	}
	for _, f := range []string{"compare.json", "compare.html", "compare.md", "ws-echo-sockjs-node.html", "ws-echo-sockjs-node.json"} {
		if _, err := os.Stat(filepath.Join(rep.Dir, f)); err != nil {
			t.Errorf("missing report file: %v", err)
		}
	}
	if md := rep.Markdown(); !strings.Contains(md, "shoal-cluster**: unavailable") {
		t.Errorf("markdown does not say the cluster was unavailable:\n%s", md)
	}
}

// TestCompareClosedLoopRunsAtRateZero: a closed-loop comparison must not
// fall back to the fixed-rate presets (it once did, so "--rate 0" measured
// nothing at saturation): the run is closed loop, with the preset's
// messages in flight, and the report says how busy the server was.
func TestCompareClosedLoopRunsAtRateZero(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Compare(ctx, CompareConfig{
		Base:       Config{Sessions: 3, Duration: time.Second, Warmup: 200 * time.Millisecond},
		Scenarios:  []string{"ws-echo"},
		Targets:    []string{TargetSockJSNode},
		RepoRoot:   "..",
		Out:        dir,
		ClosedLoop: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Runs[0].Result
	if r == nil {
		t.Fatalf("run failed: %s", rep.Runs[0].Error)
	}
	if r.Rate != 0 || r.Inflight != comparePresets["ws-echo"].closed.inflight || r.Counts.Received == 0 || r.DeliveryRatio < 0.99 {
		t.Errorf("want a closed-loop run with %d in flight: %s", comparePresets["ws-echo"].closed.inflight, r.Summary())
	}
	md := rep.Markdown()
	for _, want := range []string{"× 4 in flight, closed loop", "servers busy / client busy (cores)", "closed loop: each sender"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
