package clustertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shoal-rt/shoal/internal/sockjstest"
	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/sockjs"
)

// A cluster whose Redis or NATS goes away and comes back: what requests
// get meanwhile, that they end within their bounds, that nothing leaks,
// and that the sessions go on afterwards.

// outageResult is what one request made during a backend outage got.
type outageResult struct {
	what   string
	status int
	body   string
	err    error
	took   time.Duration
}

// requestsDuringOutage sends, at once on every node, the requests a
// cluster gets: new polls and streams, a send to an existing session, a
// websocket, the info page. It returns what each got.
func requestsDuringOutage(c *redisCluster, sess string) []outageResult {
	// A transport of its own, whose keep-alive connections go when the
	// requests are done (settleGoroutines counts what is left).
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	var out []outageResult
	var wg sync.WaitGroup
	add := func(r outageResult) {
		mu.Lock()
		out = append(out, r)
		mu.Unlock()
	}
	httpReq := func(what, method, url, body string) {
		wg.Go(func() {
			start := time.Now()
			req, _ := http.NewRequest(method, url, strings.NewReader(body))
			resp, err := client.Do(req)
			r := outageResult{what: what, err: err}
			if err == nil {
				b := make([]byte, 512)
				n, _ := io.ReadFull(resp.Body, b)
				resp.Body.Close()
				r.status, r.body = resp.StatusCode, string(b[:n])
			}
			r.took = time.Since(start)
			add(r)
		})
	}
	for i, cn := range c.nodes {
		for range 3 {
			httpReq(fmt.Sprintf("new xhr poll on n%d", i), "POST", cn.base+newClientSession()+"/xhr", "")
			httpReq(fmt.Sprintf("new jsonp poll on n%d", i), "GET", cn.base+newClientSession()+"/jsonp?c=cb", "")
		}
		httpReq(fmt.Sprintf("new xhr stream on n%d", i), "POST", cn.base+newClientSession()+"/xhr_streaming", "")
		httpReq(fmt.Sprintf("new eventsource on n%d", i), "GET", cn.base+newClientSession()+"/eventsource", "")
		httpReq(fmt.Sprintf("new htmlfile on n%d", i), "GET", cn.base+newClientSession()+"/htmlfile?c=cb", "")
		httpReq(fmt.Sprintf("xhr_send on n%d", i), "POST", cn.base+sess+"/xhr_send", `["lost"]`)
		httpReq(fmt.Sprintf("info on n%d", i), "GET", cn.base+"/info", "")
		wg.Go(func() {
			start := time.Now()
			r := outageResult{what: fmt.Sprintf("websocket on n%d", i)}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(cn.base, "http")+newClientSession()+"/websocket", nil)
			if err == nil {
				_, _, err = conn.Read(ctx)
				conn.CloseNow()
			}
			r.err, r.took = err, time.Since(start)
			add(r)
		})
	}
	wg.Wait()
	return out
}

// checkOutage: every request that needs the store failed with a clear
// answer (503 naming the store, or websocket close 1011 saying so) within
// bound; the info page, which needs no store, still works.
func checkOutage(t *testing.T, results []outageResult, bound time.Duration) {
	t.Helper()
	var slowest time.Duration
	for _, r := range results {
		slowest = max(slowest, r.took)
	}
	t.Logf("%d requests during the outage, slowest answered in %v", len(results), slowest)
	for _, r := range results {
		switch {
		case r.took > bound:
			t.Errorf("%s: answered after %v, want within %v", r.what, r.took, bound)
		case strings.HasPrefix(r.what, "websocket"):
			var ce websocket.CloseError
			if !errors.As(r.err, &ce) || ce.Code != 1011 || ce.Reason != "Session store unavailable" {
				t.Errorf("%s: %v, want close 1011 \"Session store unavailable\"", r.what, r.err)
			}
		case strings.HasPrefix(r.what, "info"):
			if r.status != 200 {
				t.Errorf("%s: %d %v", r.what, r.status, r.err)
			}
		case r.err != nil || r.status != 503 || r.body != "Session store unavailable.":
			t.Errorf("%s: %d %q %v, want 503 \"Session store unavailable.\"", r.what, r.status, r.body, r.err)
		}
	}
}

// settleGoroutines waits until the goroutine count is back near base; if
// it is not after 10 s, the test fails with the goroutines left over,
// grouped by stack. The test's own idle keep-alive connections (two
// goroutines on the client's side, one on the server's) are closed on
// every look: a request of the outage that ends late leaves one more.
func settleGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for testenv.HTTPClient(t).CloseIdleConnections(); runtime.NumGoroutine() > base+10; testenv.HTTPClient(t).CloseIdleConnections() {
		if time.Now().After(deadline) {
			var stacks strings.Builder
			pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Fatalf("%d goroutines after 10 s, %d before the outage:\n%s", runtime.NumGoroutine(), base, stacks.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// echoRound opens a session on n0, sends on n1, polls the echo on n2.
func echoRound(t *testing.T, c *redisCluster) {
	t.Helper()
	sess := newClientSession()
	_, body := sockjstest.Do(t, "POST", c.node(0).base+sess+"/xhr", "")
	sockjstest.Want(t, "open after the outage", body, "o\n")
	resp, _ := sockjstest.Do(t, "POST", c.node(1).base+sess+"/xhr_send", `["back"]`)
	sockjstest.Want(t, "send after the outage", resp.StatusCode, 204)
	_, body = sockjstest.Do(t, "POST", c.node(2).base+sess+"/xhr", "")
	sockjstest.Want(t, "echo after the outage", body, `a["back"]`+"\n")
}

// TestClusterRedisDownUp: Redis stops answering (SIGSTOP), then is killed
// and restarted on its port. Meanwhile requests fail with 503 or close
// 1011 within the operation timeout, nothing piles up, and service
// resumes when Redis is back. Not parallel: it counts goroutines.
func TestClusterRedisDownUp(t *testing.T) {
	const opTimeout = 500 * time.Millisecond
	c := newRedisCluster(t, 3, sockjs.Settings{}, func(cfg *sockjs.NodeConfig) {
		cfg.OpTimeout = opTimeout
		cfg.ReapInterval = 50 * time.Millisecond
		cfg.RecheckInterval = 100 * time.Millisecond
	})
	sess := newClientSession()
	_, body := sockjstest.Do(t, "POST", c.node(0).base+sess+"/xhr", "")
	sockjstest.Want(t, "open", body, "o\n")
	testenv.HTTPClient(t).CloseIdleConnections()
	base := runtime.NumGoroutine()

	// Stopped: every call waits for its timeout.
	c.redis.Signal(syscall.SIGSTOP)
	checkOutage(t, requestsDuringOutage(c, sess), 3*opTimeout)
	c.redis.Signal(syscall.SIGCONT)
	// The data survived: the session goes on, across nodes.
	waitStatus(t, "send after SIGCONT", c.node(1).base+sess+"/xhr_send", `["again"]`, 204)
	_, body = sockjstest.Do(t, "POST", c.node(2).base+sess+"/xhr", "")
	sockjstest.Want(t, "poll after SIGCONT", body, `a["again"]`+"\n")
	settleGoroutines(t, base)

	// Killed: calls fail at once (connection refused).
	c.redis.Kill()
	checkOutage(t, requestsDuringOutage(c, sess), 3*opTimeout)
	if !c.redis.Start() {
		t.Fatal("redis-server could not restart on its port")
	}
	// A fresh Redis: new sessions work on every node again.
	waitStatus(t, "poll after restart", c.node(0).base+newClientSession()+"/xhr", "", 200)
	echoRound(t, c)
	settleGoroutines(t, base)
	c.h.checkOnce(t, false)
}

// TestClusterNATSDownUp: while NATS is down a send still reaches a poll
// parked on another node, and a websocket held by another node (the store
// recheck finds them: a lost wake-up delays, never loses); when NATS is
// back, wake-ups and websocket frames cross nodes over it again.
func TestClusterNATSDownUp(t *testing.T) {
	t.Parallel()
	const recheck = 2 * time.Second
	c := newRedisCluster(t, 3, sockjs.Settings{}, func(cfg *sockjs.NodeConfig) {
		cfg.RecheckInterval = recheck
		cfg.WebsocketRecheckInterval = recheck
	})
	sess := newClientSession()
	_, body := sockjstest.Do(t, "POST", c.node(0).base+sess+"/xhr", "")
	sockjstest.Want(t, "open", body, "o\n")
	id := c.h.nextOpen(t)
	conn := sockjstest.DialWS(t, c.nodes[0].base+newClientSession()+"/websocket")
	sockjstest.Want(t, "websocket open", sockjstest.ReadWS(t, conn), "o")
	wsID := c.h.nextOpen(t)
	parkAndSend := func(msg string) time.Duration {
		t.Helper()
		// The last poll holds its lease until it has committed, after
		// its response: the poll parked below is the next one.
		testenv.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
			if st, err := c.nodes[1].store.Get(context.Background(), "/t/"+id); err != nil || st.ReceiverNode != "" {
				return fmt.Errorf("last poll's lease still held: %+v %v", st, err)
			}
			return nil
		})
		parked := make(chan string, 1)
		go func() {
			resp, err := testenv.HTTPClient(t).Post(c.node(0).base+sess+"/xhr", "text/plain", nil)
			if err != nil {
				parked <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			parked <- string(b)
		}()
		testenv.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
			st, err := c.nodes[1].store.Get(context.Background(), "/t/"+id)
			if err != nil || st.ReceiverNode != "n0" {
				return fmt.Errorf("poll not parked on n0: %+v %v", st, err)
			}
			return nil
		})
		start := time.Now()
		resp, _ := sockjstest.Do(t, "POST", c.node(1).base+sess+"/xhr_send", `["`+msg+`"]`)
		sockjstest.Want(t, "send on n1", resp.StatusCode, 204)
		select {
		case b := <-parked:
			sockjstest.Want(t, "parked poll", b, `a["`+msg+`"]`+"\n")
		case <-time.After(3 * recheck):
			t.Fatalf("%s: parked poll got nothing", msg)
		}
		return time.Since(start)
	}
	if d := parkAndSend("nats up"); d > recheck/2 {
		t.Fatalf("wake-up over NATS took %v", d)
	}

	c.nats.Stop()
	c.waitNATS(t, false)
	d := parkAndSend("nats down")
	t.Logf("delivery to a parked poll with NATS down: %v (recheck %v)", d, recheck)
	// A handler on n2 sends to the websocket on n0: through the store.
	resp, _ := sockjstest.Do(t, "POST", c.node(2).base+sess+"/xhr_send", `["to:`+wsID+`:nats down"]`)
	sockjstest.Want(t, "send on n2", resp.StatusCode, 204)
	sockjstest.Want(t, "websocket frame from n2 with NATS down", sockjstest.ReadWS(t, conn), `a["nats down"]`)

	c.nats.Start()
	c.waitNATS(t, true)
	// Subscriptions are back: wake-ups are fast again.
	testenv.CheckFor(t, 10*time.Second, 0, func() error {
		if d := parkAndSend("nats back"); d > recheck/2 {
			return fmt.Errorf("wake-up took %v", d)
		}
		return nil
	})
	resp, _ = sockjstest.Do(t, "POST", c.node(2).base+sess+"/xhr_send", `["to:`+wsID+`:over nats"]`)
	sockjstest.Want(t, "send on n2", resp.StatusCode, 204)
	start := time.Now()
	sockjstest.Want(t, "websocket frame from n2", sockjstest.ReadWS(t, conn), `a["over nats"]`)
	if d := time.Since(start); d > recheck/2 {
		t.Errorf("websocket frame from n2 took %v with NATS back", d)
	}
	c.h.checkOnce(t, false)
}

// waitStatus repeats a POST of body to url until it answers status (what
// names the request in the failure).
func waitStatus(t *testing.T, what, url, body string, status int) {
	t.Helper()
	testenv.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		resp, err := testenv.HTTPClient(t).Post(url, "text/plain", strings.NewReader(body))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != status {
			return fmt.Errorf("%s: %s", what, resp.Status)
		}
		return nil
	})
}
