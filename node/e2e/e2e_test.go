// Package e2e runs the real sockjs-client (npm, in Node.js) against real
// Shoal node processes: one node in memory mode, and three nodes sharing
// Redis and NATS behind a round-robin HAProxy.
package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/node/nodetest"
)

const clientDir = "testdata/client"

// chromium is Debian's Chromium for the playwright drivers in browserDir;
// it fails the test if scripts/test has not installed playwright-core.
func chromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(browserDir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("%v: run scripts/test, which runs npm ci in %s", err, browserDir)
	}
	return testenv.LookPath(t, "chromium")
}

// transports sockjs-client can use in Node.js.
var transports = []string{"websocket", "xhr-streaming", "xhr-polling", "eventsource"}

type echoResult struct {
	Error     string   `json:"error"`
	Transport string   `json:"transport"`
	Received  []string `json:"received"`
}

func checkEcho(t *testing.T, baseURL, transport string, count int) {
	t.Helper()
	out := nodetest.RunClient(t, clientDir, "echo", baseURL+"/echo", transport, fmt.Sprint(count))
	var r echoResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	if r.Error != "" {
		t.Fatalf("client error: %s (received %d)", r.Error, len(r.Received))
	}
	if r.Transport != transport {
		t.Errorf("client used transport %q, want %q", r.Transport, transport)
	}
	want := make([]string, count)
	for i := range want {
		want[i] = fmt.Sprintf("msg-%d", i)
	}
	if !slices.Equal(r.Received, want) {
		t.Errorf("received %q, want %q", r.Received, want)
	}
}

func TestEchoOneNode(t *testing.T) {
	n := nodetest.StartNode(t, "solo", "--apps", "conformance")
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { checkEcho(t, n.URL(), tr, 20) })
	}
}

func TestEchoClusterRoundRobin(t *testing.T) {
	c := nodetest.StartCluster(t, 3, "--apps", "conformance")
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { checkEcho(t, c.URL(), tr, 20) })
	}
}

type broadcastResult struct {
	Error    string `json:"error"`
	Sessions []struct {
		Transport string   `json:"transport"`
		Received  []string `json:"received"`
	} `json:"sessions"`
}

// checkBroadcast has one session per transport send numbered messages to
// /broadcast and checks every session got every message exactly once, in
// each sender's order.
func checkBroadcast(t *testing.T, baseURL string, count int) {
	t.Helper()
	out := nodetest.RunClient(t, clientDir, "broadcast", baseURL+"/broadcast",
		"websocket,xhr-streaming,xhr-polling,eventsource", fmt.Sprint(count))
	var r broadcastResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	if r.Error != "" {
		t.Fatalf("client error: %s", r.Error)
	}
	if len(r.Sessions) != len(transports) {
		t.Fatalf("got %d sessions, want %d", len(r.Sessions), len(transports))
	}
	for _, s := range r.Sessions {
		next := make(map[int]int) // sender → next expected sequence number
		for _, m := range s.Received {
			var sender, seq int
			if _, err := fmt.Sscanf(m, "%d:%d", &sender, &seq); err != nil {
				t.Errorf("%s: unexpected message %q", s.Transport, m)
				continue
			}
			if seq != next[sender] {
				t.Errorf("%s: from sender %d got #%d, want #%d (lost, duplicated or reordered)", s.Transport, sender, seq, next[sender])
			}
			next[sender] = seq + 1
		}
		for sender := range transports {
			if next[sender] != count {
				t.Errorf("%s: got %d of %d messages from sender %d", s.Transport, next[sender], count, sender)
			}
		}
	}
}

func TestBroadcastOneNode(t *testing.T) {
	n := nodetest.StartNode(t, "solo", "--apps", "conformance")
	checkBroadcast(t, n.URL(), 25)
}

func TestBroadcastClusterRoundRobin(t *testing.T) {
	c := nodetest.StartCluster(t, 3, "--apps", "conformance")
	checkBroadcast(t, c.URL(), 25)
}
