package redisstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/shoal-rt/shoal/store"
	redisstore "github.com/shoal-rt/shoal/store/redis"
)

// TestHolderIndex checks that the holder index follows the lease through
// attach, a move to another node, detach and reap, and that it carries a
// TTL like every other key.
func TestHolderIndex(t *testing.T) {
	addr := testenv.Redis(t).Addr
	raw := newClient(t, addr)
	ctx := context.Background()
	prefix := testenv.Prefix(t)
	s := redisstore.New(raw, redisstore.Config{Prefix: prefix, Buckets: 1})
	holders := func(node string) []string {
		t.Helper()
		ids, err := raw.SMembers(ctx, "{"+prefix+":0}:h:"+node).Result()
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	want := func(node string, n int) {
		t.Helper()
		if got := holders(node); len(got) != n {
			t.Fatalf("holders of %s = %q, want %d", node, got, n)
		}
	}
	const delay = time.Hour
	if _, err := s.Create(ctx, "x", store.CreateOptions{DisconnectDelay: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Attach(ctx, "x", store.Lease{Node: "a", Token: "t1", TTL: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	want("a", 1)
	if ttl, err := raw.PTTL(ctx, "{"+prefix+":0}:h:a").Result(); err != nil || ttl <= 0 {
		t.Fatalf("holder index PTTL = %v, %v; want a TTL", ttl, err)
	}
	// The lease expires and node b takes it: the session moves index.
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		res, err := s.Attach(ctx, "x", store.Lease{Node: "b", Token: "t2", TTL: delay})
		if err != nil || res.Status != store.Attached {
			return fmt.Errorf("attach by b: %+v, %v", res, err)
		}
		return nil
	})
	want("a", 0)
	want("b", 1)
	if err := s.Detach(ctx, "x", "t2"); err != nil {
		t.Fatal(err)
	}
	want("b", 0)
	// Held again, then reaped after its lease ran out: the index forgets it.
	if _, err := s.Attach(ctx, "x", store.Lease{Node: "c", Token: "t3", TTL: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	want("c", 1)
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if _, err := s.Reap(ctx, time.Now(), 0); err != nil {
			return err
		}
		if _, err := s.Get(ctx, "x"); err == nil {
			return fmt.Errorf("not reaped yet")
		}
		return nil
	})
	want("c", 0)
}
