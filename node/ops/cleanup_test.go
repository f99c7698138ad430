package ops

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/cluster"
	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/sockjs"
	"github.com/shoal-rt/shoal/store"

	"github.com/shoal-rt/shoal/node/nodetest"
)

// TestCleanupTakenOver: the survivor responsible for a dead node dies too
// before cleaning up; the next one takes the cleanup over when it learns
// of that second death. Three in-process memberlists over loopback share a
// memory store; only b runs a cleaner, so a (responsible for c: the first
// id after "c", wrapping) never cleans up.
func TestCleanupTakenOver(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	ids := []string{"a", "b", "c"}
	ms := make([]*cluster.Memberlist, len(ids))
	for i, id := range ids {
		cfg := cluster.Config{NodeID: id, BindAddr: "127.0.0.1:0", Logger: quiet}
		if i > 0 {
			cfg.Seeds = []string{ms[0].GossipAddr()}
		}
		m, err := cluster.Join(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Shutdown() })
		ms[i] = m
	}
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		for _, m := range ms {
			if n := len(m.Members()); n != 3 {
				return fmt.Errorf("%s sees %d members", m.Self().ID, n)
			}
		}
		return nil
	})

	st, b := store.NewMemory(), bus.NewMemory()
	t.Cleanup(func() { b.Close() })
	node := nodetest.SockJSNode(t, sockjs.NodeConfig{ID: "b", Store: st, Bus: b, Logger: quiet})
	var closed atomic.Int32
	if _, err := node.NewEndpoint(sockjs.HandlerFuncs{Close: func(*sockjs.Session) { closed.Add(1) }},
		sockjs.Settings{Prefix: "/t"}); err != nil {
		t.Fatal(err)
	}
	cl := newCleaner(node, ms[1], quiet)
	t.Cleanup(cl.stop)

	// c holds a websocket session and a poll.
	ctx := context.Background()
	for _, s := range []struct {
		key    string
		sticky bool
	}{{"/t/ws", true}, {"/t/poll", false}} {
		if _, err := st.Create(ctx, s.key, store.CreateOptions{DisconnectDelay: time.Minute}); err != nil {
			t.Fatal(err)
		}
		res, err := st.Attach(ctx, s.key, store.Lease{Node: "c", Token: "t" + s.key, TTL: time.Hour, Sticky: s.sticky})
		if err != nil || res.Status != store.Attached {
			t.Fatalf("attach %s: %+v %v", s.key, res, err)
		}
	}
	holder := func(key string) string {
		s, err := st.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return s.ReceiverNode
	}

	ms[2].Shutdown() // c dies; a is responsible and never cleans up
	testenv.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		for _, d := range cl.recent() {
			if d.ID == "c" && !d.Cleaned {
				return nil
			}
		}
		return fmt.Errorf("b has not seen c die: %+v", cl.recent())
	})
	if holder("/t/poll") != "c" || holder("/t/ws") != "c" {
		t.Fatal("b cleaned up after c while a, responsible, was alive")
	}

	ms[0].Shutdown() // a dies: b is responsible for both now
	testenv.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		if h := holder("/t/poll"); h != "" {
			return fmt.Errorf("poll still held by %q", h)
		}
		ws, err := st.Get(ctx, "/t/ws")
		if err != nil || ws.State != store.StateClosed || ws.ReceiverNode != "" {
			return fmt.Errorf("websocket session %+v, %v", ws, err)
		}
		if closed.Load() != 1 {
			return fmt.Errorf("OnClose ran %d times", closed.Load())
		}
		return nil
	})
	var gone []string
	for _, d := range cl.recent() {
		if d.Cleaned {
			gone = append(gone, d.ID)
		}
	}
	slices.Sort(gone)
	if !slices.Equal(gone, []string{"a", "c"}) {
		t.Fatalf("b cleaned up after %v, want a and c", gone)
	}
}
