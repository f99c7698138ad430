package loadtest

import (
	"context"
	"sync"
	"time"
)

// runChurn: Rate sessions per second are opened on the echo endpoint, each
// sends one stamped message, waits for its echo and closes. Sessions bounds
// the cycles in flight; a cycle that cannot start is skipped and counted.
func (r *runner) runChurn(ctx context.Context) error {
	tctx, stop := context.WithCancel(ctx)
	slots := make(inflight, r.cfg.Sessions)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.pace(tctx, r.cfg.Rate, 0, func() {
			if !slots.tryAcquire() {
				r.rec.Skipped()
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer slots.release()
				r.churnCycle(tctx)
			}()
		})
	}()
	err := r.measure(ctx)
	stop()
	wg.Wait()
	return err
}

// churnCycle opens one session, echoes one message and closes it. Its
// sent/received pair is the cycle; the echo's latency is recorded.
func (r *runner) churnCycle(ctx context.Context) {
	got := make(chan struct{}, 1)
	s, err := r.openTracked(ctx, r.cfg.EchoPrefix, r.cfg.Transport, SessionHandler{OnMessage: func(msg string) {
		select {
		case got <- struct{}{}:
			r.rec.Received(msg)
		default:
		}
	}})
	if err != nil {
		if ctx.Err() == nil {
			r.rec.Error(err)
		}
		return
	}
	defer s.Close()
	if err := r.send(ctx, s); err != nil {
		if ctx.Err() == nil {
			r.rec.Error(err)
		}
		return
	}
	r.rec.Sent(1)
	// Once sent, the echo is awaited even if the traffic stops meanwhile,
	// so that every counted send has its reply counted too.
	t := time.NewTimer(replyTimeout)
	defer t.Stop()
	select {
	case <-got:
	case <-s.Done():
	case <-t.C:
		r.rec.Error(errNoReply)
	}
}
