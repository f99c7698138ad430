package ops

import (
	"context"
	"testing"

	"github.com/shoal-rt/shoal/bus"
)

// BenchmarkTimedBus is what timing adds to each bus send (every wake-up,
// every channel publish): a memory bus with nothing listening, timed.
//
//	go test -run XXX -bench TimedBus -benchmem ./node/ops/
func BenchmarkTimedBus(b *testing.B) {
	tb := NewLatency().Bus(bus.NewMemory())
	b.Cleanup(func() { tb.Close() })
	ctx, msg := context.Background(), []byte("hello")
	b.ReportAllocs()
	for b.Loop() {
		if err := tb.Publish(ctx, "room", msg); err != nil {
			b.Fatal(err)
		}
		if err := tb.SendNode(ctx, "n1", msg); err != nil {
			b.Fatal(err)
		}
	}
}
