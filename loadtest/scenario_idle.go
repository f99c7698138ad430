package loadtest

import (
	"context"
)

// runIdle: Sessions sessions are opened on the echo endpoint and held
// without traffic (the server's heartbeats only) for the window; the
// server's memory growth over its baseline, divided by the sessions still
// open, is the memory per idle session.
func (r *runner) runIdle(ctx context.Context) error {
	sessions, err := r.openSessions(ctx, r.cfg.EchoPrefix, r.cfg.Transport, r.cfg.Sessions, func(int) SessionHandler {
		return SessionHandler{}
	})
	if err != nil {
		return err
	}
	defer r.closeAll(sessions)
	r.rec.SetPhase("settle")
	if err := sleepCtx(ctx, r.cfg.Settle); err != nil {
		return err
	}
	return r.measure(ctx)
}
