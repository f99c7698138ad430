package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/store"
	"github.com/shoal-rt/shoal/store/storetest"
)

// TestMemory runs every storetest suite (sessions, commits, node release,
// lease take-over, channels) on the in-memory store.
func TestMemory(t *testing.T) {
	storetest.RunAll(t, func(t *testing.T) store.Store { return store.NewMemory() })
}

func TestMemoryMaxBytes(t *testing.T) {
	ctx := context.Background()
	m := store.NewMemoryWithConfig(store.MemoryConfig{MaxBytes: 10})
	for _, id := range []string{"a", "b"} {
		if _, err := m.Create(ctx, id, store.CreateOptions{DisconnectDelay: time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Append(ctx, "a", []string{"123456"}, store.QueueLimits{}); err != nil {
		t.Fatal(err)
	}
	// The budget is the store's, not a session's: b cannot use what a holds.
	if _, err := m.Append(ctx, "b", []string{"12345"}, store.QueueLimits{}); !errors.Is(err, store.ErrQueueFull) {
		t.Fatalf("Append past the store's budget = %v, want ErrQueueFull", err)
	}
	if _, err := m.Append(ctx, "b", []string{"1234"}, store.QueueLimits{}); err != nil {
		t.Fatalf("Append within the budget: %v", err)
	}
	if got := m.QueuedBytes(); got != 10 {
		t.Fatalf("QueuedBytes = %d, want 10", got)
	}
	// Draining and reaping give the bytes back.
	if _, err := m.Attach(ctx, "a", store.Lease{Node: "n", Token: "t"}); err != nil {
		t.Fatal(err)
	}
	if got := m.QueuedBytes(); got != 4 {
		t.Fatalf("QueuedBytes after draining a = %d, want 4", got)
	}
	// The memory store judges deadlines by the given clock: a second on,
	// b's 1 ms disconnect delay has passed.
	if _, err := m.Reap(ctx, time.Now().Add(time.Second), 0); err != nil {
		t.Fatal(err)
	}
	if got := m.QueuedBytes(); got != 0 {
		t.Fatalf("QueuedBytes after reaping b = %d, want 0", got)
	}
}
