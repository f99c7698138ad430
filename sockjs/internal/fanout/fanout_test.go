package fanout

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/store"
)

// The fan-out on a memory store and a memory bus, without HTTP or
// sessions. The tests' own wire format: a bus message is uv(offset) then
// the entry; an entry is except, NUL, message.

func decodeBus(b []byte) (uint64, string, bool) {
	off, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, "", false
	}
	return off, string(b[n:]), true
}

func decodeEntry(entry string) (string, string, bool) {
	return strings.Cut(entry, "\x00")
}

func entry(except, msg string) string { return except + "\x00" + msg }

func busMsg(off uint64, entry string) []byte {
	return append(binary.AppendUvarint(nil, off), entry...)
}

type env struct {
	t     *testing.T
	store *store.Memory
	bus   bus.Bus
	cs    *Channels
	log   store.LogOptions
}

func newEnv(t *testing.T, recheck time.Duration) *env {
	t.Helper()
	return newEnvWith(t, recheck, nil)
}

// newEnvWith is newEnv whose fan-out's Config tweak changes.
func newEnvWith(t *testing.T, recheck time.Duration, tweak func(e *env, cfg *Config)) *env {
	t.Helper()
	e := &env{t: t, store: store.NewMemory(), bus: bus.NewMemory(), log: store.LogOptions{Keep: time.Minute}}
	t.Cleanup(func() { e.bus.Close() })
	cfg := Config{
		Store: e.store, Bus: e.bus, Recheck: recheck,
		DecodeBus: decodeBus, DecodeEntry: decodeEntry,
		Frame: func(msg string) []byte { return []byte("frame:" + msg) },
	}
	if tweak != nil {
		tweak(e, &cfg)
	}
	cs, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.cs = cs
	return e
}

// appendLog puts a message in the log only, as if its bus copy was lost.
func (e *env) appendLog(channel, except, msg string) uint64 {
	e.t.Helper()
	off, err := e.store.AppendChannel(context.Background(), channel, entry(except, msg), e.log)
	if err != nil {
		e.t.Fatal(err)
	}
	return off
}

// send puts the message at off on the bus only.
func (e *env) send(channel string, off uint64, except, msg string) {
	e.t.Helper()
	if err := e.bus.Publish(context.Background(), channel, busMsg(off, entry(except, msg))); err != nil {
		e.t.Fatal(err)
	}
}

// publish is what a publisher does: log, then bus.
func (e *env) publish(channel, except, msg string) uint64 {
	off := e.appendLog(channel, except, msg)
	e.send(channel, off, except, msg)
	return off
}

// subscribe joins a subscription from the log's head and waits until it
// is live.
func (e *env) subscribe(channel, session string, allowLoss bool) (*Subscription, *recorder, *Channel) {
	e.t.Helper()
	rr, err := e.store.ReadChannel(context.Background(), channel, 1<<53, 1)
	if err != nil {
		e.t.Fatal(err)
	}
	if rr.Head == 0 {
		// Start the log, as a store subscription does: its first
		// offset is no small number.
		rr.Head = e.appendLog(channel, "", "created")
	}
	rec := &recorder{}
	s := &Subscription{Name: channel, Session: session, AllowLoss: allowLoss, Framed: true, Sink: rec}
	c, err := e.cs.Join(s, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	c.CatchUp(s, rr.Head)
	c.mu.Lock()
	live := s.live
	c.mu.Unlock()
	if !live {
		e.t.Fatal("not live after catching up")
	}
	return s, rec, c
}

type delivery struct {
	offset uint64
	msg    string
	frame  string
	skip   bool
}

// recorder is a Sink that keeps what it is given.
type recorder struct {
	mu   sync.Mutex
	got  []delivery
	lost int
	gone atomic.Bool
}

func (r *recorder) Deliver(_ *Subscription, off uint64, msg string, frame []byte, skip bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, delivery{off, msg, string(frame), skip})
}

func (r *recorder) Lost(*Subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lost++
}

func (r *recorder) Gone() bool { return r.gone.Load() }

func (r *recorder) msgs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.got))
	for i, d := range r.got {
		out[i] = d.msg
	}
	return out
}

func (r *recorder) lostCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lost
}

// waitMsgs waits until rec has exactly want, in order, each once.
func waitMsgs(t *testing.T, rec *recorder, want ...string) {
	t.Helper()
	testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		got := rec.msgs()
		if len(got) < len(want) {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
		return nil
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i := 1; i < len(rec.got); i++ {
		if rec.got[i].offset != rec.got[i-1].offset+1 {
			t.Fatalf("offsets not consecutive: %v", rec.got)
		}
	}
}

// TestOrderFromBus: messages the bus brings out of order, and twice, reach
// every subscription in offset order, once each; the frame is encoded for
// the node and a message published Except a session is skipped for it.
func TestOrderFromBus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour) // no trailing check: the bus alone orders
	_, a, _ := e.subscribe("room", "a", false)
	_, b, _ := e.subscribe("room", "b", false)
	o1 := e.appendLog("room", "", "m1")
	o2 := e.appendLog("room", "b", "m2")
	o3 := e.appendLog("room", "", "m3")
	e.send("room", o3, "", "m3")
	e.send("room", o1, "", "m1")
	e.send("room", o1, "", "m1") // a late duplicate
	e.send("room", o2, "b", "m2")
	e.send("room", o3, "", "m3")
	e.publish("room", "", "m4")
	waitMsgs(t, a, "m1", "m2", "m3", "m4")
	waitMsgs(t, b, "m1", "m2", "m3", "m4")
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := b.got[1]; !d.skip {
		t.Fatalf("message published Except b: %+v", d)
	}
	if d := b.got[0]; d.skip || d.frame != "frame:m1" {
		t.Fatalf("message for b: %+v", d)
	}
}

// TestGapFilledFromLog: a message whose bus copy never comes is read from
// the log, once for the node: after activity (the trailing check, Recheck
// later), and after a gap (a later message waits gapWait).
func TestGapFilledFromLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Second)
	_, a, _ := e.subscribe("room", "a", false)
	_, b, _ := e.subscribe("room", "b", false)
	e.publish("room", "", "m1")
	e.appendLog("room", "", "bus copy lost")
	waitMsgs(t, a, "m1", "bus copy lost")
	e.appendLog("room", "", "gap")
	e.publish("room", "", "after gap")
	waitMsgs(t, a, "m1", "bus copy lost", "gap", "after gap")
	waitMsgs(t, b, "m1", "bus copy lost", "gap", "after gap")
}

// heldReads holds one log read open, once armed: the read is done, then
// held until released, so it answers what the log held before.
type heldReads struct {
	*store.Memory
	armed atomic.Bool
	read  chan struct{} // closed when the held read has read the log
	free  chan struct{} // closed to let it return
}

func (h *heldReads) ReadChannel(ctx context.Context, channel string, after uint64, max int) (store.ReadResult, error) {
	res, err := h.Memory.ReadChannel(ctx, channel, after, max)
	if h.armed.CompareAndSwap(true, false) {
		close(h.read)
		<-h.free
	}
	return res, err
}

// TestTrailingCheckDuringRead: a trailing check that comes due while the
// channel's previous check still reads the log (a slow store) is not
// dropped: it reads once that one is done, so a message whose bus copy was
// lost meanwhile is late, not stuck until the channel's next publish.
func TestTrailingCheckDuringRead(t *testing.T) {
	t.Parallel()
	held := &heldReads{read: make(chan struct{}), free: make(chan struct{})}
	var checked atomic.Int32 // timer runs (checks) that have returned
	e := newEnvWith(t, 20*time.Millisecond, func(e *env, cfg *Config) {
		held.Memory = e.store
		cfg.Store = held
		cfg.AfterFunc = func(d time.Duration, f func()) *time.Timer {
			return time.AfterFunc(d, func() { f(); checked.Add(1) })
		}
	})
	_, rec, _ := e.subscribe("room", "a", false)
	held.armed.Store(true)
	e.publish("room", "", "m1") // its trailing check reads, and is held
	<-held.read
	e.publish("room", "", "m2") // arms the next trailing check
	waitMsgs(t, rec, "m1", "m2")
	e.appendLog("room", "", "bus copy lost")
	// The check m2 armed comes due, and returns, while the first one
	// still reads.
	testenv.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if checked.Load() == 0 {
			return errors.New("the trailing check of m2 has not run")
		}
		return nil
	})
	close(held.free) // the first check answers what it read before m2
	waitMsgs(t, rec, "m1", "m2", "bus copy lost")
}

// TestCatchUp: a subscription reads what the log holds after its cursor,
// then turns live, and gets each message once, in order, whether the log
// or the bus gave it.
func TestCatchUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 50*time.Millisecond)
	_, live, _ := e.subscribe("room", "live", false) // the channel listens
	cursor := e.publish("room", "", "before")
	e.publish("room", "", "old 1")
	e.publish("room", "", "old 2")
	waitMsgs(t, live, "before", "old 1", "old 2")
	rec := &recorder{}
	s := &Subscription{Name: "room", Session: "late", Sink: rec}
	c, err := e.cs.Join(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.CatchUpLater(s, cursor)
	e.publish("room", "", "new")
	waitMsgs(t, rec, "old 1", "old 2", "new")
}

// TestLoss: messages the log no longer holds are lost: a subscription that
// allows loss skips them, another is told (and is no longer live), whether
// the channel or a catch-up finds it.
func TestLoss(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour)
	e.log.MaxLen = 2
	strict, sRec, c := e.subscribe("room", "strict", false)
	_, lRec, _ := e.subscribe("room", "lenient", true)
	for i := range 4 {
		e.appendLog("room", "", fmt.Sprint("missed ", i))
	}
	// The next one comes on the bus: the gap before it is read from a log
	// that kept only two.
	e.publish("room", "", "m5")
	waitMsgs(t, lRec, "missed 3", "m5")
	testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if sRec.lostCount() != 1 {
			return fmt.Errorf("lost %d times", sRec.lostCount())
		}
		return nil
	})
	c.mu.Lock()
	live := strict.live
	c.mu.Unlock()
	if live || len(sRec.msgs()) != 0 {
		t.Fatalf("the strict subscription is live (%v) or got %q", live, sRec.msgs())
	}

	// A catch-up from a cursor the log no longer holds.
	late := &recorder{}
	s := &Subscription{Name: "room", Session: "late", Sink: late}
	c2, err := e.cs.Join(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	c2.CatchUp(s, 1)
	if late.lostCount() != 1 || len(late.msgs()) != 0 {
		t.Fatalf("catch-up past the log: lost %d, got %q", late.lostCount(), late.msgs())
	}
}

// TestLinger: the node listens while a subscription is joined, keeps
// listening a linger after the last one left (a rejoin reuses the
// channel), then stops.
func TestLinger(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Second)
	if e.cs.Listening("room") {
		t.Fatal("listening before a join")
	}
	s, _, c := e.subscribe("room", "a", false)
	if !e.cs.Listening("room") || e.cs.Subscribers("room") != 1 {
		t.Fatal("not listening while joined")
	}
	c.Leave(s)
	if !e.cs.Listening("room") || e.cs.Subscribers("room") != 0 {
		t.Fatalf("listening %v with %d subscribers right after the last left", e.cs.Listening("room"), e.cs.Subscribers("room"))
	}
	s2, rec, c2 := e.subscribe("room", "b", false)
	if c2 != c {
		t.Fatal("a rejoin within the linger made a new channel")
	}
	e.publish("room", "", "m")
	waitMsgs(t, rec, "m")
	c2.Leave(s2)
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if e.cs.Listening("room") {
			return fmt.Errorf("still listening")
		}
		return nil
	})
	// Retired: a new join listens afresh.
	_, rec3, c3 := e.subscribe("room", "c", false)
	if c3 == c {
		t.Fatal("a retired channel was reused")
	}
	e.publish("room", "", "again")
	waitMsgs(t, rec3, "again")
}

// TestClose: Close stops a lingering channel at once (its bus listener
// too), a Join after it fails, and a Leave after it is harmless; the
// linger's timer went through Config.AfterFunc, the owner's lifecycle.
func TestClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour)
	var timers atomic.Int32
	e.cs.cfg.AfterFunc = func(d time.Duration, f func()) *time.Timer {
		timers.Add(1)
		return time.AfterFunc(d, f)
	}
	s, _, c := e.subscribe("room", "a", false)
	s2, rec2, c2 := e.subscribe("hall", "b", false)
	c.Leave(s)
	if !e.cs.Listening("room") || timers.Load() == 0 {
		t.Fatalf("after the last Leave: listening %v, %d timers through Config.AfterFunc", e.cs.Listening("room"), timers.Load())
	}
	e.cs.Close()
	if e.cs.Listening("room") || e.cs.Listening("hall") {
		t.Fatal("a channel still listens after Close")
	}
	// The bus still carries the channel (a listener of the test's own
	// sees the message); the closed fan-out delivers nothing of it.
	seen := make(chan struct{}, 1)
	cancel, err := e.bus.ListenChannel("hall", func([]byte) { seen <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	e.publish("hall", "", "after close")
	select {
	case <-seen:
	case <-time.After(10 * time.Second):
		t.Fatal("the bus did not carry the message")
	}
	c2.Leave(s2)
	if _, err := e.cs.Join(&Subscription{Name: "room", Sink: &recorder{}}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Join after Close: %v, want ErrClosed", err)
	}
	if got := rec2.msgs(); len(got) != 0 {
		t.Fatalf("delivered after Close: %q", got)
	}
}

// TestGoneStopsCatchUp: a catch-up for a receiver that has finished reads
// nothing and leaves the subscription not live.
func TestGoneStopsCatchUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour)
	e.publish("room", "", "m")
	rec := &recorder{}
	rec.gone.Store(true)
	s := &Subscription{Name: "room", Sink: rec}
	c, err := e.cs.Join(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.CatchUp(s, 0)
	if len(rec.msgs()) != 0 || s.live {
		t.Fatalf("gone receiver got %q (live %v)", rec.msgs(), s.live)
	}
}

// BenchmarkChannelDispatch: one message from the bus listener to 100 live
// subscriptions (no store read, no bus hop): the fan-out's own cost per
// message; allocs/op must not grow with the subscriptions.
func BenchmarkChannelDispatch(b *testing.B) {
	const subs = 100
	st, bs := store.NewMemory(), bus.NewMemory()
	defer bs.Close()
	cs, err := New(Config{Store: st, Bus: bs, Recheck: time.Hour, DecodeBus: decodeBus, DecodeEntry: decodeEntry,
		Frame: func(msg string) []byte { return []byte(msg) }})
	if err != nil {
		b.Fatal(err)
	}
	var c *Channel
	sink := countSink{}
	for i := range subs {
		s := &Subscription{Name: "room", Session: fmt.Sprint(i), Framed: i%2 == 0, Sink: &sink}
		if c, err = cs.Join(s, nil); err != nil {
			b.Fatal(err)
		}
		c.CatchUp(s, 0)
	}
	ent := entry("", "a 40 byte message for every subscriber.")
	buf := make([]byte, 0, 64)
	off := uint64(1)
	b.ReportAllocs()
	for b.Loop() {
		buf = append(binary.AppendUvarint(buf[:0], off), ent...)
		c.onBus(buf)
		off++
	}
	if got, want := sink.n.Load(), int64(subs)*int64(off-1); got != want {
		b.Fatalf("%d deliveries, want %d", got, want)
	}
}

type countSink struct{ n atomic.Int64 }

func (k *countSink) Deliver(*Subscription, uint64, string, []byte, bool) { k.n.Add(1) }
func (k *countSink) Lost(*Subscription)                                  {}
func (k *countSink) Gone() bool                                          { return false }
