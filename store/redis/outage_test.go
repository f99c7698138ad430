package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/store"
	redisstore "github.com/shoal-rt/shoal/store/redis"
)

// outageClient returns a client of addr with no retries of its own (the
// store waits out an outage of up to wait, WaitOutages) and a pool of
// poolSize connections (0: go-redis's default), closed when the test ends.
func outageClient(t testing.TB, addr string, wait time.Duration, poolSize int) *redis.Client {
	client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1, PoolSize: poolSize})
	t.Cleanup(func() { client.Close() })
	redisstore.WaitOutages(client, wait)
	return client
}

// TestOutageWait: Redis killed and restarted on the same port with its AOF
// (a restart with persistence) costs the callers a wait, not an error; an
// append made during the outage lands exactly once; an outage longer than
// the bound fails the call after about the bound.
func TestOutageWait(t *testing.T) {
	persist := []string{"--appendonly", "yes", "--appendfsync", "always", "--dir", t.TempDir()}
	srv := testenv.Redis(t, persist...)
	addr := srv.Addr
	s := redisstore.New(outageClient(t, addr, 4*time.Second, 0), redisstore.Config{Prefix: testenv.Prefix(t)})
	ctx := context.Background()
	if _, err := s.Create(ctx, "sess", store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Kill Redis; start appends (they now wait); bring it back.
	srv.Kill()
	var wg sync.WaitGroup
	errs := make([]error, 20)
	took := make([]time.Duration, 20)
	for i := range errs {
		wg.Go(func() {
			start := time.Now()
			_, errs[i] = s.Append(ctx, "sess", []string{"m" + strconv.Itoa(i)}, store.QueueLimits{})
			took[i] = time.Since(start)
		})
	}
	time.Sleep(700 * time.Millisecond) // the outage the appends must ride out
	if !srv.Start() {
		t.Fatal("redis-server did not come back on its port")
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("append %d during a 0.7 s outage: %v (after %v)", i, err, took[i])
		}
	}
	t.Logf("appends waited up to %v", slices.Max(took).Round(time.Millisecond))

	// Every append is in the queue exactly once.
	att, err := s.Attach(ctx, "sess", store.Lease{Node: "n", Token: "t", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Drain(ctx, "sess", "t")
	if err != nil {
		t.Fatal(err)
	}
	got := append(att.Messages, d.Messages...)
	slices.Sort(got)
	var want []string
	for i := range errs {
		want = append(want, "m"+strconv.Itoa(i))
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("queue after the outage = %v, want each of %v once", got, want)
	}

	// An outage past the bound: the call fails after about the bound.
	// The server dies and nobody restarts it. Kill waits until its process
	// is gone: until then its clients' sockets may still be open, and a
	// command written to one fails with EOF, not knowing whether it ran.
	srv.Kill()
	start := time.Now()
	_, err = s.Append(ctx, "sess", []string{"late"}, store.QueueLimits{})
	waited := time.Since(start)
	if err == nil {
		t.Fatal("append with Redis gone: no error")
	}
	if waited < 3*time.Second || waited > 8*time.Second {
		t.Fatalf("append with Redis gone failed after %v (%v), want about the 4 s bound", waited, err)
	}
	t.Logf("with Redis gone the append failed after %v: %v", waited.Round(time.Millisecond), err)
}

// TestOutageNoResend: an error that leaves open whether Redis ran the
// command (the connection broke after the command went out) is returned
// at once, never resent: a script that appends must not run twice.
func TestOutageNoResend(t *testing.T) {
	srv := testenv.Redis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, MaxRetries: -1,
		ReadTimeout: 300 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	redisstore.WaitOutages(client, 5*time.Second)
	ctx := context.Background()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// A stopped server accepts the command into its socket and never
	// answers: the read times out, and Redis may run it when it wakes.
	srv.Signal(syscall.SIGSTOP)
	defer srv.Signal(syscall.SIGCONT)
	start := time.Now()
	err := client.Incr(ctx, "counter").Err()
	if err == nil {
		t.Fatal("INCR on a stopped server: no error")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("INCR whose reply timed out was retried for %v; it must fail at once", took)
	}
	srv.Signal(syscall.SIGCONT)
	testenv.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		n, err := client.Get(ctx, "counter").Int()
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("counter = %d, want 1 (the command ran once, never resent)", n)
		}
		return nil
	})
}

// TestOutageBrokenConnection: a connection that breaks after the command
// went out (here a proxy that reads the command, then closes) leaves open
// whether Redis ran it. A lookup, which changes nothing, is sent again and
// succeeds; an append fails at once and is not resent.
func TestOutageBrokenConnection(t *testing.T) {
	srv := testenv.Redis(t)
	var breakNext atomic.Bool
	addr := testenv.NewProxy(t, srv.Addr, func(in, out net.Conn) {
		go io.Copy(in, out)
		// After breakNext, the command is read and the connection breaks.
		forward(in, out, func() bool { return breakNext.CompareAndSwap(true, false) })
	}).Addr
	s := redisstore.New(outageClient(t, addr, 3*time.Second, 1), redisstore.Config{Prefix: testenv.Prefix(t)})
	ctx := context.Background()
	if _, err := s.Create(ctx, "sess", store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	breakNext.Store(true)
	if _, err := s.Get(ctx, "sess"); err != nil {
		t.Fatalf("lookup over a connection that broke: %v; want it sent again", err)
	}
	breakNext.Store(true)
	if _, err := s.Append(ctx, "sess", []string{"once"}, store.QueueLimits{}); err == nil {
		t.Fatal("append over a connection that broke after sending it: no error; it must not be resent")
	}
	att, err := s.Attach(ctx, "sess", store.Lease{Node: "n", Token: "t", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(att.Messages) != 0 {
		t.Fatalf("queue %v: the broken append's command never reached Redis, nothing must be queued", att.Messages)
	}
}

// lossyProxy forwards connections to addr; after lose() the reply to the
// next command is dropped and that connection closed, as when Redis ran a
// command and shut down (SIGTERM) before its reply went out.
func lossyProxy(t *testing.T, addr string) (proxyAddr string, lose func()) {
	t.Helper()
	var loseNext atomic.Bool
	proxyAddr = testenv.NewProxy(t, addr, func(in, out net.Conn) {
		var lost atomic.Bool
		go func() {
			defer in.Close()
			forward(out, in, lost.Load) // once lost, the reply Redis sent is dropped
		}()
		forward(in, out, func() bool {
			if loseNext.CompareAndSwap(true, false) {
				lost.Store(true)
			}
			return false
		})
	}).Addr
	return proxyAddr, func() { loseNext.Store(true) }
}

// forward copies from to to, a read at a time, until either fails or
// stop, asked after each read, says so (that read is then not sent).
func forward(from, to net.Conn, stop func() bool) {
	buf := make([]byte, 64<<10)
	for {
		n, err := from.Read(buf)
		if err != nil || stop() {
			return
		}
		if _, err := to.Write(buf[:n]); err != nil {
			return
		}
	}
}

// TestOutageLostTakeReply: a take with Hold whose reply is lost (Redis ran
// it; the chaos suite's "drain failed: EOF" during a Redis restart) loses
// no message. Sent again, or taken again by the receiver with the same
// token, it returns what the lost run took; a commit then forgets each
// message once. A tagged append is sent again and appends once.
func TestOutageLostTakeReply(t *testing.T) {
	srv := testenv.Redis(t)
	addr, lose := lossyProxy(t, srv.Addr)
	prefix := testenv.Prefix(t)
	newStore := func(wait time.Duration) *redisstore.Store {
		return redisstore.New(outageClient(t, addr, wait, 1), redisstore.Config{Prefix: prefix})
	}
	s := newStore(3 * time.Second)
	ctx := context.Background()
	appendAll := func(msgs ...string) {
		t.Helper()
		if _, err := s.Append(ctx, "sess", msgs, store.QueueLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Create(ctx, "sess", store.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	appendAll("m1", "m2")
	l := store.Lease{Node: "n", Token: "t1", TTL: time.Minute}

	// Sent again by the outage wait: the caller sees no error.
	lose()
	att, err := s.Attach(ctx, "sess", l, store.Hold())
	if err != nil || att.Status != store.Attached || !slices.Equal(att.Messages, []string{"m1", "m2"}) {
		t.Fatalf("attach whose reply was lost = %+v, %v; want attached with [m1 m2]", att, err)
	}
	if err := s.Commit(ctx, "sess", "t1", false); err != nil {
		t.Fatal(err)
	}
	appendAll("m3")
	lose()
	if d, err := s.Drain(ctx, "sess", "t1", store.Hold()); err != nil || !slices.Equal(d.Messages, []string{"m3"}) {
		t.Fatalf("drain whose reply was lost = %q, %v; want [m3]", d.Messages, err)
	}
	// A commit whose reply is lost is sent again: nothing comes twice.
	lose()
	if err := s.Commit(ctx, "sess", "t1", false); err != nil {
		t.Fatalf("commit whose reply was lost: %v; want it sent again", err)
	}
	if d, err := s.Drain(ctx, "sess", "t1", store.Hold()); err != nil || len(d.Messages) != 0 {
		t.Fatalf("drain after the commit = %q, %v; want nothing", d.Messages, err)
	}

	// Without the outage wait the caller gets the error; the receiver's
	// next drain, same token, gets what the lost one took.
	raw := newStore(-1)
	appendAll("m4")
	lose()
	if d, err := raw.Drain(ctx, "sess", "t1", store.Hold()); err == nil {
		t.Fatalf("drain whose reply was lost, no outage wait = %q; want an error", d.Messages)
	}
	appendAll("m5")
	if d, err := raw.Drain(ctx, "sess", "t1", store.Hold()); err != nil || !slices.Equal(d.Messages, []string{"m4", "m5"}) {
		t.Fatalf("drain after one whose reply was lost = %q, %v; want [m4 m5]", d.Messages, err)
	}
	if err := s.Commit(ctx, "sess", "t1", true); err != nil {
		t.Fatal(err)
	}
	att, err = s.Attach(ctx, "sess", store.Lease{Node: "n", Token: "t2", TTL: time.Minute}, store.Hold())
	if err != nil || att.Status != store.Attached || len(att.Messages) != 0 {
		t.Fatalf("attach after the commit = %+v, %v; want attached with nothing (each message once)", att, err)
	}

	// A take without Hold is not sent again: a repeat would take more.
	appendAll("m6")
	lose()
	if d, err := s.Drain(ctx, "sess", "t2"); err == nil {
		t.Fatalf("drain without Hold whose reply was lost = %q; want an error, not a resend", d.Messages)
	}

	// A tagged append whose reply is lost is sent again, and appends once;
	// an untagged one is not sent again.
	lose()
	if _, err := s.AppendOnce(ctx, "sess", []string{"m7"}, store.QueueLimits{}, store.AppendTag{ID: "send", Seq: 0}); err != nil {
		t.Fatalf("tagged append whose reply was lost: %v; want it sent again", err)
	}
	lose()
	if _, err := s.Append(ctx, "sess", []string{"m8"}, store.QueueLimits{}); err == nil {
		t.Fatal("untagged append whose reply was lost: no error; want one, not a resend")
	}
	// (m6 went with the lost drain; m8 ran, its caller got an error.)
	if d, err := s.Drain(ctx, "sess", "t2"); err != nil || !slices.Equal(d.Messages, []string{"m7", "m8"}) {
		t.Fatalf("queued after the lost replies = %q, %v; want [m7 m8] (each once)", d.Messages, err)
	}
}

// TestSentinelFailover: the master is killed (kill -9) while sessions are
// created, appended to, looked up and drained; the Sentinels promote a
// replica. Calls wait through the failover instead of failing: only a
// call in flight on the dead master's connection may fail, and only when
// it changes state (an append: Redis may have run it). Every append that
// succeeded is in its queue once, in order; the old master, started
// again, rejoins as a replica and the calls keep going to the new one.
func TestSentinelFailover(t *testing.T) {
	t.Parallel() // mostly waiting on the Sentinels' timers
	// AOF on, as in production: the old master comes back with its data
	// and the Sentinels make it a replica.
	g := testenv.RedisSentinel(t, 2, 3, "--appendonly", "yes", "--appendfsync", "everysec")
	client := sentinelClient(t, g, 15*time.Second)
	s := redisstore.New(client, redisstore.Config{Prefix: testenv.Prefix(t)})
	l := startAppendLoad(t, s, 8)
	l.waitCalls(t, 200) // the load runs
	old := g.Master(t)
	killed := time.Now()
	old.Kill()
	promoted := g.WaitFailover(t, old.Addr, 30*time.Second)
	t.Logf("Sentinels promoted %s %v after the master was killed", promoted.Addr, time.Since(killed).Round(10*time.Millisecond))
	l.waitCalls(t, 200) // calls go to the new master

	// The old master comes back (its AOF says it was master) and is
	// turned into a replica of the new one.
	if !old.Start() {
		t.Fatal("the old master did not start again on its port")
	}
	waitReplicaOf(t, old, promoted)
	l.waitCalls(t, 200)
	slowest, lost := l.finish(t, nil)
	if lost > 0 {
		t.Errorf("%d appends succeeded but are not in their queues", lost)
	}
	if slowest < testenv.SentinelDownAfter {
		t.Errorf("no call waited for the failover (slowest %v): the master was not in use", slowest)
	}
}

// TestSentinelManualFailover: SENTINEL FAILOVER with the master alive.
// The Sentinels promote a replica, then demote the old master (REPLICAOF,
// dropping its clients): no call fails other than an append caught on a
// dropped connection, none sees READONLY, and once the Sentinels name the
// new master every append lands there. What the old master acknowledged
// between the promotion and its demotion is gone (Redis replicates
// asynchronously): counted, not judged.
func TestSentinelManualFailover(t *testing.T) {
	t.Parallel() // mostly waiting on the Sentinels' timers
	g := testenv.RedisSentinel(t, 1, 3)
	client := sentinelClient(t, g, 15*time.Second)
	s := redisstore.New(client, redisstore.Config{Prefix: testenv.Prefix(t)})
	l := startAppendLoad(t, s, 8)
	l.waitCalls(t, 200)
	old := g.Master(t)
	promoted := g.FailOver(t, old.Addr)
	waitReplicaOf(t, old, promoted)
	after := l.mark() // appends from here on must all land
	l.waitCalls(t, 400)
	_, lost := l.finish(t, after)
	t.Logf("appends the old master acknowledged and the failover lost: %d", lost)
}

// TestOutageNoReplicas: a master that may not write (min-replicas-to-write
// unmet: NOREPLICAS, as a master whose replica was promoted away) refuses
// a script at its first write, before it changed anything: the append
// waits, is sent again once a replica is back, and lands once.
func TestOutageNoReplicas(t *testing.T) {
	master := testenv.Redis(t, "--min-replicas-to-write", "1", "--min-replicas-max-lag", "10")
	s := redisstore.New(outageClient(t, master.Addr, 15*time.Second, 0), redisstore.Config{Prefix: testenv.Prefix(t)})
	ctx := context.Background()
	if _, err := s.Get(ctx, "sess"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("lookup on a master without replicas: %v; reads need none", err)
	}
	done := make(chan error, 1)
	go func() {
		if _, err := s.Create(ctx, "sess", store.CreateOptions{}); err != nil {
			done <- err
			return
		}
		_, err := s.Append(ctx, "sess", []string{"once"}, store.QueueLimits{})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("create+append with no replica returned at once: %v; want it to wait", err)
	case <-time.After(500 * time.Millisecond):
	}
	host, port, _ := strings.Cut(master.Addr, ":")
	testenv.Redis(t, "--replicaof", host, port)
	if err := <-done; err != nil {
		t.Fatalf("create+append once a replica is back: %v", err)
	}
	att, err := s.Attach(ctx, "sess", store.Lease{Node: "n", Token: "t", TTL: time.Minute})
	if err != nil || !slices.Equal(att.Messages, []string{"once"}) {
		t.Fatalf("queue %q, %v; want [once]", att.Messages, err)
	}
}

// waitReplicaOf waits until old says it replicates from master.
func waitReplicaOf(t *testing.T, old, master *testenv.RedisServer) {
	t.Helper()
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		c := redis.NewClient(&redis.Options{Addr: old.Addr})
		defer c.Close()
		info, err := c.Info(context.Background(), "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "role:slave") || !strings.Contains(info, "master_port:"+strconv.Itoa(master.Port())) {
			return fmt.Errorf("%s not a replica of %s yet", old.Addr, master.Addr)
		}
		return nil
	})
}

// appendLoad is sessions each appending numbered messages to its queue
// and looking itself up, one after the other, until finish.
type appendLoad struct {
	s       *redisstore.Store
	results []appendResult
	stop    atomic.Bool
	calls   atomic.Int64
	wg      sync.WaitGroup
	// stopped and firstErr say, while the load runs, which sessions
	// stopped on an error (results are read only once it is over).
	stopped  atomic.Int64
	firstErr atomic.Pointer[string]
}

type appendResult struct {
	next          atomic.Int64
	acked, unsure []int // appends that succeeded, failed on a broken connection
	slowest       time.Duration
	err           error // any other failure
}

func startAppendLoad(t *testing.T, s *redisstore.Store, sessions int) *appendLoad {
	t.Helper()
	l := &appendLoad{s: s, results: make([]appendResult, sessions)}
	ctx := context.Background()
	for i := range sessions {
		id := "sess" + strconv.Itoa(i)
		if _, err := s.Create(ctx, id, store.CreateOptions{DisconnectDelay: time.Minute}); err != nil {
			t.Fatal(err)
		}
		l.wg.Go(func() {
			r := &l.results[i]
			defer func() {
				if r.err != nil {
					msg := r.err.Error()
					l.stopped.Add(1)
					l.firstErr.CompareAndSwap(nil, &msg)
				}
			}()
			for n := 0; !l.stop.Load(); n = int(r.next.Add(1)) {
				start := time.Now()
				_, err := s.Append(ctx, id, []string{strconv.Itoa(n)}, store.QueueLimits{})
				switch {
				case err == nil:
					r.acked = append(r.acked, n)
				case brokenConnection(err):
					r.unsure = append(r.unsure, n)
				default:
					r.err = fmt.Errorf("append %d: %w", n, err)
					return
				}
				if _, err := s.Get(ctx, id); err != nil {
					r.err = fmt.Errorf("lookup after append %d: %w (a lookup changes nothing: it must wait and be resent)", n, err)
					return
				}
				r.slowest = max(r.slowest, time.Since(start))
				l.calls.Add(2)
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	t.Cleanup(func() { l.stop.Store(true); l.wg.Wait() })
	return l
}

// waitCalls waits until n more calls succeeded.
func (l *appendLoad) waitCalls(t *testing.T, n int64) {
	t.Helper()
	from := l.calls.Load()
	testenv.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if got := l.calls.Load() - from; got < n {
			return fmt.Errorf("%d calls done, want %d (%s)", got, n, l.failures())
		}
		return nil
	})
}

// failures says how many sessions stopped on an error, and the first.
func (l *appendLoad) failures() string {
	first := "none"
	if p := l.firstErr.Load(); p != nil {
		first = *p
	}
	return fmt.Sprintf("%d sessions stopped on an error, first: %s", l.stopped.Load(), first)
}

// mark returns each session's next append number.
func (l *appendLoad) mark() []int {
	m := make([]int, len(l.results))
	for i := range l.results {
		m[i] = int(l.results[i].next.Load()) + 1
	}
	return m
}

// finish stops the load and reads every queue: a failed call, a queue
// out of order, with a repeat, with what was never appended, or missing
// an append acknowledged from mustLand on (each session's number; nil:
// none must) fails the test. It returns the slowest append+lookup and
// how many acknowledged appends are missing.
func (l *appendLoad) finish(t *testing.T, mustLand []int) (slowest time.Duration, lost int) {
	t.Helper()
	l.stop.Store(true)
	l.wg.Wait()
	ctx := context.Background()
	unsure := 0
	for i := range l.results {
		r := &l.results[i]
		if r.err != nil {
			t.Fatalf("sess%d: %v", i, r.err)
		}
		slowest = max(slowest, r.slowest)
		unsure += len(r.unsure)
		id := "sess" + strconv.Itoa(i)
		att, err := l.s.Attach(ctx, id, store.Lease{Node: "n", Token: "t", TTL: time.Minute})
		if err != nil || att.Status != store.Attached {
			t.Fatalf("%s: attach after the failover: %+v, %v", id, att.Status, err)
		}
		var got []int
		for _, m := range att.Messages {
			n, _ := strconv.Atoi(m)
			got = append(got, n)
		}
		if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("%s: queue out of order or with repeats: %v", id, got)
		}
		for _, n := range r.acked {
			if _, found := slices.BinarySearch(got, n); !found {
				lost++
				if mustLand != nil && n >= mustLand[i] {
					t.Errorf("%s: append %d, made after the failover, succeeded but is not in the queue", id, n)
				}
			}
		}
		for _, n := range got {
			if !slices.Contains(r.acked, n) && !slices.Contains(r.unsure, n) {
				t.Errorf("%s: %d in the queue was never appended", id, n)
			}
		}
	}
	t.Logf("%d calls; the slowest append+lookup took %v; %d appends failed on a broken connection",
		l.calls.Load(), slowest.Round(time.Millisecond), unsure)
	return slowest, lost
}

// brokenConnection reports whether err is a connection that broke with a
// command on it: whether Redis ran it is unknown, so it is not resent.
// net.ErrClosed is go-redis closing, on a Sentinel's switch, the
// connections to the old master, one of them in use.
func brokenConnection(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}
