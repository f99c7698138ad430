package storetest

import (
	"strings"
	"testing"

	"github.com/shoal-rt/shoal/store"
)

// handOffCases are the store.HandOffCommitter suite (see RunAll).
var handOffCases = []capabilityCase[store.HandOffCommitter]{
	{"Committed", testHandOffCommitted},
	{"OnlyWhenAsked", testHandOffOnlyWhenAsked},
	{"OnlyWhenNothingWaits", testHandOffOnlyWhenNothingWaits},
	{"DrainMakesStale", testHandOffDrainMakesStale},
	{"UnwrittenRedelivered", testHandOffUnwrittenRedelivered},
	{"ClosedRedelivers", testHandOffClosedRedelivers},
}

// attachHandOff attaches with Hold and HandOff(100), as a parked poll does.
func attachHandOff(t *testing.T, s store.Store, id string, l store.Lease, want ...string) {
	t.Helper()
	res, err := s.Attach(ctx(t), id, l, store.Hold(), store.HandOff(100))
	if err != nil || res.Status != store.Attached || len(res.Messages) != len(want) {
		t.Fatalf("Attach(%q, %q, Hold, HandOff) = %+v, %v; want attached with %q", id, l.Token, res, err, want)
	}
	for i := range want {
		if res.Messages[i] != want[i] {
			t.Fatalf("Attach(%q, %q, Hold, HandOff) took %q; want %q", id, l.Token, res.Messages, want)
		}
	}
}

// mustHandOff appends msgs and wants them handed to token.
func mustHandOff(t *testing.T, s store.Store, id, token string, msgs ...string) uint64 {
	t.Helper()
	res := mustAppend(t, s, id, msgs...)
	if res.HandOff.Token != token || res.HandOff.Batch == 0 {
		t.Fatalf("Append(%q, %q).HandOff = %+v; want handed to %q", id, msgs, res.HandOff, token)
	}
	return res.HandOff.Batch
}

// mustNotHandOff appends msgs and wants them queued only.
func mustNotHandOff(t *testing.T, s store.Store, id string, msgs ...string) {
	t.Helper()
	if res := mustAppend(t, s, id, msgs...); res.HandOff != (store.HandedOff{}) {
		t.Fatalf("Append(%q, %q).HandOff = %+v; want none", id, msgs, res.HandOff)
	}
}

func mustCommitHandOff(t *testing.T, c store.HandOffCommitter, id, token string, batch uint64, detach bool) {
	t.Helper()
	if err := c.CommitHandOff(ctx(t), id, token, batch, detach); err != nil {
		t.Fatalf("CommitHandOff(%q, %q, %d, %v): %v", id, token, batch, detach, err)
	}
}

// The holder wrote what was handed to it and committed it: it is gone
// from the queue, byte count included, and the next hand-off works.
func testHandOffCommitted(t *testing.T, s store.Store, c store.HandOffCommitter) {
	mustCreate(t, s, "p", long)
	attachHandOff(t, s, "p", lease("n1", "t1", long))
	batch := mustHandOff(t, s, "p", "t1", "m1", "m2")
	mustCommitHandOff(t, c, "p", "t1", batch, true)
	attachHandOff(t, s, "p", lease("n2", "t2", long))
	next := mustHandOff(t, s, "p", "t2", "m3")
	if next == batch {
		t.Fatalf("two hand-offs numbered %d", batch)
	}
	mustCommitHandOff(t, c, "p", "t2", next, true)
	// Nothing is left, and nothing counts against the byte bound.
	if _, err := s.Append(ctx(t), "p", []string{"0123456789"}, store.QueueLimits{Bytes: 10}); err != nil {
		t.Fatalf("Append after committed hand-offs: %v", err)
	}
	attachHandOff(t, s, "p", lease("n3", "t3", long), "0123456789")
}

func testHandOffOnlyWhenAsked(t *testing.T, s store.Store, c store.HandOffCommitter) {
	mustCreate(t, s, "p", long)
	mustNotHandOff(t, s, "p", "m0") // nobody attached
	mustAttachHeld(t, s, "p", lease("n1", "t1", long), "m0")
	mustCommit(t, c, "p", "t1", false)
	mustNotHandOff(t, s, "p", "m1") // attached without HandOff
	mustDrainHeld(t, s, "p", "t1", "m1")
	mustCommit(t, c, "p", "t1", false)
	mustNotHandOff(t, s, "p", "") // not even nothing
	mustDrainHeld(t, s, "p", "t1", "")
	mustCommit(t, c, "p", "t1", true)
	attachHandOff(t, s, "p", lease("n1", "t2", long))
	mustNotHandOff(t, s, "p", strings.Repeat("x", 101)) // more than the lease takes
}

// Only an Append that finds nothing queued nor in flight hands off: the
// holder would write the batch before what waits.
func testHandOffOnlyWhenNothingWaits(t *testing.T, s store.Store, c store.HandOffCommitter) {
	mustCreate(t, s, "p", long)
	attachHandOff(t, s, "p", lease("n1", "t1", long))
	batch := mustHandOff(t, s, "p", "t1", "m1")
	mustNotHandOff(t, s, "p", "m2")
	mustCommitHandOff(t, c, "p", "t1", batch, false)
	mustDrainHeld(t, s, "p", "t1", "m2")
	mustNotHandOff(t, s, "p", "m3") // m2 in flight
	mustCommit(t, c, "p", "t1", true)
	attachHandOff(t, s, "p", lease("n2", "t2", long), "m3")
}

// A drain takes a handed-off batch like any message; committing the batch
// afterwards takes nothing more off the queue.
func testHandOffDrainMakesStale(t *testing.T, s store.Store, c store.HandOffCommitter) {
	mustCreate(t, s, "p", long)
	attachHandOff(t, s, "p", lease("n1", "t1", long))
	batch := mustHandOff(t, s, "p", "t1", "m1")
	mustDrainHeld(t, s, "p", "t1", "m1")
	mustNotHandOff(t, s, "p", "m2")
	mustCommitHandOff(t, c, "p", "t1", batch, true)
	attachHandOff(t, s, "p", lease("n2", "t2", long), "m2")
}

// A holder that ends without writing the batch (its wake-up was lost, or
// came too late) commits none: the next receiver gets it.
func testHandOffUnwrittenRedelivered(t *testing.T, s store.Store, c store.HandOffCommitter) {
	mustCreate(t, s, "p", long)
	attachHandOff(t, s, "p", lease("n1", "t1", long))
	mustHandOff(t, s, "p", "t1", "m1")
	mustCommit(t, c, "p", "t1", true)
	attachHandOff(t, s, "p", lease("n2", "t2", long), "m1")
	mustCommitHandOff(t, c, "p", "t2", 0, true)
	attachHandOff(t, s, "p", lease("n3", "t3", long))
}

// A session closed after a hand-off still gives the batch to the next
// receiver, before its close.
func testHandOffClosedRedelivers(t *testing.T, s store.Store, c store.HandOffCommitter) {
	mustCreate(t, s, "p", long)
	attachHandOff(t, s, "p", lease("n1", "t1", long))
	mustHandOff(t, s, "p", "t1", "m1")
	if _, err := s.Close(ctx(t), "p", 3000, "bye"); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, c, "p", "t1", true)
	res, err := s.Attach(ctx(t), "p", lease("n2", "t2", long), store.Hold())
	if err != nil || res.Status != store.AttachClosed || len(res.Messages) != 1 || res.Messages[0] != "m1" || !res.Leased {
		t.Fatalf("Attach after close = %+v, %v; want closed with m1, leased", res, err)
	}
	mustCommit(t, c, "p", "t2", true)
	res, err = s.Attach(ctx(t), "p", lease("n3", "t3", long), store.Hold())
	if err != nil || res.Status != store.AttachClosed || len(res.Messages) != 0 {
		t.Fatalf("Attach after the commit = %+v, %v; want the close alone", res, err)
	}
}
