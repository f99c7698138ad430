package sockjs

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkChannelPublishWebsocket: one publish on a node (memory store and
// bus) with 100 websocket subscribers, until every subscriber read it: the
// channel fan-out end to end (log append, bus, ordering, one frame encoded
// for the node, each socket's write). allocs/op counts the 100 deliveries
// and the client side's reads.
func BenchmarkChannelPublishWebsocket(b *testing.B) {
	benchChannelPublish(b, Settings{}, func(base string, i int) func() string {
		conn := dialWS(b, fmt.Sprintf("%s/0/s%d/websocket", base, i))
		want(b, "open", readWS(b, conn), "o")
		return func() string { return readWS(b, conn) }
	})
}

// BenchmarkChannelPublishXHRStreaming: the same with 100 xhr-streaming
// subscribers: each message goes into its stream's queue and the stream's
// goroutine writes it as one chunk.
func BenchmarkChannelPublishXHRStreaming(b *testing.B) {
	benchChannelPublish(b, Settings{ResponseLimit: 1 << 30}, func(base string, i int) func() string {
		_, br := stream(b, "POST", fmt.Sprintf("%s/0/s%d/xhr_streaming", base, i))
		readLine(b, br) // the prelude
		want(b, "open", readLine(b, br), "o\n")
		return func() string { return strings.TrimSuffix(readLine(b, br), "\n") }
	})
}

// benchChannelPublish publishes to 100 subscribers that subscribe opens,
// and reads each one's delivery before the next publish.
func benchChannelPublish(b *testing.B, settings Settings, subscribe func(base string, i int) (read func() string)) {
	const subs = 100
	c := newCluster(b)
	_, e, base := c.node(b, joinRoom, settings)
	if err := e.HandleChannels(ChannelConfig{Pattern: "room"}); err != nil {
		b.Fatal(err)
	}
	reads := make([]func() string, subs)
	for i := range reads {
		reads[i] = subscribe(base, i)
	}
	const msg = "a 40 byte message for every subscriber."
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Publish(ctx, "room", msg); err != nil {
			b.Fatal(err)
		}
		for _, read := range reads {
			if got := read(); got != `a["`+msg+`"]` {
				b.Fatalf("got %q", got)
			}
		}
	}
}
