package sockjs

import (
	"context"
	"testing"
	"time"
)

// TestNothingReadsTheStoreAfterClose: once Node.Close has returned, none
// of the node's receivers, timers or loops touches the store, whatever was
// live at the close (a parked poll, a stream, a websocket), with every
// timer (heartbeat, re-check, lease renewal) running every few
// milliseconds. (A receiver that detached late, just after Close
// returned, would be seen only when it loses that race; the timers that
// keep firing are seen every time.)
func TestNothingReadsTheStoreAfterClose(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	ks := &killableStore{Store: c.store}
	quick := func(cfg *NodeConfig) {
		cfg.Store = ks
		cfg.RecheckInterval = 10 * time.Millisecond
		cfg.WebsocketRecheckInterval = 10 * time.Millisecond
		cfg.LeaseTTL = 60 * time.Millisecond // renewals every 20 ms
	}
	n, _, base := c.node(t, &recorder{}, Settings{HeartbeatDelay: 15 * time.Millisecond}, quick)
	_, body := do(t, "POST", base+"/0/p/xhr", "")
	want(t, "poll open", body, "o\n")
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		do(t, "POST", base+"/0/p/xhr", "")
	}()
	resp, br := stream(t, "POST", base+"/0/s/xhr_streaming")
	defer resp.Body.Close()
	readLine(t, br) // the prelude
	want(t, "stream open", readLine(t, br), "o\n")
	conn := dialWS(t, base+"/0/w/websocket")
	want(t, "ws open", readWS(t, conn), "o")
	go func() {
		for {
			if _, _, err := conn.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond) // heartbeats, re-checks and renewals run

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ks.dead.Store(true)
	<-polled
	time.Sleep(100 * time.Millisecond) // ten re-check intervals, five renewals
	if late := ks.late.Load(); late != 0 {
		t.Fatalf("%d store calls after Node.Close returned", late)
	}
}
