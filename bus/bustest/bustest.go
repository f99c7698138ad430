// Package bustest is the conformance suite every bus.Bus implementation
// must pass: the in-process one and the NATS one run the same tests.
package bustest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/bus"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// Timeout bounds every wait for a delivery.
const Timeout = 10 * time.Second

// quiet is how long a test keeps watching for a message that must not come
// after it has already seen a later one.
const quiet = 100 * time.Millisecond

// Run runs the suite. newBus returns two or more buses sharing one backend,
// as two nodes would (for an in-process bus the same instance may appear
// more than once), and registers their Close with t.Cleanup. It is called
// once per subtest.
func Run(t *testing.T, newBus func(t *testing.T) []bus.Bus) {
	t.Helper()
	atLeastTwo := func(t *testing.T) []bus.Bus {
		buses := newBus(t)
		if len(buses) < 2 {
			t.Fatalf("newBus returned %d buses, want at least 2", len(buses))
		}
		return buses
	}
	testenv.RunCases(t, false, atLeastTwo, testenv.Cases[[]bus.Bus]{
		{"SendNodeReachesOnlyThatNode", testSendNodeReachesOnlyThatNode},
		{"ListenNodeTwice", testListenNodeTwice},
		{"PublishReachesEveryListenerOnce", testPublishReachesEveryListenerOnce},
		{"PerSenderOrder", testPerSenderOrder},
		{"CancelStopsNodeDelivery", testCancelStopsNodeDelivery},
		{"CancelStopsChannelDelivery", testCancelStopsChannelDelivery},
		{"HandlerOwnsMessage", testHandlerOwnsMessage},
		{"ChannelNamesNeedNoEscaping", testChannelNamesNeedNoEscaping},
		{"InvalidNameRejected", testInvalidNameRejected},
		{"CancelledContext", testCancelledContext},
		{"SlowHandlerDoesNotBlockSender", testSlowHandlerDoesNotBlockSender},
		{"Close", testClose},
	})
}

var nameSeq atomic.Uint64

// uniqueName keeps subtests apart when they share one backend.
func uniqueName(t *testing.T, what string) string {
	return fmt.Sprintf("%s-%s-%d-%d", t.Name(), what, time.Now().UnixNano(), nameSeq.Add(1))
}

// Recorder keeps what its Handle, a bus.Handler, received; it is safe for
// concurrent use. Tests of a bus outside this suite use it too.
type Recorder struct {
	mu   sync.Mutex
	msgs []string
}

// Handle is the bus.Handler.
func (r *Recorder) Handle(msg []byte) {
	r.mu.Lock()
	r.msgs = append(r.msgs, string(msg))
	r.mu.Unlock()
}

// Got returns a copy of what was received, in order.
func (r *Recorder) Got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// Has reports whether msg was received.
func (r *Recorder) Has(msg string) bool {
	return slices.Contains(r.Got(), msg)
}

// WaitFor waits until the Recorder has received msg.
func (r *Recorder) WaitFor(t *testing.T, msg string) {
	t.Helper()
	testenv.CheckFor(t, Timeout, 5*time.Millisecond, func() error {
		if !r.Has(msg) {
			return fmt.Errorf("%q not received; got %q", msg, r.Got())
		}
		return nil
	})
}

// waitCount waits until the Recorder has received at least n messages.
func (r *Recorder) waitCount(t *testing.T, n int) {
	t.Helper()
	testenv.CheckFor(t, Timeout, 5*time.Millisecond, func() error {
		if got := len(r.Got()); got < n {
			return fmt.Errorf("received %d messages, want %d", got, n)
		}
		return nil
	})
}

// ListenStuck listens on node with a handler that blocks until the test
// ends, so that what is sent to node fills the listener's queue (tests of
// a bus's drop counting).
func ListenStuck(t *testing.T, b bus.Bus, node string) {
	t.Helper()
	release := make(chan struct{})
	cancel, err := b.ListenNode(node, func([]byte) { <-release })
	if err != nil {
		t.Fatalf("ListenNode(%q): %v", node, err)
	}
	t.Cleanup(cancel)
	t.Cleanup(func() { close(release) }) // runs first: unblock, then cancel
}

func listenNode(t *testing.T, b bus.Bus, node string) (*Recorder, func()) {
	t.Helper()
	return listen(t, "ListenNode", b.ListenNode, node)
}

func listenChannel(t *testing.T, b bus.Bus, channel string) (*Recorder, func()) {
	t.Helper()
	return listen(t, "ListenChannel", b.ListenChannel, channel)
}

// listen registers a Recorder for name with l (a Bus's ListenNode or
// ListenChannel, named what); it is cancelled when the test ends, if not
// before.
func listen(t *testing.T, what string, l func(string, bus.Handler) (func(), error), name string) (*Recorder, func()) {
	t.Helper()
	r := &Recorder{}
	cancel, err := l(name, r.Handle)
	if err != nil {
		t.Fatalf("%s(%q): %v", what, name, err)
	}
	t.Cleanup(cancel)
	return r, cancel
}

func sendNode(t *testing.T, b bus.Bus, node, msg string) {
	t.Helper()
	if err := b.SendNode(context.Background(), node, []byte(msg)); err != nil {
		t.Fatalf("SendNode(%q, %q): %v", node, msg, err)
	}
}

func publish(t *testing.T, b bus.Bus, channel, msg string) {
	t.Helper()
	if err := b.Publish(context.Background(), channel, []byte(msg)); err != nil {
		t.Fatalf("Publish(%q, %q): %v", channel, msg, err)
	}
}

// settle gives a networked bus a moment to stop delivering to a cancelled
// listener when the test has no later message to wait for.
func settle() { time.Sleep(quiet) }

func testSendNodeReachesOnlyThatNode(t *testing.T, buses []bus.Bus) {
	nodeA, nodeB := uniqueName(t, "a"), uniqueName(t, "b")
	a, _ := listenNode(t, buses[0], nodeA)
	b, _ := listenNode(t, buses[1], nodeB)

	// Across instances, both ways.
	sendNode(t, buses[1], nodeA, "for-a")
	sendNode(t, buses[0], nodeB, "for-b")
	a.WaitFor(t, "for-a")
	b.WaitFor(t, "for-b")

	// A message that was misrouted would arrive before a later one sent
	// by the same sender; send fences and then check nothing else came.
	sendNode(t, buses[1], nodeA, "fence-a")
	sendNode(t, buses[0], nodeB, "fence-b")
	a.WaitFor(t, "fence-a")
	b.WaitFor(t, "fence-b")
	settle()
	if got := a.Got(); !equal(got, []string{"for-a", "fence-a"}) {
		t.Errorf("node a got %q", got)
	}
	if got := b.Got(); !equal(got, []string{"for-b", "fence-b"}) {
		t.Errorf("node b got %q", got)
	}

	// Nobody listens: no error, nothing delivered.
	if err := buses[0].SendNode(context.Background(), uniqueName(t, "nobody"), []byte("x")); err != nil {
		t.Errorf("SendNode to a node nobody listens for: %v", err)
	}
}

func testListenNodeTwice(t *testing.T, buses []bus.Bus) {
	node := uniqueName(t, "n")
	first, _ := listenNode(t, buses[0], node)
	second, _ := listenNode(t, buses[0], node)
	sendNode(t, buses[1], node, "one")
	sendNode(t, buses[0], node, "two")
	for _, r := range []*Recorder{first, second} {
		r.WaitFor(t, "one")
		r.WaitFor(t, "two")
	}
	settle()
	for i, r := range []*Recorder{first, second} {
		if got := r.Got(); len(got) != 2 {
			t.Errorf("listener %d got %q, want exactly one and two", i, got)
		}
	}
}

func testPublishReachesEveryListenerOnce(t *testing.T, buses []bus.Bus) {
	ch := uniqueName(t, "ch")
	var recs []*Recorder
	for _, b := range buses {
		r, _ := listenChannel(t, b, ch)
		recs = append(recs, r)
	}
	// Two listeners of one channel on one instance each get their own copy.
	extra, _ := listenChannel(t, buses[0], ch)
	recs = append(recs, extra)
	// A listener of another channel gets none of it.
	other, _ := listenChannel(t, buses[1], uniqueName(t, "other"))

	const n = 5
	var want []string
	for i := 0; i < n; i++ {
		msg := "m" + strconv.Itoa(i)
		want = append(want, msg)
		publish(t, buses[i%len(buses)], ch, msg)
	}
	for _, r := range recs {
		r.waitCount(t, n)
	}
	settle()
	for i, r := range recs {
		got := r.Got()
		if len(got) != n {
			t.Errorf("listener %d got %d messages %q, want each of %q exactly once", i, len(got), got, want)
			continue
		}
		seen := map[string]int{}
		for _, m := range got {
			seen[m]++
		}
		for _, m := range want {
			if seen[m] != 1 {
				t.Errorf("listener %d got %q %d times", i, m, seen[m])
			}
		}
	}
	if got := other.Got(); len(got) != 0 {
		t.Errorf("listener of another channel got %q", got)
	}
}

func testPerSenderOrder(t *testing.T, buses []bus.Bus) {
	node, ch := uniqueName(t, "n"), uniqueName(t, "ch")
	nodeRec, _ := listenNode(t, buses[0], node)
	chRecs := []*Recorder{}
	for _, b := range buses[:2] {
		r, _ := listenChannel(t, b, ch)
		chRecs = append(chRecs, r)
	}

	// Fewer than any sane queue bound, so nothing may be dropped.
	const n = 200
	var wg sync.WaitGroup
	for s, b := range buses {
		wg.Add(1)
		go func(s int, b bus.Bus) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				msg := []byte(fmt.Sprintf("%d:%d", s, i))
				if err := b.SendNode(context.Background(), node, msg); err != nil {
					t.Errorf("SendNode: %v", err)
					return
				}
				if err := b.Publish(context.Background(), ch, msg); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		}(s, b)
	}
	wg.Wait()

	total := n * len(buses)
	nodeRec.waitCount(t, total)
	checkOrder(t, "node listener", nodeRec.Got(), len(buses), n)
	for i, r := range chRecs {
		r.waitCount(t, total)
		checkOrder(t, fmt.Sprintf("channel listener %d", i), r.Got(), len(buses), n)
	}
}

// checkOrder checks that msgs ("sender:seq") hold every sender's sequence
// 0..n-1 in order.
func checkOrder(t *testing.T, who string, msgs []string, senders, n int) {
	t.Helper()
	next := make([]int, senders)
	for _, m := range msgs {
		s, i, ok := strings.Cut(m, ":")
		si, err1 := strconv.Atoi(s)
		ii, err2 := strconv.Atoi(i)
		if !ok || err1 != nil || err2 != nil || si < 0 || si >= senders {
			t.Errorf("%s: unexpected message %q", who, m)
			return
		}
		if ii != next[si] {
			t.Errorf("%s: sender %d: got seq %d, want %d", who, si, ii, next[si])
			return
		}
		next[si]++
	}
	for s, got := range next {
		if got != n {
			t.Errorf("%s: sender %d: got %d messages, want %d", who, s, got, n)
		}
	}
}

func testCancelStopsNodeDelivery(t *testing.T, buses []bus.Bus) {
	node := uniqueName(t, "n")
	r, cancel := listenNode(t, buses[0], node)
	witness, _ := listenNode(t, buses[0], node)
	sendNode(t, buses[1], node, "before")
	r.WaitFor(t, "before")
	witness.WaitFor(t, "before")

	cancel()
	cancel() // idempotent

	sendNode(t, buses[1], node, "after")
	witness.WaitFor(t, "after")
	settle()
	if got := r.Got(); !equal(got, []string{"before"}) {
		t.Errorf("cancelled listener got %q, want only %q", got, "before")
	}

	// The same node can be listened for again after a cancel.
	again, _ := listenNode(t, buses[0], node)
	testenv.CheckFor(t, Timeout, 20*time.Millisecond, func() error {
		// A networked bus may need a moment before a new listener is
		// live; resend until it is.
		sendNode(t, buses[1], node, "again")
		if len(again.Got()) == 0 {
			return errors.New("new listener got nothing")
		}
		return nil
	})
}

func testCancelStopsChannelDelivery(t *testing.T, buses []bus.Bus) {
	ch := uniqueName(t, "ch")
	cancelled, cancel := listenChannel(t, buses[1], ch)
	witness, _ := listenChannel(t, buses[1], ch)
	remote, _ := listenChannel(t, buses[0], ch)
	publish(t, buses[0], ch, "before")
	for _, r := range []*Recorder{cancelled, witness, remote} {
		r.WaitFor(t, "before")
	}

	cancel()
	cancel()

	publish(t, buses[0], ch, "after")
	witness.WaitFor(t, "after")
	remote.WaitFor(t, "after")
	settle()
	if got := cancelled.Got(); !equal(got, []string{"before"}) {
		t.Errorf("cancelled channel listener got %q, want only %q", got, "before")
	}

	// Cancelling the last listener of a channel on an instance stops its
	// delivery there too.
	lone, cancelLone := listenChannel(t, buses[1], uniqueName(t, "lone"))
	cancelLone()
	publish(t, buses[0], ch, "x")
	settle()
	if got := lone.Got(); len(got) != 0 {
		t.Errorf("cancelled lone listener got %q", got)
	}
}

func testHandlerOwnsMessage(t *testing.T, buses []bus.Bus) {
	node, ch := uniqueName(t, "n"), uniqueName(t, "ch")
	var mu sync.Mutex
	var kept [][]byte
	keep := func(msg []byte) {
		mu.Lock()
		kept = append(kept, msg)
		mu.Unlock()
	}
	for i := 0; i < 2; i++ {
		cancel, err := buses[0].ListenNode(node, keep)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cancel)
		cancel, err = buses[1].ListenChannel(ch, keep)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cancel)
	}

	msg := []byte("original")
	if err := buses[1].SendNode(context.Background(), node, msg); err != nil {
		t.Fatal(err)
	}
	copy(msg, "CHANGED!") // the sender may reuse its buffer at once
	msg = []byte("original")
	if err := buses[0].Publish(context.Background(), ch, msg); err != nil {
		t.Fatal(err)
	}
	copy(msg, "CHANGED!")

	testenv.CheckFor(t, Timeout, 5*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(kept) < 4 {
			return fmt.Errorf("received %d of 4", len(kept))
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	// Each handler got its own slice: writing to one shows in no other.
	for i := range kept {
		if string(kept[i]) != "original" {
			t.Fatalf("message %d is %q: the sender's buffer or another handler's slice leaked in", i, kept[i])
		}
		kept[i][0] = byte('0' + i)
	}
	for i := range kept {
		if want := string(rune('0'+i)) + "riginal"; string(kept[i]) != want {
			t.Errorf("message %d is %q after writes to the others, want %q", i, kept[i], want)
		}
	}
}

func testChannelNamesNeedNoEscaping(t *testing.T, buses []bus.Bus) {
	// Names that are not valid NATS subject tokens, and names that would
	// collide if an implementation dropped or replaced characters.
	base := uniqueName(t, "x")
	names := []string{
		base + ".dotted.name",
		base + "*",
		base + ">",
		base + " with space",
		base + "\tTAB\r\n",
		base + "/slash",
		base + "_dotted_name",
		base + "ünïcode-✓",
		base + "\x00nul",
		strings.Repeat("long", 200) + base,
	}
	recs := make([]*Recorder, len(names))
	nodeRecs := make([]*Recorder, len(names))
	for i, name := range names {
		recs[i], _ = listenChannel(t, buses[0], name)
		nodeRecs[i], _ = listenNode(t, buses[0], name)
	}
	for i, name := range names {
		publish(t, buses[1], name, "c"+strconv.Itoa(i))
		sendNode(t, buses[1], name, "n"+strconv.Itoa(i))
	}
	for i := range names {
		recs[i].WaitFor(t, "c"+strconv.Itoa(i))
		nodeRecs[i].WaitFor(t, "n"+strconv.Itoa(i))
	}
	settle()
	for i, name := range names {
		if got := recs[i].Got(); len(got) != 1 {
			t.Errorf("channel %q got %q, want only its own message", name, got)
		}
		if got := nodeRecs[i].Got(); len(got) != 1 {
			t.Errorf("node %q got %q, want only its own message", name, got)
		}
	}
}

func testInvalidNameRejected(t *testing.T, buses []bus.Bus) {
	b := buses[0]
	ctx := context.Background()
	for _, name := range []string{"", strings.Repeat("x", bus.MaxNameLen+1)} {
		if err := b.SendNode(ctx, name, []byte("x")); !errors.Is(err, bus.ErrInvalidName) {
			t.Errorf("SendNode(%d bytes): %v, want ErrInvalidName", len(name), err)
		}
		if err := b.Publish(ctx, name, []byte("x")); !errors.Is(err, bus.ErrInvalidName) {
			t.Errorf("Publish(%d bytes): %v, want ErrInvalidName", len(name), err)
		}
		if _, err := b.ListenNode(name, func([]byte) {}); !errors.Is(err, bus.ErrInvalidName) {
			t.Errorf("ListenNode(%d bytes): %v, want ErrInvalidName", len(name), err)
		}
		if _, err := b.ListenChannel(name, func([]byte) {}); !errors.Is(err, bus.ErrInvalidName) {
			t.Errorf("ListenChannel(%d bytes): %v, want ErrInvalidName", len(name), err)
		}
	}
	// The longest valid name works.
	name := strings.Repeat("y", bus.MaxNameLen-len(t.Name())) + t.Name()
	r, _ := listenChannel(t, buses[0], name)
	publish(t, buses[1], name, "max")
	r.WaitFor(t, "max")
}

func testCancelledContext(t *testing.T, buses []bus.Bus) {
	node := uniqueName(t, "n")
	r, _ := listenNode(t, buses[0], node)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := buses[1].SendNode(ctx, node, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("SendNode with a cancelled context: %v, want context.Canceled", err)
	}
	if err := buses[1].Publish(ctx, node, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a cancelled context: %v, want context.Canceled", err)
	}
	sendNode(t, buses[1], node, "fence")
	r.WaitFor(t, "fence")
	if got := r.Got(); !equal(got, []string{"fence"}) {
		t.Errorf("got %q: a send with a cancelled context was delivered", got)
	}
}

func testSlowHandlerDoesNotBlockSender(t *testing.T, buses []bus.Bus) {
	node := uniqueName(t, "n")
	release := make(chan struct{})
	var calls atomic.Int64
	cancel, err := buses[0].ListenNode(node, func(msg []byte) {
		calls.Add(1)
		<-release
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before cancel/Close, which may wait for the handler

	// A fast listener of another node on the same instance keeps working
	// while the slow one is stuck.
	fastNode := uniqueName(t, "fast")
	fast, _ := listenNode(t, buses[0], fastNode)

	sendNode(t, buses[1], node, "first")
	testenv.CheckFor(t, Timeout, 5*time.Millisecond, func() error {
		if calls.Load() == 0 {
			return errors.New("slow handler not called yet")
		}
		return nil
	})

	// Far more than any per-listener queue bound: the excess is dropped,
	// the sender never waits for the handler.
	const burst = 20000
	done := make(chan error, 1)
	go func() {
		payload := bytes.Repeat([]byte("x"), 64)
		for i := 0; i < burst; i++ {
			if err := buses[1].SendNode(context.Background(), node, payload); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("SendNode during a slow handler: %v", err)
		}
	case <-time.After(Timeout):
		t.Fatal("SendNode blocked behind a slow handler")
	}

	sendNode(t, buses[1], fastNode, "still-fast")
	fast.WaitFor(t, "still-fast")

	// Once unblocked, the slow listener still receives new messages.
	unblock()
	before := calls.Load()
	testenv.CheckFor(t, Timeout, 20*time.Millisecond, func() error {
		if err := buses[1].SendNode(context.Background(), node, []byte("later")); err != nil {
			return err
		}
		if calls.Load() <= before {
			return errors.New("slow listener did not recover")
		}
		return nil
	})
}

func testClose(t *testing.T, buses []bus.Bus) {
	node, ch := uniqueName(t, "n"), uniqueName(t, "ch")
	nodeRec, cancelNode := listenNode(t, buses[0], node)
	chRec, cancelCh := listenChannel(t, buses[0], ch)
	sendNode(t, buses[1], node, "before")
	publish(t, buses[1], ch, "before")
	nodeRec.WaitFor(t, "before")
	chRec.WaitFor(t, "before")

	if err := buses[0].Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := buses[0].Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	cancelNode() // harmless after Close
	cancelCh()

	ctx := context.Background()
	if err := buses[0].SendNode(ctx, node, []byte("x")); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("SendNode after Close: %v, want ErrClosed", err)
	}
	if err := buses[0].Publish(ctx, ch, []byte("x")); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if _, err := buses[0].ListenNode(node, func([]byte) {}); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("ListenNode after Close: %v, want ErrClosed", err)
	}
	if _, err := buses[0].ListenChannel(ch, func([]byte) {}); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("ListenChannel after Close: %v, want ErrClosed", err)
	}

	// The other instance may share the closed one (in-process) or not
	// (networked); either way the closed instance's listeners get nothing.
	if err := buses[1].SendNode(ctx, node, []byte("after")); err != nil && !errors.Is(err, bus.ErrClosed) {
		t.Errorf("SendNode from another instance: %v", err)
	}
	if err := buses[1].Publish(ctx, ch, []byte("after")); err != nil && !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Publish from another instance: %v", err)
	}
	settle()
	if got := nodeRec.Got(); !equal(got, []string{"before"}) {
		t.Errorf("node listener of a closed bus got %q", got)
	}
	if got := chRec.Got(); !equal(got, []string{"before"}) {
		t.Errorf("channel listener of a closed bus got %q", got)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
