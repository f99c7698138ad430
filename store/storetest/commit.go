package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/store"
)

// committerCases are the store.Committer suite (see RunAll).
var committerCases = []capabilityCase[store.Committer]{
	{"Committed", testCommitted},
	{"RedeliveredAfterCrash", testRedeliveredAfterCrash},
	{"AttachRedelivers", testAttachRedelivers},
	{"CommitDetaches", testCommitDetaches},
	{"NotHolder", testCommitNotHolder},
	{"WithoutHold", testDrainWithoutHold},
	{"ClosedRedelivers", testClosedRedelivers},
	{"ClosedHeldBackInFlight", testClosedHeldBackInFlight},
	{"ClosedTakeHeld", testClosedTakeHeld},
	{"LostDrainRepeats", testLostDrainRepeats},
	{"LostAttachRepeats", testLostAttachRepeats},
}

func mustDrainHeld(t *testing.T, s store.Store, id, token string, want ...string) {
	t.Helper()
	res, err := s.Drain(ctx(t), id, token, store.Hold())
	if err != nil || !slices.Equal(res.Messages, want) && len(res.Messages)+len(want) > 0 {
		t.Fatalf("Drain(%q, %q, Hold) = %q, %v; want %q", id, token, res.Messages, err, want)
	}
}

func mustAttachHeld(t *testing.T, s store.Store, id string, l store.Lease, want ...string) {
	t.Helper()
	res, err := s.Attach(ctx(t), id, l, store.Hold())
	if err != nil || res.Status != store.Attached || !slices.Equal(res.Messages, want) && len(res.Messages)+len(want) > 0 {
		t.Fatalf("Attach(%q, %q, Hold) = %+v, %v; want attached with %q", id, l.Token, res, err, want)
	}
}

func mustCommit(t *testing.T, c store.Committer, id, token string, detach bool) {
	t.Helper()
	if err := c.Commit(ctx(t), id, token, detach); err != nil {
		t.Fatalf("Commit(%q, %q, %v): %v", id, token, detach, err)
	}
}

// commitOnward commits what token took from id, then has it take and
// commit one more message ("m3") and detach: the next receiver, next,
// gets nothing, as each was committed once.
func commitOnward(t *testing.T, s store.Store, c store.Committer, id, token string, next store.Lease) {
	t.Helper()
	mustCommit(t, c, id, token, false)
	mustAppend(t, s, id, "m3")
	mustDrainHeld(t, s, id, token, "m3")
	mustCommit(t, c, id, token, true)
	mustAttachHeld(t, s, id, next)
}

// redeliveredOnce: the receiver t1 of "p" goes (a detach, as when its
// lease runs out); the next, t2, gets want, commits it with its lease, and
// the one after gets nothing.
func redeliveredOnce(t *testing.T, s store.Store, c store.Committer, want ...string) {
	t.Helper()
	mustDetach(t, s, "p", "t1")
	mustAttachHeld(t, s, "p", lease("n2", "t2", long), want...)
	mustCommit(t, c, "p", "t2", true)
	mustAttachHeld(t, s, "p", lease("n2", "t3", long))
}

func testCommitted(t *testing.T, s store.Store, c store.Committer) {
	mustCreate(t, s, "p", long)
	mustAttachHeld(t, s, "p", lease("n1", "t1", long))
	mustAppend(t, s, "p", "m1", "m2")
	mustDrainHeld(t, s, "p", "t1", "m1", "m2")
	commitOnward(t, s, c, "p", "t1", lease("n2", "t2", long))
}

// A receiver took messages and died before writing them: the next one
// gets them first, once.
func testRedeliveredAfterCrash(t *testing.T, s store.Store, c store.Committer) {
	mustCreate(t, s, "p", long)
	mustAttachHeld(t, s, "p", lease("n1", "t1", long))
	mustAppend(t, s, "p", "m1")
	mustDrainHeld(t, s, "p", "t1", "m1")
	mustDetach(t, s, "p", "t1") // what a lease that runs out does
	mustAppend(t, s, "p", "m2")
	mustAttachHeld(t, s, "p", lease("n2", "t2", long), "m1", "m2")
	commitOnward(t, s, c, "p", "t2", lease("n3", "t3", long))
}

func testAttachRedelivers(t *testing.T, s store.Store, c store.Committer) {
	mustCreate(t, s, "p", long)
	mustAppend(t, s, "p", "m1")
	mustAttachHeld(t, s, "p", lease("n1", "t1", long), "m1")
	redeliveredOnce(t, s, c, "m1")
}

func testCommitDetaches(t *testing.T, s store.Store, c store.Committer) {
	mustCreate(t, s, "p", long)
	mustAttachHeld(t, s, "p", lease("n1", "t1", long))
	mustCommit(t, c, "p", "t1", true)
	got, err := s.Get(ctx(t), "p")
	if err != nil || got.ReceiverNode != "" {
		t.Fatalf("Get after Commit with detach = %+v, %v; want no receiver", got, err)
	}
	wantErr(t, "Drain after Commit with detach", drainErr(t, s, "p", "t1"), store.ErrNotHolder)
}

func drainErr(t *testing.T, s store.Store, id, token string) error {
	_, err := s.Drain(ctx(t), id, token)
	return err
}

func testCommitNotHolder(t *testing.T, s store.Store, c store.Committer) {
	mustCreate(t, s, "p", long)
	mustAttachHeld(t, s, "p", lease("n1", "t1", long))
	mustAppend(t, s, "p", "m1")
	mustDrainHeld(t, s, "p", "t1", "m1")
	wantErr(t, "Commit by another token", c.Commit(ctx(t), "p", "t2", true), store.ErrNotHolder)
	wantErr(t, "Commit of a missing session", c.Commit(ctx(t), "none", "t1", false), store.ErrNotFound)
	// t1 still holds m1 in flight: a new receiver after t1 gets it.
	mustDetach(t, s, "p", "t1")
	mustAttachHeld(t, s, "p", lease("n2", "t3", long), "m1")
}

func testDrainWithoutHold(t *testing.T, s store.Store, c store.Committer) {
	mustCreate(t, s, "p", long)
	mustAttach(t, s, "p", lease("n1", "t1", long))
	mustAppend(t, s, "p", "m1")
	if res, err := s.Drain(ctx(t), "p", "t1"); err != nil || !slices.Equal(res.Messages, []string{"m1"}) {
		t.Fatalf("Drain = %+v, %v", res, err)
	}
	mustDetach(t, s, "p", "t1")
	mustAttachHeld(t, s, "p", lease("n2", "t2", long))
}

// A session closed while a dead taker held messages in flight: the first
// receiver after the close gets them, then what was queued.
func testClosedRedelivers(t *testing.T, s store.Store, c store.Committer) {
	mustCreate(t, s, "cr", long)
	// The taker's lease is cut short only once it holds "a": a lease short
	// from the start could run out before its Drain on a busy machine.
	mustAttachHeld(t, s, "cr", lease("n1", "t1", long))
	mustAppend(t, s, "cr", "a")
	mustDrainHeld(t, s, "cr", "t1", "a")
	mustAppend(t, s, "cr", "b")
	if err := s.Renew(ctx(t), "cr", lease("n1", "t1", short)); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if won, err := s.Close(ctx(t), "cr", 3000, "Go away!"); err != nil || !won {
		t.Fatalf("Close = %v, %v", won, err)
	}
	testenv.CheckFor(t, wait, 5*time.Millisecond, func() error {
		res, err := s.Attach(ctx(t), "cr", lease("n2", "t2", long), store.Hold())
		if err != nil || res.Status != store.AttachClosed || !slices.Equal(res.Messages, []string{"a", "b"}) {
			return fmt.Errorf("attach of the closed session after the taker's lease ran out = %+v, %v; want closed with [a b]", res, err)
		}
		return nil
	})
	mustCommit(t, c, "cr", "t2", true)
	res, err := s.Attach(ctx(t), "cr", lease("n2", "t3", long))
	if err != nil || res.Status != store.AttachClosed || len(res.Messages) != 0 || res.HeldBack {
		t.Fatalf("Attach closed again = %+v, %v; want the close alone", res, err)
	}
}

// mustAttachClosedHeld attaches to closed session id with Hold and wants
// its close with msgs, held under the lease l took (Leased).
func mustAttachClosedHeld(t *testing.T, s store.Store, id string, l store.Lease, msgs ...string) {
	t.Helper()
	res, err := s.Attach(ctx(t), id, l, store.Hold())
	if err != nil || res.Status != store.AttachClosed || !slices.Equal(res.Messages, msgs) || !res.Leased {
		t.Fatalf("Attach(%q, %q, Hold) of the closed session = %+v, %v; want closed with %q, leased", id, l.Token, res, err, msgs)
	}
}

// A closed session's queue taken with Hold stays in flight under the
// taker's lease until it commits: a taker that dies before writing it
// (its node killed, or the reply of its take lost) loses nothing. The same
// token's take repeated gets it again; a receiver beside the lease is
// told it is held back; once committed, the close comes alone. Without
// Hold, the take is final and leases nothing.
func testClosedTakeHeld(t *testing.T, s store.Store, c store.Committer) {
	mustCreate(t, s, "ct", long)
	mustAppend(t, s, "ct", "bye")
	if won, err := s.Close(ctx(t), "ct", 4008, "Policy violation"); err != nil || !won {
		t.Fatalf("Close = %v, %v", won, err)
	}
	if _, err := s.Attach(ctx(t), "ct", lease("n1", "t1", long), store.Hold()); err != nil { // the reply is lost
		t.Fatal(err)
	}
	mustAttachClosedHeld(t, s, "ct", lease("n1", "t1", long), "bye")
	res, err := s.Attach(ctx(t), "ct", lease("n2", "t2", long), store.Hold())
	if err != nil || res.Status != store.AttachClosed || len(res.Messages) != 0 || !res.HeldBack || res.Leased {
		t.Fatalf("Attach beside the closed session's taker = %+v, %v; want closed, held back", res, err)
	}
	// Its taker dies: the next receiver gets them, then commits them.
	mustDetach(t, s, "ct", "t1")
	mustAttachClosedHeld(t, s, "ct", lease("n2", "t3", long), "bye")
	mustCommit(t, c, "ct", "t3", true)
	res, err = s.Attach(ctx(t), "ct", lease("n2", "t4", long), store.Hold())
	if err != nil || res.Status != store.AttachClosed || len(res.Messages) != 0 || res.HeldBack || res.Leased {
		t.Fatalf("Attach after the commit = %+v, %v; want the close alone, no lease", res, err)
	}
	if got, err := s.Get(ctx(t), "ct"); err != nil || got.ReceiverNode != "" {
		t.Fatalf("Get after the close alone = %+v, %v; want no receiver", got, err)
	}
}

// A session closed while its live receiver holds messages in flight,
// nothing queued: a receiver beside it is told they are held back (the
// holder may die before writing them: the caller waits, and takes its
// lease over then), and once the holder commits, the close comes alone.
func testClosedHeldBackInFlight(t *testing.T, s store.Store, c store.Committer) {
	mustCreate(t, s, "ci", long)
	mustAttachHeld(t, s, "ci", lease("n1", "t1", long))
	mustAppend(t, s, "ci", "a")
	mustDrainHeld(t, s, "ci", "t1", "a")
	if won, err := s.Close(ctx(t), "ci", 3000, "Go away!"); err != nil || !won {
		t.Fatalf("Close = %v, %v", won, err)
	}
	res, err := s.Attach(ctx(t), "ci", lease("n2", "t2", long))
	if err != nil || res.Status != store.AttachClosed || len(res.Messages) != 0 || !res.HeldBack {
		t.Fatalf("Attach closed beside a lease holding [a] in flight = %+v, %v; want closed, no messages, held back", res, err)
	}
	mustCommit(t, c, "ci", "t1", true)
	res, err = s.Attach(ctx(t), "ci", lease("n2", "t3", long))
	if err != nil || res.Status != store.AttachClosed || len(res.Messages) != 0 || res.HeldBack {
		t.Fatalf("Attach closed after the commit = %+v, %v; want the close alone", res, err)
	}
}

// A held drain whose result never reached the receiver (Redis ran the
// script, the connection died before the reply): the receiver's next
// drain, same token, gets those messages first, then commits them all;
// nothing is lost, nothing is sent twice.
func testLostDrainRepeats(t *testing.T, s store.Store, c store.Committer) {
	mustCreate(t, s, "p", long)
	mustAttachHeld(t, s, "p", lease("n1", "t1", long))
	mustAppend(t, s, "p", "m1", "m2")
	if _, err := s.Drain(ctx(t), "p", "t1", store.Hold()); err != nil { // the reply is lost
		t.Fatal(err)
	}
	mustAppend(t, s, "p", "m3")
	mustDrainHeld(t, s, "p", "t1", "m1", "m2", "m3")
	mustCommit(t, c, "p", "t1", false)
	mustDrainHeld(t, s, "p", "t1")
	mustAppend(t, s, "p", "m4")
	if _, err := s.Drain(ctx(t), "p", "t1", store.Hold()); err != nil { // lost again
		t.Fatal(err)
	}
	// The poll ends without them (its client went on): the next receiver
	// gets them, once.
	redeliveredOnce(t, s, c, "m4")
}

// An attach whose result was lost, sent again with the same lease, gets
// what the first one took.
func testLostAttachRepeats(t *testing.T, s store.Store, c store.Committer) {
	mustCreate(t, s, "p", long)
	mustAppend(t, s, "p", "m1")
	if _, err := s.Attach(ctx(t), "p", lease("n1", "t1", long), store.Hold()); err != nil { // the reply is lost
		t.Fatal(err)
	}
	mustAppend(t, s, "p", "m2")
	mustAttachHeld(t, s, "p", lease("n1", "t1", long), "m1", "m2")
	mustCommit(t, c, "p", "t1", true)
	mustAttachHeld(t, s, "p", lease("n2", "t2", long))
}
