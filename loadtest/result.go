package loadtest

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Result is everything one run measured; it is the JSON result file.
// Counts, rates and latencies are of the measured window only.
type Result struct {
	Label     string    `json:"label"`
	Scenario  string    `json:"scenario"`
	Kind      string    `json:"kind"`
	Transport Transport `json:"transport"`
	URL       string    `json:"url"`
	StartedAt time.Time `json:"started_at"`

	Sessions int     `json:"sessions"`
	Rate     float64 `json:"rate"`
	Payload  int     `json:"payload"`
	Inflight int     `json:"inflight"`
	Rooms    int     `json:"rooms,omitempty"` // hub: the channels the sessions were spread over
	WarmupS  float64 `json:"warmup_s"`
	WindowS  float64 `json:"window_s"` // the measured window as it ran

	Counts Counts `json:"counts"`
	// Expected is how many messages should have arrived over the whole run
	// (warmup and drain included): sent for echo and churn, sent ×
	// receiving sessions for broadcast; DeliveryRatio is received / expected.
	Expected      int64   `json:"expected"`
	Delivered     int64   `json:"delivered"`
	DeliveryRatio float64 `json:"delivery_ratio"`
	SendRate      float64 `json:"send_per_s"`
	ReceiveRate   float64 `json:"receive_per_s"`
	// Ops is what server CPU is divided by: received messages (echoes,
	// deliveries) or, for churn, completed sessions.
	Ops     int64  `json:"ops"`
	OpsName string `json:"ops_name"`

	Latency  Latency    `json:"latency"`
	Connect  Latency    `json:"connect_latency"`
	Spectrum []Quantile `json:"latency_spectrum"`
	// ConnectSpectrum is the session open latency by percentile.
	ConnectSpectrum []Quantile   `json:"connect_spectrum"`
	Histogram       []Bucket     `json:"latency_histogram"`
	Series          []Point      `json:"series"`
	Errors          []ErrorCount `json:"errors"`
	Server          *ServerStats `json:"server,omitempty"`
	Client          *ClientStats `json:"client,omitempty"`
	// BackendPerOp is what the backends' counters (Config.Counters: Redis
	// commands, scripts and CPU µs, NATS messages) grew by over the
	// window, per op.
	BackendPerOp map[string]float64 `json:"backend_per_op,omitempty"`
	Notes        []string           `json:"notes,omitempty"`
}

// Counts are the window's totals.
type Counts struct {
	Sent     int64 `json:"sent"`
	Received int64 `json:"received"`
	Errors   int64 `json:"errors"`
	Skipped  int64 `json:"skipped"`
	Opened   int64 `json:"opened"` // sessions opened during the whole run
	Lost     int64 `json:"lost"`   // sessions the server ended or that failed, whole run
	Open     int64 `json:"open"`   // sessions open at the window's end
	// BusyRetries are polls or stream reopens the server refused with 2010
	// although the client had no other receiver open, retried; whole run.
	BusyRetries int64 `json:"busy_retries"`
	// StreamReopens are streaming responses the server ended at its
	// response_limit and the client reopened; whole run.
	StreamReopens int64 `json:"stream_reopens"`
}

// ServerStats is what the server's processes spent over the window.
type ServerStats struct {
	PIDs           []int   `json:"pids"`
	CPUSeconds     float64 `json:"cpu_s"`
	CPUUtilization float64 `json:"cpu_utilization"` // CPUs busy on average: 1 = one core
	CPUPerOpMicros float64 `json:"cpu_per_op_us"`
	RSSBaselineKiB int64   `json:"rss_baseline_kib"` // before any session opened
	RSSStartKiB    int64   `json:"rss_start_kib"`    // at the window's start
	RSSEndKiB      int64   `json:"rss_end_kib"`      // at the window's end
	// RSSPerSessionKiB is (end − baseline) / open sessions.
	RSSPerSessionKiB float64 `json:"rss_per_session_kib"`
	// RSSMarginalKiB is the growth per session of the second half of the
	// idle sessions alone: (end − mid) / sessions opened after mid.
	RSSMidKiB      int64   `json:"rss_mid_kib,omitempty"`
	RSSMarginalKiB float64 `json:"rss_marginal_kib,omitempty"`
	// Processes splits CPU over the window and RSS at its end by process.
	Processes []ProcessSample `json:"processes,omitempty"`
}

// ClientStats is what the load generator itself spent over the window: if
// it is near one core per CPU it had, the client, not the server, was the
// limit.
type ClientStats struct {
	CPUSeconds     float64 `json:"cpu_s"`
	CPUUtilization float64 `json:"cpu_utilization"`
	RSSKiB         int64   `json:"rss_kib"`
}

// WriteJSON writes the result to path.
func (r *Result) WriteJSON(path string) error { return writeJSON(path, "result", r) }

// writeJSON writes v to path as indented JSON; what names the file in
// errors.
func writeJSON(path, what string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("loadtest: encode %s: %w", what, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("loadtest: write %s: %w", what, err)
	}
	return nil
}

// ReadResult reads a result file written by WriteJSON.
func ReadResult(path string) (*Result, error) {
	var r Result
	if err := readJSON(path, "result", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// readJSON decodes the JSON file at path into v; what names the file in
// errors.
func readJSON(path, what string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("loadtest: read %s: %w", what, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("loadtest: decode %s %s: %w", what, path, err)
	}
	return nil
}

// Summary is a few lines for a terminal.
func (r *Result) Summary() string {
	s := fmt.Sprintf("%s: %s over %s, %d sessions, %.1fs window\n", r.Label, r.Scenario, r.Transport, r.Sessions, r.WindowS)
	s += fmt.Sprintf("  sent %d (%.0f/s)  received %d (%.0f/s)  delivery %.1f%%  errors %d  skipped %d  sessions lost %d\n",
		r.Counts.Sent, r.SendRate, r.Counts.Received, r.ReceiveRate, 100*r.DeliveryRatio, r.Counts.Errors, r.Counts.Skipped, r.Counts.Lost)
	if r.Latency.Count > 0 {
		l := r.Latency
		s += fmt.Sprintf("  latency  min %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%d)\n",
			fmtMicros(l.Min), fmtMicros(l.P50), fmtMicros(l.P90), fmtMicros(l.P99), fmtMicros(l.P999), fmtMicros(l.Max), l.Count)
	}
	if c := r.Connect; c.Count > 0 {
		s += fmt.Sprintf("  connect  p50 %s  p99 %s  max %s  (n=%d)\n", fmtMicros(c.P50), fmtMicros(c.P99), fmtMicros(c.Max), c.Count)
	}
	if sv := r.Server; sv != nil {
		s += fmt.Sprintf("  server   cpu %.2fs (%.0f%% of a core)", sv.CPUSeconds, 100*sv.CPUUtilization)
		if r.Ops > 0 {
			s += fmt.Sprintf("  %.1f µs per %s", sv.CPUPerOpMicros, r.OpsName)
		}
		s += fmt.Sprintf("  rss %s → %s", fmtKiB(sv.RSSBaselineKiB), fmtKiB(sv.RSSEndKiB))
		if sv.RSSPerSessionKiB > 0 {
			s += fmt.Sprintf("  %.1f KiB per session", sv.RSSPerSessionKiB)
		}
		if sv.RSSMarginalKiB != 0 {
			s += fmt.Sprintf(" (%.1f KiB marginal)", sv.RSSMarginalKiB)
		}
		s += "\n"
		if len(sv.Processes) > 1 {
			s += "  by process: " + processText(sv.Processes) + "\n"
		}
	}
	if b := r.BackendPerOp; b != nil {
		s += fmt.Sprintf("  backends per %s: redis %.1f commands (%.2f scripts, %.0f µs cpu) · nats %.2f msgs in, %.2f out\n", r.OpsName,
			b[CountRedisCommands], b[CountRedisScripts], b[CountRedisCPU], b[CountNATSIn], b[CountNATSOut])
	}
	if c := r.Client; c != nil {
		s += fmt.Sprintf("  client   cpu %.2fs (%.0f%% of a core)  rss %s\n", c.CPUSeconds, 100*c.CPUUtilization, fmtKiB(c.RSSKiB))
	}
	for _, e := range r.Errors {
		s += fmt.Sprintf("  error ×%d: %s\n", e.Count, e.Error)
	}
	for _, n := range r.Notes {
		s += "  note: " + n + "\n"
	}
	return s
}

// fmtMicros prints a latency with a unit that keeps three digits.
func fmtMicros(us int64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%dµs", us)
	case us < 10_000:
		return fmt.Sprintf("%.2fms", float64(us)/1000)
	case us < 1_000_000:
		return fmt.Sprintf("%.1fms", float64(us)/1000)
	}
	return fmt.Sprintf("%.2fs", float64(us)/1e6)
}

func fmtKiB(k int64) string {
	if k < 10*1024 {
		return fmt.Sprintf("%d KiB", k)
	}
	return fmt.Sprintf("%.1f MiB", float64(k)/1024)
}
