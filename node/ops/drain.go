package ops

import (
	"context"
	"net/http"
	"time"
)

// leaveTimeout bounds memberlist's goodbye.
const leaveTimeout = 2 * time.Second

// Drain takes the node out of service without losing sessions, in three
// steps:
//
//  1. /readyz answers 503 "draining" (the node stays fully working) for
//     DrainDelay, so the balancer's health checks see it and send no new
//     requests; a value on skip cuts the wait short;
//  2. the servers stop accepting connections, and every receiver ends:
//     parked polls are answered with a heartbeat frame ("h"), streams end
//     cleanly, so clients poll or reopen on another node; websockets get
//     c[1001,"Going away"]; each receiver releases its lease as it ends;
//  3. in-flight requests (sends) finish, cleanups of dead members under
//     way finish, and the node leaves the cluster (Membership.Leave);
//
// steps 2 and 3 within DrainTimeout. It closes the node and Ops, and
// returns how long steps 2 and 3 took. servers are those that serve the
// node's endpoints (an admin server is best left running until Drain
// returns, so that /readyz keeps saying "draining").
func (o *Ops) Drain(skip <-chan struct{}, servers ...*http.Server) time.Duration {
	o.draining.Store(true)
	o.log.Info("draining: readiness is down", "delay", o.cfg.DrainDelay, "timeout", o.cfg.DrainTimeout)
	if d := o.cfg.DrainDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-skip:
			t.Stop()
			o.log.Info("drain delay cut short")
		}
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), o.cfg.DrainTimeout)
	defer cancel()
	// The servers stop listening at once and wait for their handlers; the
	// node ends the receivers that handlers are waiting in.
	shut := make(chan error, len(servers))
	for _, srv := range servers {
		go func() {
			err := srv.Shutdown(ctx)
			if err != nil {
				srv.Close()
			}
			shut <- err
		}()
	}
	if err := o.node.Close(ctx); err != nil {
		o.log.Warn("receivers did not all end in time", "err", err)
	}
	for range servers {
		if err := <-shut; err != nil {
			o.log.Warn("requests did not all finish in time", "err", err)
		}
	}
	o.cleaner.wait(ctx)
	leave := min(leaveTimeout, max(time.Until(deadlineOf(ctx)), time.Millisecond))
	if err := o.membership.Leave(leave); err != nil {
		o.log.Warn("leaving the cluster", "err", err)
	}
	o.Close()
	took := time.Since(start)
	o.log.Info("drained", "took", took.Round(time.Millisecond))
	return took
}

func deadlineOf(ctx context.Context) time.Time {
	dl, _ := ctx.Deadline()
	return dl
}
