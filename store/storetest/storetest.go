// Package storetest is the conformance suite every store.Store must pass:
// the memory store and the Redis store run the same tests, including the
// races that decide who runs OnOpen and OnClose.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/store"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// Run runs the suite. newStore must return an empty store (a fresh key
// prefix for a shared server is enough); subtests run in parallel.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	testenv.RunCases(t, true, newStore, testenv.Cases[store.Store]{
		{"CreateGet", testCreateGet},
		{"CreateRace", testCreateRace},
		{"CreateAttached", testCreateAttached},
		{"AttachDrainsQueue", testAttachDrainsQueue},
		{"AttachBusy", testAttachBusy},
		{"AttachRace", testAttachRace},
		{"LeaseExpiry", testLeaseExpiry},
		{"Renew", testRenew},
		{"Detach", testDetach},
		{"AppendOrder", testAppendOrder},
		{"AppendConcurrent", testAppendConcurrent},
		{"AppendBound", testAppendBound},
		{"AppendByteBound", testAppendByteBound},
		{"DrainMaxBytes", testDrainMaxBytes},
		{"Drain", testDrain},
		{"Close", testClose},
		{"CloseRace", testCloseRace},
		{"AttachClosedTakesQueue", testAttachClosedTakesQueue},
		{"ReapAfterDetach", testReapAfterDetach},
		{"ReapSkipsLiveLease", testReapSkipsLiveLease},
		{"ReapAfterLeaseExpiry", testReapAfterLeaseExpiry},
		{"ReapClosedSilently", testReapClosedSilently},
		{"ReapLimit", testReapLimit},
		{"ReapRace", testReapRace},
		{"Attrs", testAttrs},
		{"AttrsDeletedWithSession", testAttrsDeletedWithSession},
		{"CanceledContext", testCanceledContext},
	})
}

// RunAll runs every suite of this package: Run, and the suites of the
// optional capabilities (Committer, HandOffCommitter, NodeReleaser,
// LeaseTaker, OnceAppender, Channels), which newStore's stores must all
// implement (a missing one fails).
func RunAll(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	t.Run("Store", func(t *testing.T) { Run(t, newStore) })
	t.Run("Committer", func(t *testing.T) { runCapability(t, newStore, committerCases) })
	t.Run("HandOff", func(t *testing.T) { runCapability(t, newStore, handOffCases) })
	t.Run("NodeReleaser", func(t *testing.T) { runCapability(t, newStore, nodeReleaserCases) })
	t.Run("LeaseTaker", func(t *testing.T) { runCapability(t, newStore, leaseTakerCases) })
	t.Run("OnceAppender", func(t *testing.T) { runCapability(t, newStore, onceAppenderCases) })
	t.Run("Channels", func(t *testing.T) {
		RunChannels(t, func(t *testing.T) ChannelStore { return capability[ChannelStore](t, newStore(t)) })
	})
}

// capabilityCase is a test of an optional capability C that a store
// implements beside store.Store.
type capabilityCase[C any] struct {
	name string
	test func(t *testing.T, s store.Store, c C)
}

// runCapability runs the cases in parallel, each on its own store from
// newStore, which must implement C.
func runCapability[C any](t *testing.T, newStore func(t *testing.T) store.Store, cases []capabilityCase[C]) {
	t.Helper()
	tests := make(testenv.Cases[store.Store], len(cases))
	for i, cc := range cases {
		tests[i].Name = cc.name
		tests[i].Test = func(t *testing.T, s store.Store) { cc.test(t, s, capability[C](t, s)) }
	}
	testenv.RunCases(t, true, newStore, tests)
}

// capability returns s as C, or fails the test if s does not implement C.
func capability[C any](t *testing.T, s store.Store) C {
	t.Helper()
	c, ok := s.(C)
	if !ok {
		t.Fatalf("%T does not implement %v", s, reflect.TypeFor[C]())
	}
	return c
}

const (
	long  = time.Hour             // a lease or delay that never runs out in a test
	short = 20 * time.Millisecond // one that runs out quickly
	wait  = 10 * time.Second      // how long checkFor polls before failing
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return c
}

func lease(node, token string, ttl time.Duration) store.Lease {
	return store.Lease{Node: node, Token: token, TTL: ttl}
}

func mustCreate(t *testing.T, s store.Store, id string, delay time.Duration) {
	t.Helper()
	created, err := s.Create(ctx(t), id, store.CreateOptions{DisconnectDelay: delay})
	if err != nil || !created {
		t.Fatalf("Create(%q) = %v, %v; want true, nil", id, created, err)
	}
}

func mustAttach(t *testing.T, s store.Store, id string, l store.Lease) store.AttachResult {
	t.Helper()
	res, err := s.Attach(ctx(t), id, l)
	if err != nil || res.Status != store.Attached {
		t.Fatalf("Attach(%q, %q) = %+v, %v; want Attached", id, l.Token, res, err)
	}
	return res
}

func mustDetach(t *testing.T, s store.Store, id, token string) {
	t.Helper()
	if err := s.Detach(ctx(t), id, token); err != nil {
		t.Fatalf("Detach(%q, %q) = %v", id, token, err)
	}
}

func mustAppend(t *testing.T, s store.Store, id string, msgs ...string) store.AppendResult {
	t.Helper()
	res, err := s.Append(ctx(t), id, msgs, store.QueueLimits{})
	if err != nil {
		t.Fatalf("Append(%q, %q) = %v", id, msgs, err)
	}
	return res
}

// attachOnceFree attaches l to id as soon as the lease that holds it
// runs out.
func attachOnceFree(t *testing.T, s store.Store, id string, l store.Lease) {
	t.Helper()
	testenv.CheckFor(t, wait, 5*time.Millisecond, func() error {
		res, err := s.Attach(ctx(t), id, l)
		if err != nil {
			return err
		}
		if res.Status != store.Attached {
			return fmt.Errorf("attach status %v", res.Status)
		}
		return nil
	})
}

func wantErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("%s: err = %v, want %v", what, got, want)
	}
}

// reapUntilGone reaps until id no longer exists and returns every id the
// reaps returned on the way.
func reapUntilGone(t *testing.T, s store.Store, id string) []string {
	t.Helper()
	var reaped []string
	testenv.CheckFor(t, wait, 5*time.Millisecond, func() error {
		ids, err := s.Reap(ctx(t), time.Now(), 0)
		if err != nil {
			t.Fatalf("Reap: %v", err)
		}
		reaped = append(reaped, ids...)
		if _, err := s.Get(ctx(t), id); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("session %q still there (Get err %v)", id, err)
		}
		return nil
	})
	return reaped
}

func testCreateGet(t *testing.T, s store.Store) {
	info := []byte(`{"ip":"127.0.0.1"}`)
	created, err := s.Create(ctx(t), "a", store.CreateOptions{DisconnectDelay: long, Info: info})
	if err != nil || !created {
		t.Fatalf("first Create = %v, %v; want true", created, err)
	}
	info[0] = 'X' // the store must have copied it
	created, err = s.Create(ctx(t), "a", store.CreateOptions{DisconnectDelay: long, Info: []byte("other")})
	if err != nil || created {
		t.Fatalf("second Create = %v, %v; want false", created, err)
	}
	got, err := s.Get(ctx(t), "a")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "a" || got.State != store.StateOpen || string(got.Info) != `{"ip":"127.0.0.1"}` ||
		got.ReceiverNode != "" || got.ReceiverSticky {
		t.Fatalf("Get = %+v", got)
	}
	_, err = s.Get(ctx(t), "missing")
	wantErr(t, "Get missing", err, store.ErrNotFound)
}

func testCreateRace(t *testing.T, s store.Store) {
	oneWinner(t, "Create", 16, func(int) (bool, error) {
		return s.Create(ctx(t), "race", store.CreateOptions{DisconnectDelay: long})
	})
}

// oneWinner makes n calls of race at once (call i given i) and fails the
// test on an error, or unless exactly one call won; it returns that one.
func oneWinner(t *testing.T, what string, n int, race func(i int) (won bool, err error)) int {
	t.Helper()
	var wg sync.WaitGroup
	won := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { won[i], errs[i] = race(i) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	winner := slices.Index(won, true)
	if winner < 0 || slices.Index(won[winner+1:], true) >= 0 {
		t.Fatalf("%s: winners %v, want exactly one", what, won)
	}
	return winner
}

// testCreateAttached: a creator that asks for the lease holds it from the
// creation on; racing creators with their own leases leave exactly one
// holder, the one that created.
func testCreateAttached(t *testing.T, s store.Store) {
	l := store.Lease{Node: "n1", Token: "t1", TTL: long}
	created, err := s.Create(ctx(t), "c", store.CreateOptions{DisconnectDelay: long, Lease: &l})
	if err != nil || !created {
		t.Fatalf("Create with lease = %v, %v; want true", created, err)
	}
	if got, err := s.Get(ctx(t), "c"); err != nil || got.ReceiverNode != "n1" {
		t.Fatalf("Get = %+v, %v; want receiver n1", got, err)
	}
	res, err := s.Attach(ctx(t), "c", lease("n2", "t2", long))
	if err != nil || res.Status != store.Busy {
		t.Fatalf("Attach by another = %+v, %v; want Busy", res, err)
	}
	mustAppend(t, s, "c", "m")
	if d, err := s.Drain(ctx(t), "c", "t1"); err != nil || !slices.Equal(d.Messages, []string{"m"}) {
		t.Fatalf("creator's Drain = %+v, %v; want [m]", d, err)
	}
	mustDetach(t, s, "c", "t1")
	created, err = s.Create(ctx(t), "c", store.CreateOptions{DisconnectDelay: long, Lease: &store.Lease{Node: "n3", Token: "t3", TTL: long}})
	if err != nil || created {
		t.Fatalf("Create of an existing session = %v, %v; want false", created, err)
	}
	if got, _ := s.Get(ctx(t), "c"); got.ReceiverNode != "" {
		t.Fatalf("a caller that did not create took the lease: %+v", got)
	}
	_, err = s.Create(ctx(t), "e", store.CreateOptions{Lease: &store.Lease{Node: "n1"}})
	wantErr(t, "Create with an empty token", err, store.ErrNotHolder)

	winner := oneWinner(t, "Create with a lease", 8, func(i int) (bool, error) {
		l := lease(fmt.Sprintf("n%d", i), fmt.Sprintf("t%d", i), long)
		return s.Create(ctx(t), "race", store.CreateOptions{DisconnectDelay: long, Lease: &l})
	})
	if got, _ := s.Get(ctx(t), "race"); got.ReceiverNode != fmt.Sprintf("n%d", winner) {
		t.Fatalf("holder %q, want the creator n%d", got.ReceiverNode, winner)
	}
}

func testAttachDrainsQueue(t *testing.T, s store.Store) {
	mustCreate(t, s, "q", long)
	res, err := s.Attach(ctx(t), "missing", lease("n1", "t0", long))
	if err != nil || res.Status != store.Unknown {
		t.Fatalf("Attach missing = %+v, %v; want Unknown", res, err)
	}
	if res := mustAppend(t, s, "q", "a", "b"); res.ReceiverNode != "" {
		t.Fatalf("Append with no receiver: ReceiverNode = %q", res.ReceiverNode)
	}
	mustAppend(t, s, "q", "c")
	got := mustAttach(t, s, "q", lease("n1", "t1", long))
	if !slices.Equal(got.Messages, []string{"a", "b", "c"}) {
		t.Fatalf("Attach drained %q, want [a b c]", got.Messages)
	}
	d, err := s.Drain(ctx(t), "q", "t1")
	if err != nil || len(d.Messages) != 0 || d.State != store.StateOpen {
		t.Fatalf("Drain after Attach = %+v, %v; want empty and open", d, err)
	}
	// Attaching again with the live token keeps the lease.
	mustAppend(t, s, "q", "d")
	if got := mustAttach(t, s, "q", lease("n1", "t1", long)); !slices.Equal(got.Messages, []string{"d"}) {
		t.Fatalf("re-Attach drained %q, want [d]", got.Messages)
	}
	_, err = s.Attach(ctx(t), "q", lease("n1", "", long))
	wantErr(t, "Attach with empty token", err, store.ErrNotHolder)
}

func testAttachBusy(t *testing.T, s store.Store) {
	mustCreate(t, s, "b", long)
	mustAttach(t, s, "b", store.Lease{Node: "n1", Token: "t1", TTL: long, Sticky: true})
	mustAppend(t, s, "b", "kept")
	res, err := s.Attach(ctx(t), "b", lease("n2", "t2", long))
	if err != nil || res.Status != store.Busy || len(res.Messages) != 0 {
		t.Fatalf("second Attach = %+v, %v; want Busy with no messages", res, err)
	}
	got, err := s.Get(ctx(t), "b")
	if err != nil || got.ReceiverNode != "n1" || !got.ReceiverSticky {
		t.Fatalf("Get = %+v, %v; want receiver n1, sticky", got, err)
	}
	// Busy must not have drained the holder's queue.
	d, err := s.Drain(ctx(t), "b", "t1")
	if err != nil || !slices.Equal(d.Messages, []string{"kept"}) {
		t.Fatalf("Drain = %+v, %v; want [kept]", d, err)
	}
}

func testAttachRace(t *testing.T, s store.Store) {
	mustCreate(t, s, "r", long)
	mustAppend(t, s, "r", "m1", "m2")
	const n = 16
	var wg sync.WaitGroup
	results := make([]store.AttachResult, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = s.Attach(ctx(t), "r", lease(fmt.Sprintf("n%d", i), fmt.Sprintf("t%d", i), long))
		})
	}
	wg.Wait()
	attached, busy := 0, 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("Attach: %v", errs[i])
		}
		switch r.Status {
		case store.Attached:
			attached++
			if !slices.Equal(r.Messages, []string{"m1", "m2"}) {
				t.Fatalf("winner drained %q, want [m1 m2]", r.Messages)
			}
		case store.Busy:
			busy++
		default:
			t.Fatalf("Attach status %v", r.Status)
		}
	}
	if attached != 1 || busy != n-1 {
		t.Fatalf("attached %d, busy %d; want 1 and %d", attached, busy, n-1)
	}
}

func testLeaseExpiry(t *testing.T, s store.Store) {
	mustCreate(t, s, "e", long)
	mustAttach(t, s, "e", lease("n1", "t1", short))
	attachOnceFree(t, s, "e", lease("n2", "t2", long))
	wantErr(t, "Renew by expired holder", s.Renew(ctx(t), "e", lease("n1", "t1", long)), store.ErrNotHolder)
	wantErr(t, "Detach by expired holder", s.Detach(ctx(t), "e", "t1"), store.ErrNotHolder)
	_, err := s.Drain(ctx(t), "e", "t1")
	wantErr(t, "Drain by expired holder", err, store.ErrNotHolder)
	got, err := s.Get(ctx(t), "e")
	if err != nil || got.ReceiverNode != "n2" {
		t.Fatalf("Get = %+v, %v; want receiver n2", got, err)
	}
}

func testRenew(t *testing.T, s store.Store) {
	mustCreate(t, s, "rn", long)
	mustAttach(t, s, "rn", lease("n1", "t1", long))
	wantErr(t, "Renew missing", s.Renew(ctx(t), "missing", lease("n1", "t1", long)), store.ErrNotFound)
	wantErr(t, "Renew by other token", s.Renew(ctx(t), "rn", lease("n2", "t2", long)), store.ErrNotHolder)
	// Renew sets a new expiry from its own TTL: shortening it lets
	// another receiver in, which proves the renewal took effect.
	if err := s.Renew(ctx(t), "rn", lease("n1", "t1", short)); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	attachOnceFree(t, s, "rn", lease("n2", "t2", long))
}

func testDetach(t *testing.T, s store.Store) {
	mustCreate(t, s, "d", long)
	wantErr(t, "Detach missing", s.Detach(ctx(t), "missing", "t1"), store.ErrNotFound)
	wantErr(t, "Detach with no lease", s.Detach(ctx(t), "d", "t1"), store.ErrNotHolder)
	mustAttach(t, s, "d", lease("n1", "t1", long))
	wantErr(t, "Detach by other token", s.Detach(ctx(t), "d", "t2"), store.ErrNotHolder)
	mustDetach(t, s, "d", "t1")
	wantErr(t, "second Detach", s.Detach(ctx(t), "d", "t1"), store.ErrNotHolder)
	got, err := s.Get(ctx(t), "d")
	if err != nil || got.ReceiverNode != "" || got.State != store.StateOpen {
		t.Fatalf("Get after Detach = %+v, %v", got, err)
	}
	if res := mustAppend(t, s, "d", "x"); res.ReceiverNode != "" {
		t.Fatalf("Append after Detach: ReceiverNode = %q", res.ReceiverNode)
	}
	if got := mustAttach(t, s, "d", lease("n2", "t2", long)); !slices.Equal(got.Messages, []string{"x"}) {
		t.Fatalf("Attach after Detach drained %q", got.Messages)
	}
}

func testAppendOrder(t *testing.T, s store.Store) {
	mustCreate(t, s, "o", long)
	_, err := s.Append(ctx(t), "missing", []string{"x"}, store.QueueLimits{})
	wantErr(t, "Append missing", err, store.ErrNotFound)
	mustAttach(t, s, "o", lease("n1", "t1", long))
	var want []string
	for i := range 20 {
		m := []string{fmt.Sprint(i), fmt.Sprintf("%d'", i)}
		want = append(want, m...)
		if res := mustAppend(t, s, "o", m...); res.ReceiverNode != "n1" {
			t.Fatalf("Append: ReceiverNode = %q, want n1", res.ReceiverNode)
		}
	}
	// Messages are opaque: empty strings, quotes, newlines, unicode
	// survive unchanged.
	odd := []string{"", `"q"`, "a\nb", "\x00", "ünï"}
	want = append(want, odd...)
	mustAppend(t, s, "o", odd...)
	d, err := s.Drain(ctx(t), "o", "t1")
	if err != nil || !slices.Equal(d.Messages, want) {
		t.Fatalf("Drain = %q, %v; want %q", d.Messages, err, want)
	}
}

func testAppendConcurrent(t *testing.T, s store.Store) {
	mustCreate(t, s, "c", long)
	const senders, each = 4, 25
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			for j := range each {
				if _, err := s.Append(ctx(t), "c", []string{fmt.Sprintf("%d:%d", i, j)}, store.QueueLimits{}); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := mustAttach(t, s, "c", lease("n1", "t1", long)).Messages
	if len(got) != senders*each {
		t.Fatalf("drained %d messages, want %d", len(got), senders*each)
	}
	next := make([]int, senders)
	for _, m := range got {
		var i, j int
		if _, err := fmt.Sscanf(m, "%d:%d", &i, &j); err != nil || i < 0 || i >= senders {
			t.Fatalf("bad message %q", m)
		}
		if j != next[i] {
			t.Fatalf("sender %d: got %d, want %d (order lost)", i, j, next[i])
		}
		next[i]++
	}
}

func testAppendBound(t *testing.T, s store.Store) {
	mustCreate(t, s, "f", long)
	if _, err := s.Append(ctx(t), "f", []string{"1", "2"}, store.QueueLimits{Messages: 3}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Append(ctx(t), "f", []string{"3", "4"}, store.QueueLimits{Messages: 3})
	wantErr(t, "Append past bound", err, store.ErrQueueFull)
	if _, err := s.Append(ctx(t), "f", []string{"3"}, store.QueueLimits{Messages: 3}); err != nil {
		t.Fatalf("Append up to bound: %v", err)
	}
	_, err = s.Append(ctx(t), "f", []string{"4"}, store.QueueLimits{Messages: 3})
	wantErr(t, "Append to full queue", err, store.ErrQueueFull)
	// All or nothing: the rejected appends left no trace.
	got := mustAttach(t, s, "f", lease("n1", "t1", long))
	if !slices.Equal(got.Messages, []string{"1", "2", "3"}) {
		t.Fatalf("drained %q, want [1 2 3]", got.Messages)
	}
	// Draining makes room again.
	if _, err := s.Append(ctx(t), "f", []string{"a", "b", "c"}, store.QueueLimits{Messages: 3}); err != nil {
		t.Fatalf("Append after drain: %v", err)
	}
}

func testAppendByteBound(t *testing.T, s store.Store) {
	mustCreate(t, s, "fb", long)
	limits := store.QueueLimits{Bytes: 10}
	if _, err := s.Append(ctx(t), "fb", []string{"12345", "678"}, limits); err != nil {
		t.Fatal(err)
	}
	_, err := s.Append(ctx(t), "fb", []string{"abc"}, limits)
	wantErr(t, "Append past byte bound", err, store.ErrQueueFull)
	if _, err := s.Append(ctx(t), "fb", []string{"ab"}, limits); err != nil {
		t.Fatalf("Append up to byte bound: %v", err)
	}
	_, err = s.Append(ctx(t), "fb", []string{"x"}, limits)
	wantErr(t, "Append to a queue full of bytes", err, store.ErrQueueFull)
	// Both bounds apply; the tighter one decides.
	_, err = s.Append(ctx(t), "fb", []string{""}, store.QueueLimits{Messages: 3, Bytes: 100})
	wantErr(t, "Append past message bound under byte bound", err, store.ErrQueueFull)
	got := mustAttach(t, s, "fb", lease("n1", "t1", long))
	if !slices.Equal(got.Messages, []string{"12345", "678", "ab"}) || got.More {
		t.Fatalf("drained %q (more %v), want [12345 678 ab]", got.Messages, got.More)
	}
	// Draining gives the bytes back.
	if _, err := s.Append(ctx(t), "fb", []string{"0123456789"}, limits); err != nil {
		t.Fatalf("Append after drain: %v", err)
	}
	// A partial drain gives back what it took, not more.
	mustDrain(t, s, "fb", "t1", 0)
	if _, err := s.Append(ctx(t), "fb", []string{"aaaa", "bbbb", "cc"}, limits); err != nil {
		t.Fatal(err)
	}
	if d := mustDrain(t, s, "fb", "t1", 4); !slices.Equal(d.Messages, []string{"aaaa"}) || !d.More {
		t.Fatalf("Drain 4 bytes = %q (more %v), want [aaaa], more", d.Messages, d.More)
	}
	if _, err := s.Append(ctx(t), "fb", []string{"dddd"}, limits); err != nil {
		t.Fatalf("Append into the room a partial drain made: %v", err)
	}
	_, err = s.Append(ctx(t), "fb", []string{"e"}, limits)
	wantErr(t, "Append past byte bound after partial drain", err, store.ErrQueueFull)
}

func mustDrain(t *testing.T, s store.Store, id, token string, maxBytes int) store.DrainResult {
	t.Helper()
	d, err := s.Drain(ctx(t), id, token, store.MaxBytes(maxBytes))
	if err != nil {
		t.Fatalf("Drain %s: %v", id, err)
	}
	return d
}

func testDrainMaxBytes(t *testing.T, s store.Store) {
	mustCreate(t, s, "db", long)
	mustAppend(t, s, "db", "aaa", "bbb", "cc", "dddddddd", "e")
	// Attach takes what fits, oldest first; the rest stays queued.
	a, err := s.Attach(ctx(t), "db", lease("n1", "t1", long), store.MaxBytes(7))
	if err != nil || a.Status != store.Attached || !slices.Equal(a.Messages, []string{"aaa", "bbb"}) || !a.More {
		t.Fatalf("Attach 7 bytes = %+v, %v; want [aaa bbb], more", a, err)
	}
	// A message bigger than the bound still moves, alone.
	if d := mustDrain(t, s, "db", "t1", 1); !slices.Equal(d.Messages, []string{"cc"}) || !d.More {
		t.Fatalf("Drain 1 byte = %q (more %v), want [cc], more", d.Messages, d.More)
	}
	if d := mustDrain(t, s, "db", "t1", 3); !slices.Equal(d.Messages, []string{"dddddddd"}) || !d.More {
		t.Fatalf("Drain 3 bytes = %q (more %v), want [dddddddd], more", d.Messages, d.More)
	}
	mustAppend(t, s, "db", "f")
	if d := mustDrain(t, s, "db", "t1", 100); !slices.Equal(d.Messages, []string{"e", "f"}) || d.More {
		t.Fatalf("Drain the rest = %q (more %v), want [e f], no more", d.Messages, d.More)
	}
	if d := mustDrain(t, s, "db", "t1", 100); len(d.Messages) != 0 || d.More {
		t.Fatalf("Drain empty = %q (more %v)", d.Messages, d.More)
	}
	// Without the option, everything.
	mustAppend(t, s, "db", "x", "y")
	if d, err := s.Drain(ctx(t), "db", "t1"); err != nil || !slices.Equal(d.Messages, []string{"x", "y"}) || d.More {
		t.Fatalf("Drain = %+v, %v; want [x y]", d, err)
	}
}

func testDrain(t *testing.T, s store.Store) {
	mustCreate(t, s, "dr", long)
	_, err := s.Drain(ctx(t), "missing", "t1")
	wantErr(t, "Drain missing", err, store.ErrNotFound)
	_, err = s.Drain(ctx(t), "dr", "t1")
	wantErr(t, "Drain with no lease", err, store.ErrNotHolder)
	mustAttach(t, s, "dr", lease("n1", "t1", long))
	mustAppend(t, s, "dr", "a", "b")
	_, err = s.Drain(ctx(t), "dr", "t2")
	wantErr(t, "Drain by non-holder", err, store.ErrNotHolder)
	_, err = s.Drain(ctx(t), "dr", "")
	wantErr(t, "Drain with empty token", err, store.ErrNotHolder)
	d, err := s.Drain(ctx(t), "dr", "t1")
	if err != nil || !slices.Equal(d.Messages, []string{"a", "b"}) || d.State != store.StateOpen {
		t.Fatalf("Drain = %+v, %v; want [a b], open", d, err)
	}
	// A closed session drains what is left and says why it closed.
	mustAppend(t, s, "dr", "last")
	if won, err := s.Close(ctx(t), "dr", 3000, "Go away!"); err != nil || !won {
		t.Fatalf("Close = %v, %v", won, err)
	}
	d, err = s.Drain(ctx(t), "dr", "t1")
	if err != nil || !slices.Equal(d.Messages, []string{"last"}) || d.State != store.StateClosed ||
		d.Code != 3000 || d.Reason != "Go away!" {
		t.Fatalf("Drain closed = %+v, %v", d, err)
	}
}

func testClose(t *testing.T, s store.Store) {
	_, err := s.Close(ctx(t), "missing", 3000, "x")
	wantErr(t, "Close missing", err, store.ErrNotFound)
	mustCreate(t, s, "cl", long)
	if won, err := s.Close(ctx(t), "cl", 3000, "Go away!"); err != nil || !won {
		t.Fatalf("Close = %v, %v; want true", won, err)
	}
	if won, err := s.Close(ctx(t), "cl", 1002, "other"); err != nil || won {
		t.Fatalf("second Close = %v, %v; want false", won, err)
	}
	got, err := s.Get(ctx(t), "cl")
	if err != nil || got.State != store.StateClosed || got.Code != 3000 || got.Reason != "Go away!" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	res, err := s.Attach(ctx(t), "cl", lease("n1", "t1", long))
	if err != nil || res.Status != store.AttachClosed || res.Code != 3000 || res.Reason != "Go away!" {
		t.Fatalf("Attach closed = %+v, %v", res, err)
	}
	_, err = s.Append(ctx(t), "cl", []string{"x"}, store.QueueLimits{})
	wantErr(t, "Append closed", err, store.ErrClosed)
}

// A receiver attaching after the close (the next poll) gets what was queued
// before it, then only the close; never while another receiver's lease is
// live (that one drains it).
func testAttachClosedTakesQueue(t *testing.T, s store.Store) {
	mustCreate(t, s, "cq", long)
	mustAttach(t, s, "cq", lease("n1", "t1", long))
	mustAppend(t, s, "cq", "pong", "error")
	if won, err := s.Close(ctx(t), "cq", 4008, "Policy violation"); err != nil || !won {
		t.Fatalf("Close = %v, %v", won, err)
	}
	// Beside a live lease, the queue waits for its holder (which may be a
	// poll that has answered: the caller waits for its commit).
	res, err := s.Attach(ctx(t), "cq", lease("n2", "t2", long))
	if err != nil || res.Status != store.AttachClosed || res.Code != 4008 || len(res.Messages) != 0 || !res.HeldBack {
		t.Fatalf("Attach closed beside a live lease = %+v, %v; want closed, no messages, held back", res, err)
	}
	mustDetach(t, s, "cq", "t1")
	res, err = s.Attach(ctx(t), "cq", lease("n2", "t3", long), store.MaxBytes(4))
	if err != nil || res.Status != store.AttachClosed || res.Code != 4008 || res.Reason != "Policy violation" ||
		!slices.Equal(res.Messages, []string{"pong"}) || !res.More {
		t.Fatalf("Attach closed (4 bytes) = %+v, %v; want [pong], more", res, err)
	}
	res, err = s.Attach(ctx(t), "cq", lease("n2", "t4", long))
	if err != nil || res.Status != store.AttachClosed || !slices.Equal(res.Messages, []string{"error"}) || res.More {
		t.Fatalf("Attach closed = %+v, %v; want [error]", res, err)
	}
	res, err = s.Attach(ctx(t), "cq", lease("n2", "t5", long))
	if err != nil || res.Status != store.AttachClosed || res.Code != 4008 || len(res.Messages) != 0 || res.More || res.HeldBack {
		t.Fatalf("Attach closed, queue taken = %+v, %v; want the close alone", res, err)
	}
	// An empty queue beside a live lease holds nothing back.
	mustCreate(t, s, "ce", long)
	mustAttach(t, s, "ce", lease("n1", "t1", long))
	if _, err := s.Close(ctx(t), "ce", 3000, "Go away!"); err != nil {
		t.Fatal(err)
	}
	res, err = s.Attach(ctx(t), "ce", lease("n2", "t2", long))
	if err != nil || res.Status != store.AttachClosed || len(res.Messages) != 0 || res.HeldBack {
		t.Fatalf("Attach closed, empty queue, beside a live lease = %+v, %v; want the close alone, nothing held back", res, err)
	}
}

func testCloseRace(t *testing.T, s store.Store) {
	mustCreate(t, s, "cr", long)
	code := 3000 + oneWinner(t, "Close", 16, func(i int) (bool, error) {
		return s.Close(ctx(t), "cr", 3000+i, "closer")
	})
	if got, err := s.Get(ctx(t), "cr"); err != nil || got.Code != code {
		t.Fatalf("Get = %+v, %v; want the winner's code %d", got, err, code)
	}
}

func testReapAfterDetach(t *testing.T, s store.Store) {
	mustCreate(t, s, "rd", short)
	mustAttach(t, s, "rd", lease("n1", "t1", long))
	mustDetach(t, s, "rd", "t1")
	if reaped := reapUntilGone(t, s, "rd"); !slices.Equal(reaped, []string{"rd"}) {
		t.Fatalf("reaped %q, want [rd]", reaped)
	}
	ids, err := s.Reap(ctx(t), time.Now(), 0)
	if err != nil || len(ids) != 0 {
		t.Fatalf("Reap after reap = %q, %v; want nothing", ids, err)
	}
}

func testReapSkipsLiveLease(t *testing.T, s store.Store) {
	mustCreate(t, s, "live", short)
	mustCreate(t, s, "idle", short)
	mustAttach(t, s, "live", lease("n1", "t1", long))
	// Once "idle" is reaped, "live" would be due too but for its lease.
	if reaped := reapUntilGone(t, s, "idle"); slices.Contains(reaped, "live") {
		t.Fatalf("reaped a session with a live lease: %q", reaped)
	}
	if _, err := s.Get(ctx(t), "live"); err != nil {
		t.Fatalf("Get live: %v", err)
	}
}

func testReapAfterLeaseExpiry(t *testing.T, s store.Store) {
	mustCreate(t, s, "le", short)
	mustAttach(t, s, "le", lease("n1", "t1", short))
	if reaped := reapUntilGone(t, s, "le"); !slices.Equal(reaped, []string{"le"}) {
		t.Fatalf("reaped %q, want [le]", reaped)
	}
}

func testReapClosedSilently(t *testing.T, s store.Store) {
	mustCreate(t, s, "rc", short)
	mustAttach(t, s, "rc", lease("n1", "t1", long))
	if won, err := s.Close(ctx(t), "rc", 3000, "Go away!"); err != nil || !won {
		t.Fatalf("Close = %v, %v", won, err)
	}
	mustDetach(t, s, "rc", "t1")
	// A later receiver still learns why until the session expires.
	res, err := s.Attach(ctx(t), "rc", lease("n2", "t2", long))
	if err != nil || res.Status != store.AttachClosed || res.Code != 3000 {
		t.Fatalf("Attach closed = %+v, %v", res, err)
	}
	if reaped := reapUntilGone(t, s, "rc"); len(reaped) != 0 {
		t.Fatalf("Reap returned closed session: %q", reaped)
	}
}

func testReapLimit(t *testing.T, s store.Store) {
	const n, limit = 7, 2
	for i := range n {
		mustCreate(t, s, fmt.Sprint(i), short)
	}
	seen := map[string]bool{}
	testenv.CheckFor(t, wait, 5*time.Millisecond, func() error {
		ids, err := s.Reap(ctx(t), time.Now(), limit)
		if err != nil {
			t.Fatalf("Reap: %v", err)
		}
		if len(ids) > limit {
			t.Fatalf("Reap returned %d ids, limit %d", len(ids), limit)
		}
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("id %q reaped twice", id)
			}
			seen[id] = true
		}
		if len(seen) < n {
			return fmt.Errorf("%d of %d reaped", len(seen), n)
		}
		return nil
	})
}

func testReapRace(t *testing.T, s store.Store) {
	const n = 30
	for i := range n {
		mustCreate(t, s, fmt.Sprint(i), short)
	}
	ReapOnce(t, []store.Store{s, s, s, s}, n, 3)
}

// ReapOnce has every one of reapers reap at once, limit sessions a call,
// again and again until n sessions were reaped (within 10 s), and fails
// unless each was reaped exactly once. Several Stores on one backend are
// several nodes racing.
func ReapOnce(t *testing.T, reapers []store.Store, n, limit int) {
	t.Helper()
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	for _, s := range reapers {
		wg.Go(func() {
			deadline := time.Now().Add(wait)
			for time.Now().Before(deadline) {
				ids, err := s.Reap(ctx(t), time.Now(), limit)
				if err != nil {
					t.Errorf("Reap: %v", err)
					return
				}
				mu.Lock()
				for _, id := range ids {
					seen[id]++
				}
				done := len(seen) == n
				mu.Unlock()
				if done {
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d of %d sessions reaped: %v", len(seen), n, seen)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("session %q reaped %d times", id, c)
		}
	}
}

func testAttrs(t *testing.T, s store.Store) {
	wantErr(t, "SetAttr missing", s.SetAttr(ctx(t), "missing", "k", "v"), store.ErrNotFound)
	_, _, err := s.Attr(ctx(t), "missing", "k")
	wantErr(t, "Attr missing", err, store.ErrNotFound)
	mustCreate(t, s, "at", long)
	if v, ok, err := s.Attr(ctx(t), "at", "k"); err != nil || ok || v != "" {
		t.Fatalf("Attr unset = %q, %v, %v", v, ok, err)
	}
	for _, v := range []string{"v1", "", "v2 \n ü"} {
		if err := s.SetAttr(ctx(t), "at", "k", v); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := s.Attr(ctx(t), "at", "k"); err != nil || !ok || got != v {
			t.Fatalf("Attr = %q, %v, %v; want %q", got, ok, err, v)
		}
	}
	if err := s.SetAttr(ctx(t), "at", "other", "x"); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Attr(ctx(t), "at", "k"); got != "v2 \n ü" {
		t.Fatalf("Attr k = %q after setting another key", got)
	}
}

func testAttrsDeletedWithSession(t *testing.T, s store.Store) {
	mustCreate(t, s, "ad", short)
	if err := s.SetAttr(ctx(t), "ad", "k", "v"); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, "ad", "stale")
	reapUntilGone(t, s, "ad")
	_, _, err := s.Attr(ctx(t), "ad", "k")
	wantErr(t, "Attr of reaped session", err, store.ErrNotFound)
	// A new session under the same id starts empty.
	mustCreate(t, s, "ad", long)
	if _, ok, err := s.Attr(ctx(t), "ad", "k"); err != nil || ok {
		t.Fatalf("Attr of recreated session: ok=%v, %v", ok, err)
	}
	if got := mustAttach(t, s, "ad", lease("n1", "t1", long)); len(got.Messages) != 0 {
		t.Fatalf("recreated session drained %q", got.Messages)
	}
}

func testCanceledContext(t *testing.T, s store.Store) {
	mustCreate(t, s, "cx", long)
	c, cancel := context.WithCancel(context.Background())
	cancel()
	calls := map[string]func() error{
		"Create":  func() error { _, err := s.Create(c, "cx2", store.CreateOptions{}); return err },
		"Get":     func() error { _, err := s.Get(c, "cx"); return err },
		"Attach":  func() error { _, err := s.Attach(c, "cx", lease("n", "t", long)); return err },
		"Renew":   func() error { return s.Renew(c, "cx", lease("n", "t", long)) },
		"Detach":  func() error { return s.Detach(c, "cx", "t") },
		"Append":  func() error { _, err := s.Append(c, "cx", []string{"x"}, store.QueueLimits{}); return err },
		"Drain":   func() error { _, err := s.Drain(c, "cx", "t"); return err },
		"Close":   func() error { _, err := s.Close(c, "cx", 3000, "x"); return err },
		"Reap":    func() error { _, err := s.Reap(c, time.Now(), 0); return err },
		"SetAttr": func() error { return s.SetAttr(c, "cx", "k", "v") },
		"Attr":    func() error { _, _, err := s.Attr(c, "cx", "k"); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with canceled context: err = %v, want context.Canceled", name, err)
		}
	}
	// Nothing changed.
	got, err := s.Get(ctx(t), "cx")
	if err != nil || got.State != store.StateOpen || got.ReceiverNode != "" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if _, err := s.Get(ctx(t), "cx2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Create with canceled context created the session (Get err %v)", err)
	}
}

// onceAppenderCases are the store.OnceAppender suite (RunAll runs it).
var onceAppenderCases = []capabilityCase[store.OnceAppender]{
	{"RepeatAppendsNothing", testAppendOnceRepeat},
	{"RepeatOfWhatQueueHolds", testAppendOnceFullQueue},
	{"Refusals", testAppendOnceRefusals},
}

func appendOnce(t *testing.T, a store.OnceAppender, id, tag string, seq int, limits store.QueueLimits, msgs ...string) error {
	t.Helper()
	_, err := a.AppendOnce(ctx(t), id, msgs, limits, store.AppendTag{ID: tag, Seq: seq})
	return err
}

func mustAppendOnce(t *testing.T, a store.OnceAppender, id, tag string, seq int, msgs ...string) {
	t.Helper()
	if err := appendOnce(t, a, id, tag, seq, store.QueueLimits{}, msgs...); err != nil {
		t.Fatalf("AppendOnce(%q, %s/%d, %q) = %v", id, tag, seq, msgs, err)
	}
}

// A send repeated (its first node died before answering) appends nothing
// its first try appended, also after untagged appends from others, and
// the next send's appends go in.
func testAppendOnceRepeat(t *testing.T, s store.Store, a store.OnceAppender) {
	mustCreate(t, s, "o", long)
	mustAppendOnce(t, a, "o", "send1", 0, "a")
	mustAppendOnce(t, a, "o", "send1", 0, "a") // the whole send again
	mustAppendOnce(t, a, "o", "send1", 1, "b") // ... and the append it had not reached
	mustAppend(t, s, "o", "other")
	mustAppendOnce(t, a, "o", "send1", 0, "a") // a third try
	mustAppendOnce(t, a, "o", "send1", 1, "b")
	mustAppendOnce(t, a, "o", "send2", 0, "c")
	res := mustAttach(t, s, "o", lease("n1", "t1", long))
	if want := []string{"a", "b", "other", "c"}; !slices.Equal(res.Messages, want) {
		t.Fatalf("queued %q, want %q", res.Messages, want)
	}
	// Delivered: a late repeat still appends nothing.
	mustAppendOnce(t, a, "o", "send2", 0, "c")
	if d := mustDrain(t, s, "o", "t1", 0); len(d.Messages) != 0 {
		t.Fatalf("queued after a late repeat: %q, want nothing", d.Messages)
	}
}

// A repeat of what is queued succeeds even when the queue is full: its
// messages are there already.
func testAppendOnceFullQueue(t *testing.T, s store.Store, a store.OnceAppender) {
	mustCreate(t, s, "f", long)
	limits := store.QueueLimits{Messages: 2}
	if err := appendOnce(t, a, "f", "s", 0, limits, "1", "2"); err != nil {
		t.Fatal(err)
	}
	if err := appendOnce(t, a, "f", "s", 0, limits, "1", "2"); err != nil {
		t.Fatalf("repeat into a full queue: %v, want nil", err)
	}
	wantErr(t, "next append into a full queue", appendOnce(t, a, "f", "s", 1, limits, "3"), store.ErrQueueFull)
	res := mustAttach(t, s, "f", lease("n1", "t1", long))
	if !slices.Equal(res.Messages, []string{"1", "2"}) {
		t.Fatalf("queued %q, want [1 2]", res.Messages)
	}
}

func testAppendOnceRefusals(t *testing.T, s store.Store, a store.OnceAppender) {
	wantErr(t, "AppendOnce to a missing session", appendOnce(t, a, "none", "s", 0, store.QueueLimits{}, "x"), store.ErrNotFound)
	mustCreate(t, s, "c", long)
	wantErr(t, "empty tag", appendOnce(t, a, "c", "", 0, store.QueueLimits{}, "x"), store.ErrBadTag)
	wantErr(t, "long tag", appendOnce(t, a, "c", strings.Repeat("x", store.MaxAppendTagID+1), 0, store.QueueLimits{}, "x"), store.ErrBadTag)
	mustAppendOnce(t, a, "c", "s", 0, "x")
	if _, err := s.Close(ctx(t), "c", 3000, "bye"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "repeat into a closed session", appendOnce(t, a, "c", "s", 0, store.QueueLimits{}, "x"), store.ErrClosed)
}
