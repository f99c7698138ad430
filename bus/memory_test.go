package bus_test

import (
	"context"
	"testing"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/bus/bustest"
)

func TestMemory(t *testing.T) {
	bustest.Run(t, func(t *testing.T) []bus.Bus {
		m := bus.NewMemory()
		t.Cleanup(func() { m.Close() })
		// One in-process bus serves every node of the process.
		return []bus.Bus{m, m}
	})
}

// A full listener queue drops and counts instead of blocking the sender.
func TestMemoryDropsWhenFull(t *testing.T) {
	m := bus.NewMemory()
	t.Cleanup(func() { m.Close() })
	bustest.ListenStuck(t, m, "slow")
	n := bus.DefaultQueueSize + 10
	for i := 0; i < n; i++ {
		if err := m.SendNode(context.Background(), "slow", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	// At most one message is in the handler and DefaultQueueSize queued.
	if d := m.Dropped(); d < uint64(n-bus.DefaultQueueSize-1) || d > uint64(n-bus.DefaultQueueSize) {
		t.Fatalf("Dropped() = %d after %d sends to a stuck listener with queue %d", d, n, bus.DefaultQueueSize)
	}
}
