package sockjs

import (
	"context"
	"testing"
)

// What the tests on real Redis and NATS (package sockjs_test: cluster_test.go,
// channels_redis_test.go and the benchmarks) share with this package's own
// tests. They live outside package sockjs so that its tests import no
// backend.

var (
	Do                  = do
	Want                = want
	DialWS              = dialWS
	ReadWS              = readWS
	WriteWS             = writeWS
	JoinRoom            = joinRoom
	ExactlyOnceInOrder  = exactlyOnceInOrder
	AppendJSString      = appendJSString
	NewULID             = newULID
	XHRStreamingPrelude = xhrStreamingPrelude
)

// EndpointNodeID returns the id of the node serving e.
func EndpointNodeID(e *Endpoint) string { return e.node.ID() }

// MemoryNode starts a node on a memory store and bus serving h under
// "/t" and returns its endpoint URL.
func MemoryNode(t testing.TB, h Handler, s Settings) string {
	_, _, base := newCluster(t).node(t, h, s)
	return base
}

// MemoryChannelCluster starts n nodes sharing a memory store and bus, each
// serving h with channels cfg, and returns their endpoints and URLs.
func MemoryChannelCluster(t *testing.T, n int, s Settings, cfg ChannelConfig, h Handler) ([]*Endpoint, []string) {
	cc := newChannelCluster(t, n, s, cfg, h)
	return cc.eps, cc.bases
}

// Subscriber is a test client that collects the messages of its session.
type Subscriber = subscriber

func NewSubscriber(name string) *Subscriber { return newSubscriber(name) }

func (s *subscriber) Name() string                                         { return s.name }
func (s *subscriber) Opened() <-chan struct{}                              { return s.opened }
func (s *subscriber) Got() ([]string, string)                              { return s.got() }
func (s *subscriber) RunWS(ctx context.Context, t testing.TB, base string) { s.runWS(ctx, t, base) }

// LiveSubscribers counts e's node's subscriptions on channel that take its
// messages from memory (not still catching up from the log).
func LiveSubscribers(e *Endpoint, channel string) int {
	return fanoutLiveSubs(e.node, e.channelKey(channel))
}
