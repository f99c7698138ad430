package loadtest

import (
	"context"
	"fmt"
	"sync"
)

// runBroadcast: sessions on the broadcast endpoint over the configured
// transport receive what one websocket publisher sends there; the endpoint
// sends every message to every open session, the publisher's included.
// Rate is publishes per second; 0 publishes each message once the
// publisher has its own copy back.
func (r *runner) runBroadcast(ctx context.Context) error {
	subs, err := r.openSessions(ctx, r.cfg.BroadcastPrefix, r.cfg.Transport, r.cfg.Sessions, func(int) SessionHandler {
		return SessionHandler{OnMessage: func(msg string) { r.rec.Received(msg) }}
	})
	if err != nil {
		return err
	}
	defer r.closeAll(subs)
	slots := make(inflight, r.cfg.Inflight)
	pubs, err := r.openSessions(ctx, r.cfg.BroadcastPrefix, TransportWebsocket, 1, func(int) SessionHandler {
		return SessionHandler{OnMessage: func(msg string) {
			r.rec.Received(msg)
			slots.release()
		}}
	})
	if err != nil {
		return fmt.Errorf("loadtest: broadcast publisher: %w", err)
	}
	defer r.closeAll(pubs)
	r.receivers = int64(len(subs)) + 1
	return r.publishAndMeasure(ctx, pubs[0], slots)
}

// publishAndMeasure runs pub's send loop at the configured rate (slots
// bounding what is in flight) through the warmup and the measured window,
// then waits for every message to reach its r.receivers sessions.
func (r *runner) publishAndMeasure(ctx context.Context, pub Session, slots inflight) error {
	tctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.sendLoop(tctx, pub, slots, r.cfg.Rate, 0)
	}()
	err := r.measure(ctx)
	stop()
	wg.Wait()
	r.drain(ctx, r.receivers)
	return err
}
