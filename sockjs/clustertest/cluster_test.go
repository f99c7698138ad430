package clustertest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/sockjstest"
	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/sockjs"
	"github.com/shoal-rt/shoal/store"
)

// A cluster in one process: three nodes, each with its own Redis and NATS
// clients on one real redis-server and one NATS server, as three processes
// would have, and each behind its own HTTP server. The tests send every
// request of a session to another node.

// clusterHandler echoes, counts OnOpen and OnClose per session across
// every node of the process (which is the whole cluster), and obeys two
// commands so that a handler on one node acts on a session held elsewhere:
// "to:<id>:<text>" sends text to session id, "close:<id>:<code>" closes it.
type clusterHandler struct {
	opens chan string // ids, as sessions open

	mu       sync.Mutex
	opened   map[string]int
	closed   map[string]int
	closedOn map[string]string // session id → node that ran OnClose

	// nodeOf names the node of each endpoint.
	nodeOf map[*sockjs.Endpoint]string
	errs   []error
}

func newClusterHandler() *clusterHandler {
	return &clusterHandler{
		opens:  make(chan string, 1024),
		opened: make(map[string]int), closed: make(map[string]int), closedOn: make(map[string]string),
		nodeOf: make(map[*sockjs.Endpoint]string),
	}
}

func (h *clusterHandler) OnOpen(s *sockjs.Session) error {
	h.mu.Lock()
	h.opened[s.ID()]++
	h.mu.Unlock()
	h.opens <- s.ID()
	return nil
}

func (h *clusterHandler) OnMessage(s *sockjs.Session, msg string) {
	var err error
	switch cmd, rest, _ := strings.Cut(msg, ":"); cmd {
	case "to":
		id, text, _ := strings.Cut(rest, ":")
		err = s.Endpoint().Session(id).Send(text)
	case "close":
		id, code, _ := strings.Cut(rest, ":")
		c, _ := strconv.Atoi(code)
		err = s.Endpoint().Session(id).Close(c, "bye")
	default:
		err = s.Send(msg)
	}
	if err != nil {
		h.mu.Lock()
		h.errs = append(h.errs, fmt.Errorf("%s on node %s: %w", msg, h.nodeOf[s.Endpoint()], err))
		h.mu.Unlock()
	}
}

func (h *clusterHandler) OnClose(s *sockjs.Session) {
	h.mu.Lock()
	h.closed[s.ID()]++
	h.closedOn[s.ID()] = h.nodeOf[s.Endpoint()]
	h.mu.Unlock()
}

// nextOpen returns the id of the next session that opened.
func (h *clusterHandler) nextOpen(t testing.TB) string {
	t.Helper()
	select {
	case id := <-h.opens:
		return id
	case <-time.After(5 * time.Second):
		t.Fatal("no session opened")
		return ""
	}
}

// waitClosed waits until OnClose of session id ran.
func (h *clusterHandler) waitClosed(t testing.TB, id string) {
	t.Helper()
	testenv.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.closed[id] == 0 {
			return fmt.Errorf("OnClose of %s not run", id)
		}
		return nil
	})
}

// checkOnce fails unless every session the handler saw was opened exactly
// once and, when wantClosed, closed exactly once; and no handler call
// failed.
func (h *clusterHandler) checkOnce(t testing.TB, wantClosed bool) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, n := range h.opened {
		if n != 1 {
			t.Errorf("session %s: OnOpen ran %d times", id, n)
		}
		if c := h.closed[id]; wantClosed && c != 1 || !wantClosed && c > 1 {
			t.Errorf("session %s: OnClose ran %d times", id, c)
		}
	}
	for id := range h.closed {
		if h.opened[id] == 0 {
			t.Errorf("session %s: OnClose without OnOpen", id)
		}
	}
	for _, err := range h.errs {
		t.Errorf("handler: %v", err)
	}
}

func (h *clusterHandler) closedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.closed {
		n += c
	}
	return n
}

// session returns a new client session path: /000/<random>.
func newClientSession() string { return "/000/" + rand.Text() }

// TestClusterPolling: xhr-polling and jsonp-polling sessions whose every
// request (open, poll, send) goes to another node; a second receiver on
// another node gets 2010; a parked poll is woken over NATS by a send on
// another node; a close made on one node is seen on all of them; OnOpen
// and OnClose run once in the whole cluster.
func TestClusterPolling(t *testing.T) {
	t.Parallel()
	// A long recheck: only a NATS wake-up can deliver to a parked poll
	// in time.
	c := newRedisCluster(t, 3, sockjs.Settings{}, func(cfg *sockjs.NodeConfig) { cfg.RecheckInterval = time.Minute })
	type polling struct {
		name       string
		poll, send func(node int, sess string, body string) (int, string)
		frame      func(f string) string
	}
	for _, tr := range []polling{{
		name: "xhr",
		poll: func(i int, sess, _ string) (int, string) {
			resp, body := sockjstest.Do(t, "POST", c.node(i).base+sess+"/xhr", "")
			return resp.StatusCode, body
		},
		send: func(i int, sess, body string) (int, string) {
			resp, b := sockjstest.Do(t, "POST", c.node(i).base+sess+"/xhr_send", body)
			return resp.StatusCode, b
		},
		frame: func(f string) string { return f + "\n" },
	}, {
		name: "jsonp",
		poll: func(i int, sess, _ string) (int, string) {
			resp, body := sockjstest.Do(t, "GET", c.node(i).base+sess+"/jsonp?c=cb", "")
			return resp.StatusCode, body
		},
		send: func(i int, sess, body string) (int, string) {
			resp, b := sockjstest.Do(t, "POST", c.node(i).base+sess+"/jsonp_send", "d="+urlQueryEscape(body),
				"Content-Type", "application/x-www-form-urlencoded")
			return resp.StatusCode, b
		},
		frame: func(f string) string { return "/**/cb(" + jsString(f) + ");\r\n" },
	}} {
		t.Run(tr.name, func(t *testing.T) {
			sess := newClientSession()
			wantPoll := func(i int, frame string) {
				t.Helper()
				status, body := tr.poll(i, sess, "")
				if status != 200 || body != tr.frame(frame) {
					t.Fatalf("poll on node %d: %d %q, want %q", i%3, status, body, tr.frame(frame))
				}
			}
			wantPoll(0, "o")
			id := c.h.nextOpen(t)
			for i := range 6 {
				msg := fmt.Sprintf("m%d", i)
				if status, _ := tr.send(i+1, sess, `["`+msg+`"]`); status != 200 && status != 204 {
					t.Fatalf("send on node %d: %d", (i+1)%3, status)
				}
				wantPoll(i+2, `a["`+msg+`"]`)
			}

			// Park a poll on node 0; a poll on node 1 is a second receiver.
			parked := make(chan string, 1)
			go func() {
				_, body := tr.poll(0, sess, "")
				parked <- body
			}()
			testenv.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
				st, err := c.nodes[0].store.Get(context.Background(), "/t/"+id)
				if err != nil || st.ReceiverNode != "n0" {
					return fmt.Errorf("poll not parked on n0: %+v %v", st, err)
				}
				return nil
			})
			wantPoll(1, `c[2010,"Another connection still open"]`)
			start := time.Now()
			tr.send(2, sess, `["wake"]`)
			select {
			case body := <-parked:
				if body != tr.frame(`a["wake"]`) {
					t.Fatalf("parked poll got %q", body)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("parked poll on n0 not woken by a send on n2")
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("wake-up over NATS took %v", d)
			}

			// A handler on node 1 closes the session; the next poll gets
			// what was queued before the close, then every node serves
			// the close frame.
			tr.send(1, sess, `["last","close:`+id+`:3001"]`)
			wantPoll(2, `a["last"]`)
			for i := range 3 {
				wantPoll(i, `c[3001,"bye"]`)
			}
			c.h.waitClosed(t, id)
		})
	}
	c.h.checkOnce(t, true)
}

// jsString is f as a JavaScript string literal, as a jsonp response
// carries it: JSON's escaping is SockJS's for the ASCII frames these
// tests send.
func jsString(f string) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// xhrStreamingPrelude is the line of 2048 'h's an xhr_streaming response
// starts with.
var xhrStreamingPrelude = strings.Repeat("h", 2048)

func urlQueryEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// streamFrames reads one streaming response and delivers its SockJS frames
// (prelude and envelopes removed) on a channel, closed at the end.
func streamFrames(t testing.TB, method, url, transport string) <-chan string {
	t.Helper()
	frames, err := openFrames(testenv.HTTPClient(t), method, url, transport)
	if err != nil {
		t.Fatal(err)
	}
	return frames
}

// openFrames is streamFrames for any goroutine, on client.
func openFrames(client *http.Client, method, url, transport string) (<-chan string, error) {
	req, _ := http.NewRequest(method, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	frames := make(chan string, 64)
	go func() {
		defer close(frames)
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch transport {
			case sockjs.TransportXHRStreaming:
				if f := strings.TrimSuffix(line, "\n"); f != xhrStreamingPrelude {
					frames <- f
				}
			case sockjs.TransportEventSource:
				if f, ok := strings.CutPrefix(line, "data: "); ok {
					frames <- strings.TrimSuffix(f, "\r\n")
				}
			case sockjs.TransportHTMLFile:
				if js, ok := strings.CutPrefix(line, "p("); ok {
					var f string
					if err := json.Unmarshal([]byte(strings.TrimSuffix(js, ");\n")), &f); err != nil {
						frames <- "bad htmlfile line " + line
						continue
					}
					frames <- f
				}
			}
		}
	}()
	return frames, nil
}

func nextFrame(t testing.TB, frames <-chan string, what string) (string, bool) {
	t.Helper()
	select {
	case f, ok := <-frames:
		return f, ok
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no frame within 5s", what)
		return "", false
	}
}

// TestClusterStreaming: xhr-streaming, eventsource and htmlfile streams
// held by one node while every send goes to another; a stream that reaches
// response_limit is reopened on the next node and goes on where it ended;
// a second stream on another node gets 2010.
func TestClusterStreaming(t *testing.T) {
	t.Parallel()
	c := newRedisCluster(t, 3, sockjs.Settings{ResponseLimit: 256}, func(cfg *sockjs.NodeConfig) { cfg.RecheckInterval = time.Minute })
	for _, tc := range []struct{ transport, method, path string }{
		{sockjs.TransportXHRStreaming, "POST", "/xhr_streaming"},
		{sockjs.TransportEventSource, "GET", "/eventsource"},
		{sockjs.TransportHTMLFile, "GET", "/htmlfile?c=cb"},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			sess := newClientSession()
			holder := 0
			frames := streamFrames(t, tc.method, c.node(holder).base+sess+tc.path, tc.transport)
			if f, _ := nextFrame(t, frames, "open"); f != "o" {
				t.Fatalf("first frame %q", f)
			}
			id := c.h.nextOpen(t)

			second := streamFrames(t, tc.method, c.node(1).base+sess+tc.path, tc.transport)
			if f, _ := nextFrame(t, second, "second stream"); f != `c[2010,"Another connection still open"]` {
				t.Fatalf("second stream on n1: %q", f)
			}
			if _, ok := nextFrame(t, second, "second stream end"); ok {
				t.Fatal("second stream not ended after 2010")
			}

			// next reads a frame; a stream that reached response_limit
			// is reopened on the next node, as a client does.
			reopened := 0
			next := func(what string) string {
				t.Helper()
				f, ok := nextFrame(t, frames, what)
				if !ok {
					reopened++
					holder++
					frames = streamFrames(t, tc.method, c.node(holder).base+sess+tc.path, tc.transport)
					f, _ = nextFrame(t, frames, what+" after reopening")
				}
				return f
			}
			msg := strings.Repeat("x", 60)
			for i := range 12 {
				want := fmt.Sprintf(`a["%s%02d"]`, msg, i)
				// Never the holder's node.
				resp, _ := sockjstest.Do(t, "POST", c.node(holder+1+i%2).base+sess+"/xhr_send", fmt.Sprintf(`["%s%02d"]`, msg, i))
				if resp.StatusCode != 204 {
					t.Fatalf("send: %s", resp.Status)
				}
				if f := next(want); f != want {
					t.Fatalf("message %d: got %q, want %q", i, f, want)
				}
			}
			if reopened < 2 {
				t.Errorf("streams reopened %d times, want the limit to end a few", reopened)
			}
			sockjstest.Do(t, "POST", c.node(holder+2).base+sess+"/xhr_send", `["close:`+id+`:3002"]`)
			if f := next("close"); f != `c[3002,"bye"]` {
				t.Fatalf("close frame %q", f)
			}
		})
	}
	testenv.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if n := c.h.closedCount(); n != 3 {
			return fmt.Errorf("%d sessions closed", n)
		}
		return nil
	})
	c.h.checkOnce(t, true)
}

// TestClusterWebsocket: a websocket echo on its own node costs no Redis
// round trip; a handler on another node reaches the socket with Send and
// Close over NATS; OnClose runs once.
func TestClusterWebsocket(t *testing.T) {
	t.Parallel()
	// No timers that touch Redis while the echo is measured.
	c := newRedisCluster(t, 3, sockjs.Settings{}, func(cfg *sockjs.NodeConfig) {
		cfg.RecheckInterval = time.Minute
		cfg.ReapInterval = time.Minute
	})
	conn := sockjstest.DialWS(t, c.nodes[0].base+newClientSession()+"/websocket")
	sockjstest.Want(t, "open", sockjstest.ReadWS(t, conn), "o")
	wsID := c.h.nextOpen(t)

	before := c.redisTrips()
	_, cmdsBefore := c.nodes[0].redis.snapshot()
	for i := range 20 {
		msg := fmt.Sprintf("echo %d", i)
		sockjstest.WriteWS(t, conn, `["`+msg+`"]`)
		sockjstest.Want(t, "echo", sockjstest.ReadWS(t, conn), `a["`+msg+`"]`)
	}
	if after := c.redisTrips(); after != before {
		_, cmdsAfter := c.nodes[0].redis.snapshot()
		t.Errorf("same-node websocket echo made %d Redis round trips (n0 commands before %v, after %v)", after-before, cmdsBefore, cmdsAfter)
	}

	// A polling session whose messages land on n1 and n2 drives the
	// handler there.
	poll := newClientSession()
	sockjstest.Do(t, "POST", c.nodes[1].base+poll+"/xhr", "")
	c.h.nextOpen(t)
	resp, _ := sockjstest.Do(t, "POST", c.nodes[2].base+poll+"/xhr_send", `["to:`+wsID+`:from n2"]`)
	sockjstest.Want(t, "send on n2", resp.StatusCode, 204)
	sockjstest.Want(t, "Send from a handler on n2", sockjstest.ReadWS(t, conn), `a["from n2"]`)
	resp, _ = sockjstest.Do(t, "POST", c.nodes[1].base+poll+"/xhr_send", `["close:`+wsID+`:3003"]`)
	sockjstest.Want(t, "send on n1", resp.StatusCode, 204)
	sockjstest.Want(t, "Close from a handler on n1", sockjstest.ReadWS(t, conn), `c[3003,"bye"]`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := conn.Read(ctx); err == nil {
		t.Fatal("websocket still open after its session closed")
	}
	c.h.waitClosed(t, wsID)
	c.h.checkOnce(t, false)
}

// TestClusterOpenRace: three nodes receive the first request of the same
// session (a stream) at the same moment: exactly one of them opens it
// (sends the open frame and runs OnOpen, once), the others answer 2010.
func TestClusterOpenRace(t *testing.T) {
	t.Parallel()
	// A holder that answers "still serving" later than HolderTimeout (a
	// busy machine under -race) loses its lease to a loser of the race,
	// whose stream of an open session then carries no frame at all: the
	// race judged here is the open's, so the holder gets all the time a
	// slow machine needs.
	c := newRedisCluster(t, 3, sockjs.Settings{}, func(cfg *sockjs.NodeConfig) { cfg.HolderTimeout = 10 * time.Second })
	for range 10 {
		sess := newClientSession()
		firsts := make(chan string, 3)
		var start sync.WaitGroup
		start.Add(1)
		client := testenv.HTTPClient(t)
		for i := range 3 {
			go func() {
				start.Wait()
				frames, err := openFrames(client, "POST", c.node(i).base+sess+"/xhr_streaming", sockjs.TransportXHRStreaming)
				if err != nil {
					firsts <- err.Error()
					return
				}
				select {
				case f := <-frames:
					firsts <- f
				case <-time.After(20 * time.Second):
					firsts <- "nothing within 20s"
				}
			}()
		}
		start.Done()
		var got []string
		for range 3 {
			got = append(got, <-firsts)
		}
		slices.Sort(got)
		if want := []string{`c[2010,"Another connection still open"]`, `c[2010,"Another connection still open"]`, "o"}; !slices.Equal(got, want) {
			t.Fatalf("racing first streams got %q, want %q", got, want)
		}
	}
	c.h.checkOnce(t, false)
}

// TestClusterReapOnce: sessions left without a receiver expire, and their
// OnClose runs exactly once while every node reaps.
func TestClusterReapOnce(t *testing.T) {
	t.Parallel()
	c := newRedisCluster(t, 3, sockjs.Settings{DisconnectDelay: 200 * time.Millisecond}, func(cfg *sockjs.NodeConfig) {
		cfg.ReapInterval = 10 * time.Millisecond
	})
	const sessions = 30
	for i := range sessions {
		resp, body := sockjstest.Do(t, "POST", c.node(i).base+newClientSession()+"/xhr", "")
		if resp.StatusCode != 200 || body != "o\n" {
			t.Fatalf("open: %s %q", resp.Status, body)
		}
	}
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := c.h.closedCount(); n < sessions {
			return fmt.Errorf("%d of %d sessions reaped", n, sessions)
		}
		return nil
	})
	// Several more reap rounds on every node: still once each.
	time.Sleep(100 * time.Millisecond)
	c.h.checkOnce(t, true)
	by := make(map[string]int)
	c.h.mu.Lock()
	for _, node := range c.h.closedOn {
		by[node]++
	}
	c.h.mu.Unlock()
	t.Logf("OnClose ran on: %v", by)
}

// TestClusterPollHandOff: a send to a parked poll on another node hands
// the message over with the wake-up (store.HandOffCommitter), so the poll
// writes it without draining the queue: its node makes two Redis round
// trips, the attach and the commit. A hand-off whose wake-up never comes
// is drained by the poll's re-check, and reaches the client once; while
// NATS stays up and lost nothing the poll does not re-check
// (QuietRecheckInterval), once NATS is gone it does (RecheckInterval).
func TestClusterPollHandOff(t *testing.T) {
	t.Parallel()
	const recheck = 300 * time.Millisecond
	c := newRedisCluster(t, 2, sockjs.Settings{}, func(cfg *sockjs.NodeConfig) {
		cfg.RecheckInterval = recheck
		cfg.QuietRecheckInterval = time.Hour
		cfg.ReapInterval = time.Hour
	})
	sess := newClientSession()
	poll := func() string {
		_, body := sockjstest.Do(t, "POST", c.node(1).base+sess+"/xhr", "")
		return body
	}
	sockjstest.Want(t, "open", poll(), "o\n")
	key := "/t/" + c.h.nextOpen(t)
	// parked polls on node 1 and returns what it got; its attach has
	// been answered when parked returns.
	parked := func() <-chan string {
		got := make(chan string, 1)
		answered := c.node(1).redis.answered.Load()
		go func() { got <- poll() }()
		testenv.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
			if c.node(1).redis.answered.Load() == answered {
				return errors.New("poll not attached yet")
			}
			return nil
		})
		return got
	}

	// committed waits until the last poll's commit has released the
	// session and node 1 has no round trip in flight: a poll's client
	// has its response before the node commits.
	committed := func() {
		testenv.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
			st, err := c.nodes[0].store.Get(context.Background(), key)
			if err != nil {
				return err
			}
			if st.ReceiverNode != "" {
				return errors.New("the poll's commit has not run yet")
			}
			if trips, _ := c.node(1).redis.snapshot(); trips != c.node(1).redis.answered.Load() {
				return errors.New("a round trip of node 1 is in flight")
			}
			return nil
		})
	}
	committed()

	for i := range 3 {
		got := parked()
		trips := c.node(1).redis.answered.Load()
		msg := fmt.Sprintf("m%d", i)
		resp, _ := sockjstest.Do(t, "POST", c.node(0).base+sess+"/xhr_send", `["`+msg+`"]`)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("xhr_send: %d", resp.StatusCode)
		}
		sockjstest.Want(t, "poll", <-got, `a["`+msg+`"]`+"\n")
		committed()
		if n := c.node(1).redis.answered.Load() - trips; n != 1 {
			_, byName := c.node(1).redis.snapshot()
			t.Errorf("round %d: the woken poll's node made %d Redis round trips after its attach, want 1 (the commit): %v", i, n, byName)
		}
	}

	// Handed off, but nobody tells the poll. With NATS up and nothing
	// lost the poll trusts its wake-ups: five re-check periods go by
	// without a store call from its node.
	got := parked()
	trips := c.node(1).redis.answered.Load()
	res, err := c.nodes[0].store.Append(context.Background(), key, []string{"lost"}, store.QueueLimits{})
	if err != nil || res.HandOff.Token == "" {
		t.Fatalf("Append to a parked poll = %+v, %v; want it handed off", res, err)
	}
	select {
	case body := <-got:
		t.Fatalf("the poll re-checked the store with NATS up: %q", body)
	case <-time.After(5 * recheck):
	}
	if n := c.node(1).redis.answered.Load() - trips; n != 0 {
		_, byName := c.node(1).redis.snapshot()
		t.Errorf("the parked poll's node made %d Redis round trips with NATS up, want 0: %v", n, byName)
	}
	// NATS gone: wake-ups may be lost, the re-check drains it.
	c.nats.Stop()
	sockjstest.Want(t, "poll after a lost hand-off, NATS down", <-got, `a["lost"]`+"\n")
	c.nats.Start()
	c.waitNATS(t, true)
	got = parked()
	sockjstest.Do(t, "POST", c.node(0).base+sess+"/xhr_send", `["after"]`)
	sockjstest.Want(t, "next poll", <-got, `a["after"]`+"\n")
	c.h.checkOnce(t, false)
}
