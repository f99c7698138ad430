package apps

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/loadtest"
	"github.com/shoal-rt/shoal/node/apps/hub"
	"github.com/shoal-rt/shoal/node/apps/hub/api"
)

// The load generator's scenarios against the conformance app: here, not in
// loadtest, so that loadtest's tests do not import the program's packages.

// TestScenariosAgainstShoal runs every scenario briefly against a real
// node and checks that what was sent arrived, timed, with no error.
func TestScenariosAgainstShoal(t *testing.T) {
	const key = "load-key"
	url := serveOn(t, nil, nil, Options{HubReady: func(h *hub.Hub, mux *http.ServeMux) error {
		mux.Handle("/api/", api.New(h, api.Config{Key: key}))
		return nil
	}}, "conformance", "hub")
	tests := []struct {
		scenario  string
		transport loadtest.Transport
		sessions  int
		rate      float64
		rooms     int
	}{
		{"ws-echo", "", 4, 200, 0},
		{"ws-echo", "", 2, 0, 0}, // closed loop
		{"xhr-polling", "", 3, 60, 0},
		{"broadcast", "", 5, 20, 0},
		{"xhr-streaming", "", 3, 20, 0},
		{"eventsource", "", 3, 20, 0},
		// /echo ends streams at 4 KiB: these reopen them many times.
		{"echo", loadtest.TransportXHRStreaming, 2, 200, 0},
		{"echo", loadtest.TransportEventSource, 2, 200, 0},
		{"churn", "", 4, 20, 0},
		{"idle", "", 30, 0, 0},
		{"hub", "", 20, 50, 4},
		{"hub", loadtest.TransportXHRStreaming, 6, 0, 2}, // closed loop
	}
	for _, tt := range tests {
		t.Run(tt.scenario+"/"+string(tt.transport), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := loadtest.Run(ctx, loadtest.Config{
				URL: url, Scenario: tt.scenario, Transport: tt.transport, Sessions: tt.sessions, Rate: tt.rate,
				Duration: time.Second, Warmup: 200 * time.Millisecond, Settle: 100 * time.Millisecond,
				Payload: 100,
				Rooms:   tt.rooms, APIKey: key,
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
