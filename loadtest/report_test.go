package loadtest

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sampleResult is a run with known figures.
func sampleResult(label string, cpuPerOp float64) *Result {
	h := newLatencyHistogram()
	for i := 1; i <= 1000; i++ {
		_ = h.RecordValue(int64(100 + i))
	}
	return &Result{
		Label: label, Scenario: "ws-echo", Kind: KindEcho, Transport: TransportWebsocket,
		URL: "http://127.0.0.1:8080", StartedAt: time.Date(2026, 11, 23, 4, 0, 0, 0, time.UTC),
		Sessions: 50, Rate: 4000, Payload: 32, Inflight: 64, WarmupS: 2, WindowS: 10,
		Counts:   Counts{Sent: 40000, Received: 40000, Opened: 50, Open: 50},
		Expected: 48000, Delivered: 48000, DeliveryRatio: 1, SendRate: 4000, ReceiveRate: 4000,
		Ops: 40000, OpsName: "message",
		Latency: summarize(h), Connect: Latency{Count: 50, P50: 900, P99: 1500, Max: 1600},
		Spectrum: spectrum(h), Histogram: buckets(h, 40),
		Series: []Point{
			{T: 1, Phase: "warmup", Sent: 4000, Received: 3990, Sessions: 50, P50: 150, P90: 180, P99: 1234, Max: 2000},
			{T: 2, Phase: "measure", Sent: 4000, Received: 4000, Sessions: 50, P50: 140, P90: 170, P99: 1100, Max: 1500},
			{T: 3, Phase: "measure", Sent: 4000, Received: 4010, Sessions: 50, P50: 145, P90: 175, P99: 1150, Max: 1600},
		},
		Errors: []ErrorCount{{Error: "loadtest: no reply within 10s", Count: 2}},
		Server: &ServerStats{PIDs: []int{42}, CPUSeconds: cpuPerOp * 40000 / 1e6, CPUUtilization: 0.5, CPUPerOpMicros: cpuPerOp,
			RSSBaselineKiB: 10000, RSSStartKiB: 12000, RSSEndKiB: 12500},
	}
}

func TestResultJSONRoundTrip(t *testing.T) {
	t.Parallel()
	r := sampleResult("shoal", 12.5)
	path := filepath.Join(t.TempDir(), "r.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadResult(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("JSON round trip changed the result:\n got %+v\nwant %+v", got, r)
	}
	b, _ := os.ReadFile(path)
	for _, want := range []string{`"p99_us": 1090`, `"cpu_per_op_us": 12.5`, `"scenario": "ws-echo"`, `"delivery_ratio": 1`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s", want)
		}
	}
}

func TestRunReportHTML(t *testing.T) {
	t.Parallel()
	r := sampleResult("sockjs-go", 13)
	b, err := r.HTML()
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, want := range []string{
		"ws-echo over websocket — sockjs-go",
		"Latency over time", "Throughput", "Latency by percentile", "Latency distribution",
		"<svg", "<polyline", // line charts drawn
		fmtMicros(r.Latency.P99), "13.0 µs", "server CPU per message",
		"loadtest: no reply within 10s",
		"99.9%", // percentile axis
		">warmup<",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// Self-contained: nothing to fetch.
	for _, bad := range []string{`src="http`, `href="http`, "@import", "<script"} {
		if strings.Contains(page, bad) {
			t.Errorf("report references an outside resource: %q", bad)
		}
	}
	if strings.Count(page, "<svg") != 4 {
		t.Errorf("report has %d charts, want 4", strings.Count(page, "<svg"))
	}

	// With the server sampled every second, its CPU and memory are charted.
	for i := range r.Series {
		r.Series[i].ServerCPU, r.Series[i].ServerRSSKiB = 0.25, 12000+int64(i)*1024
	}
	b, err = r.HTML()
	if err != nil {
		t.Fatal(err)
	}
	page = string(b)
	if strings.Count(page, "<svg") != 6 || !strings.Contains(page, "Server memory (RSS)") || !strings.Contains(page, "Server CPU (100% = one core)") {
		t.Errorf("report with server series has %d charts, want 6 with server CPU and memory", strings.Count(page, "<svg"))
	}

	// An idle run has no message latency to chart: its sessions and their
	// open latency instead.
	r.Kind, r.Scenario = KindIdle, "idle"
	r.ConnectSpectrum = r.Spectrum
	b, err = r.HTML()
	if err != nil {
		t.Fatal(err)
	}
	page = string(b)
	if strings.Contains(page, "Latency over time") || !strings.Contains(page, "Session open latency by percentile") || !strings.Contains(page, "Open sessions") {
		t.Error("idle report should chart open sessions and open latency, not message latency")
	}
}

func TestPhaseBands(t *testing.T) {
	t.Parallel()
	bands := phaseBands([]Point{{T: 1, Phase: "ramp"}, {T: 2, Phase: "warmup"}, {T: 3, Phase: "warmup"}, {T: 4, Phase: "measure"}, {T: 5, Phase: "drain"}})
	want := []chartBand{{0, 1, "ramp"}, {1, 3, "warmup"}, {4, 5, "drain"}}
	if !reflect.DeepEqual(bands, want) {
		t.Errorf("bands = %+v, want %+v", bands, want)
	}
}

func TestCompareReportRatios(t *testing.T) {
	t.Parallel()
	idle := func(label string, kib float64) *Result {
		return &Result{Label: label, Scenario: "idle", Kind: KindIdle, Transport: TransportWebsocket, Sessions: 1000,
			Counts: Counts{Open: 1000}, Server: &ServerStats{RSSPerSessionKiB: kib}}
	}
	rep := &CompareReport{
		Scenarios: []string{"ws-echo", "idle"},
		Targets: []TargetInfo{
			{Name: TargetSockJSNode, Available: true, Description: "node"},
			{Name: TargetSockJSGo, Available: true, Description: "go"},
			{Name: TargetShoal, Available: true, Description: "shoal"},
			{Name: TargetShoalCluster, Reason: "node rejected --redis"},
		},
		Runs: []CompareRun{
			{Scenario: "ws-echo", Target: TargetSockJSNode, Result: sampleResult(TargetSockJSNode, 26)},
			{Scenario: "ws-echo", Target: TargetSockJSGo, Result: sampleResult(TargetSockJSGo, 13)},
			{Scenario: "ws-echo", Target: TargetShoal, Result: sampleResult(TargetShoal, 6.5)},
			{Scenario: "ws-echo", Target: TargetShoalCluster, Error: "unavailable: node rejected --redis"},
			{Scenario: "idle", Target: TargetSockJSNode, Result: idle(TargetSockJSNode, 8)},
			{Scenario: "idle", Target: TargetSockJSGo, Result: idle(TargetSockJSGo, 25)},
			{Scenario: "idle", Target: TargetShoal, Result: idle(TargetShoal, 10)},
		},
	}
	rep.Ratios = rep.ratios()
	want := map[string]float64{
		"ws-echo shoal/sockjs-node": 0.25, "ws-echo shoal/sockjs-go": 0.5,
		"idle shoal/sockjs-node": 1.25, "idle shoal/sockjs-go": 0.4,
	}
	if len(rep.Ratios) != len(want) {
		t.Fatalf("ratios = %+v, want %d of them", rep.Ratios, len(want))
	}
	for _, r := range rep.Ratios {
		k := r.Scenario + " " + r.Shoal + "/" + r.Peer
		if w, ok := want[k]; !ok || math.Abs(r.Ratio-w) > 1e-9 {
			t.Errorf("ratio %s = %v, want %v", k, r.Ratio, w)
		}
	}
	rep.Runs[2].Result.BackendPerOp = map[string]float64{CountRedisCommands: 33.25, CountRedisScripts: 4, CountRedisCPU: 210, CountNATSIn: 0.5, CountNATSOut: 0.5}
	rep.Runs[2].Result.Server.CPUSeconds = 3
	rep.Runs[2].Result.Server.Processes = []ProcessSample{{Name: "haproxy", CPUSeconds: 1}, {Name: "shoal-node", CPUSeconds: 1.5}, {Name: "shoal-node", CPUSeconds: 0.5}}
	md := rep.Markdown()
	for _, s := range []string{"| ws-echo | shoal | message | 6.50 | shoal-node ×2 4.33 · haproxy 2.17 |", "| ws-echo | 50 websocket sessions, 4k msg/s | server CPU per message (µs) | 26.0 | 13.0 | 6.50 | unavailable |",
		"| ws-echo | shoal | message | 33.2 | 4.00 | 210 | 0.50 | 0.50 |",
		"| idle | shoal memory", "0.25", "1.25", "unavailable: node rejected --redis"} {
		if s == "| idle | shoal memory" {
			s = "| idle | server memory per idle session (KiB) | shoal | 1.25 | 0.40 |"
		}
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
	path := filepath.Join(t.TempDir(), "c.html")
	if err := rep.writeHTML(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	page := string(b)
	for _, s := range []string{"Shoal ÷ peer", "0.25", "ws-echo — 50 websocket sessions, 4k msg/s", "server CPU per message (µs)", "latency by percentile", "unavailable"} {
		if !strings.Contains(page, s) {
			t.Errorf("comparison page lacks %q", s)
		}
	}

	// A saved comparison redraws to the same ratios, and a run that lost
	// messages is called out beside its ratio.
	rep.Runs[2].Result.DeliveryRatio = 0.33
	rep.Ratios = nil
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	jsonPath := filepath.Join(t.TempDir(), "compare.json")
	if err := os.WriteFile(jsonPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := RenderCompare(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Ratios) != len(want) || again.Ratios[0].Caveat != "shoal delivered 33%" {
		t.Errorf("redrawn ratios = %+v", again.Ratios)
	}
	md2, err := os.ReadFile(filepath.Join(filepath.Dir(jsonPath), "compare.md"))
	if err != nil || !strings.Contains(string(md2), "0.25 (shoal delivered 33%)") {
		t.Errorf("redrawn markdown lacks the caveat (%v):\n%s", err, md2)
	}
}
