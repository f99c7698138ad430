package sockjs

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/internal/sockjstest"
	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/store"
)

// recorder is a Handler that echoes and records what happened.
type recorder struct {
	mu       sync.Mutex
	opened   []string
	messages []string
	closed   []string
	onOpen   func(s *Session) error
}

func (r *recorder) OnOpen(s *Session) error {
	r.mu.Lock()
	r.opened = append(r.opened, s.ID())
	f := r.onOpen
	r.mu.Unlock()
	if f != nil {
		return f(s)
	}
	return nil
}

func (r *recorder) OnMessage(s *Session, msg string) {
	r.mu.Lock()
	r.messages = append(r.messages, msg)
	r.mu.Unlock()
	s.Send(msg)
}

func (r *recorder) OnClose(s *Session) {
	r.mu.Lock()
	r.closed = append(r.closed, s.ID())
	r.mu.Unlock()
}

func (r *recorder) counts() (opened, closed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.opened), len(r.closed)
}

// waitClosed waits until OnClose has run n times in all.
func (r *recorder) waitClosed(t *testing.T, n int) {
	t.Helper()
	testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if _, closed := r.counts(); closed != n {
			return fmt.Errorf("OnClose ran %d times, want %d", closed, n)
		}
		return nil
	})
}

// wantNoMessages fails t if a message reached the handler.
func (r *recorder) wantNoMessages(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.messages) != 0 {
		t.Fatalf("messages reached the handler: %q", r.messages)
	}
}

// cluster is nodes sharing one memory store and bus, each with its own
// HTTP server: what a cluster of processes looks like, in one.
type cluster struct {
	store *store.Memory
	bus   *bus.Memory
}

// openedSessions returns a recorder whose OnOpen hands each new session
// to the channel (room for one), so a test can send to it.
func openedSessions() (*recorder, chan *Session) {
	sessions := make(chan *Session, 1)
	return &recorder{onOpen: func(s *Session) error { sessions <- s; return nil }}, sessions
}

// openPolling starts a node with settings, opens session sid there by
// xhr-polling, and returns the node's Session and the session's URL.
func openPolling(t *testing.T, settings Settings, sid string) (*Session, string) {
	t.Helper()
	rec, sessions := openedSessions()
	_, _, base := newCluster(t).node(t, rec, settings)
	u := base + "/0/" + sid
	do(t, "POST", u+"/xhr", "")
	return <-sessions, u
}

// testHolderTimeout is the tests' NodeConfig.HolderTimeout. A live holder
// that answers later than it loses its lease to the asker; under -race on
// a busy two-core machine an answer took more than the default 500 ms
// (TestReleaseNode got a parked poll instead of 2010), so the tests give
// it four times that.
const testHolderTimeout = 4 * defaultHolderTimeout

func newCluster(t testing.TB) *cluster {
	c := &cluster{store: store.NewMemory(), bus: bus.NewMemory()}
	t.Cleanup(func() { c.bus.Close() })
	return c
}

// node starts a node serving h under settings.Prefix ("/t" if empty).
func (c *cluster) node(t testing.TB, h Handler, s Settings, tweak ...func(*NodeConfig)) (*Node, *Endpoint, string) {
	t.Helper()
	cfg := NodeConfig{Store: c.store, Bus: c.bus, ReapInterval: 20 * time.Millisecond, HolderTimeout: testHolderTimeout}
	for _, f := range tweak {
		f(&cfg)
	}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Prefix == "" {
		s.Prefix = "/t"
	}
	e, err := n.NewEndpoint(h, s)
	if err != nil {
		t.Fatal(err)
	}
	url := sockjstest.Serve(t, n.Handler(nil), func(ctx context.Context) {
		if err := n.Close(ctx); err != nil {
			t.Errorf("node close: %v", err)
		}
	}, withConnContext)
	return n, e, url + s.Prefix
}

// withConnContext serves as a node program does (ops.NewServer): streams
// may take direct writes.
func withConnContext(s *http.Server) { s.ConnContext = ConnContext }

// The clients of every test here, shared with the tests on the real
// backends (sockjs/clustertest).
var (
	do      = sockjstest.Do
	want    = sockjstest.Want
	dialWS  = sockjstest.DialWS
	readWS  = sockjstest.ReadWS
	writeWS = sockjstest.WriteWS
)

// pollAsync sends a POST to url (a poll) on a goroutine and returns where
// its body arrives.
func pollAsync(t testing.TB, url string) <-chan string {
	return pollAsyncCtx(context.Background(), t, url)
}

// pollAsyncCtx is pollAsync until ctx ends: a poll ctx aborts answers "".
func pollAsyncCtx(ctx context.Context, t testing.TB, url string) <-chan string {
	ch := make(chan string, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", url, nil)
		resp, err := testenv.HTTPClient(t).Do(req)
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("poll %s: %v", url, err)
			}
			ch <- ""
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ch <- string(b)
	}()
	return ch
}

// wantStreamEnd wants the stream br reads to end cleanly, with nothing
// more.
func wantStreamEnd(t testing.TB, what string, br *bufio.Reader) {
	t.Helper()
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("%s: %q, %v; want the response's clean end", what, rest, err)
	}
}

// waitHolder waits until node holds the lease of key or, with node "",
// until no receiver does: a poll's lease outlives its response by its
// commit, so a test that wants to see the next poll hold it waits for this
// one's to go first.
func waitHolder(t testing.TB, st store.Store, key, node string) {
	t.Helper()
	testenv.CheckFor(t, 5*time.Second, 2*time.Millisecond, func() error {
		if s, err := st.Get(context.Background(), key); err != nil || s.ReceiverNode != node {
			return fmt.Errorf("lease of %s held by %q, want %q (%v)", key, s.ReceiverNode, node, err)
		}
		return nil
	})
}

// wantPolled wants the body a poll (pollAsync) answers within d.
func wantPolled(t testing.TB, what string, polled <-chan string, d time.Duration, body string) {
	t.Helper()
	select {
	case got := <-polled:
		want(t, what, got, body)
	case <-time.After(d):
		t.Fatalf("%s: no answer within %v", what, d)
	}
}

// wantUnpolled wants a poll (pollAsync) still unanswered after d.
func wantUnpolled(t testing.TB, what string, polled <-chan string, d time.Duration) {
	t.Helper()
	select {
	case got := <-polled:
		t.Fatalf("%s answered %q", what, got)
	case <-time.After(d):
	}
}

func TestStaticURLs(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &recorder{}, Settings{SockJSURL: "/sockjs.js"})
	for _, u := range []string{base, base + "/"} {
		resp, body := do(t, "GET", u, "")
		want(t, "greeting", body, "Welcome to SockJS!\n")
		want(t, "greeting type", resp.Header.Get("Content-Type"), "text/plain; charset=UTF-8")
	}
	for _, suffix := range []string{"/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/iframe.htm", "/IFRAME.HTML", "/iframe-/.html", "//xhr", "/a./a/xhr", "/a/a./xhr", "/a/a/a/xhr", "/websocket"} {
		resp, _ := do(t, "GET", base+suffix, "")
		want(t, "GET "+suffix, resp.StatusCode, 404)
	}
	resp, body := do(t, "GET", base+"/iframe-0.1.2.html?t=1", "")
	want(t, "iframe status", resp.StatusCode, 200)
	if !strings.Contains(body, `<script src="/sockjs.js"></script>`) || resp.Header.Get("ETag") == "" ||
		!strings.Contains(resp.Header.Get("Cache-Control"), "max-age=31536000") {
		t.Fatalf("iframe: %v %s", resp.Header, body)
	}
	resp, body = do(t, "GET", base+"/iframe.html", "", "If-None-Match", resp.Header.Get("ETag"))
	want(t, "iframe 304", resp.StatusCode, 304)
	want(t, "iframe 304 body", body, "")

	resp, body = do(t, "GET", base+"/info", "", "Origin", "http://a.example")
	want(t, "info origin", resp.Header.Get("Access-Control-Allow-Origin"), "http://a.example")
	want(t, "info credentials", resp.Header.Get("Access-Control-Allow-Credentials"), "true")
	want(t, "info cache", resp.Header.Get("Cache-Control"), noCacheValue)
	if !strings.HasPrefix(body, `{"websocket":true,"origins":["*:*"],"cookie_needed":false,"entropy":`) {
		t.Fatalf("info body %s", body)
	}
	resp, _ = do(t, "OPTIONS", base+"/info", "", "Origin", "null")
	want(t, "info OPTIONS", resp.StatusCode, 204)
	want(t, "info OPTIONS methods", resp.Header.Get("Access-Control-Allow-Methods"), "OPTIONS, GET")
	want(t, "info OPTIONS max-age", resp.Header.Get("Access-Control-Max-Age"), "31536000")

	resp, body = do(t, "POST", base+"/a/a/websocket", "")
	want(t, "POST websocket", resp.StatusCode, 405)
	want(t, "405 Allow", resp.Header.Get("Allow"), "GET")
	want(t, "405 body", body, "")
	resp, body = do(t, "GET", base+"/a/a/websocket", "")
	want(t, "GET websocket without upgrade", resp.StatusCode, 400)
	want(t, "GET websocket body", body, `Can "Upgrade" only to "WebSocket".`)
}

func TestXHRPolling(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	rec := &recorder{}
	n, e, base := c.node(t, rec, Settings{JSessionID: DefaultJSessionID})
	u := base + "/000/s1"
	resp, body := do(t, "POST", u+"/xhr", "")
	want(t, "open", body, "o\n")
	want(t, "cookie", resp.Header.Get("Set-Cookie"), "JSESSIONID=dummy; path=/")
	resp, body = do(t, "POST", u+"/xhr_send", `["a","b\u2028"]`)
	want(t, "xhr_send status", resp.StatusCode, 204)
	want(t, "xhr_send body", body, "")
	_, body = do(t, "POST", u+"/xhr", "")
	want(t, "echo", body, `a["a","b\u2028"]`+"\n")

	resp, body = do(t, "POST", u+"/xhr_send", `["a`)
	want(t, "broken json", resp.StatusCode, 500)
	want(t, "broken json body", body, "Broken JSON encoding.")
	resp, body = do(t, "POST", u+"/xhr_send", ``)
	want(t, "no payload", resp.StatusCode, 500)
	want(t, "no payload body", body, "Payload expected.")
	resp, _ = do(t, "POST", base+"/000/nosuch/xhr_send", `["a"]`)
	want(t, "unknown session", resp.StatusCode, 404)

	// A second receiver while one is parked gets 2010.
	key := e.keyOf(idFromClientSession("s1"))
	waitHolder(t, c.store, key, "") // the echo poll's
	first := pollAsync(t, u+"/xhr")
	waitHolder(t, c.store, key, n.ID())
	_, body = do(t, "POST", u+"/xhr", "")
	want(t, "second receiver", body, "c[2010,\"Another connection still open\"]\n")
	do(t, "POST", u+"/xhr_send", `["x"]`)
	wantPolled(t, "parked poll", first, 10*time.Second, `a["x"]`+"\n")
}

func TestCloseFromOnOpen(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	rec := &recorder{onOpen: func(s *Session) error { return s.Close(3000, "Go away!") }}
	_, _, base := c.node(t, rec, Settings{})
	u := base + "/000/s1"
	_, body := do(t, "POST", u+"/xhr", "")
	want(t, "open", body, "o\n")
	for range 2 {
		_, body = do(t, "POST", u+"/xhr", "")
		want(t, "close frame", body, `c[3000,"Go away!"]`+"\n")
	}
	rec.waitClosed(t, 1)

	// OnOpen returning an error closes with CodeOpenRejected, and OnClose
	// does not run for the session it rejected (Node.Close waits for the
	// goroutine OnClose would run on).
	rec2 := &recorder{onOpen: func(s *Session) error { return errors.New("no") }}
	n2, _, base2 := c.node(t, rec2, Settings{Prefix: "/t2"})
	do(t, "POST", base2+"/0/s/xhr", "")
	_, body = do(t, "POST", base2+"/0/s/xhr", "")
	want(t, "rejected", body, `c[3002,"Open rejected"]`+"\n")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if opened, closed := rec2.counts(); opened != 1 || closed != 0 {
		t.Fatalf("rejected session: OnOpen ran %d times, OnClose %d times; want 1 and 0", opened, closed)
	}
}

// TestCrossNodeDelivery polls on one node and sends through another: the
// bus wake-up must deliver long before the recheck timer would.
func TestCrossNodeDelivery(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	slowRecheck := func(cfg *NodeConfig) { cfg.RecheckInterval = time.Minute }
	// Long enough that the parked poll is still there when the send
	// arrives on a loaded machine (300 ms once was not), so only the
	// wake-up over the bus can deliver it.
	settings := Settings{HeartbeatDelay: 3 * time.Second}
	_, _, a := c.node(t, &recorder{}, settings, slowRecheck)
	_, _, b := c.node(t, &recorder{}, settings, slowRecheck)
	_, body := do(t, "POST", a+"/0/s/xhr", "")
	want(t, "open on A", body, "o\n")
	got := pollAsync(t, a+"/0/s/xhr")
	time.Sleep(50 * time.Millisecond) // let the poll park (a late send is drained at attach anyway)
	resp, _ := do(t, "POST", b+"/0/s/xhr_send", `["hop"]`)
	want(t, "send on B", resp.StatusCode, 204)
	wantPolled(t, "delivered on A", got, 5*time.Second, `a["hop"]`+"\n")
	// The next poll may land on B: the session is not tied to A.
	_, body = do(t, "POST", b+"/0/s/xhr", "")
	want(t, "poll on B", body, "h\n")
}

func TestDisconnectDelayReaps(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	_, _, base := newCluster(t).node(t, rec, Settings{DisconnectDelay: 100 * time.Millisecond})
	do(t, "POST", base+"/0/s/xhr", "")
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if _, closed := rec.counts(); closed != 1 {
			return errors.New("not reaped yet")
		}
		return nil
	})
	_, body := do(t, "POST", base+"/0/s/xhr", "")
	want(t, "new session after expiry", body, "o\n")
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &recorder{}, Settings{HeartbeatDelay: 50 * time.Millisecond})
	do(t, "POST", base+"/0/s/xhr", "")
	_, body := do(t, "POST", base+"/0/s/xhr", "")
	want(t, "heartbeat", body, "h\n")
}

// TestWebsocketHeartbeat: an idle websocket gets heartbeats from its
// writer's clock, also after a message went out.
func TestWebsocketHeartbeat(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &recorder{onOpen: func(s *Session) error { return s.Send("hi") }}, Settings{HeartbeatDelay: 50 * time.Millisecond})
	conn := dialWS(t, base+"/0/s/websocket")
	want(t, "open", readWS(t, conn), "o")
	want(t, "message", readWS(t, conn), `a["hi"]`)
	want(t, "heartbeat", readWS(t, conn), "h")
	want(t, "next heartbeat", readWS(t, conn), "h")
}

func TestQueueOverflow(t *testing.T) {
	t.Parallel()
	s, u := openPolling(t, Settings{MaxQueuedMessages: 2}, "s")
	if err := s.Send("1", "2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Send("3"); !errors.Is(err, ErrQueueOverflow) {
		t.Fatalf("overflowing send: %v", err)
	}
	// What was queued before the overflow closed the session, then why.
	_, body := do(t, "POST", u+"/xhr", "")
	want(t, "queued before the close", body, `a["1","2"]`+"\n")
	_, body = do(t, "POST", u+"/xhr", "")
	want(t, "overflow close", body, `c[3009,"Queue overflow"]`+"\n")
	if err := s.Send("4"); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("send to closed: %v", err)
	}
}

// stream opens a streaming request and returns a reader of its body.
func stream(t testing.TB, method, url string) (*http.Response, *bufio.Reader) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := testenv.HTTPClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, bufio.NewReader(resp.Body)
}

func readLine(t testing.TB, br *bufio.Reader) string {
	t.Helper()
	s, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, s)
	}
	return s
}

func TestXHRStreaming(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &recorder{}, Settings{ResponseLimit: 300})
	u := base + "/0/s"
	resp, br := stream(t, "POST", u+"/xhr_streaming")
	want(t, "type", resp.Header.Get("Content-Type"), contentTypeJS)
	want(t, "prelude", readLine(t, br), strings.Repeat("h", 2048)+"\n")
	want(t, "open", readLine(t, br), "o\n")
	msg := strings.Repeat("x", 100)
	for range 3 {
		do(t, "POST", u+"/xhr_send", `["`+msg+`"]`)
		want(t, "message", readLine(t, br), `a["`+msg+`"]`+"\n")
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("stream not ended at its response limit: %v", err)
	}
	// Next stream of the same session continues it.
	_, br = stream(t, "POST", u+"/xhr_streaming")
	readLine(t, br)
	do(t, "POST", u+"/xhr_send", `["y"]`)
	want(t, "resumed", readLine(t, br), `a["y"]`+"\n")
}

// TestStreamEndBehindBalancer: with HeaderStreamEnd set (the shipped
// HAProxy configuration sets it), a stream's response has no chunked
// framing and ends with its connection, so a node killed mid-stream ends
// the response the balancer relays cleanly; without it, HTTP/1.1 streams
// stay chunked (the SockJS protocol's tests want that of a server reached
// directly). Polls keep their Content-Length either way.
func TestStreamEndBehindBalancer(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &recorder{}, Settings{ResponseLimit: 300})
	open := func(method, path string, balanced bool) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		if balanced {
			req.Header.Set(HeaderStreamEnd, "close")
		}
		resp, err := testenv.HTTPClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for _, tc := range []struct{ name, method, path, open string }{
		{"xhr_streaming", "POST", "/0/xs/xhr_streaming", "o\n"},
		{"eventsource", "GET", "/0/es/eventsource", "data: o\r\n"},
		{"htmlfile", "GET", "/0/hf/htmlfile?c=cb", `<script>` + "\n"},
	} {
		resp := open(tc.method, tc.path, true)
		if len(resp.TransferEncoding) > 0 || resp.ContentLength != -1 || !resp.Close {
			t.Errorf("%s behind the balancer: Transfer-Encoding %q, Content-Length %d, close %v; want neither, closed",
				tc.name, resp.TransferEncoding, resp.ContentLength, resp.Close)
		}
		br := bufio.NewReader(resp.Body)
		for {
			line := readLine(t, br)
			if line == tc.open {
				break
			}
		}
		// Past the response limit the stream ends: the connection closes.
		sid := strings.Split(tc.path, "/")[2]
		for range 4 {
			do(t, "POST", base+"/0/"+sid+"/xhr_send", `["`+strings.Repeat("x", 100)+`"]`)
		}
		if _, err := io.Copy(io.Discard, br); err != nil {
			t.Errorf("%s behind the balancer: the stream did not end cleanly: %v", tc.name, err)
		}

		direct := open(tc.method, strings.Replace(tc.path, "/0/", "/1/", 1), false)
		if len(direct.TransferEncoding) != 1 || direct.TransferEncoding[0] != "chunked" {
			t.Errorf("%s reached directly: Transfer-Encoding %q, want chunked", tc.name, direct.TransferEncoding)
		}
	}
	poll := open("POST", "/0/p/xhr", true)
	if poll.ContentLength != 2 {
		t.Errorf("poll behind the balancer: Content-Length %d, want 2 (o\\n)", poll.ContentLength)
	}
}

// TestSendRepeatedByBalancer: a send the balancer repeats (same
// HeaderSendID: its first node died before answering) queues its handler's
// appends once, each rank once: the second echo of a message is skipped,
// a rank the first try had not reached goes in. Sends without the header,
// or with another id, are each handled anew.
func TestSendRepeatedByBalancer(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	echoTwice := HandlerFuncs{Message: func(s *Session, m string) {
		s.Send(m)
		s.Send(m + "'")
	}}
	_, e, base := c.node(t, echoTwice, Settings{})
	u := base + "/0/s"
	_, body := do(t, "POST", u+"/xhr", "")
	want(t, "open", body, "o\n")
	send := func(body, id string) {
		t.Helper()
		var hdr []string
		if id != "" {
			hdr = []string{HeaderSendID, id}
		}
		resp, _ := do(t, "POST", u+"/xhr_send", body, hdr...)
		want(t, "send status", resp.StatusCode, http.StatusNoContent)
	}
	// A first try that died after its handler's first append: the
	// repeat adds only the second.
	key := e.keyOf(idFromClientSession("s"))
	tag := store.AppendTag{ID: "id0", Seq: 0}
	if _, err := c.store.AppendOnce(context.Background(), key, []string{"z"}, store.QueueLimits{}, tag); err != nil {
		t.Fatal(err)
	}
	send(`["z"]`, "id0")
	send(`["a"]`, "id1")
	send(`["a"]`, "id1")
	send(`["b"]`, "id2")
	send(`["c"]`, "")
	send(`["c"]`, "")
	send(`["d"]`, strings.Repeat("x", store.MaxAppendTagID+1)) // ignored
	send(`["d"]`, strings.Repeat("x", store.MaxAppendTagID+1))
	_, body = do(t, "POST", u+"/xhr", "")
	want(t, "queued", body, `a["z","z'","a","a'","b","b'","c","c'","c","c'","d","d'","d","d'"]`+"\n")
}

func TestInterruptedReceiverClosesSession(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	_, _, base := newCluster(t).node(t, rec, Settings{})
	u := base + "/0/s"
	resp, br := stream(t, "POST", u+"/xhr_streaming")
	readLine(t, br)
	want(t, "open", readLine(t, br), "o\n")
	resp.Body.Close()
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if _, closed := rec.counts(); closed != 1 {
			return errors.New("session not closed")
		}
		return nil
	})
	_, body := do(t, "POST", u+"/xhr", "")
	want(t, "after interruption", body, `c[1002,"Connection interrupted"]`+"\n")
}

func TestEventSourceAndHTMLFile(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &recorder{}, Settings{})
	resp, br := stream(t, "GET", base+"/0/es/eventsource")
	want(t, "type", resp.Header.Get("Content-Type"), "text/event-stream")
	want(t, "prelude", readLine(t, br), "\r\n")
	want(t, "open", readLine(t, br)+readLine(t, br), "data: o\r\n\r\n")
	do(t, "POST", base+"/0/es/xhr_send", `["50% \u0000"]`)
	want(t, "message", readLine(t, br)+readLine(t, br), `data: a["50%25 \u0000"]`+"\r\n\r\n")

	resp, body := do(t, "GET", base+"/0/hf/htmlfile?c=a(b", "")
	want(t, "bad callback", resp.StatusCode, 500)
	want(t, "bad callback body", body, `invalid "callback" parameter`)
	_, br = stream(t, "GET", base+"/0/hf/htmlfile?c=cb")
	head := make([]byte, 1024)
	io.ReadFull(br, head)
	if !strings.Contains(string(head), "var c = parent.cb;") {
		t.Fatalf("htmlfile head %q", head)
	}
	for !strings.HasPrefix(readLine(t, br), "<script>") {
	}
	want(t, "open", readLine(t, br), "p(\"o\");\n")
	do(t, "POST", base+"/0/hf/xhr_send", `["</script>"]`)
	readLine(t, br)
	readLine(t, br)
	want(t, "escaped", readLine(t, br), "p(\"a[\\\"\\u003c/script\\u003e\\\"]\");\n")
}

func TestJSONP(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &recorder{}, Settings{})
	u := base + "/0/s"
	resp, body := do(t, "GET", u+"/jsonp", "")
	want(t, "no callback", resp.StatusCode, 500)
	want(t, "no callback body", body, `"callback" parameter required`)
	_, body = do(t, "GET", u+"/jsonp?c=cb", "")
	want(t, "open", body, "/**/cb(\"o\");\r\n")
	_, body = do(t, "POST", u+"/jsonp_send", "d=%5B%22x%22%5D", "Content-Type", "application/x-www-form-urlencoded")
	want(t, "form send", body, "ok")
	_, body = do(t, "POST", u+"/jsonp_send", `["y"]`, "Content-Type", "text/plain")
	want(t, "raw send", body, "ok")
	resp, body = do(t, "POST", u+"/jsonp_send", "d=", "Content-Type", "application/x-www-form-urlencoded")
	want(t, "empty d", resp.StatusCode, 500)
	want(t, "empty d body", body, "Payload expected.")
	_, body = do(t, "GET", u+"/jsonp?callback=cb", "")
	want(t, "messages", body, "/**/cb(\"a[\\\"x\\\",\\\"y\\\"]\");\r\n")
}

func TestMaxMessageSize(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &recorder{}, Settings{MaxMessageSize: 100})
	do(t, "POST", base+"/0/s/xhr", "")
	resp, _ := do(t, "POST", base+"/0/s/xhr_send", `["`+strings.Repeat("x", 200)+`"]`)
	want(t, "too big body", resp.StatusCode, 413)

	conn := dialWS(t, base+"/0/w/websocket")
	want(t, "open", readWS(t, conn), "o")
	conn.Write(context.Background(), websocket.MessageText, []byte(`["`+strings.Repeat("x", 200)+`"]`))
	_, _, err := conn.Read(context.Background())
	want(t, "close status", websocket.CloseStatus(err), websocket.StatusMessageTooBig)
}

// readWSRawMessages reads "a" frames until they carried n messages, and
// returns them as one frame would: a[m1,m2,...] with each message's JSON
// as the server wrote it (readWSMessages decodes them).
func readWSRawMessages(t testing.TB, conn *websocket.Conn, n int) string {
	t.Helper()
	var msgs []string
	for len(msgs) < n {
		f := readWS(t, conn)
		var arr []json.RawMessage
		if !strings.HasPrefix(f, "a[") || json.Unmarshal([]byte(f[1:]), &arr) != nil {
			t.Fatalf("websocket frame %q after %d of %d messages, want an a frame", f, len(msgs), n)
		}
		for _, m := range arr {
			msgs = append(msgs, string(m))
		}
	}
	return "a[" + strings.Join(msgs, ",") + "]"
}

func TestWebsocket(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	_, _, base := newCluster(t).node(t, rec, Settings{RawWebsocket: true})
	u := base + "/0/s/websocket"
	conn := dialWS(t, u)
	want(t, "open", readWS(t, conn), "o")
	writeWS(t, conn, "")
	writeWS(t, conn, "[]")
	writeWS(t, conn, `["a","\ud800"]`)
	// The two echoes come in one frame or two, as the writer finds them.
	want(t, "echo, lone surrogate kept", readWSRawMessages(t, conn, 2), `a["a","\ud800"]`)
	writeWS(t, conn, `"b"`)
	want(t, "single value", readWS(t, conn), `a["b"]`)

	// The same client session id may be used by two websockets at once.
	conn2 := dialWS(t, u)
	want(t, "second open", readWS(t, conn2), "o")

	writeWS(t, conn, `["a`)
	_, _, err := conn.Read(context.Background())
	if err == nil {
		t.Fatal("broken JSON did not close the websocket")
	}
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if _, closed := rec.counts(); closed != 1 {
			return errors.New("session of the closed websocket not closed")
		}
		return nil
	})

	raw := dialWS(t, base+"/websocket")
	writeWS(t, raw, "Hello world!\uffff")
	want(t, "raw echo", readWS(t, raw), "Hello world!\uffff")
}

func TestWebsocketClose(t *testing.T) {
	t.Parallel()
	rec := &recorder{onOpen: func(s *Session) error {
		s.Send("bye")
		return s.Close(3000, "Go away!")
	}}
	_, _, base := newCluster(t).node(t, rec, Settings{RawWebsocket: true})
	conn := dialWS(t, base+"/0/s/websocket")
	want(t, "open", readWS(t, conn), "o")
	want(t, "sent before close", readWS(t, conn), `a["bye"]`)
	want(t, "close frame", readWS(t, conn), `c[3000,"Go away!"]`)
	_, _, err := conn.Read(context.Background())
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("websocket not closed normally: %v", err)
	}
	raw := dialWS(t, base+"/websocket")
	want(t, "raw sent before close", readWS(t, raw), "bye")
	_, _, err = raw.Read(context.Background())
	want(t, "raw close code", websocket.CloseStatus(err), websocket.StatusCode(3000))
}

// TestWebsocketSlowClient: a client that reads nothing is closed with
// CodeQueueOverflow while the sender never blocks.
func TestWebsocketSlowClient(t *testing.T) {
	t.Parallel()
	rec, sessions := openedSessions()
	_, _, base := newCluster(t).node(t, rec, Settings{MaxQueuedMessages: 8, WriteTimeout: time.Second})
	dialWS(t, base+"/0/s/websocket") // never read
	s := <-sessions
	big := strings.Repeat("x", 256<<10)
	start := time.Now()
	var err error
	for i := 0; i < 2000 && err == nil; i++ {
		err = s.Send(big)
	}
	if !errors.Is(err, ErrQueueOverflow) && !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("slow client never overflowed: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("sender stalled for %v", d)
	}
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !s.IsClosed(context.Background()) {
			return errors.New("slow session still open")
		}
		return nil
	})
}

// dialHixie76 opens session "s" of the endpoint at base with a Hixie-76
// websocket handshake (the example keys of its draft) and reads the
// response; the 8-byte key3 is the caller's to send.
func dialHixie76(t *testing.T, base string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	return rawHandshake(t, base, 5*time.Second, func(host, prefix string) string {
		return fmt.Sprintf("GET /%s/000/s/websocket HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\nOrigin: http://%s\r\n"+
			"Sec-WebSocket-Key1: 4 @1  46546xW%%0l 1 5\r\nSec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\n", prefix, host, host)
	})
}

// rawHandshake dials the server of the endpoint at base, writes the
// handshake request gives (host and the endpoint's prefix, without its
// slash), and reads the response. The connection closes when the test
// ends; timeout bounds all its reads and writes.
func rawHandshake(t *testing.T, base string, timeout time.Duration, request func(host, prefix string) string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	host, prefix, _ := strings.Cut(strings.TrimPrefix(base, "http://"), "/")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(timeout))
	io.WriteString(conn, request(host, prefix))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, br, resp
}

func TestHixie76(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &recorder{}, Settings{})
	host, path, _ := strings.Cut(strings.TrimPrefix(base, "http://"), "/")
	conn, br, resp := dialHixie76(t, base)
	want(t, "status", resp.StatusCode, 101)
	want(t, "location", resp.Header.Get("Sec-WebSocket-Location"), "ws://"+host+"/"+path+"/000/s/websocket")
	want(t, "origin", resp.Header.Get("Sec-WebSocket-Origin"), "http://"+host)
	conn.Write([]byte("aaaaaaaa"))
	answer := make([]byte, 16)
	io.ReadFull(br, answer)
	want(t, "challenge", string(answer), "\xca4\x00\xd8\xa5\x08G\x97,\xd5qZ\xba\xbfC{")

	frame := func() string {
		b, err := br.ReadString(0xff)
		if err != nil || b[0] != 0 {
			t.Fatalf("hixie frame %q: %v", b, err)
		}
		return b[1 : len(b)-1]
	}
	want(t, "open", frame(), "o")
	conn.Write([]byte("\x00\xff\x00[\"a\"]\xff"))
	want(t, "echo", frame(), `a["a"]`)
	conn.Write([]byte("\xff\x00"))
	if b, _ := io.ReadAll(br); string(b) != "\xff\x00" {
		t.Fatalf("closing handshake: %q", b)
	}
}

func TestHixieKeyNumber(t *testing.T) {
	t.Parallel()
	n1, ok1 := hixieKeyNumber("4 @1  46546xW%0l 1 5")
	n2, ok2 := hixieKeyNumber("12998 5 Y3 1  .P00")
	if !ok1 || !ok2 {
		t.Fatal("valid keys rejected")
	}
	var ch [16]byte
	binary.BigEndian.PutUint32(ch[:], n1)
	binary.BigEndian.PutUint32(ch[4:], n2)
	copy(ch[8:], "aaaaaaaa")
	if sum := md5.Sum(ch[:]); string(sum[:]) != "\xca4\x00\xd8\xa5\x08G\x97,\xd5qZ\xba\xbfC{" {
		t.Fatalf("challenge %x", sum)
	}
	for _, bad := range []string{"", "123", "1  3", strings.Repeat("9", 30) + " "} {
		if _, ok := hixieKeyNumber(bad); ok {
			t.Errorf("key %q accepted", bad)
		}
	}
}

func TestBroadcastAndAttributes(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var all []*Session
	rec := &recorder{onOpen: func(s *Session) error {
		if err := s.SetAttr(context.Background(), "user", "ann"); err != nil {
			return err
		}
		mu.Lock()
		all = append(all, s)
		mu.Unlock()
		return nil
	}}
	_, e, base := newCluster(t).node(t, rec, Settings{})
	ws := dialWS(t, base+"/0/w/websocket")
	want(t, "open", readWS(t, ws), "o")
	do(t, "POST", base+"/0/p/xhr", "")
	var sessions []*Session
	testenv.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(all) != 2 {
			return fmt.Errorf("%d sessions opened", len(all))
		}
		sessions = append(sessions[:0], all...)
		return nil
	})
	if err := Broadcast(sessions, "hi all"); err != nil {
		t.Fatal(err)
	}
	want(t, "websocket got broadcast", readWS(t, ws), `a["hi all"]`)
	_, body := do(t, "POST", base+"/0/p/xhr", "")
	want(t, "poller got broadcast", body, `a["hi all"]`+"\n")

	polling := sessions[0]
	if isWebsocketID(polling.ID()) {
		polling = sessions[1]
	}
	s := e.Session(polling.ID())
	v, ok, err := s.Attr(context.Background(), "user")
	if err != nil || !ok || v != "ann" {
		t.Fatalf("attribute: %q %v %v", v, ok, err)
	}
	if info := s.Info(); info.Transport != TransportXHR || info.IP == "" {
		t.Fatalf("connection info: %+v", info)
	}
}

// TestSendToWebsocketFromOtherNode: a handle made on another node reaches
// a websocket through the store and a bus wake-up.
func TestSendToWebsocketFromOtherNode(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	slowRecheck := func(cfg *NodeConfig) { cfg.RecheckInterval = time.Minute }
	rec := &recorder{}
	_, _, a := c.node(t, rec, Settings{}, slowRecheck)
	_, eb, _ := c.node(t, &recorder{}, Settings{}, slowRecheck)
	conn := dialWS(t, a+"/0/s/websocket")
	want(t, "open", readWS(t, conn), "o")
	rec.mu.Lock()
	id := rec.opened[0]
	rec.mu.Unlock()
	s := eb.Session(id)
	if s.IsClosed(context.Background()) {
		t.Fatal("live websocket session reads as closed on the other node")
	}
	if err := s.Send("from B"); err != nil {
		t.Fatal(err)
	}
	want(t, "delivered", readWS(t, conn), `a["from B"]`)
	if err := s.Close(3001, "bye"); err != nil {
		t.Fatal(err)
	}
	want(t, "close frame", readWS(t, conn), `c[3001,"bye"]`)
}

// TestNodeBoundPollContentLength: with a store bound to the node, a poll's
// answer leaves as the request ends: net/http counts a small one's length,
// the poll a big one's (past net/http's buffer); both have it.
func TestNodeBoundPollContentLength(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.store = store.NewMemoryWithConfig(store.MemoryConfig{NodeBound: true})
	_, _, base := c.node(t, HandlerFuncs{Message: func(s *Session, m string) { s.Send(m) }}, Settings{})
	for _, size := range []int{0, 100, 2048, 5000} {
		if size > 0 {
			do(t, "POST", base+"/0/cl/xhr_send", `["`+strings.Repeat("x", size)+`"]`)
		}
		resp, body := do(t, "POST", base+"/0/cl/xhr", "")
		if resp.ContentLength != int64(len(body)) || len(resp.TransferEncoding) > 0 {
			t.Errorf("answer of %d bytes: Content-Length %d, Transfer-Encoding %q", len(body), resp.ContentLength, resp.TransferEncoding)
		}
	}
}
