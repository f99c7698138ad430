package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"
)

// errNoReply is counted when a closed-loop session waited too long for the
// reply to its last message and sends the next one anyway.
var errNoReply = errors.New("loadtest: no reply within 10s")

const replyTimeout = 10 * time.Second

// runner is one run: its configuration, client and recorder.
type runner struct {
	cfg    Config
	kind   string
	rec    *Recorder
	client *Client

	procBaseline *ProcSample // before any session opened
	procStart    *ProcSample // at the window's start
	procEnd      *ProcSample // at the window's end
	procErr      error
	procMid      *ProcSample        // idle: after the first half of the sessions opened
	openMid      int64              // idle: sessions open at procMid
	selfStart    *ProcSample        // this process at the window's start
	selfEnd      *ProcSample        // and at its end
	countsStart  map[string]float64 // Config.Counters at the window's start
	countsEnd    map[string]float64 // and at its end
	countsErr    error
	window       time.Duration
	receivers    int64 // broadcast: sessions every publish should reach
}

// Run performs one scenario against a running server and returns what it
// measured. It stops by itself after the ramp, warmup and window, or when
// ctx ends.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg, kind, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	client, err := NewClient(ctx, ClientConfig{
		URL:          cfg.URL,
		SourceIPs:    cfg.SourceIPs,
		AllowRemote:  cfg.AllowRemote,
		MaxIdleConns: min(2*cfg.Sessions+64, 20_000),
	})
	if err != nil {
		return nil, err
	}
	defer client.CloseIdle()
	prefix := cfg.EchoPrefix
	switch kind {
	case KindBroadcast:
		prefix = cfg.BroadcastPrefix
	case KindHub:
		prefix = cfg.HubPrefix
	}
	if err := client.Info(ctx, prefix); err != nil {
		return nil, fmt.Errorf("loadtest: server not ready at %s%s: %w", cfg.URL, cleanPrefix(prefix), err)
	}
	r := &runner{cfg: cfg, kind: kind, rec: NewRecorder(), client: client}
	if len(cfg.ServerPIDs) > 0 {
		cfg.ServerPIDs = withDescendants(cfg.ServerPIDs)
		r.cfg.ServerPIDs = cfg.ServerPIDs
		s, err := SampleProcs(cfg.ServerPIDs)
		if err != nil {
			return nil, err
		}
		r.procBaseline = &s
	}
	started := time.Now()
	stopProgress := r.progress()
	switch kind {
	case KindEcho:
		err = r.runEcho(ctx)
	case KindBroadcast:
		err = r.runBroadcast(ctx)
	case KindChurn:
		err = r.runChurn(ctx)
	case KindIdle:
		err = r.runIdle(ctx)
	case KindHub:
		err = r.runHub(ctx)
	}
	stopProgress()
	if err != nil {
		return nil, err
	}
	return r.result(started), nil
}

// measure runs the warmup and the measured window while traffic (already
// started) flows, sampling the server's processes at the window's edges.
func (r *runner) measure(ctx context.Context) error {
	r.rec.SetPhase("warmup")
	if err := sleepCtx(ctx, r.cfg.Warmup); err != nil {
		return err
	}
	r.sampleWindowEdge(&r.procStart)
	r.readCounters(ctx, &r.countsStart)
	r.rec.SetPhase("measure")
	t0 := time.Now()
	err := sleepCtx(ctx, r.cfg.Duration)
	r.rec.SetPhase("drain")
	r.window = time.Since(t0)
	r.sampleWindowEdge(&r.procEnd)
	r.readCounters(ctx, &r.countsEnd)
	return err
}

// readCounters reads Config.Counters into dst, if there are any.
func (r *runner) readCounters(ctx context.Context, dst *map[string]float64) {
	if r.cfg.Counters == nil || r.countsErr != nil {
		return
	}
	*dst, r.countsErr = r.cfg.Counters(ctx)
}

func (r *runner) sampleWindowEdge(dst **ProcSample) {
	self, err := SampleProcs([]int{os.Getpid()})
	if err == nil {
		if r.selfStart == nil {
			r.selfStart = &self
		} else {
			r.selfEnd = &self
		}
	}
	if len(r.cfg.ServerPIDs) == 0 || r.procErr != nil {
		return
	}
	s, err := SampleProcs(r.cfg.ServerPIDs)
	if err != nil {
		r.procErr = err
		return
	}
	*dst = &s
}

// openSessions opens n sessions with bounded concurrency and time. handler
// gives each its callbacks; open/close accounting is added here. It
// returns the sessions that opened; failures are counted as errors.
func (r *runner) openSessions(ctx context.Context, prefix string, t Transport, n int, handler func(i int) SessionHandler) ([]Session, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RampTimeout)
	defer cancel()
	out := make([]Session, n)
	sem := make(chan struct{}, r.cfg.OpenConcurrency)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := r.openTracked(ctx, prefix, t, handler(i))
			if err != nil {
				r.rec.Error(err)
				return
			}
			out[i] = s
		}()
	}
	wg.Wait()
	opened := out[:0]
	for _, s := range out {
		if s != nil {
			opened = append(opened, s)
		}
	}
	if len(opened) == 0 {
		return nil, fmt.Errorf("loadtest: no session of %d opened on %s%s over %s", n, r.cfg.URL, cleanPrefix(prefix), t)
	}
	return opened, nil
}

// openTracked opens one session, timing it and counting it open until it
// ends; a session the server ends or that fails counts as lost.
func (r *runner) openTracked(ctx context.Context, prefix string, t Transport, h SessionHandler) (Session, error) {
	octx, cancel := context.WithTimeout(ctx, r.cfg.OpenTimeout)
	defer cancel()
	onClose := h.OnClose
	h.OnClose = func(err error) {
		r.rec.Closed(err != nil)
		if err != nil {
			r.rec.Error(err)
		}
		if onClose != nil {
			onClose(err)
		}
	}
	t0 := time.Now()
	s, err := r.client.Open(octx, prefix, t, h)
	if err != nil {
		return nil, err
	}
	r.rec.ObserveConnect(time.Since(t0))
	r.rec.Opened()
	return s, nil
}

// closeAll closes sessions with bounded concurrency.
func (r *runner) closeAll(sessions []Session) {
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, s := range sessions {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Close()
			<-sem
		}()
	}
	wg.Wait()
}

// pace calls fn rate times per second until ctx ends, starting after
// offset. When fn falls behind by more than a tenth of a second's worth of
// calls the backlog is dropped and counted as skipped, so that a slow
// server does not get a burst later.
func (r *runner) pace(ctx context.Context, rate float64, offset time.Duration, fn func()) {
	if rate <= 0 {
		return
	}
	if sleepCtx(ctx, offset) != nil {
		return
	}
	period := max(time.Duration(float64(time.Second)/rate), 2*time.Millisecond)
	burst := int64(max(1, math.Ceil(rate/10)))
	t := time.NewTicker(period)
	defer t.Stop()
	start := time.Now()
	var done int64
	for {
		due := int64(time.Since(start).Seconds()*rate) + 1 - done
		if due > burst {
			for range due - burst {
				r.rec.Skipped()
			}
			done += due - burst
			due = burst
		}
		for ; due > 0; due-- {
			if ctx.Err() != nil {
				return
			}
			fn()
			done++
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// inflight bounds the messages of one sender not yet seen back.
type inflight chan struct{}

// tryAcquire takes a slot if one is free.
func (f inflight) tryAcquire() bool {
	select {
	case f <- struct{}{}:
		return true
	default:
		return false
	}
}

// acquire waits for a slot; after replyTimeout it frees one (the reply is
// presumed lost), counts an error and takes it.
func (f inflight) acquire(ctx context.Context, rec *Recorder) bool {
	t := time.NewTimer(replyTimeout)
	defer t.Stop()
	select {
	case f <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	case <-t.C:
		rec.Error(errNoReply)
		f.release()
		return f.tryAcquire()
	}
}

func (f inflight) release() {
	select {
	case <-f:
	default:
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// result assembles the Result from the recorder and the process samples.
func (r *runner) result(started time.Time) *Result {
	rec := r.rec
	rec.Tick()
	rec.mu.Lock()
	w := counters{
		sent:     rec.winEnd.sent - rec.winStart.sent,
		received: rec.winEnd.received - rec.winStart.received,
		errors:   rec.winEnd.errors - rec.winStart.errors,
		skipped:  rec.winEnd.skipped - rec.winStart.skipped,
	}
	res := &Result{
		Label:     r.cfg.Label,
		Scenario:  r.cfg.Scenario,
		Kind:      r.kind,
		Transport: r.cfg.Transport,
		URL:       r.cfg.URL,
		StartedAt: started.UTC().Round(time.Millisecond),
		Sessions:  r.cfg.Sessions,
		Rate:      r.cfg.Rate,
		Payload:   r.cfg.Payload,
		Inflight:  r.cfg.Inflight,
		Rooms:     r.rooms(),
		WarmupS:   r.cfg.Warmup.Seconds(),
		WindowS:   math.Round(r.window.Seconds()*1000) / 1000,
		Counts: Counts{
			Sent: w.sent, Received: w.received, Errors: w.errors, Skipped: w.skipped,
			Opened: rec.opened.Load(), Lost: rec.lost.Load(), Open: rec.winEnd.open,
		},
		Latency:         summarize(rec.window),
		Connect:         summarize(rec.connect),
		Spectrum:        spectrum(rec.window),
		ConnectSpectrum: spectrum(rec.connect),
		Histogram:       buckets(rec.window, 40),
		Series:          append([]Point(nil), rec.series...),
	}
	rec.mu.Unlock()
	res.Errors = rec.errorSummary()
	res.Counts.BusyRetries = r.client.BusyRetries.Load()
	res.Counts.StreamReopens = r.client.StreamReopens.Load()
	if r.selfStart != nil && r.selfEnd != nil && r.window > 0 {
		cpu := r.selfEnd.CPUSeconds - r.selfStart.CPUSeconds
		res.Client = &ClientStats{CPUSeconds: round3(cpu), CPUUtilization: round3(cpu / r.window.Seconds()), RSSKiB: r.selfEnd.RSSKiB}
	}
	if n := res.Counts.BusyRetries; n > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d receiving requests were refused with 2010 while the previous one was still being detached by the server, and retried", n))
	}
	if s := r.window.Seconds(); s > 0 {
		res.SendRate = math.Round(float64(w.sent)/s*10) / 10
		res.ReceiveRate = math.Round(float64(w.received)/s*10) / 10
	}
	res.Ops, res.OpsName = w.received, "message"
	res.Expected, res.Delivered = rec.sent.Load(), rec.received.Load()
	switch r.kind {
	case KindBroadcast, KindHub:
		res.Expected *= r.receivers
	case KindChurn:
		res.OpsName = "session"
	case KindIdle:
		res.Ops, res.OpsName = 0, ""
	}
	if res.Expected > 0 {
		res.DeliveryRatio = math.Round(float64(res.Delivered)/float64(res.Expected)*10000) / 10000
	}
	if r.procErr != nil {
		res.Notes = append(res.Notes, "server measurement failed: "+r.procErr.Error())
	}
	if r.countsErr != nil {
		res.Notes = append(res.Notes, "backend counters failed: "+r.countsErr.Error())
	}
	res.BackendPerOp = countsPerOp(r.countsStart, r.countsEnd, res.Ops)
	if r.procBaseline != nil && r.procStart != nil && r.procEnd != nil {
		sv := &ServerStats{
			PIDs:           r.cfg.ServerPIDs,
			CPUSeconds:     round3(r.procEnd.CPUSeconds - r.procStart.CPUSeconds),
			RSSBaselineKiB: r.procBaseline.RSSKiB,
			RSSStartKiB:    r.procStart.RSSKiB,
			RSSEndKiB:      r.procEnd.RSSKiB,
		}
		if s := r.window.Seconds(); s > 0 {
			sv.CPUUtilization = round3(sv.CPUSeconds / s)
		}
		if res.Ops > 0 {
			sv.CPUPerOpMicros = round3(sv.CPUSeconds * 1e6 / float64(res.Ops))
		}
		for i, p := range r.procEnd.Procs {
			p.CPUSeconds = round3(p.CPUSeconds - r.procStart.Procs[i].CPUSeconds)
			sv.Processes = append(sv.Processes, p)
		}
		if r.kind == KindIdle && res.Counts.Open > 0 {
			sv.RSSPerSessionKiB = round3(float64(sv.RSSEndKiB-sv.RSSBaselineKiB) / float64(res.Counts.Open))
			if r.procMid != nil && res.Counts.Open > r.openMid {
				sv.RSSMidKiB = r.procMid.RSSKiB
				sv.RSSMarginalKiB = round3(float64(sv.RSSEndKiB-r.procMid.RSSKiB) / float64(res.Counts.Open-r.openMid))
			}
		}
		res.Server = sv
	}
	if res.Counts.Skipped > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d sends skipped: a sender had %d messages in flight or fell over 0.1 s behind its schedule; the server (or this client) did not keep up with the rate", res.Counts.Skipped, r.cfg.Inflight))
	}
	return res
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
