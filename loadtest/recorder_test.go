package loadtest

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestPercentilesOfUniformLatencies(t *testing.T) {
	t.Parallel()
	r := NewRecorder()
	r.SetPhase("measure")
	for us := 1; us <= 10_000; us++ {
		r.Observe(time.Duration(us) * time.Microsecond)
	}
	r.SetPhase("drain")
	l := summarize(r.window)
	// HdrHistogram with 3 significant digits: each value within 0.1%.
	within := func(name string, got int64, want float64) {
		t.Helper()
		if math.Abs(float64(got)-want) > want*0.001+1 {
			t.Errorf("%s = %d, want %.0f ±0.1%%", name, got, want)
		}
	}
	if l.Count != 10_000 {
		t.Fatalf("count = %d, want 10000", l.Count)
	}
	within("min", l.Min, 1)
	within("p50", l.P50, 5000)
	within("p90", l.P90, 9000)
	within("p99", l.P99, 9900)
	within("p99.9", l.P999, 9990)
	within("max", l.Max, 10_000)
	if math.Abs(l.Mean-5000.5) > 5 {
		t.Errorf("mean = %v, want 5000.5", l.Mean)
	}
}

func TestWindowKeepsOnlyMeasuredLatencies(t *testing.T) {
	t.Parallel()
	r := NewRecorder()
	r.SetPhase("warmup")
	r.Observe(50 * time.Millisecond) // outside the window: not in percentiles
	r.Sent(3)
	r.SetPhase("measure")
	r.Sent(2)
	r.Observe(100 * time.Microsecond)
	r.Observe(200 * time.Microsecond)
	r.SetPhase("drain")
	r.Sent(7)
	if got := r.window.TotalCount(); got != 2 {
		t.Fatalf("window holds %d latencies, want 2", got)
	}
	if got := r.window.Max(); got > 201 {
		t.Errorf("window max = %dµs, the warmup's 50ms leaked in", got)
	}
	if got := r.winEnd.sent - r.winStart.sent; got != 2 {
		t.Errorf("sent in window = %d, want 2", got)
	}
}

func TestStampRoundTrip(t *testing.T) {
	t.Parallel()
	r := NewRecorder()
	for _, size := range []int{0, 5, 32, 1000} {
		msg := r.Stamp(size)
		if size > 24 && len(msg) != size {
			t.Errorf("Stamp(%d) has %d bytes", size, len(msg))
		}
		if strings.Trim(msg[strings.IndexByte(msg, ' ')+1:], "x") != "" {
			t.Errorf("Stamp(%d) padding is not x: %q", size, msg)
		}
	}
	r.SetPhase("measure")
	msg := r.Stamp(32)
	time.Sleep(2 * time.Millisecond)
	d := r.Received(msg)
	if d < 2*time.Millisecond || d > time.Second {
		t.Errorf("latency of a 2ms-old stamp = %v", d)
	}
	if r.Received("not a stamp") != 0 || r.Received("12x3 y") != 0 {
		t.Error("unstamped messages must not produce a latency")
	}
	if got := r.received.Load(); got != 3 {
		t.Errorf("received = %d, want 3 (unstamped ones count too)", got)
	}
}

func TestTickSeries(t *testing.T) {
	t.Parallel()
	r := NewRecorder()
	r.Sent(10)
	r.Observe(time.Millisecond)
	p1 := r.Tick()
	r.Sent(5)
	p2 := r.Tick()
	if p1.Sent != 10 || p2.Sent != 5 {
		t.Errorf("interval sends = %d, %d; want 10, 5", p1.Sent, p2.Sent)
	}
	if p1.P50 < 999 || p1.P50 > 1001 || p2.P50 != 0 {
		t.Errorf("interval p50 = %d, %d; want 1000, 0 (reset per interval)", p1.P50, p2.P50)
	}
	if len(r.series) != 2 {
		t.Errorf("series has %d points, want 2", len(r.series))
	}
}

func TestSpectrumAndBuckets(t *testing.T) {
	t.Parallel()
	h := newLatencyHistogram()
	for i := 1; i <= 1000; i++ {
		_ = h.RecordValue(int64(i * i)) // a long tail: 1µs .. 1s
	}
	sp := spectrum(h)
	if len(sp) < 50 {
		t.Fatalf("spectrum has %d points", len(sp))
	}
	for i := 1; i < len(sp); i++ {
		if sp[i].Percentile < sp[i-1].Percentile || sp[i].Micros < sp[i-1].Micros {
			t.Fatalf("spectrum not monotonic at %d: %+v then %+v", i, sp[i-1], sp[i])
		}
	}
	if last := sp[len(sp)-1]; last.Percentile != 100 || last.Micros != h.Max() {
		t.Errorf("spectrum ends at %+v, want 100%% = max %d", last, h.Max())
	}
	bs := buckets(h, 20)
	var total int64
	for i, b := range bs {
		total += b.Count
		if b.To <= b.From || (i > 0 && b.From != bs[i-1].To) {
			t.Errorf("bucket %d = %+v does not follow %+v", i, b, bs[max(i-1, 0)])
		}
	}
	if total != 1000 {
		t.Errorf("buckets hold %d values, want 1000", total)
	}
}

func TestErrorKindsBounded(t *testing.T) {
	t.Parallel()
	r := NewRecorder()
	for i := range 100 {
		r.Error(&CloseError{Code: 3000 + i, Reason: "x"})
	}
	r.Error(errNoReply)
	sum := r.errorSummary()
	if len(sum) > maxErrorKinds+1 {
		t.Errorf("%d error kinds kept, bound is %d", len(sum), maxErrorKinds)
	}
	var n int64
	for _, e := range sum {
		n += e.Count
	}
	if n != 101 || r.errors.Load() != 101 {
		t.Errorf("errors counted %d (total %d), want 101", n, r.errors.Load())
	}
	if k := errorKind(`Post "http://127.0.0.1:1/echo/123/abc/xhr": EOF`); strings.Contains(k, "abc") {
		t.Errorf("errorKind kept the session URL: %q", k)
	}
}
