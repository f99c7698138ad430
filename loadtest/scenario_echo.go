package loadtest

import (
	"context"
	"math"
	"sync"
	"time"
)

// runEcho: every session sends stamped messages to the echo endpoint, at
// its share of the rate (open loop) or each after the previous came back
// (closed loop, rate 0), and times each echo.
func (r *runner) runEcho(ctx context.Context) error {
	n := r.cfg.Sessions
	slots := make([]inflight, n)
	for i := range slots {
		slots[i] = make(inflight, r.cfg.Inflight)
	}
	sessions, err := r.openSessions(ctx, r.cfg.EchoPrefix, r.cfg.Transport, n, func(i int) SessionHandler {
		return SessionHandler{OnMessage: func(msg string) {
			r.rec.Received(msg)
			slots[i].release()
		}}
	})
	if err != nil {
		return err
	}
	defer r.closeAll(sessions)

	tctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.sendLoop(tctx, s, slots[i], r.cfg.Rate/float64(len(sessions)), time.Duration(i)*time.Second/time.Duration(max(r.cfg.Rate, 1)))
		}()
	}
	err = r.measure(ctx)
	stop()
	wg.Wait()
	r.drain(ctx, 1)
	return err
}

// sendLoop sends stamped messages on s: paced at rate, or closed-loop when
// rate is 0. slots bounds the messages in flight.
func (r *runner) sendLoop(ctx context.Context, s Session, slots inflight, rate float64, offset time.Duration) {
	send := func() {
		if err := r.send(ctx, s); err != nil {
			slots.release()
			if ctx.Err() == nil {
				r.rec.Error(err)
			}
			return
		}
		r.rec.Sent(1)
	}
	if rate > 0 {
		// The schedule runs apart from the sends: a send that blocks (an
		// xhr_send on a loaded machine) must not stop the ticks from being
		// counted, each as a send or a skip. One worker sends the session's
		// messages in order; more than a tenth of a second's worth waiting
		// for it is skipped, as pace skips its own backlog.
		queue := make(chan struct{}, int(max(1, math.Ceil(rate/10))))
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			for range queue {
				if ctx.Err() != nil { // scheduled in time, not sent
					slots.release()
					r.rec.Skipped()
					continue
				}
				send()
			}
		}()
		r.pace(ctx, rate, offset, func() {
			if !slots.tryAcquire() {
				r.rec.Skipped()
				return
			}
			select {
			case queue <- struct{}{}:
			default:
				slots.release()
				r.rec.Skipped()
			}
		})
		close(queue)
		<-sent
		return
	}
	for slots.acquire(ctx, r.rec) {
		select {
		case <-s.Done():
			return
		default:
		}
		send()
	}
}

// send sends one stamped message. The send is bounded by its own timeout,
// not by ctx: ending the traffic must not cut a websocket write in half,
// which would close the connection.
func (r *runner) send(ctx context.Context, s Session) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), replyTimeout)
	defer cancel()
	return s.Send(sctx, r.rec.Stamp(r.cfg.Payload))
}

// drain waits, up to a few seconds, until every message sent has arrived
// as often as it should (want copies each), so that the delivery count is
// final; what arrives now is outside the window.
func (r *runner) drain(ctx context.Context, want int64) {
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if r.rec.received.Load() >= r.rec.sent.Load()*want {
			return
		}
		if sleepCtx(ctx, 20*time.Millisecond) != nil {
			return
		}
	}
}
