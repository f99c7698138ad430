package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/store"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// nodeReleaserCases are the store.NodeReleaser suite (see RunAll).
var nodeReleaserCases = []capabilityCase[store.NodeReleaser]{
	{"ReleasesMovable", testReleaseMovable},
	{"ClosesSticky", testReleaseClosesSticky},
	{"OnlyThatNode", testReleaseOnlyThatNode},
	{"SkipsDetachedAndExpired", testReleaseSkipsDetachedAndExpired},
	{"LeaseMovedOn", testReleaseLeaseMovedOn},
	{"StartsDeadline", testReleaseStartsDeadline},
	{"ClosedStickyNotReturned", testReleaseClosedSticky},
	{"Race", testReleaseRace},
	{"Many", testReleaseMany},
	{"CreatedAttached", testReleaseCreatedAttached},
}

func mustRelease(t *testing.T, r store.NodeReleaser, node string) store.ReleaseResult {
	t.Helper()
	res, err := r.ReleaseNode(ctx(t), node, 1006, "node died")
	if err != nil {
		t.Fatalf("ReleaseNode(%q): %v", node, err)
	}
	slices.Sort(res.Closed)
	return res
}

func wantAttach(t *testing.T, s store.Store, id string, l store.Lease, want store.AttachStatus) store.AttachResult {
	t.Helper()
	res, err := s.Attach(ctx(t), id, l)
	if err != nil || res.Status != want {
		t.Fatalf("Attach(%q, %q) = %+v, %v; want status %v", id, l.Token, res, err, want)
	}
	return res
}

func sticky(node, token string) store.Lease {
	return store.Lease{Node: node, Token: token, TTL: long, Sticky: true}
}

// A poll or stream held by the dead node: the next receiver elsewhere gets
// the session at once, queue and all; the dead holder's token is void.
func testReleaseMovable(t *testing.T, s store.Store, r store.NodeReleaser) {
	mustCreate(t, s, "p", long)
	mustAttach(t, s, "p", lease("dead", "t1", long))
	mustAppend(t, s, "p", "m1")
	wantAttach(t, s, "p", lease("alive", "t2", long), store.Busy)

	if res := mustRelease(t, r, "dead"); res.Released != 1 || len(res.Closed) != 0 {
		t.Fatalf("ReleaseNode = %+v; want 1 released, none closed", res)
	}
	got, err := s.Get(ctx(t), "p")
	if err != nil || got.State != store.StateOpen || got.ReceiverNode != "" {
		t.Fatalf("Get after release = %+v, %v; want open, no receiver", got, err)
	}
	_, err = s.Drain(ctx(t), "p", "t1")
	wantErr(t, "Drain by released holder", err, store.ErrNotHolder)
	wantErr(t, "Renew by released holder", s.Renew(ctx(t), "p", lease("dead", "t1", long)), store.ErrNotHolder)
	res := wantAttach(t, s, "p", lease("alive", "t2", long), store.Attached)
	if !slices.Equal(res.Messages, []string{"m1"}) {
		t.Fatalf("new holder drained %q, want [m1]", res.Messages)
	}
	if res := mustRelease(t, r, "dead"); res.Released != 0 {
		t.Fatalf("second ReleaseNode = %+v; want nothing", res)
	}
}

// A websocket held by the dead node cannot move: its session is closed,
// once, with the given code.
func testReleaseClosesSticky(t *testing.T, s store.Store, r store.NodeReleaser) {
	mustCreate(t, s, "w", long)
	mustAttach(t, s, "w", sticky("dead", "t1"))
	if res := mustRelease(t, r, "dead"); res.Released != 1 || !slices.Equal(res.Closed, []string{"w"}) {
		t.Fatalf("ReleaseNode = %+v; want 1 released, [w] closed", res)
	}
	got, err := s.Get(ctx(t), "w")
	if err != nil || got.State != store.StateClosed || got.Code != 1006 || got.Reason != "node died" || got.ReceiverNode != "" {
		t.Fatalf("Get = %+v, %v; want closed 1006 \"node died\", no receiver", got, err)
	}
	won, err := s.Close(ctx(t), "w", 1000, "again")
	if err != nil || won {
		t.Fatalf("Close after release = %v, %v; want false: OnClose already ran", won, err)
	}
	res := wantAttach(t, s, "w", lease("alive", "t2", long), store.AttachClosed)
	if res.Code != 1006 {
		t.Fatalf("Attach = %+v; want code 1006", res)
	}
	if res := mustRelease(t, r, "dead"); res.Released != 0 || len(res.Closed) != 0 {
		t.Fatalf("second ReleaseNode = %+v; want nothing", res)
	}
}

func testReleaseOnlyThatNode(t *testing.T, s store.Store, r store.NodeReleaser) {
	mustCreate(t, s, "a", long)
	mustCreate(t, s, "b", long)
	mustCreate(t, s, "c", long)
	mustAttach(t, s, "a", lease("dead", "ta", long))
	mustAttach(t, s, "b", lease("other", "tb", long))
	mustAttach(t, s, "c", sticky("other", "tc"))
	if res := mustRelease(t, r, "dead"); res.Released != 1 || len(res.Closed) != 0 {
		t.Fatalf("ReleaseNode = %+v; want only a", res)
	}
	wantAttach(t, s, "b", lease("x", "tx", long), store.Busy)
	wantAttach(t, s, "c", lease("x", "tx", long), store.Busy)
	if got, err := s.Get(ctx(t), "c"); err != nil || got.State != store.StateOpen || got.ReceiverNode != "other" {
		t.Fatalf("Get c = %+v, %v; want open, held by other", got, err)
	}
	// A node whose name extends another's is another node.
	if res := mustRelease(t, r, "othe"); res.Released != 0 {
		t.Fatalf("ReleaseNode(othe) = %+v; want nothing", res)
	}
}

// Detached sessions and expired leases are not the dead node's any more:
// nothing is released, and an expired websocket session is left to Reap,
// which reports it (for OnClose) exactly once.
func testReleaseSkipsDetachedAndExpired(t *testing.T, s store.Store, r store.NodeReleaser) {
	mustCreate(t, s, "det", long)
	mustAttach(t, s, "det", lease("dead", "t1", long))
	mustDetach(t, s, "det", "t1")
	mustCreate(t, s, "exp", short)
	mustAttach(t, s, "exp", store.Lease{Node: "dead", Token: "t2", TTL: short, Sticky: true})
	testenv.CheckFor(t, wait, 5*time.Millisecond, func() error {
		if got, err := s.Get(ctx(t), "exp"); err != nil || got.ReceiverNode != "" {
			return fmt.Errorf("lease still live: %+v, %v", got, err)
		}
		return nil
	})
	if res := mustRelease(t, r, "dead"); res.Released != 0 || len(res.Closed) != 0 {
		t.Fatalf("ReleaseNode = %+v; want nothing", res)
	}
	if reaped := reapUntilGone(t, s, "exp"); !slices.Equal(reaped, []string{"exp"}) {
		t.Fatalf("reaped %q, want [exp] once", reaped)
	}
}

// A lease that expired and was taken by another node belongs to that node.
func testReleaseLeaseMovedOn(t *testing.T, s store.Store, r store.NodeReleaser) {
	mustCreate(t, s, "m", long)
	mustAttach(t, s, "m", lease("dead", "t1", short))
	attachOnceFree(t, s, "m", sticky("alive", "t2"))
	if res := mustRelease(t, r, "dead"); res.Released != 0 || len(res.Closed) != 0 {
		t.Fatalf("ReleaseNode = %+v; want nothing", res)
	}
	if got, err := s.Get(ctx(t), "m"); err != nil || got.State != store.StateOpen || got.ReceiverNode != "alive" {
		t.Fatalf("Get = %+v, %v; want open, held by alive", got, err)
	}
}

// A released session with no new receiver expires after its disconnect
// delay, as after a Detach.
func testReleaseStartsDeadline(t *testing.T, s store.Store, r store.NodeReleaser) {
	mustCreate(t, s, "dl", short)
	mustAttach(t, s, "dl", lease("dead", "t1", long))
	if ids, err := s.Reap(ctx(t), time.Now().Add(time.Minute), 0); err != nil || len(ids) != 0 {
		t.Fatalf("Reap while held = %q, %v; want nothing", ids, err)
	}
	mustRelease(t, r, "dead")
	if reaped := reapUntilGone(t, s, "dl"); !slices.Equal(reaped, []string{"dl"}) {
		t.Fatalf("reaped %q, want [dl] once", reaped)
	}
}

// A websocket session closed before its node died (its close frame on the
// way) is released but not closed again: its OnClose already ran.
func testReleaseClosedSticky(t *testing.T, s store.Store, r store.NodeReleaser) {
	mustCreate(t, s, "cw", long)
	mustAttach(t, s, "cw", sticky("dead", "t1"))
	if won, err := s.Close(ctx(t), "cw", 3000, "bye"); err != nil || !won {
		t.Fatalf("Close = %v, %v", won, err)
	}
	if res := mustRelease(t, r, "dead"); res.Released != 1 || len(res.Closed) != 0 {
		t.Fatalf("ReleaseNode = %+v; want 1 released, none closed", res)
	}
	if got, err := s.Get(ctx(t), "cw"); err != nil || got.Code != 3000 || got.ReceiverNode != "" {
		t.Fatalf("Get = %+v, %v; want code 3000 kept, no receiver", got, err)
	}
}

// Survivors with diverging views may clean up after one node at once:
// every websocket session is closed by exactly one of them.
func testReleaseRace(t *testing.T, s store.Store, r store.NodeReleaser) {
	const sessions, cleaners = 40, 4
	var want []string
	for i := range sessions {
		id := fmt.Sprintf("race%02d", i)
		mustCreate(t, s, id, long)
		mustAttach(t, s, id, sticky("dead", "t"+id))
		want = append(want, id)
	}
	var mu sync.Mutex
	var closed []string
	released := 0
	var wg sync.WaitGroup
	for range cleaners {
		wg.Go(func() {
			res, err := r.ReleaseNode(ctx(t), "dead", 1006, "node died")
			if err != nil {
				t.Errorf("ReleaseNode: %v", err)
				return
			}
			mu.Lock()
			closed = append(closed, res.Closed...)
			released += res.Released
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(closed)
	if !slices.Equal(closed, want) || released != sessions {
		t.Fatalf("closed %d sessions (%d released) over %d cleaners; want each of %d exactly once",
			len(closed), released, cleaners, sessions)
	}
}

// Enough sessions to spread over every bucket or shard of a store.
func testReleaseMany(t *testing.T, s store.Store, r store.NodeReleaser) {
	const n = 300
	for i := range n {
		id := fmt.Sprintf("many%03d", i)
		mustCreate(t, s, id, long)
		l := lease("dead", "t"+id, long)
		l.Sticky = i%3 == 0
		mustAttach(t, s, id, l)
	}
	res := mustRelease(t, r, "dead")
	if res.Released != n || len(res.Closed) != (n+2)/3 {
		t.Fatalf("ReleaseNode = %d released, %d closed; want %d and %d", res.Released, len(res.Closed), n, (n+2)/3)
	}
	for i := range n {
		id := fmt.Sprintf("many%03d", i)
		want := store.Attached
		if i%3 == 0 {
			want = store.AttachClosed
		}
		wantAttach(t, s, id, lease("alive", "u"+id, long), want)
	}
}

// A lease taken by Create itself is released like one taken by Attach.
func testReleaseCreatedAttached(t *testing.T, s store.Store, r store.NodeReleaser) {
	for _, l := range []store.Lease{lease("dead", "tp", long), sticky("dead", "tw")} {
		created, err := s.Create(ctx(t), l.Token, store.CreateOptions{DisconnectDelay: long, Lease: &l})
		if err != nil || !created {
			t.Fatalf("Create with lease = %v, %v", created, err)
		}
	}
	if res := mustRelease(t, r, "dead"); res.Released != 2 || !slices.Equal(res.Closed, []string{"tw"}) {
		t.Fatalf("ReleaseNode = %+v; want 2 released, [tw] closed", res)
	}
	wantAttach(t, s, "tp", lease("alive", "u", long), store.Attached)
}
