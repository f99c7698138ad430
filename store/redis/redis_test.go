package redisstore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/store"
	redisstore "github.com/shoal-rt/shoal/store/redis"
	"github.com/shoal-rt/shoal/store/storetest"
)

func newClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// storesOn returns the storetest suites' newStore: a Store over client
// with a prefix of its own, its sessions spread over buckets buckets (0:
// the default).
func storesOn(client redis.UniversalClient, buckets int) func(t *testing.T) store.Store {
	return func(t *testing.T) store.Store {
		return redisstore.New(client, redisstore.Config{Prefix: testenv.Prefix(t), Buckets: buckets})
	}
}

// TestConformance runs every storetest suite on one redis-server (Redis
// Cluster: TestCluster).
func TestConformance(t *testing.T) {
	client := newClient(t, testenv.Redis(t).Addr)
	storetest.RunAll(t, storesOn(client, 0))
	// Sessions crowded into one bucket must behave the same.
	t.Run("OneBucket", func(t *testing.T) { storetest.RunAll(t, storesOn(client, 1)) })
}

// TestTwoNodes races two Stores with their own connections ("nodes") over
// one Redis: every decision must still have exactly one winner.
func TestTwoNodes(t *testing.T) {
	addr := testenv.Redis(t).Addr
	prefix := testenv.Prefix(t)
	nodes := []*redisstore.Store{
		redisstore.New(newClient(t, addr), redisstore.Config{Prefix: prefix, Buckets: 8}),
		redisstore.New(newClient(t, addr), redisstore.Config{Prefix: prefix, Buckets: 8}),
	}
	ctx := context.Background()
	const sessions, perNode = 20, 4
	type tally struct{ created, attached, won int }
	var (
		mu    sync.Mutex
		count = map[string]*tally{}
		wg    sync.WaitGroup
	)
	// Every tally exists before the first goroutine reads the map.
	for i := range sessions {
		count[fmt.Sprint("s", i)] = &tally{}
	}
	for i := range sessions {
		id := fmt.Sprint("s", i)
		for n, s := range nodes {
			for g := range perNode {
				wg.Go(func() {
					token := fmt.Sprintf("%d-%d", n, g)
					created, err := s.Create(ctx, id, store.CreateOptions{DisconnectDelay: 20 * time.Millisecond})
					if err != nil {
						t.Error(err)
						return
					}
					res, err := s.Attach(ctx, id, store.Lease{Node: fmt.Sprint("node", n), Token: token, TTL: time.Hour})
					if err != nil {
						t.Error(err)
						return
					}
					won, err := s.Close(ctx, id, 3000, token)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					defer mu.Unlock()
					c := count[id]
					if created {
						c.created++
					}
					if res.Status == store.Attached {
						c.attached++
						// Let the session expire once it is closed.
						defer s.Detach(ctx, id, token)
					}
					if won {
						c.won++
					}
				})
			}
		}
	}
	wg.Wait()
	for id, c := range count {
		// The first attach runs before any close, so one racer attaches;
		// the rest are Busy or, after the close, AttachClosed.
		if c.created != 1 || c.won != 1 || c.attached != 1 {
			t.Errorf("%s: created %d, attached %d, won close %d; want 1 each", id, c.created, c.attached, c.won)
		}
	}

	// Fresh open sessions, reaped by both nodes at once: each id once.
	for i := range sessions {
		id := fmt.Sprint("r", i)
		if _, err := nodes[i%2].Create(ctx, id, store.CreateOptions{DisconnectDelay: 20 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	storetest.ReapOnce(t, []store.Store{nodes[0], nodes[1]}, sessions, 2)
	// The closed sessions go silently; then nothing of the prefix is left.
	raw := newClient(t, addr)
	waitNoKeys(t, raw, prefix, func() error {
		ids, err := nodes[0].Reap(ctx, time.Now(), 0)
		if err == nil && len(ids) != 0 {
			t.Fatalf("closed sessions reaped as open: %v", ids)
		}
		return err
	})
}

// countHook counts the round trips a client makes (a pipeline is one).
type countHook struct{ n atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// TestRoundTrips pins the hot path to one round trip per operation.
func TestRoundTrips(t *testing.T) {
	addr := testenv.Redis(t).Addr
	c := newClient(t, addr)
	hook := &countHook{}
	c.AddHook(hook)
	s := redisstore.New(c, redisstore.Config{Prefix: testenv.Prefix(t)})
	ctx := context.Background()
	l := store.Lease{Node: "n1", Token: "t1", TTL: time.Minute}
	// The first pass loads the scripts (EVALSHA misses, then EVAL); in
	// the second each operation must be one round trip.
	for pass := range 2 {
		id := fmt.Sprint("x", pass)
		ops := []struct {
			name string
			fn   func() error
		}{
			{"Create", func() error {
				_, err := s.Create(ctx, id, store.CreateOptions{DisconnectDelay: time.Minute})
				return err
			}},
			{"Append", func() error {
				_, err := s.Append(ctx, id, []string{"a", "b"}, store.QueueLimits{Messages: 10})
				return err
			}},
			{"Attach", func() error { _, err := s.Attach(ctx, id, l); return err }},
			{"Drain", func() error { _, err := s.Drain(ctx, id, "t1"); return err }},
			{"Renew", func() error { return s.Renew(ctx, id, l) }},
			{"Detach", func() error { return s.Detach(ctx, id, "t1") }},
			{"Get", func() error { _, err := s.Get(ctx, id); return err }},
			{"SetAttr", func() error { return s.SetAttr(ctx, id, "k", "v") }},
			{"Attr", func() error { _, _, err := s.Attr(ctx, id, "k"); return err }},
			{"Close", func() error { _, err := s.Close(ctx, id, 3000, "bye"); return err }},
			// Nothing due: one pipelined read of every bucket's index.
			{"Reap", func() error { _, err := s.Reap(ctx, time.Now(), 0); return err }},
		}
		for _, op := range ops {
			before := hook.n.Load()
			if err := op.fn(); err != nil {
				t.Fatalf("%s: %v", op.name, err)
			}
			if n := hook.n.Load() - before; pass == 1 && n != 1 {
				t.Errorf("%s took %d round trips, want 1", op.name, n)
			}
		}
	}
}

// TestUnreachable: with Redis gone, every method fails promptly (within
// its context's deadline, give or take), never hangs or panics.
func TestUnreachable(t *testing.T) {
	l := store.Lease{Node: "n", Token: "t", TTL: time.Minute}
	calls := map[string]func(s *redisstore.Store, ctx context.Context) error{
		"Create": func(s *redisstore.Store, ctx context.Context) error {
			_, err := s.Create(ctx, "x", store.CreateOptions{})
			return err
		},
		"Get":    func(s *redisstore.Store, ctx context.Context) error { _, err := s.Get(ctx, "x"); return err },
		"Attach": func(s *redisstore.Store, ctx context.Context) error { _, err := s.Attach(ctx, "x", l); return err },
		"Renew":  func(s *redisstore.Store, ctx context.Context) error { return s.Renew(ctx, "x", l) },
		"Detach": func(s *redisstore.Store, ctx context.Context) error { return s.Detach(ctx, "x", "t") },
		"Append": func(s *redisstore.Store, ctx context.Context) error {
			_, err := s.Append(ctx, "x", []string{"m"}, store.QueueLimits{})
			return err
		},
		"Drain": func(s *redisstore.Store, ctx context.Context) error { _, err := s.Drain(ctx, "x", "t"); return err },
		"Close": func(s *redisstore.Store, ctx context.Context) error {
			_, err := s.Close(ctx, "x", 3000, "x")
			return err
		},
		"Reap": func(s *redisstore.Store, ctx context.Context) error {
			_, err := s.Reap(ctx, time.Now(), 0)
			return err
		},
		"SetAttr": func(s *redisstore.Store, ctx context.Context) error { return s.SetAttr(ctx, "x", "k", "v") },
		"Attr": func(s *redisstore.Store, ctx context.Context) error {
			_, _, err := s.Attr(ctx, "x", "k")
			return err
		},
	}
	const timeout, budget = 100 * time.Millisecond, time.Second
	check := func(t *testing.T, s *redisstore.Store) {
		for name, call := range calls {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			start := time.Now()
			err := call(s, ctx)
			cancel()
			if err == nil {
				t.Errorf("%s succeeded without Redis", name)
			}
			if d := time.Since(start); d > budget {
				t.Errorf("%s took %v with a %v context", name, d, timeout)
			}
		}
	}

	t.Run("NothingListening", func(t *testing.T) {
		c := newClient(t, testenv.FreeAddr(t))
		check(t, redisstore.New(c, redisstore.Config{}))
	})
	t.Run("ServerStopped", func(t *testing.T) {
		r := testenv.Redis(t)
		c := newClient(t, r.Addr)
		s := redisstore.New(c, redisstore.Config{Prefix: testenv.Prefix(t)})
		if _, err := s.Create(context.Background(), "x", store.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// A frozen server accepts connections into its backlog and answers
		// nothing: only the deadline can end a call.
		r.Signal(syscall.SIGSTOP)
		defer r.Signal(syscall.SIGCONT)
		check(t, s)
	})
}
