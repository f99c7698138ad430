package redisstore_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/shoal-rt/shoal/store"
	redisstore "github.com/shoal-rt/shoal/store/redis"
)

// benchStore returns a Store on a fresh redis-server with one open session
// "s", and the hook counting its round trips.
func benchStore(b *testing.B) (*redisstore.Store, *countHook) {
	s, hook, _ := benchStoreClient(b)
	return s, hook
}

func benchStoreClient(b *testing.B) (*redisstore.Store, *countHook, *redis.Client) {
	addr := testenv.Redis(b).Addr
	c := newClient(b, addr)
	hook := &countHook{}
	c.AddHook(hook)
	s := redisstore.New(c, redisstore.Config{Prefix: testenv.Prefix(b)})
	if _, err := s.Create(context.Background(), "s", store.CreateOptions{DisconnectDelay: time.Hour}); err != nil {
		b.Fatal(err)
	}
	return s, hook, c
}

// commandsRun returns how many commands Redis has run, those scripts run
// included (INFO commandstats), and the INFO calls that read them.
func commandsRun(b *testing.B, c *redis.Client) int64 {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for line := range strings.SplitSeq(info, "\n") {
		if _, stats, ok := strings.Cut(line, ":calls="); ok && strings.HasPrefix(line, "cmdstat_") {
			calls, _, _ := strings.Cut(stats, ",")
			v, _ := strconv.ParseInt(calls, 10, 64)
			n += v
		}
	}
	return n
}

// redisCPU returns the CPU time the Redis server has used so far (INFO
// cpu: user + system), the machine's load on other CPUs aside a steadier
// figure than the wall clock.
func redisCPU(b *testing.B, c *redis.Client) time.Duration {
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for line := range strings.SplitSeq(info, "\n") {
		name, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if name == "used_cpu_user" || name == "used_cpu_sys" {
			f, _ := strconv.ParseFloat(v, 64)
			sum += f
		}
	}
	return time.Duration(sum * float64(time.Second))
}

// run times op after one warm-up call (which loads the script) and reports
// round trips per op.
func run(b *testing.B, hook *countHook, op func() error) {
	if err := op(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	before := hook.n.Load()
	for b.Loop() {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(hook.n.Load()-before)/float64(b.N), "roundtrips/op")
}

// BenchmarkAttachDetach is one receiving request: take the lease and drain
// (one script), then release it.
func BenchmarkAttachDetach(b *testing.B) {
	s, hook := benchStore(b)
	ctx := context.Background()
	l := store.Lease{Node: "n1", Token: "t1", TTL: time.Minute}
	run(b, hook, func() error {
		if _, err := s.Attach(ctx, "s", l); err != nil {
			return err
		}
		return s.Detach(ctx, "s", "t1")
	})
}

// BenchmarkPollCycle is one message through a polling session: append,
// then a receiver attaches (draining it) and detaches.
func BenchmarkPollCycle(b *testing.B) { benchPollCycle(b, false) }

// BenchmarkPollCycleHeld is BenchmarkPollCycle as polls run it with a
// store.Committer: the attach keeps the message in flight (store.Hold) and
// the poll's commit releases it with the lease: as many round trips as
// without Hold.
func BenchmarkPollCycleHeld(b *testing.B) { benchPollCycle(b, true) }

func benchPollCycle(b *testing.B, held bool) {
	s, hook := benchStore(b)
	ctx := context.Background()
	l := store.Lease{Node: "n1", Token: "t1", TTL: time.Minute}
	msg := []string{`"hello"`}
	var opts []store.DrainOption
	if held {
		opts = append(opts, store.Hold())
	}
	run(b, hook, func() error {
		if _, err := s.Append(ctx, "s", msg, store.QueueLimits{Messages: 1000}); err != nil {
			return err
		}
		res, err := s.Attach(ctx, "s", l, opts...)
		if err != nil {
			return err
		}
		if len(res.Messages) != 1 {
			return fmt.Errorf("drained %d messages", len(res.Messages))
		}
		if held {
			return s.Commit(ctx, "s", "t1", true)
		}
		return s.Detach(ctx, "s", "t1")
	})
}

// BenchmarkPollCycleHandOff is one message through a parked poll, as a
// browser's echo runs it: the poll attaches (Hold, HandOff) and finds
// nothing; the send looks the session up and appends, which hands the
// message to the poll; the poll writes it and commits with detach.
// commands/op counts what Redis ran, scripts' commands included.
func BenchmarkPollCycleHandOff(b *testing.B) {
	s, hook, c := benchStoreClient(b)
	ctx := context.Background()
	l := store.Lease{Node: "n1", Token: "t1", TTL: time.Minute}
	msg := []string{`"hello"`}
	cycle := func() error {
		if _, err := s.Attach(ctx, "s", l, store.Hold(), store.HandOff(4096)); err != nil {
			return err
		}
		if _, err := s.Get(ctx, "s"); err != nil {
			return err
		}
		res, err := s.Append(ctx, "s", msg, store.QueueLimits{Messages: 1000})
		if err != nil {
			return err
		}
		if res.HandOff.Token != "t1" {
			return fmt.Errorf("not handed off: %+v", res)
		}
		return s.CommitHandOff(ctx, "s", "t1", res.HandOff.Batch, true)
	}
	cmds, cpu := commandsRun(b, c), redisCPU(b, c)
	run(b, hook, cycle)
	b.ReportMetric(float64(redisCPU(b, c)-cpu)/float64(time.Microsecond)/float64(b.N+1), "redis-µs/op")
	b.ReportMetric(float64(commandsRun(b, c)-cmds-1)/float64(b.N+1), "commands/op")
}

func BenchmarkAppend(b *testing.B) {
	s, hook := benchStore(b)
	ctx := context.Background()
	msg := []string{`"hello"`}
	run(b, hook, func() error {
		_, err := s.Append(ctx, "s", msg, store.QueueLimits{})
		return err
	})
}

// BenchmarkDrain is a streaming receiver's drain after a wake-up.
func BenchmarkDrain(b *testing.B) {
	s, hook := benchStore(b)
	ctx := context.Background()
	if _, err := s.Attach(ctx, "s", store.Lease{Node: "n1", Token: "t1", TTL: time.Hour}); err != nil {
		b.Fatal(err)
	}
	run(b, hook, func() error {
		_, err := s.Drain(ctx, "s", "t1")
		return err
	})
}

// BenchmarkAppendParallel appends to many sessions from many goroutines,
// as the senders of a busy node do.
func BenchmarkAppendParallel(b *testing.B) {
	s, hook := benchStore(b)
	ctx := context.Background()
	const sessions = 100
	for i := range sessions {
		if _, err := s.Create(ctx, fmt.Sprint(i), store.CreateOptions{DisconnectDelay: time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
	msg := []string{`"hello"`}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	before := hook.n.Load()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprint(next.Add(1) % sessions)
			if _, err := s.Append(ctx, id, msg, store.QueueLimits{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(hook.n.Load()-before)/float64(b.N), "roundtrips/op")
}
