package sockjs

import (
	"context"
	"fmt"
	"testing"

	"github.com/coder/websocket"
)

// BenchmarkChannelPublishWebsocket: one publish on a node (memory store and
// bus) with 100 websocket subscribers, until every subscriber read it: the
// channel fan-out end to end (log append, bus, ordering, one frame encoded
// for the node, each socket's writer). allocs/op counts the 100 deliveries
// and the client side's reads.
func BenchmarkChannelPublishWebsocket(b *testing.B) {
	const subs = 100
	c := newCluster(b)
	_, e, base := c.node(b, joinRoom, Settings{})
	if err := e.HandleChannels(ChannelConfig{Pattern: "room"}); err != nil {
		b.Fatal(err)
	}
	conns := make([]*websocket.Conn, subs)
	for i := range conns {
		conns[i] = dialWS(b, fmt.Sprintf("%s/0/s%d/websocket", base, i))
		want(b, "open", readWS(b, conns[i]), "o")
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Publish(ctx, "room", "a 40 byte message for every subscriber."); err != nil {
			b.Fatal(err)
		}
		for _, conn := range conns {
			readWS(b, conn)
		}
	}
}
