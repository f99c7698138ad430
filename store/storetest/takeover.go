package storetest

import (
	"slices"
	"sync"
	"testing"

	"github.com/shoal-rt/shoal/store"
)

// leaseTakerCases are the store.LeaseTaker suite (see RunAll).
var leaseTakerCases = []capabilityCase[store.LeaseTaker]{
	{"TakesFromThatNode", testTakeOverFromNode},
	{"NotFromAnotherNode", testTakeOverOtherNode},
	{"NotSticky", testTakeOverSticky},
	{"ClosedAndUnknown", testTakeOverClosedUnknown},
	{"Race", testTakeOverRace},
}

func wantTakeOver(t *testing.T, lt store.LeaseTaker, id, from string, l store.Lease, want store.AttachStatus) store.AttachResult {
	t.Helper()
	res, err := lt.TakeOver(ctx(t), id, from, l)
	if err != nil || res.Status != want {
		t.Fatalf("TakeOver(%q, from %q, %q) = %+v, %v; want status %v", id, from, l.Token, res, err, want)
	}
	return res
}

// A poll held by a node that stopped answering: the new receiver gets the
// lease and the queue at once; the old token is void.
func testTakeOverFromNode(t *testing.T, s store.Store, lt store.LeaseTaker) {
	mustCreate(t, s, "p", long)
	mustAttach(t, s, "p", lease("dead", "t1", long))
	mustAppend(t, s, "p", "m1", "m2")
	res := wantTakeOver(t, lt, "p", "dead", lease("alive", "t2", long), store.Attached)
	if !slices.Equal(res.Messages, []string{"m1", "m2"}) {
		t.Fatalf("TakeOver drained %q, want [m1 m2]", res.Messages)
	}
	got, err := s.Get(ctx(t), "p")
	if err != nil || got.ReceiverNode != "alive" {
		t.Fatalf("Get after take-over = %+v, %v; want receiver alive", got, err)
	}
	_, err = s.Drain(ctx(t), "p", "t1")
	wantErr(t, "Drain by the old holder", err, store.ErrNotHolder)
	wantErr(t, "Renew by the old holder", s.Renew(ctx(t), "p", lease("dead", "t1", long)), store.ErrNotHolder)
	wantErr(t, "Detach by the old holder", s.Detach(ctx(t), "p", "t1"), store.ErrNotHolder)
	// A lease that is free is taken as Attach takes it.
	mustDetach(t, s, "p", "t2")
	wantTakeOver(t, lt, "p", "dead", lease("alive", "t3", long), store.Attached)
}

func testTakeOverOtherNode(t *testing.T, s store.Store, lt store.LeaseTaker) {
	mustCreate(t, s, "p", long)
	mustAttach(t, s, "p", lease("busy", "t1", long))
	wantTakeOver(t, lt, "p", "dead", lease("alive", "t2", long), store.Busy)
	wantTakeOver(t, lt, "p", "", lease("alive", "t2", long), store.Busy)
	if _, err := s.Drain(ctx(t), "p", "t1"); err != nil {
		t.Fatalf("Drain by the holder after refused take-overs: %v", err)
	}
}

// A websocket's lease cannot move: its session ends with its node.
func testTakeOverSticky(t *testing.T, s store.Store, lt store.LeaseTaker) {
	mustCreate(t, s, "w", long)
	mustAttach(t, s, "w", sticky("dead", "t1"))
	wantTakeOver(t, lt, "w", "dead", lease("alive", "t2", long), store.Busy)
}

func testTakeOverClosedUnknown(t *testing.T, s store.Store, lt store.LeaseTaker) {
	wantTakeOver(t, lt, "none", "dead", lease("alive", "t1", long), store.Unknown)
	mustCreate(t, s, "c", long)
	mustAttach(t, s, "c", lease("dead", "t1", long))
	mustAppend(t, s, "c", "last")
	if _, err := s.Close(ctx(t), "c", 3000, "bye"); err != nil {
		t.Fatal(err)
	}
	// Not from the holder's node: what was queued waits for the holder.
	res := wantTakeOver(t, lt, "c", "other", lease("alive", "t2", long), store.AttachClosed)
	if len(res.Messages) != 0 || !res.HeldBack {
		t.Fatalf("TakeOver of a closed session from another node = %+v; want no messages, held back", res)
	}
	// From the holder's node, which did not answer: what was queued
	// before the close goes with the close, as to a receiver after the
	// holder.
	res = wantTakeOver(t, lt, "c", "dead", lease("alive", "t3", long), store.AttachClosed)
	if res.Code != 3000 || res.Reason != "bye" || !slices.Equal(res.Messages, []string{"last"}) || res.HeldBack {
		t.Fatalf("TakeOver of a closed session = %+v; want 3000 bye, [last]", res)
	}
}

// Two survivors take over the same lease at once: one wins.
func testTakeOverRace(t *testing.T, s store.Store, lt store.LeaseTaker) {
	mustCreate(t, s, "r", long)
	mustAttach(t, s, "r", lease("dead", "t0", long))
	mustAppend(t, s, "r", "m")
	var wg sync.WaitGroup
	results := make([]store.AttachResult, 8)
	for i := range results {
		wg.Go(func() {
			res, err := lt.TakeOver(ctx(t), "r", "dead", lease("alive", string(rune('a'+i)), long))
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		})
	}
	wg.Wait()
	won, msgs := 0, 0
	for _, res := range results {
		if res.Status == store.Attached {
			won++
			msgs += len(res.Messages)
		}
	}
	if won != 1 || msgs != 1 {
		t.Fatalf("%d take-overs won, %d messages drained; want 1 and 1", won, msgs)
	}
}
