package loadtest

import (
	"context"
)

// runIdle: Sessions sessions are opened on the echo endpoint and held
// without traffic (the server's heartbeats only) for the window. The
// server's memory growth over its baseline, divided by the sessions still
// open, is the memory per idle session. The sessions open in two halves
// with a sample between them, so that the growth of the second half alone
// gives the marginal cost too, free of what the server spends once (pools,
// a JIT's code, runtime structures) on its first sessions.
func (r *runner) runIdle(ctx context.Context) error {
	first := r.cfg.Sessions / 2
	var sessions []Session
	if first > 0 {
		s, err := r.openSessions(ctx, r.cfg.EchoPrefix, r.cfg.Transport, first, func(int) SessionHandler { return SessionHandler{} })
		if err != nil {
			return err
		}
		sessions = s
		r.rec.SetPhase("settle")
		if err := sleepCtx(ctx, r.cfg.Settle); err != nil {
			r.closeAll(sessions)
			return err
		}
		if len(r.cfg.ServerPIDs) > 0 {
			if s, err := SampleProcs(r.cfg.ServerPIDs); err == nil {
				r.procMid, r.openMid = &s, r.rec.OpenSessions()
			}
		}
		r.rec.SetPhase("ramp")
	}
	rest, err := r.openSessions(ctx, r.cfg.EchoPrefix, r.cfg.Transport, r.cfg.Sessions-first, func(int) SessionHandler { return SessionHandler{} })
	sessions = append(sessions, rest...)
	defer r.closeAll(sessions)
	if err != nil {
		return err
	}
	r.rec.SetPhase("settle")
	if err := sleepCtx(ctx, r.cfg.Settle); err != nil {
		return err
	}
	return r.measure(ctx)
}
