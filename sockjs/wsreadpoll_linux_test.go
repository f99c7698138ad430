package sockjs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// quietWebsockets counts the websockets whose readers wait in the node's
// poller, holding no goroutine.
func (n *Node) quietWebsockets() int {
	p := n.pollerIfAny()
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	armed := 0
	for _, r := range p.watched {
		if r.armed {
			armed++
		}
	}
	return armed
}

// TestQuietWebsocketsHoldNoGoroutine: a websocket whose client sends
// nothing for WebsocketQuietAfter gives its reader's goroutine up to the
// node's poller, which starts one again when the client sends or leaves;
// the session is served as before, and Node.Close ends the websockets it
// finds quiet, closing them with 1001.
func TestQuietWebsocketsHoldNoGoroutine(t *testing.T) {
	rec := &recorder{}
	n, _, base := newCluster(t).node(t, rec, Settings{}, func(cfg *NodeConfig) {
		cfg.WebsocketQuietAfter = 20 * time.Millisecond
	})
	quiet := func(want int) {
		t.Helper()
		testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
			if got := n.quietWebsockets(); got != want {
				return fmt.Errorf("%d quiet websockets in the poller, want %d", got, want)
			}
			return nil
		})
	}
	conns := make([]*websocket.Conn, 3)
	for i := range conns {
		conns[i] = dialWS(t, fmt.Sprintf("%s/0/q%d/websocket", base, i))
		want(t, "open frame", readWS(t, conns[i]), "o")
	}
	quiet(3)
	// A reader that armed its socket is on its way out: none stays.
	testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := readerGoroutines(); n != 0 {
			return fmt.Errorf("%d websocket reader goroutines while every socket is quiet", n)
		}
		return nil
	})

	// Each quiet socket wakes for what its client sends, and again.
	for round := range 2 {
		for i, c := range conns {
			msg := fmt.Sprintf("m%d-%d", i, round)
			writeWS(t, c, fmt.Sprintf("[%q]", msg))
			want(t, "echo", readWS(t, c), fmt.Sprintf("a[%q]", msg))
		}
		quiet(3)
	}

	// A client that leaves while quiet: its session closes.
	conns[0].Close(websocket.StatusNormalClosure, "")
	rec.waitClosed(t, 1)
	quiet(2)

	// Node.Close ends the quiet ones: 1001 and the close frame, and it
	// returns, so no reader outlives it.
	ends := make(chan string, 2)
	for _, c := range conns[1:] {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, b, _ := c.Read(ctx)
			_, _, err := c.Read(ctx)
			ends <- fmt.Sprintf("%s %d", b, websocket.CloseStatus(err))
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		want(t, "end of a quiet websocket", <-ends, `c[1001,"Going away"] 1001`)
	}
	if _, closed := rec.counts(); closed != 3 {
		t.Fatalf("OnClose ran %d times, want 3", closed)
	}
}
