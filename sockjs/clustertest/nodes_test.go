package clustertest

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/internal/sockjstest"
	"github.com/shoal-rt/shoal/sockjs"
	"github.com/shoal-rt/shoal/store"
)

// startNode starts a node on cfg serving h under "/t" with settings s and,
// unless ch is nil, channels ch, behind its own HTTP server. When the test
// ends it closes the node and the server, then the node's backend clients
// (closeBackends, if not nil). It returns the node, its endpoint and the endpoint's
// URL.
func startNode(t testing.TB, cfg sockjs.NodeConfig, h sockjs.Handler, s sockjs.Settings, ch *sockjs.ChannelConfig, closeBackends func()) (*sockjs.Node, *sockjs.Endpoint, string) {
	t.Helper()
	if closeBackends != nil {
		t.Cleanup(closeBackends) // after the node's (cleanups run last first)
	}
	n, err := sockjs.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Prefix = "/t"
	e, err := n.NewEndpoint(h, s)
	if err != nil {
		t.Fatal(err)
	}
	if ch != nil {
		if err := e.HandleChannels(*ch); err != nil {
			t.Fatal(err)
		}
	}
	url := sockjstest.Serve(t, n.Handler(nil), func(ctx context.Context) { n.Close(ctx) })
	return n, e, url + "/t"
}

// memoryNodes starts n nodes sharing one memory store and bus, each as
// startNode does: the baseline the benchmarks set the backends against.
func memoryNodes(t testing.TB, n int, h sockjs.Handler, s sockjs.Settings, ch *sockjs.ChannelConfig) ([]*sockjs.Endpoint, []string) {
	t.Helper()
	st, b := store.NewMemory(), bus.NewMemory()
	t.Cleanup(func() { b.Close() })
	var eps []*sockjs.Endpoint
	var bases []string
	for range n {
		_, e, base := startNode(t, sockjs.NodeConfig{Store: st, Bus: b, ReapInterval: 20 * time.Millisecond}, h, s, ch, nil)
		eps = append(eps, e)
		bases = append(bases, base)
	}
	return eps, bases
}

// echo is a Handler that sends every message back.
var echo = sockjs.HandlerFuncs{Message: func(s *sockjs.Session, m string) { s.Send(m) }}

// joinRoom is a Handler whose sessions join channel "room" on open.
var joinRoom = sockjs.HandlerFuncs{Open: func(s *sockjs.Session) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Subscribe(ctx, "room")
}}
