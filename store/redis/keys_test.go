package redisstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/store"
	redisstore "github.com/shoal-rt/shoal/store/redis"
)

// The key layout (docs/keys.md): every key of a session or a channel
// carries a TTL, and the holder index follows the lease.

// TestKeysExpire checks the safety net: every key of a session carries a
// TTL covering its deadline, so an abandoned cluster leaves no garbage.
func TestKeysExpire(t *testing.T) {
	addr := testenv.Redis(t).Addr
	raw := newClient(t, addr)
	ctx := context.Background()
	const delay, margin = time.Hour, time.Minute
	prefix := testenv.Prefix(t)
	s := redisstore.New(raw, redisstore.Config{Prefix: prefix, Buckets: 1, KeyTTLMargin: margin})
	fill := func(s *redisstore.Store, delay time.Duration) {
		if _, err := s.Create(ctx, "x", store.CreateOptions{DisconnectDelay: delay}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetAttr(ctx, "x", "k", "v"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, "x", []string{"m"}, store.QueueLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	fill(s, delay)
	keys, err := raw.Keys(ctx, "{"+prefix+":*").Result()
	if err != nil || len(keys) != 4 {
		t.Fatalf("keys = %v, %v; want session, queue, attributes, index", keys, err)
	}
	wantTTL := func(deadline time.Duration) {
		t.Helper()
		keys, err := raw.Keys(ctx, "{"+prefix+":*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if ttl, err := raw.PTTL(ctx, k).Result(); err != nil || ttl <= deadline+margin-time.Second || ttl > deadline+2*margin {
				t.Errorf("PTTL %s = %v, %v; want (%v, %v]", k, ttl, err, deadline+margin-time.Second, deadline+2*margin)
			}
		}
	}
	wantTTL(delay)
	// Keys are extended lazily: a lease that moves the deadline well past
	// them extends every key; detaching moves it back, and keys never
	// expire before it.
	// (The attach takes the queued message: the queue is gone.)
	const lease = 2 * time.Hour
	if _, err := s.Attach(ctx, "x", store.Lease{Node: "a", Token: "t", TTL: lease}); err != nil {
		t.Fatal(err)
	}
	wantTTL(lease + delay)
	if err := s.Detach(ctx, "x", "t"); err != nil {
		t.Fatal(err)
	}
	if keys, err = raw.Keys(ctx, "{"+prefix+":*").Result(); err != nil || len(keys) != 3 {
		t.Fatalf("keys = %v, %v; want session, attributes, index", keys, err)
	}
	for _, k := range keys {
		if ttl, err := raw.PTTL(ctx, k).Result(); err != nil || ttl <= delay+margin {
			t.Errorf("after detach: PTTL %s = %v, %v; want over %v", k, ttl, err, delay+margin)
		}
	}

	// With short times and nobody reaping, Redis drops everything itself.
	prefix = testenv.Prefix(t)
	fill(redisstore.New(raw, redisstore.Config{Prefix: prefix, Buckets: 1, KeyTTLMargin: 50 * time.Millisecond}), 50*time.Millisecond)
	waitNoKeys(t, raw, prefix, nil)
}

// TestChannelKeysExpire: every channel key carries a TTL, so an abandoned
// cluster leaves no garbage.
func TestChannelKeysExpire(t *testing.T) {
	addr := testenv.Redis(t).Addr
	client := newClient(t, addr)
	prefix := testenv.Prefix(t)
	s := redisstore.New(client, redisstore.Config{Prefix: prefix})
	ctx := context.Background()
	if _, err := s.Create(ctx, "a", store.CreateOptions{DisconnectDelay: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subscribe(ctx, "a", "room", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendChannel(ctx, "room", "m", store.LogOptions{Keep: time.Minute}); err != nil {
		t.Fatal(err)
	}
	keys, err := client.Keys(ctx, "*"+prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, k := range keys {
		ttl, err := client.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 {
			t.Errorf("key %s has no TTL (%v)", k, ttl)
		}
		kinds = append(kinds, k[strings.LastIndexByte(k, '}')+1:])
	}
	for _, want := range []string{":h", ":l", ":m", ":ch:a"} {
		found := false
		for _, k := range kinds {
			found = found || k == want
		}
		if !found {
			t.Errorf("no %s key among %q", want, keys)
		}
	}
}

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

// waitNoKeys waits until no key of prefix is left in Redis, calling
// first (when not nil) before each look.
func waitNoKeys(t *testing.T, raw *redis.Client, prefix string, first func() error) {
	t.Helper()
	ctx := context.Background()
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if first != nil {
			if err := first(); err != nil {
				return err
			}
		}
		keys, err := raw.Keys(ctx, "{"+prefix+":*").Result()
		if err != nil {
			return err
		}
		if len(keys) != 0 {
			return fmt.Errorf("keys left: %v", keys)
		}
		return nil
	})
}
