package apps

import (
	"testing"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/store"

	"github.com/shoal-rt/shoal/node/nodetest"
)

// TestBroadcastAcrossNodes: /broadcast is a channel, so a message sent by
// a session on one node reaches every open session of the endpoint on
// every node, its sender included.
func TestBroadcastAcrossNodes(t *testing.T) {
	st, b := store.NewMemory(), bus.NewMemory()
	t.Cleanup(func() { b.Close() })
	var bases []string
	for range 2 {
		bases = append(bases, serveOn(t, st, b, Options{}, "conformance")+"/broadcast")
	}
	ws := nodetest.DialWS(t, bases[1]+"/0/w/websocket")
	if got := ws.Next(t); got != "o" {
		t.Fatalf("websocket open: %q", got)
	}
	if got := nodetest.Post(t, bases[0]+"/0/p/xhr", ""); got != "o\n" {
		t.Fatalf("poll open: %q", got)
	}
	// From the websocket on node B: to itself and to the poller on A.
	ws.Send(t, "from ws")
	if got := ws.Next(t); got != `a["from ws"]` {
		t.Fatalf("websocket got %q", got)
	}
	if got := nodetest.Post(t, bases[0]+"/0/p/xhr", ""); got != "a[\"from ws\"]\n" {
		t.Fatalf("poller got %q", got)
	}
	// From the poller, sent through node B: to the websocket, and to the
	// poller's next poll.
	nodetest.Post(t, bases[1]+"/0/p/xhr_send", `["from poller"]`)
	if got := ws.Next(t); got != `a["from poller"]` {
		t.Fatalf("websocket got %q", got)
	}
	if got := nodetest.Post(t, bases[1]+"/0/p/xhr", ""); got != "a[\"from poller\"]\n" {
		t.Fatalf("poller got %q", got)
	}
}
