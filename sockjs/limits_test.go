package sockjs

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// The bounds a node keeps: memory under floods of sends, the size of a
// poll's answer, of a request's body and of a websocket's queue.

// echoOnly echoes and keeps nothing, so a test can measure what the node
// itself holds.
type echoOnly struct{}

func (echoOnly) OnOpen(*Session) error            { return nil }
func (echoOnly) OnMessage(s *Session, msg string) { s.Send(msg) }
func (echoOnly) OnClose(*Session)                 {}

func heapAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestFloodOfBigSendsStaysBounded is the hostile client: 200
// xhr_send of 1 MB into a session that never polls, then one poll. With
// every bound at its default, the node's heap stays within
// MaxQueuedBytes (4 MiB) + BodyBudget (64 MiB) plus the garbage a GC cycle
// may leave, and returns to within MaxQueuedBytes (the closed session's
// queue, freed at its reap) of where it started. Not parallel: the heap is
// the whole test binary's.
func TestFloodOfBigSendsStaysBounded(t *testing.T) {
	const (
		sends       = 200
		concurrency = 8
		msgSize     = 1_000_000
		// Generous but real: without the byte bounds the queue alone held
		// 200 MB and the poll's response another 200 MB.
		peakBound   = 160 << 20
		returnBound = 16 << 20
	)
	c := newCluster(t)
	// A long disconnect delay, so the session the flood closes is not
	// reaped (and recreated by the poll) however slow the machine is.
	_, _, base := c.node(t, echoOnly{}, Settings{DisconnectDelay: time.Minute})
	runtime.GC()
	before := heapAlloc()

	var peak atomic.Uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			if h := heapAlloc(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	want(t, "open", func() string { _, b := do(t, "POST", base+"/0/flood/xhr", ""); return b }(), "o\n")
	body := []byte(`["` + strings.Repeat("x", msgSize) + `"]`)
	var wg sync.WaitGroup
	codes := make(chan int, sends)
	work := make(chan struct{})
	for range concurrency {
		wg.Go(func() {
			for range work {
				resp, err := testenv.HTTPClient(t).Post(base+"/0/flood/xhr_send", "text/plain", bytes.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				codes <- resp.StatusCode
			}
		})
	}
	for range sends {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	close(codes)
	counts := map[int]int{}
	for c := range codes {
		counts[c]++
	}
	// The queue overflowed after 4 MiB: the session closed, later sends
	// were dropped, and the polls get what was queued before the close
	// (one message a poll: each is over the response limit), then the
	// close frame, not 200 MB.
	polls := 0
	for {
		resp, poll := do(t, "POST", base+"/0/flood/xhr", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("poll status %d", resp.StatusCode)
		}
		if poll == `c[3009,"Queue overflow"]`+"\n" {
			break
		}
		if polls++; polls > DefaultMaxQueuedBytes/msgSize || len(poll) > msgSize+16 {
			t.Fatalf("poll %d after the overflow: %d bytes (%.40q...)", polls, len(poll), poll)
		}
	}
	close(stop)
	sampler.Wait()
	grew := int64(peak.Load()) - int64(before)
	t.Logf("sends answered %v; heap before %d MiB, peak +%d MiB", counts, before>>20, grew>>20)
	if grew > peakBound {
		t.Fatalf("heap grew by %d MiB during the flood, bound %d MiB", grew>>20, peakBound>>20)
	}
	// Memory returns: what is left is the closed session's queue, at most
	// MaxQueuedBytes, until its reap.
	if q := c.store.QueuedBytes(); q > DefaultMaxQueuedBytes {
		t.Fatalf("store queues %d bytes, bound %d", q, DefaultMaxQueuedBytes)
	}
	testenv.CheckFor(t, 15*time.Second, 100*time.Millisecond, func() error {
		runtime.GC()
		if now := int64(heapAlloc()) - int64(before); now > returnBound {
			return fmt.Errorf("heap still %d MiB above where it started", now>>20)
		}
		return nil
	})
}

// TestPollTakesAtMostResponseLimit: a poll takes what fits in
// ResponseLimit; the rest stays queued for the next poll, in order.
func TestPollTakesAtMostResponseLimit(t *testing.T) {
	t.Parallel()
	s, u := openPolling(t, Settings{ResponseLimit: 1000}, "p")
	a, b, d := strings.Repeat("a", 400), strings.Repeat("b", 400), strings.Repeat("d", 1500)
	if err := s.Send(a, b, "c", d, "e"); err != nil {
		t.Fatal(err)
	}
	for i, exp := range []string{
		`a["` + a + `","` + b + `","c"]`,
		`a["` + d + `"]`, // bigger than the limit: it goes alone
		`a["e"]`,
	} {
		_, got := do(t, "POST", u+"/xhr", "")
		if got != exp+"\n" {
			t.Fatalf("poll %d: got %.60q…, want %.60q…", i, got, exp)
		}
	}
}

// TestBodyBudget: a send that would pass the node's BodyBudget gets 503
// and leaves its session open; the budget comes back after each send.
func TestBodyBudget(t *testing.T) {
	t.Parallel()
	n, _, base := newCluster(t).node(t, &recorder{}, Settings{}, func(cfg *NodeConfig) { cfg.BodyBudget = 1000 })
	do(t, "POST", base+"/0/b/xhr", "")
	for range 3 {
		resp, _ := do(t, "POST", base+"/0/b/xhr_send", `["`+strings.Repeat("x", 900)+`"]`)
		want(t, "send within budget", resp.StatusCode, http.StatusNoContent)
	}
	if used := n.bodies.used.Load(); used != 0 {
		t.Fatalf("budget still charged %d bytes after the sends", used)
	}
	resp, _ := do(t, "POST", base+"/0/b/xhr_send", `["`+strings.Repeat("x", 2000)+`"]`)
	want(t, "send past budget", resp.StatusCode, http.StatusServiceUnavailable)
	_, poll := do(t, "POST", base+"/0/b/xhr", "")
	want(t, "session still open", poll, `a["`+strings.Repeat("x", 900)+`","`+strings.Repeat("x", 900)+`","`+strings.Repeat("x", 900)+`"]`+"\n")
}

// TestWebsocketQueueBoundByBytes: a websocket's write queue holds at most
// MaxQueuedBytes of messages as well as MaxQueuedMessages.
func TestWebsocketQueueBoundByBytes(t *testing.T) {
	t.Parallel()
	// running: no writer goroutine is started (none is needed to queue).
	ww := &wsWriter{e: &Endpoint{settings: Settings{MaxQueuedMessages: 10, MaxQueuedBytes: 1000}}, running: true}
	big := strings.Repeat("x", 600)
	if err := ww.enqueue(wsItem{msgs: []string{big}}); err != nil {
		t.Fatal(err)
	}
	if err := ww.enqueue(wsItem{msgs: []string{big}}); err != ErrQueueOverflow {
		t.Fatalf("past the byte bound: %v, want ErrQueueOverflow", err)
	}
	if n, b := ww.queued(); n != 1 || b != 600 {
		t.Fatalf("queued %d items, %d bytes; want 1, 600", n, b)
	}
	ww.take()
	if err := ww.enqueue(wsItem{msgs: []string{big, "y"}}); err != nil {
		t.Fatalf("after the writer took the queue: %v", err)
	}
}

// TestOversizedBodyClosesSession: a send body over MaxMessageSize gets 413
// and closes the session with 1009, as an oversized websocket frame does.
// A jsonp-polling client cannot read the 413 (it posts a form into a
// hidden iframe): before this, its batch was dropped and the session went
// on, so messages were lost without a trace. The parked poll, held by
// another node, now gets the close frame.
func TestOversizedBodyClosesSession(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 200)
	for _, tc := range []struct {
		name, method, poll, send, ctype, body, open, closed string
	}{
		{"xhr", "POST", "/xhr", "/xhr_send", "text/plain", `["` + big + `"]`,
			"o\n", `c[1009,"Message too big"]` + "\n"},
		{"jsonp", "GET", "/jsonp?c=cb", "/jsonp_send", "application/x-www-form-urlencoded", "d=" + url.QueryEscape(`["`+big+`"]`),
			"/**/cb(\"o\");\r\n", `/**/cb("c[1009,\"Message too big\"]");` + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t)
			rec := &recorder{}
			_, _, a := c.node(t, rec, Settings{MaxMessageSize: 100})
			_, _, b := c.node(t, rec, Settings{MaxMessageSize: 100})
			s := "/0/" + tc.name
			_, body := do(t, tc.method, a+s+tc.poll, "")
			want(t, "open", body, tc.open)

			parked := requestInBackground(t, tc.method, a+s+tc.poll)
			resp, _ := do(t, "POST", b+s+tc.send, tc.body, "Content-Type", tc.ctype)
			want(t, "oversized send", resp.StatusCode, 413)
			wantPolled(t, "parked poll", parked, 5*time.Second, tc.closed)
			_, body = do(t, tc.method, b+s+tc.poll, "")
			want(t, "next poll", body, tc.closed)
			testenv.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
				if opened, closed := rec.counts(); opened != 1 || closed != 1 {
					return fmt.Errorf("OnOpen %d times, OnClose %d times, want 1 and 1", opened, closed)
				}
				return nil
			})

			// An oversized body for an unknown session creates nothing.
			resp, _ = do(t, "POST", b+"/0/unknown"+tc.send, tc.body, "Content-Type", tc.ctype)
			want(t, "oversized send to unknown session", resp.StatusCode, 413)
			if opened, _ := rec.counts(); opened != 1 {
				t.Errorf("OnOpen ran %d times, want 1", opened)
			}
		})
	}
}
