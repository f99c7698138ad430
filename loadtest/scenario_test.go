package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/node/apps"
	"github.com/shoal-rt/shoal/sockjs"
	"github.com/shoal-rt/shoal/store"
)

// startShoal serves the conformance app from one in-process Shoal node on
// an in-memory store and bus, and returns its root URL.
func startShoal(t *testing.T) string {
	t.Helper()
	b := bus.NewMemory()
	t.Cleanup(func() { b.Close() })
	node, err := sockjs.NewNode(sockjs.NodeConfig{Store: store.NewMemory(), Bus: b})
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Close(ctx); err != nil {
			t.Errorf("node close: %v", err)
		}
	})
	h, err := apps.Mount(node, nil, []string{"conformance"}, apps.Options{})
	if err != nil {
		t.Fatalf("mount conformance app: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestScenariosAgainstShoal runs every scenario briefly against a real
// node and checks that what was sent arrived, timed, with no error.
func TestScenariosAgainstShoal(t *testing.T) {
	url := startShoal(t)
	tests := []struct {
		scenario  string
		transport Transport
		sessions  int
		rate      float64
	}{
		{"ws-echo", "", 4, 200},
		{"ws-echo", "", 2, 0}, // closed loop
		{"xhr-polling", "", 3, 60},
		{"broadcast", "", 5, 20},
		{"xhr-streaming", "", 3, 20},
		{"eventsource", "", 3, 20},
		// /echo ends streams at 4 KiB: these reopen them many times.
		{"echo", TransportXHRStreaming, 2, 200},
		{"echo", TransportEventSource, 2, 200},
		{"churn", "", 4, 20},
		{"idle", "", 30, 0},
	}
	for _, tt := range tests {
		t.Run(tt.scenario+"/"+string(tt.transport), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := Run(ctx, Config{
				URL: url, Scenario: tt.scenario, Transport: tt.transport, Sessions: tt.sessions, Rate: tt.rate,
				Duration: time.Second, Warmup: 200 * time.Millisecond, Settle: 100 * time.Millisecond,
				Payload:    100,
				ServerPIDs: []int{os.Getpid()}, Label: "in-process shoal",
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Counts.Errors != 0 || res.Counts.Lost != 0 {
				t.Errorf("errors %d, lost sessions %d: %+v", res.Counts.Errors, res.Counts.Lost, res.Errors)
			}
			if res.Server == nil || res.Client == nil {
				t.Fatal("no server or client figures although a pid was given")
			}
			if tt.scenario == "echo" && res.Counts.StreamReopens < int64(tt.sessions) {
				t.Errorf("%d stream reopens: the response_limit path was not exercised", res.Counts.StreamReopens)
			}
			if tt.scenario == "idle" {
				if res.Counts.Open != int64(tt.sessions) {
					t.Errorf("%d sessions open at the window's end, want %d", res.Counts.Open, tt.sessions)
				}
				if res.Server.RSSMidKiB <= 0 {
					t.Error("no memory sample between the two halves of the idle sessions")
				}
				return
			}
			if res.Counts.Sent == 0 || res.Latency.Count == 0 {
				t.Fatalf("nothing measured: %s", res.Summary())
			}
			if res.DeliveryRatio < 0.99 {
				t.Errorf("delivered %d of %d: %s", res.Delivered, res.Expected, res.Summary())
			}
			if tt.rate > 0 && tt.scenario != "churn" {
				// Open loop: every tick of the schedule is a send or a
				// counted skip, however loaded the machine is.
				paced := float64(res.Counts.Sent+res.Counts.Skipped) / res.WindowS
				if paced < tt.rate*0.8 || paced > tt.rate*1.2 || res.SendRate > tt.rate*1.1 {
					t.Errorf("sent+skipped %.1f/s (sent %.1f/s), asked for %.0f/s: %s", paced, res.SendRate, tt.rate, res.Summary())
				}
			}
			if res.Latency.P50 <= 0 || res.Latency.P50 > res.Latency.P99 || res.Latency.P99 > res.Latency.Max {
				t.Errorf("latency percentiles out of order: %+v", res.Latency)
			}
			if res.Server.CPUPerOpMicros <= 0 && res.Server.CPUSeconds > 0 {
				t.Errorf("server CPU %vs but no CPU per op", res.Server.CPUSeconds)
			}
		})
	}
}

func TestRefusesRemoteTargets(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"http://10.1.2.3:8080", "http://192.168.0.1", "ws://8.8.8.8/"} {
		_, err := Run(context.Background(), Config{URL: u, Duration: time.Second})
		if err == nil || !strings.Contains(err.Error(), "not a loopback") {
			t.Errorf("Run(%s) = %v, want a refusal", u, err)
		}
	}
	if _, err := NewClient(context.Background(), ClientConfig{URL: "ftp://127.0.0.1"}); err == nil {
		t.Error("an ftp URL must be refused")
	}
}

func TestBoundsAreEnforced(t *testing.T) {
	t.Parallel()
	for _, c := range []Config{
		{URL: "http://127.0.0.1:1", Sessions: MaxSessions + 1},
		{URL: "http://127.0.0.1:1", Duration: 2 * MaxDuration},
		{URL: "http://127.0.0.1:1", Rate: MaxRate * 2},
		{URL: "http://127.0.0.1:1", Payload: MaxPayload + 1},
		{URL: "http://127.0.0.1:1", Scenario: "nope"},
		{URL: "http://127.0.0.1:1", Scenario: "xhr-polling", Transport: TransportWebsocket},
	} {
		if _, _, err := c.normalize(); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
}

// TestSourceAddressesSpread checks that connections leave from the
// addresses 127.0.0.1, .2, .3 in turn.
func TestSourceAddressesSpread(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.RemoteAddr[:strings.LastIndexByte(r.RemoteAddr, ':')]
		mu.Lock()
		seen[host]++
		mu.Unlock()
		w.Header().Set("Connection", "close") // a new connection per request
	}))
	defer srv.Close()
	c, err := NewClient(context.Background(), ClientConfig{URL: srv.URL, SourceIPs: 3})
	if err != nil {
		t.Fatal(err)
	}
	for range 6 {
		if err := c.Info(context.Background(), "/echo"); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		if seen[ip] != 2 {
			t.Errorf("connections from %s: %d, want 2 (all: %v)", ip, seen[ip], seen)
		}
	}
}
