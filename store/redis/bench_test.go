package redisstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/shoal-rt/shoal/store"
	redisstore "github.com/shoal-rt/shoal/store/redis"
)

// benchServer is a Store on a fresh redis-server of its own, the hook
// counting its round trips, and the server's address (to read what the
// server itself spent).
type benchServer struct {
	hook *countHook
	addr string
}

// benchStore returns a Store on a fresh redis-server with one open session
// "s".
func benchStore(b *testing.B) (*redisstore.Store, benchServer) {
	addr := testenv.Redis(b).Addr
	c := newClient(b, addr)
	hook := &countHook{}
	c.AddHook(hook)
	s := redisstore.New(c, redisstore.Config{Prefix: testenv.Prefix(b)})
	if _, err := s.Create(context.Background(), "s", store.CreateOptions{DisconnectDelay: time.Hour}); err != nil {
		b.Fatal(err)
	}
	return s, benchServer{hook, addr}
}

// commandsRun returns how many commands the server at addr has run, those
// scripts run included, and the INFO calls that read them.
func commandsRun(b *testing.B, addr string) int64 {
	var n int64
	for _, calls := range testenv.ReadRedisInfo(b, addr, "commandstats").Calls() {
		n += calls
	}
	return n
}

// run times op after one warm-up call (which loads the script) and reports
// round trips per op, the commands Redis ran per op (scripts' commands
// included) and the CPU it spent per op (INFO cpu: its syscalls too).
func run(b *testing.B, srv benchServer, op func() error) {
	if err := op(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cmds, cpu := commandsRun(b, srv.addr), testenv.ReadRedisInfo(b, srv.addr, "cpu").CPU()
	b.ResetTimer()
	before := srv.hook.n.Load()
	for b.Loop() {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(srv.hook.n.Load()-before)/float64(b.N), "roundtrips/op")
	b.ReportMetric(float64(testenv.ReadRedisInfo(b, srv.addr, "cpu").CPU()-cpu)/float64(time.Microsecond)/float64(b.N), "redis-µs/op")
	b.ReportMetric(float64(commandsRun(b, srv.addr)-cmds-1)/float64(b.N), "commands/op")
}

// BenchmarkAttachDetach is one receiving request: take the lease and drain
// (one script), then release it.
func BenchmarkAttachDetach(b *testing.B) {
	s, srv := benchStore(b)
	ctx := context.Background()
	l := store.Lease{Node: "n1", Token: "t1", TTL: time.Minute}
	run(b, srv, func() error {
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
	s, srv := benchStore(b)
	ctx := context.Background()
	l := store.Lease{Node: "n1", Token: "t1", TTL: time.Minute}
	msg := []string{`"hello"`}
	var opts []store.DrainOption
	if held {
		opts = append(opts, store.Hold())
	}
	run(b, srv, func() error {
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
	s, srv := benchStore(b)
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
	run(b, srv, cycle)
}

func BenchmarkAppend(b *testing.B) {
	s, srv := benchStore(b)
	ctx := context.Background()
	msg := []string{`"hello"`}
	run(b, srv, func() error {
		_, err := s.Append(ctx, "s", msg, store.QueueLimits{})
		return err
	})
}

// BenchmarkDrain is a streaming receiver's drain after a wake-up.
func BenchmarkDrain(b *testing.B) {
	s, srv := benchStore(b)
	ctx := context.Background()
	if _, err := s.Attach(ctx, "s", store.Lease{Node: "n1", Token: "t1", TTL: time.Hour}); err != nil {
		b.Fatal(err)
	}
	run(b, srv, func() error {
		_, err := s.Drain(ctx, "s", "t1")
		return err
	})
}

// BenchmarkAppendParallel appends to many sessions from many goroutines,
// as the senders of a busy node do.
func BenchmarkAppendParallel(b *testing.B) {
	s, srv := benchStore(b)
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
	before := srv.hook.n.Load()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprint(next.Add(1) % sessions)
			if _, err := s.Append(ctx, id, msg, store.QueueLimits{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(srv.hook.n.Load()-before)/float64(b.N), "roundtrips/op")
}

// BenchmarkGet is a send's session lookup.
func BenchmarkGet(b *testing.B) {
	s, srv := benchStore(b)
	ctx := context.Background()
	run(b, srv, func() error {
		_, err := s.Get(ctx, "s")
		return err
	})
}
