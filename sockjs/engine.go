package sockjs

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/store"
)

// The receiver engine: what every live receiver (a poll, a stream, a
// websocket) does while it holds its session's receiver lease, written
// once for all transports. It renews the lease, sends heartbeats, writes
// what arrives in memory, and drains the store's queue when woken or when
// its re-check timer fires, until the response is complete, the client or
// the lease is gone, the session closes, or the node closes; a poll or a
// stream then releases the lease (release). How frames reach the client,
// and what each ending means, is the transport's receiverSink.

// receiverSink is a transport's side of the engine. The engine calls it
// from one goroutine.
type receiverSink interface {
	// writeMessages writes msgs, drained from the store, as one frame. done
	// reports that the response is complete (a poll answered, a stream
	// past its limit).
	writeMessages(msgs []string) (done bool, err error)
	// writeLocal writes what waits in memory (channel deliveries, a
	// websocket's sends), signalled by lrLocal or wsEvLocal.
	writeLocal() (done bool, err error)
	// writeHeartbeat writes a heartbeat frame.
	writeHeartbeat() (done bool, err error)
	// writeClose tells the client that the session is closed, after what is
	// still pending for it.
	writeClose(code int, reason string)
}

// receiverEnd says why a receiver engine stopped.
type receiverEnd int

const (
	endComplete      receiverEnd = iota // the response is complete
	endClientGone                       // the client went away
	endWriteFailed                      // a write to the client failed
	endNodeClosing                      // the node is closing
	endLeaseLost                        // another receiver holds the lease, or the session is gone
	endSessionClosed                    // the session closed; the client has been told
)

// receiverEngine is the loop of one live receiver.
type receiverEngine struct {
	n     *Node
	lr    *localReceiver
	lease store.Lease
	sink  receiverSink
	// clientGone is closed when the client has gone (the request's
	// context, the websocket's reader). selectsGone: run waits on it
	// beside the wake-ups (a poll) instead of having it signalled.
	clientGone  <-chan struct{}
	selectsGone bool
	// recheck is how often the store's queue is read without a wake-up;
	// 0: never (a store bound to this node: every wake-up is in memory,
	// and none is lost).
	recheck time.Duration
	// lookedAt is when the store was last read (the attach, a drain) and
	// losses the bus's bus.LossCounter count just before: while the bus
	// stays up with the same count, the re-check waits for
	// QuietRecheckInterval since lookedAt (see quiet).
	lookedAt time.Time
	losses   uint64
	// quietRechecks: re-checks may wait while the bus vouches (quiet);
	// HTTP receivers only, a websocket keeps its own interval.
	quietRechecks bool
	// heartbeatDelay is how long the client may go without a frame
	// before it gets a heartbeat; 0 sends none.
	heartbeatDelay time.Duration
	// clock is the one timer of the engine's duties (renewing the lease,
	// re-checking the store, the heartbeat), set for the earliest of due
	// (as time.Since(engineEpoch); 0: never). One timer, not three: an
	// idle websocket holds it, and a loop that selects on timer channels
	// pays to add and remove them from the runtime's timer heap at every
	// wake-up.
	clock *time.Timer
	due   [duties]time.Duration
	// lastWrite is when a frame last went out (as due): the heartbeat is
	// due heartbeatDelay after it, found when the clock fires, so a
	// write does not touch the timer. Atomic: a websocket's writeNow
	// writes outside the engine's steps.
	lastWrite atomic.Int64
	// drainOpts are passed to every Drain: a bound on what one takes (a
	// poll's or a stream's write; the rest goes in the next), Hold.
	drainOpts []store.DrainOption
	// handedOff is the hand-off batch the receiver wrote (0: none), for
	// release's commit (store.HandOffCommitter).
	handedOff uint64
}

// The engine's duties on its clock.
const (
	dutyRenew     = iota // renew the lease
	dutyRecheck          // read the store without a wake-up
	dutyHeartbeat        // the client may have gone heartbeatDelay without a frame
	duties
)

// run runs the loop on the caller's goroutine until the receiver ends,
// and says why. (A websocket drives the same steps from events instead:
// see wsWriter.kick.)
func (en *receiverEngine) run() receiverEnd {
	n := en.n
	en.startClock(func() { en.lr.signal(lrClock) })
	defer en.clock.Stop()
	// The loop waits on the one channel every signal comes through, the
	// client's going and the node's closing included: a select on three
	// channels cost every wake-up (one per channel message of a stream)
	// three channel locks and waiters. A poll, woken once or twice, also
	// selects on clientGone instead: registering a context.AfterFunc and
	// taking it back cost more than that (1.2% of the node's CPU, polling
	// echo at 1k msg/s).
	var gone <-chan struct{}
	if en.selectsGone {
		gone = en.clientGone
	} else {
		stopGone := context.AfterFunc(en.lr.reqCtx, func() { en.lr.signal(lrClientGone) })
		defer stopGone()
	}
	select {
	case <-n.done:
		// Node.Close signals the receivers it finds registered; this one
		// may have registered after it looked.
		return endNodeClosing
	default:
	}
	en.look() // the attach read the store just before
	for {
		// While parked, the fan-out may write channel messages to a
		// stream itself (stream_direct.go); unparked before the signals
		// are read, so those a direct write sent are among them.
		en.lr.chans.park()
		if gone == nil {
			<-en.lr.wakeCh
		} else {
			select {
			case <-en.lr.wakeCh:
			case <-gone:
				en.lr.signals.Or(lrClientGone)
			}
		}
		en.lr.chans.unpark()
		what := en.lr.signals.Swap(0)
		switch {
		case what&lrClientGone != 0:
			return endClientGone
		case what&lrNodeClosing != 0:
			return endNodeClosing
		}
		if end, stop := en.signalled(what); stop {
			return end
		}
	}
}

// quiet reports whether a re-check may be skipped: the bus has stayed up
// and lost nothing since the store was last read, less than
// QuietRecheckInterval ago.
func (en *receiverEngine) quiet() bool {
	if !en.quietRechecks {
		return false
	}
	lc, ok := en.n.bus.(bus.LossCounter)
	if !ok {
		return false
	}
	losses, up := lc.Losses()
	return up && losses == en.losses && time.Since(en.lookedAt) < en.n.cfg.QuietRecheckInterval
}

// look notes that the store is being read now, and the bus's count of
// losses before it (for quiet; nothing to note without re-checks).
func (en *receiverEngine) look() {
	if en.recheck == 0 {
		return
	}
	en.lookedAt = time.Now()
	if lc, ok := en.n.bus.(bus.LossCounter); ok {
		en.losses, _ = lc.Losses()
	}
}

// signalled does what the receiver was signalled for.
func (en *receiverEngine) signalled(what uint32) (receiverEnd, bool) {
	if what&lrLocal != 0 {
		if end, stop := en.wrote(en.sink.writeLocal()); stop {
			return end, true
		}
	}
	return en.tickAndDrain(what&lrWake != 0, what&lrClock != 0)
}

// tickAndDrain does the clock's duties if it fired (clock), then drains
// the store once if woken or a re-check is due (and not quiet).
func (en *receiverEngine) tickAndDrain(woken, clock bool) (receiverEnd, bool) {
	drain := woken
	if clock {
		recheck, end, stop := en.clockDuties()
		if stop {
			return end, true
		}
		drain = drain || recheck && !en.quiet()
	}
	if drain {
		return en.drain()
	}
	return 0, false
}

// startClock sets the duties going; fire runs (on a goroutine of its own)
// whenever one may be due, and must make the engine call clockDuties.
func (en *receiverEngine) startClock(fire func()) {
	now := time.Since(engineEpoch)
	en.due[dutyRenew] = now + en.n.cfg.LeaseTTL/3
	if en.recheck > 0 {
		en.due[dutyRecheck] = now + en.recheck
	}
	if en.heartbeatDelay > 0 {
		en.due[dutyHeartbeat] = now + en.heartbeatDelay
	}
	en.clock = time.AfterFunc(en.nextDue(now), fire)
}

// nextDue is how long from now the earliest duty is due.
func (en *receiverEngine) nextDue(now time.Duration) time.Duration {
	next := time.Duration(0)
	for _, at := range en.due {
		if at != 0 && (next == 0 || at < next) {
			next = at
		}
	}
	return max(next-now, 0)
}

// clockDuties renews the lease and sends a heartbeat when they are due,
// and sets the clock for the next duty; recheck: the store is due a look
// (the caller drains it, once with a wake-up that came too).
func (en *receiverEngine) clockDuties() (recheck bool, _ receiverEnd, _ bool) {
	now := time.Since(engineEpoch)
	var renew, heartbeat bool
	if at := en.due[dutyRenew]; at <= now {
		renew, en.due[dutyRenew] = true, now+en.n.cfg.LeaseTTL/3
	}
	if at := en.due[dutyRecheck]; at != 0 && at <= now {
		recheck, en.due[dutyRecheck] = true, now+en.recheck
	}
	if at := en.due[dutyHeartbeat]; at != 0 && at <= now {
		// Due only if no frame went out since: else heartbeatDelay
		// after the last one.
		last := time.Duration(en.lastWrite.Load())
		if heartbeat = now-last >= en.heartbeatDelay; heartbeat {
			en.due[dutyHeartbeat] = now + en.heartbeatDelay
		} else {
			en.due[dutyHeartbeat] = last + en.heartbeatDelay
		}
	}
	en.clock.Reset(en.nextDue(now))
	if renew {
		if end, stop := en.renew(); stop {
			return false, end, true
		}
	}
	if heartbeat {
		if end, stop := en.wrote(en.sink.writeHeartbeat()); stop {
			return false, end, true
		}
	}
	return recheck, 0, false
}

// renew renews the lease; the engine stops when it was lost.
func (en *receiverEngine) renew() (receiverEnd, bool) {
	ctx, cancel := en.n.opContext()
	err := en.n.store.Renew(ctx, en.lr.key, en.lease)
	cancel()
	if errors.Is(err, store.ErrNotHolder) {
		return endLeaseLost, true
	}
	return 0, false
}

// release ends a poll's or a stream's hold of the lease: it commits what
// the receiver took (handedOff: the hand-off batch a poll wrote, or what
// its drains held) and detaches in one step, then takes the receiver out
// of the node and of the stats (holding: its transport's gauge, counted
// down). Only now are those messages the client's: a poll calls it once
// its response left. interrupted: the client went away, which takes the
// session (sess, needed only then) with it (the protocol: messages may
// have been lost). (A websocket cannot be resumed: its end closes the
// session and detaches, see endWebsocket.)
func (en *receiverEngine) release(sess *Session, interrupted bool, holding *atomic.Int64) {
	n := en.n
	defer n.leave(en.lr)
	defer holding.Add(-1)
	ctx, cancel := n.opContext()
	defer cancel()
	if interrupted {
		sess.closeWith(ctx, CodeInterrupted, ReasonInterrupted)
	} else {
		// Before the detach, so the next receiver goes on from here.
		en.lr.chans.saveCursors(ctx)
	}
	key, token := en.lr.key, en.lease.Token
	var err error
	if hc, ok := n.store.(store.HandOffCommitter); ok && en.handedOff != 0 {
		err = hc.CommitHandOff(ctx, key, token, en.handedOff, true)
	} else if committer, ok := n.store.(store.Committer); ok {
		err = committer.Commit(ctx, key, token, true)
	} else {
		err = n.store.Detach(ctx, key, token)
	}
	if err != nil && !leaseGone(err) {
		n.log.Warn("sockjs: detach failed", "err", err)
	}
}

// leaseGone reports that a store call failed because the receiver's lease
// is no longer its own (another holds it, or the session is gone): what
// it meant to end has ended already, and the receiver stops.
func leaseGone(err error) bool {
	return errors.Is(err, store.ErrNotHolder) || errors.Is(err, store.ErrNotFound)
}

// drain writes what the store's queue holds, and the close frame of a
// closed session.
func (en *receiverEngine) drain() (receiverEnd, bool) {
	// A client that went away while we were woken (a websocket reader
	// that closed the session, then woke us) gets no close frame.
	select {
	case <-en.clientGone:
		return endClientGone, true
	default:
	}
	n := en.n
	if b := en.lr.handOff.Swap(nil); b != nil {
		// A sender handed these over with the wake-up: they head the
		// queue, and go without a drain. (A poll ends with this write.)
		done, err := en.sink.writeMessages(b.msgs)
		if err == nil {
			en.handedOff = b.batch
			n.stats.sent.Add(uint64(len(b.msgs)))
		}
		return en.wrote(done, err)
	}
	en.look()
	ctx, cancel := n.opContext()
	dr, err := n.store.Drain(ctx, en.lr.key, en.lease.Token, en.drainOpts...)
	cancel()
	if dr.More {
		en.lr.wake() // the rest of the queue goes in the next write
	}
	if err != nil {
		if leaseGone(err) {
			return endLeaseLost, true
		}
		n.log.Warn("sockjs: drain failed", "err", err)
		return 0, false
	}
	if len(dr.Messages) > 0 {
		done, err := en.sink.writeMessages(dr.Messages)
		if err == nil {
			n.stats.sent.Add(uint64(len(dr.Messages)))
		}
		if end, stop := en.wrote(done, err); stop {
			return end, true
		}
	}
	if dr.State == store.StateClosed && !dr.More {
		// (With more queued, the wake-up above drains it first.)
		en.sink.writeClose(dr.Code, dr.Reason)
		return endSessionClosed, true
	}
	return 0, false
}

// wrote turns the outcome of a write into whether the engine stops, and
// why; a write that went through restarts the heartbeat's count.
func (en *receiverEngine) wrote(done bool, err error) (receiverEnd, bool) {
	switch {
	case err != nil:
		return endWriteFailed, true
	case done:
		return endComplete, true
	}
	en.noteWrite()
	return 0, false
}

// engineEpoch is what lastWrite counts from.
var engineEpoch = time.Now()

// noteWrite records that a frame went out now.
func (en *receiverEngine) noteWrite() { en.lastWrite.Store(int64(time.Since(engineEpoch))) }

var (
	_ receiverSink = (*httpSink)(nil)
	_ receiverSink = (*wsWriter)(nil)
)
