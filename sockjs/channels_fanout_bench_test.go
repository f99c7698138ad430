package sockjs

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
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
// subscribers: the fan-out writes each message to its idle stream's
// socket itself, as one chunk (stream_direct.go).
func BenchmarkChannelPublishXHRStreaming(b *testing.B) {
	benchChannelPublish(b, Settings{ResponseLimit: 1 << 30}, func(base string, i int) func() string {
		_, br := stream(b, "POST", fmt.Sprintf("%s/0/s%d/xhr_streaming", base, i))
		readLine(b, br) // the prelude
		want(b, "open", readLine(b, br), "o\n")
		return func() string { return strings.TrimSuffix(readLine(b, br), "\n") }
	})
}

// BenchmarkChannelPublishEventSource: the same with 100 eventsource
// subscribers.
func BenchmarkChannelPublishEventSource(b *testing.B) {
	benchChannelPublish(b, Settings{ResponseLimit: 1 << 30}, func(base string, i int) func() string {
		_, br := stream(b, "GET", fmt.Sprintf("%s/0/s%d/eventsource", base, i))
		readLine(b, br) // the prelude
		want(b, "open", readLine(b, br), "data: o\r\n")
		readLine(b, br)
		return func() string {
			event := readLine(b, br)
			readLine(b, br) // the blank line that ends it
			return strings.TrimSuffix(strings.TrimPrefix(event, "data: "), "\r\n")
		}
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
	cpu := processCPU(b)
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
	// The process's CPU, not the wall clock: the server's work and its
	// clients' reads, whichever goroutines and CPUs they ran on.
	b.ReportMetric(float64((processCPU(b)-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
}

// processCPU is the CPU time this process has used (user and system).
func processCPU(b *testing.B) time.Duration {
	d, err := testenv.ProcessCPU(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	return d
}
