package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/shoal-rt/shoal/cluster"
	"github.com/shoal-rt/shoal/sockjs"
)

// Defaults of the drain flags.
const (
	// defaultDrainDelay covers HAProxy's view of a node going unready:
	// haproxy.cfg checks every second and needs 2 failures (fall 2), so
	// about 2 s; the rest is margin for a loaded machine.
	defaultDrainDelay = 5 * time.Second
	// defaultDrainTimeout keeps delay + timeout (25 s) under the 30 s a
	// container gets between SIGTERM and SIGKILL (docker-compose.yml).
	defaultDrainTimeout = 20 * time.Second
	// leaveTimeout bounds memberlist's goodbye.
	leaveTimeout = 2 * time.Second
	// exitGrace is how long past delay + timeout the process may take
	// before the watchdog ends it.
	exitGrace = 5 * time.Second
)

// drainer takes a node out of service without losing sessions.
type drainer struct {
	node       *sockjs.Node
	srv        *http.Server
	ops        *ops
	membership cluster.Membership
	cleaner    *cleaner
	log        *slog.Logger
	delay      time.Duration
	timeout    time.Duration
}

// drain runs the graceful shutdown that SIGTERM starts:
//
//  1. /readyz answers 503 (the node stays fully working), and the node
//     waits delay so the balancer's health checks see it and send no new
//     requests; skip (a second signal) cuts the wait short;
//  2. the HTTP server stops accepting connections, and every receiver
//     ends: parked polls are answered with a heartbeat frame ("h"),
//     streams end cleanly, so clients poll or reopen on another node;
//     websockets get c[1001,"Going away"] and a 1001 close; each
//     receiver releases its lease as it ends;
//  3. in-flight requests (sends) finish, releases of dead members under
//     way finish, and memberlist says goodbye (Leave);
//
// all within timeout after the delay. It returns how long step 2 and 3
// took.
func (d *drainer) drain(skip <-chan os.Signal) time.Duration {
	d.ops.draining.Store(true)
	d.log.Info("draining: readiness is down", "delay", d.delay, "timeout", d.timeout)
	if d.delay > 0 {
		t := time.NewTimer(d.delay)
		select {
		case <-t.C:
		case sig := <-skip:
			t.Stop()
			d.log.Info("drain delay cut short", "signal", sig.String())
		}
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	// The server stops listening at once and waits for handlers; the node
	// ends the receivers that handlers are waiting in.
	shut := make(chan error, 1)
	go func() { shut <- d.srv.Shutdown(ctx) }()
	if err := d.node.Close(ctx); err != nil {
		d.log.Warn("receivers did not all end in time", "err", err)
	}
	if err := <-shut; err != nil {
		d.log.Warn("requests did not all finish in time", "err", err)
		d.srv.Close()
	}
	d.cleaner.wait(ctx)
	leave := min(leaveTimeout, max(time.Until(deadlineOf(ctx)), time.Millisecond))
	if err := d.membership.Leave(leave); err != nil {
		d.log.Warn("leaving the cluster", "err", err)
	}
	took := time.Since(start)
	d.log.Info("drained", "took", took.Round(time.Millisecond))
	return took
}

func deadlineOf(ctx context.Context) time.Time {
	dl, _ := ctx.Deadline()
	return dl
}
