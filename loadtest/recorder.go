package loadtest

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to 5 minutes, with
// three significant digits: 0.1% error at any value.
const (
	latencyMinMicros = 1
	latencyMaxMicros = 5 * 60 * 1000 * 1000
	latencySigFigs   = 3
	// maxErrorKinds bounds the distinct error texts kept for the summary.
	maxErrorKinds = 32
)

func newLatencyHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(latencyMinMicros, latencyMaxMicros, latencySigFigs)
}

// Point is one interval of the time series: counts over the interval and
// latency percentiles of the messages that arrived in it.
type Point struct {
	T        float64 `json:"t"` // seconds since the run started, at the interval's end
	Phase    string  `json:"phase"`
	Sent     int64   `json:"sent"`
	Received int64   `json:"received"`
	Errors   int64   `json:"errors"`
	Sessions int64   `json:"sessions"` // open at the interval's end
	P50      int64   `json:"p50_us"`
	P90      int64   `json:"p90_us"`
	P99      int64   `json:"p99_us"`
	Max      int64   `json:"max_us"`
	// Server figures, when the run measures server processes: CPUs busy
	// over the interval (1 = one core) and resident memory at its end.
	ServerCPU    float64 `json:"server_cpu,omitempty"`
	ServerRSSKiB int64   `json:"server_rss_kib,omitempty"`
}

// counters are the running totals a window is measured from.
type counters struct {
	sent, received, errors, skipped, opened, lost, open int64
}

// Recorder collects latencies, counts and a per-interval time series.
// Every method is safe for concurrent use.
type Recorder struct {
	start time.Time // the epoch of message timestamps and of the series

	sent, received, errors, skipped, opened, lost, open atomic.Int64

	mu        sync.Mutex // guards everything below
	phase     string
	window    *hdrhistogram.Histogram // latencies inside the measured window
	connect   *hdrhistogram.Histogram // session open latencies, whole run
	interval  *hdrhistogram.Histogram // latencies of the current interval
	lastTick  counters
	winStart  counters
	winEnd    counters
	winBegin  time.Time
	winFinish time.Time
	series    []Point
	errKinds  map[string]int64
}

// NewRecorder returns a recorder whose clock starts now.
func NewRecorder() *Recorder {
	return &Recorder{
		start:    time.Now(),
		phase:    "ramp",
		window:   newLatencyHistogram(),
		connect:  newLatencyHistogram(),
		interval: newLatencyHistogram(),
		errKinds: make(map[string]int64),
	}
}

// Now returns the recorder's clock: nanoseconds since it started, monotonic.
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// Stamp returns a message that carries its send time and is padded with 'x'
// to payload bytes (longer if the stamp itself is longer).
func (r *Recorder) Stamp(payload int) string {
	s := strconv.AppendInt(make([]byte, 0, max(payload, 24)), r.Now(), 10)
	s = append(s, ' ')
	for len(s) < payload {
		s = append(s, 'x')
	}
	return string(s)
}

// Received records the arrival of a stamped message and returns its
// latency; a message without a stamp counts as received with no latency.
func (r *Recorder) Received(msg string) time.Duration {
	r.received.Add(1)
	head, _, ok := strings.Cut(msg, " ")
	if !ok {
		return 0
	}
	sentAt, err := strconv.ParseInt(head, 10, 64)
	if err != nil {
		return 0
	}
	d := time.Duration(r.Now() - sentAt)
	r.Observe(d)
	return d
}

// Observe records one latency.
func (r *Recorder) Observe(d time.Duration) {
	us := clampMicros(d)
	r.mu.Lock()
	_ = r.interval.RecordValue(us) // in range by clampMicros
	if r.phase == "measure" {
		_ = r.window.RecordValue(us)
	}
	r.mu.Unlock()
}

// ObserveConnect records how long one session took to open.
func (r *Recorder) ObserveConnect(d time.Duration) {
	us := clampMicros(d)
	r.mu.Lock()
	_ = r.connect.RecordValue(us)
	r.mu.Unlock()
}

func clampMicros(d time.Duration) int64 {
	us := d.Microseconds()
	return min(max(us, latencyMinMicros), latencyMaxMicros)
}

// Sent counts sent messages.
func (r *Recorder) Sent(n int) { r.sent.Add(int64(n)) }

// Skipped counts sends not made because the session had too many messages
// in flight: the server is behind the requested rate.
func (r *Recorder) Skipped() { r.skipped.Add(1) }

// Opened counts a session that opened; it is open until Closed.
func (r *Recorder) Opened() {
	r.opened.Add(1)
	r.open.Add(1)
}

// Closed counts a session that ended; lost when the client did not end it.
func (r *Recorder) Closed(lost bool) {
	r.open.Add(-1)
	if lost {
		r.lost.Add(1)
	}
}

// Error counts an error and keeps its text, bounded in kinds.
func (r *Recorder) Error(err error) {
	r.errors.Add(1)
	if err == nil {
		return
	}
	k := errorKind(err.Error())
	r.mu.Lock()
	if _, ok := r.errKinds[k]; ok || len(r.errKinds) < maxErrorKinds {
		r.errKinds[k]++
	} else {
		r.errKinds["(other errors)"]++
	}
	r.mu.Unlock()
}

// errorKind strips what varies between sessions (their URLs) so that the
// same failure counts under one text.
func errorKind(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		j := strings.IndexAny(s[i:], " \"")
		if j < 0 {
			j = len(s) - i
		}
		s = s[:i] + "://…" + s[i+j:]
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// SetPhase names the phase the run is in: ramp, warmup, measure, drain.
// Entering "measure" opens the measured window; leaving it closes it.
func (r *Recorder) SetPhase(p string) {
	c := r.counters()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case p == "measure" && r.phase != "measure":
		r.window.Reset()
		r.winStart, r.winBegin = c, time.Now()
	case p != "measure" && r.phase == "measure":
		r.winEnd, r.winFinish = c, time.Now()
	}
	r.phase = p
}

func (r *Recorder) counters() counters {
	return counters{
		sent: r.sent.Load(), received: r.received.Load(), errors: r.errors.Load(),
		skipped: r.skipped.Load(), opened: r.opened.Load(), lost: r.lost.Load(),
		open: r.open.Load(),
	}
}

// OpenSessions is the number of sessions open now.
func (r *Recorder) OpenSessions() int64 { return r.open.Load() }

// Tick closes the current interval, appends it to the series and returns it.
func (r *Recorder) Tick() Point { return r.TickWith(0, 0) }

// TickWith is Tick with the server's CPU use over the interval and its RSS.
func (r *Recorder) TickWith(serverCPU float64, serverRSSKiB int64) Point {
	c := r.counters()
	r.mu.Lock()
	defer r.mu.Unlock()
	p := Point{
		T:        math.Round(time.Since(r.start).Seconds()*1000) / 1000,
		Phase:    r.phase,
		Sent:     c.sent - r.lastTick.sent,
		Received: c.received - r.lastTick.received,
		Errors:   c.errors - r.lastTick.errors,
		Sessions: r.open.Load(),

		ServerCPU:    serverCPU,
		ServerRSSKiB: serverRSSKiB,
	}
	if r.interval.TotalCount() > 0 {
		p.P50 = r.interval.ValueAtQuantile(50)
		p.P90 = r.interval.ValueAtQuantile(90)
		p.P99 = r.interval.ValueAtQuantile(99)
		p.Max = r.interval.Max()
	}
	r.interval.Reset()
	r.lastTick = c
	r.series = append(r.series, p)
	return p
}

// Latency summarises a histogram in microseconds.
type Latency struct {
	Count int64   `json:"count"`
	Min   int64   `json:"min_us"`
	Mean  float64 `json:"mean_us"`
	P50   int64   `json:"p50_us"`
	P90   int64   `json:"p90_us"`
	P99   int64   `json:"p99_us"`
	P999  int64   `json:"p999_us"`
	Max   int64   `json:"max_us"`
}

// Quantile is one point of the latency distribution.
type Quantile struct {
	Percentile float64 `json:"percentile"`
	Micros     int64   `json:"us"`
}

// Bucket is one bar of the latency histogram: Count latencies in (From, To].
type Bucket struct {
	From  int64 `json:"from_us"`
	To    int64 `json:"to_us"`
	Count int64 `json:"count"`
}

func summarize(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Count: h.TotalCount(),
		Min:   h.Min(),
		Mean:  math.Round(h.Mean()*10) / 10,
		P50:   h.ValueAtQuantile(50),
		P90:   h.ValueAtQuantile(90),
		P99:   h.ValueAtQuantile(99),
		P999:  h.ValueAtQuantile(99.9),
		Max:   h.Max(),
	}
}

// spectrum returns latency at percentiles spaced evenly on a log scale of
// 1/(1-p), the usual HdrHistogram plot: 0, 68.4, 90, 96.8, 99, … 99.999, 100.
func spectrum(h *hdrhistogram.Histogram) []Quantile {
	if h.TotalCount() == 0 {
		return nil
	}
	var out []Quantile
	for k := 0; k <= 50; k++ {
		p := 100 * (1 - math.Pow(10, -float64(k)/10))
		out = append(out, Quantile{Percentile: math.Round(p*10000) / 10000, Micros: h.ValueAtQuantile(p)})
	}
	out = append(out, Quantile{Percentile: 100, Micros: h.Max()})
	return out
}

// buckets folds the histogram into at most n bars of equal width on a log
// scale between its smallest and largest value.
func buckets(h *hdrhistogram.Histogram, n int) []Bucket {
	if h.TotalCount() == 0 || n < 1 {
		return nil
	}
	lo, hi := float64(max(h.Min(), 1)), float64(h.Max())
	if hi <= lo {
		return []Bucket{{From: int64(lo) - 1, To: int64(hi), Count: h.TotalCount()}}
	}
	step := math.Log(hi/lo) / float64(n)
	out := make([]Bucket, n)
	for i := range out {
		out[i].From = int64(math.Round(lo * math.Exp(step*float64(i))))
		out[i].To = int64(math.Round(lo * math.Exp(step*float64(i+1))))
	}
	out[0].From = int64(lo) - 1
	for _, bar := range h.Distribution() {
		if bar.Count == 0 {
			continue
		}
		v := float64(min(max(bar.To, int64(lo)), int64(hi)))
		i := int(math.Log(v/lo) / step)
		i = min(max(i, 0), n-1)
		out[i].Count += bar.Count
	}
	return out
}

// errorSummary lists error texts with counts, most frequent first.
func (r *Recorder) errorSummary() []ErrorCount {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ErrorCount, 0, len(r.errKinds))
	for k, n := range r.errKinds {
		out = append(out, ErrorCount{Error: k, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Error < out[j].Error
	})
	return out
}

// ErrorCount is one kind of error and how often it happened.
type ErrorCount struct {
	Error string `json:"error"`
	Count int64  `json:"count"`
}
