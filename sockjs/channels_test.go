package sockjs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/coder/websocket"

	"github.com/shoal-rt/shoal/store"
)

// Channel tests run on clusters of nodes sharing one memory store and bus.

// frameEvent is what a test client saw: messages, or a close.
type frameEvent struct {
	msgs  []string
	close string // c[...] frame, when closed
}

// parseFrame reads one SockJS frame.
func parseFrame(t testing.TB, f string) frameEvent {
	t.Helper()
	f = strings.TrimSuffix(f, "\n")
	switch {
	case f == "o" || f == "h" || f == "":
		return frameEvent{}
	case f[0] == 'a':
		var msgs []string
		if err := json.Unmarshal([]byte(f[1:]), &msgs); err != nil {
			t.Errorf("bad frame %q: %v", f, err)
		}
		return frameEvent{msgs: msgs}
	case f[0] == 'c':
		return frameEvent{close: f}
	}
	t.Errorf("unknown frame %q", f)
	return frameEvent{}
}

// subscriber is a test client of one transport that collects the
// messages of its session.
type subscriber struct {
	name   string
	mu     sync.Mutex
	msgs   []string
	closed string
	opened chan struct{}
}

func newSubscriber(name string) *subscriber {
	return &subscriber{name: name, opened: make(chan struct{})}
}

func (s *subscriber) add(ev frameEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, ev.msgs...)
	if ev.close != "" && s.closed == "" {
		s.closed = ev.close
	}
}

func (s *subscriber) got() ([]string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs), s.closed
}

// runWS reads a SockJS websocket session until ctx ends.
func (s *subscriber) runWS(ctx context.Context, t testing.TB, base string) {
	conn := dialWS(t, base+"/0/"+s.name+"/websocket")
	go func() {
		defer conn.CloseNow()
		first := true
		for {
			_, b, err := conn.Read(ctx)
			if err != nil {
				return
			}
			if first {
				close(s.opened)
				first = false
			}
			s.add(parseFrame(t, string(b)))
		}
	}()
}

// runPolling polls the session with xhr, each poll on the next of bases,
// until ctx ends or the session closes.
func (s *subscriber) runPolling(ctx context.Context, t testing.TB, bases []string) {
	s.requestEach(ctx, bases, "xhr", func(i int, body io.Reader) bool {
		b, err := io.ReadAll(body)
		if err != nil {
			return true
		}
		if i == 0 {
			close(s.opened)
		}
		ev := parseFrame(t, string(b))
		s.add(ev)
		return ev.close != ""
	})
}

// runStreaming reads xhr_streaming responses, each on the next of bases
// (a small ResponseLimit makes them end often), until ctx ends.
func (s *subscriber) runStreaming(ctx context.Context, t testing.TB, bases []string) {
	s.requestEach(ctx, bases, "xhr_streaming", func(i int, body io.Reader) bool {
		br := bufio.NewReader(body)
		br.ReadString('\n') // prelude
		closed := false
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return closed
			}
			if i == 0 && line == "o\n" {
				close(s.opened)
			}
			ev := parseFrame(t, line)
			s.add(ev)
			closed = closed || ev.close != ""
		}
	})
}

// requestEach posts to the session's transport, request i on the next of
// bases, and hands each response's body to read, until ctx ends, a request
// fails or read returns true (the session closed).
func (s *subscriber) requestEach(ctx context.Context, bases []string, transport string, read func(i int, body io.Reader) (stop bool)) {
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			req, _ := http.NewRequestWithContext(ctx, "POST", bases[i%len(bases)]+"/0/"+s.name+"/"+transport, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			stop := read(i, resp.Body)
			resp.Body.Close()
			if stop {
				return
			}
		}
	}()
}

// channelCluster is nodes that share a store and a bus, each serving
// endpoint "/t" with handler h and channels cfg.
type channelCluster struct {
	*cluster
	nodes []*Node
	eps   []*Endpoint
	bases []string
}

// joinRoom is a Handler whose sessions join channel "room" on open.
var joinRoom = HandlerFuncs{Open: func(s *Session) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Subscribe(ctx, "room")
}}

func newChannelCluster(t *testing.T, nodes int, s Settings, cfg ChannelConfig, h Handler, tweak ...func(*NodeConfig)) *channelCluster {
	t.Helper()
	cc := &channelCluster{cluster: newCluster(t)}
	for range nodes {
		n, e, base := cc.node(t, h, s, tweak...)
		if err := e.HandleChannels(cfg); err != nil {
			t.Fatal(err)
		}
		cc.nodes = append(cc.nodes, n)
		cc.eps = append(cc.eps, e)
		cc.bases = append(cc.bases, base)
	}
	return cc
}

func (cc *channelCluster) waitMembers(t *testing.T, channel string, n int) {
	t.Helper()
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		m, err := cc.eps[0].Members(context.Background(), channel)
		if err != nil {
			return err
		}
		if len(m) != n {
			return fmt.Errorf("%d members, want %d", len(m), n)
		}
		return nil
	})
}

// checkAll waits until every subscriber has want messages and checks that
// each arrived exactly once and each publisher's ("p:i") in order.
func checkAll(t *testing.T, subs []*subscriber, publishers, each int) {
	t.Helper()
	for _, s := range subs {
		// Generous: TestChannelsSlowSubscriber polls 200 messages of 64 KiB
		// through an overflowing queue, which took over 20 s under -race on
		// a busy 2-core machine (153 of 200 had arrived).
		testenv.CheckFor(t, 90*time.Second, 20*time.Millisecond, func() error {
			msgs, closed := s.got()
			if closed != "" {
				t.Fatalf("%s: closed with %s after %d messages", s.name, closed, len(msgs))
			}
			if len(msgs) < publishers*each {
				return fmt.Errorf("%s: %d of %d messages", s.name, len(msgs), publishers*each)
			}
			return nil
		})
		time.Sleep(20 * time.Millisecond) // a duplicate would show up now
		msgs, _ := s.got()
		if len(msgs) != publishers*each {
			t.Fatalf("%s: %d messages, want %d", s.name, len(msgs), publishers*each)
		}
		next := make([]int, publishers)
		for _, m := range msgs {
			var p, i int
			if _, err := fmt.Sscanf(m, "%d:%d", &p, &i); err != nil || p >= publishers {
				t.Fatalf("%s: unexpected message %q", s.name, m)
			}
			if i != next[p] {
				t.Fatalf("%s: publisher %d: got %d, want %d (out of order or duplicated)", s.name, p, i, next[p])
			}
			next[p]++
		}
	}
}

// TestChannelsExactlyOnceInOrder: subscribers on every transport, their
// requests spread over three nodes, and a publisher on each node. Every
// subscriber gets every message once, each publisher's in order.
func TestChannelsExactlyOnceInOrder(t *testing.T) {
	t.Parallel()
	cc := newChannelCluster(t, 3, Settings{ResponseLimit: 4096}, ChannelConfig{Pattern: "room"}, joinRoom)
	exactlyOnceInOrder(t, cc.eps, cc.bases, 150)
}

// exactlyOnceInOrder runs a websocket, a polling and a streaming
// subscriber per node (polls and streams move between the nodes) and a
// publisher per node on channel "room" of endpoints eps (whose sessions
// join it on open, with a small ResponseLimit), each publishing each
// messages.
func exactlyOnceInOrder(t *testing.T, eps []*Endpoint, bases []string, each int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var subs []*subscriber
	for i := range bases {
		rotated := append(append([]string(nil), bases[i:]...), bases[:i]...)
		ws := newSubscriber(fmt.Sprint("ws", i))
		ws.runWS(ctx, t, bases[i])
		poll := newSubscriber(fmt.Sprint("poll", i))
		poll.runPolling(ctx, t, rotated)
		str := newSubscriber(fmt.Sprint("stream", i))
		str.runStreaming(ctx, t, rotated)
		subs = append(subs, ws, poll, str)
	}
	for _, s := range subs {
		<-s.opened
	}
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		m, err := eps[0].Members(ctx, "room")
		if err != nil || len(m) != len(subs) {
			return fmt.Errorf("%d members (%v), want %d", len(m), err, len(subs))
		}
		return nil
	})
	var wg sync.WaitGroup
	for p := range eps {
		wg.Go(func() {
			for i := range each {
				if err := eps[p].Publish(ctx, "room", fmt.Sprintf("%d:%d", p, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	checkAll(t, subs, len(eps), each)
}

// TestChannelsPollingBetweenPolls: a message published while a polling
// session has no poll open reaches it at its next poll, on another node.
func TestChannelsPollingBetweenPolls(t *testing.T) {
	t.Parallel()
	cc := newChannelCluster(t, 2, Settings{}, ChannelConfig{Pattern: "room"}, joinRoom)
	a, b := cc.bases[0], cc.bases[1]
	_, body := do(t, "POST", a+"/0/p/xhr", "")
	want(t, "open", body, "o\n")
	cc.waitMembers(t, "room", 1)
	for _, m := range []string{"one", "two"} {
		if err := cc.eps[0].Publish(context.Background(), "room", m); err != nil {
			t.Fatal(err)
		}
	}
	_, body = do(t, "POST", b+"/0/p/xhr", "")
	want(t, "poll on B", body, `a["one","two"]`+"\n")
	// The cursor moved: nothing twice.
	if err := cc.eps[1].Publish(context.Background(), "room", "three"); err != nil {
		t.Fatal(err)
	}
	_, body = do(t, "POST", a+"/0/p/xhr", "")
	want(t, "poll on A", body, `a["three"]`+"\n")
}

// TestChannelsSubscribeFromOtherNode: a websocket held by node A is
// subscribed by code running on node B; a publish on B reaches it live.
func TestChannelsSubscribeFromOtherNode(t *testing.T) {
	t.Parallel()
	var id atomic.Value
	h := HandlerFuncs{Open: func(s *Session) error { id.Store(s.ID()); return nil }}
	cc := newChannelCluster(t, 2, Settings{}, ChannelConfig{Pattern: `feed-\d+`}, h)
	conn := dialWS(t, cc.bases[0]+"/0/s/websocket")
	want(t, "open", readWS(t, conn), "o")
	onB := cc.eps[1].Session(id.Load().(string))
	if err := onB.Subscribe(context.Background(), "feed-7"); err != nil {
		t.Fatal(err)
	}
	if err := cc.eps[1].Publish(context.Background(), "feed-7", "hello"); err != nil {
		t.Fatal(err)
	}
	want(t, "delivered", readWS(t, conn), `a["hello"]`)
	chans, err := onB.Channels(context.Background())
	if err != nil || !slices.Equal(chans, []string{"feed-7"}) {
		t.Fatalf("Channels = %q, %v", chans, err)
	}
	// Unsubscribed from B, the websocket on A stops getting it.
	if err := onB.Unsubscribe(context.Background(), "feed-7"); err != nil {
		t.Fatal(err)
	}
	// The note to A travels apart from the channel's messages: wait
	// until A has stopped listening (see Session.Unsubscribe).
	testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := fanoutSubs(cc.nodes[0], cc.eps[0].channelKey("feed-7")); n != 0 {
			return fmt.Errorf("node A still delivers the channel to %d receivers", n)
		}
		return nil
	})
	if err := cc.eps[1].Publish(context.Background(), "feed-7", "gone"); err != nil {
		t.Fatal(err)
	}
	onA := cc.eps[0].Session(id.Load().(string))
	if err := onA.Send("direct"); err != nil {
		t.Fatal(err)
	}
	want(t, "after unsubscribe", readWS(t, conn), `a["direct"]`)
}

// TestChannelsExcept: Except leaves the sender out, and only it.
func TestChannelsExcept(t *testing.T) {
	t.Parallel()
	h := HandlerFuncs{
		Open: joinRoom.Open,
		Message: func(s *Session, msg string) {
			s.Endpoint().Publish(context.Background(), "room", msg, Except(s))
		},
	}
	cc := newChannelCluster(t, 2, Settings{}, ChannelConfig{Pattern: "room"}, h)
	sender := dialWS(t, cc.bases[0]+"/0/a/websocket")
	want(t, "open", readWS(t, sender), "o")
	other := dialWS(t, cc.bases[1]+"/0/b/websocket")
	want(t, "open", readWS(t, other), "o")
	_, body := do(t, "POST", cc.bases[1]+"/0/p/xhr", "")
	want(t, "poll open", body, "o\n")
	cc.waitMembers(t, "room", 3)
	writeWS(t, sender, `["hi"]`)
	want(t, "other websocket", readWS(t, other), `a["hi"]`)
	_, body = do(t, "POST", cc.bases[0]+"/0/p/xhr", "")
	want(t, "poller", body, `a["hi"]`+"\n")
	// The sender's next frame is the one after: it never saw "hi".
	cc.eps[0].Publish(context.Background(), "room", "all")
	want(t, "sender", readWS(t, sender), `a["all"]`)
}

// TestChannelsLeaveOnClose: a closed session leaves its channels, and
// OnUnsubscribe runs for each, once.
func TestChannelsLeaveOnClose(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var left []string
	cfg := ChannelConfig{Pattern: "room|other", Handler: ChannelHandlerFuncs{
		Unsubscribe: func(s *Session, channel string) {
			mu.Lock()
			left = append(left, channel)
			mu.Unlock()
		},
	}}
	// Long enough for the polling session to live through the setup.
	cc := newChannelCluster(t, 2, Settings{DisconnectDelay: 2 * time.Second}, cfg, joinRoom)
	conn := dialWS(t, cc.bases[0]+"/0/s/websocket")
	want(t, "open", readWS(t, conn), "o")
	_, body := do(t, "POST", cc.bases[1]+"/0/p/xhr", "")
	want(t, "poll open", body, "o\n")
	cc.waitMembers(t, "room", 2)
	for _, m := range mustMembers(t, cc.eps[0], "room") {
		if err := m.Subscribe(context.Background(), "other"); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(websocket.StatusNormalClosure, "")
	// The polling session is never polled again: it expires.
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if m := mustMembers(t, cc.eps[1], "room"); len(m) != 0 {
			return fmt.Errorf("room still has %d members", len(m))
		}
		if m := mustMembers(t, cc.eps[1], "other"); len(m) != 0 {
			return fmt.Errorf("other still has %d members", len(m))
		}
		mu.Lock()
		defer mu.Unlock()
		if len(left) != 4 {
			return fmt.Errorf("OnUnsubscribe ran for %q", left)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(left)
	if !slices.Equal(left, []string{"other", "other", "room", "room"}) {
		t.Fatalf("OnUnsubscribe ran for %q; want each channel of each session once", left)
	}
}

func mustMembers(t *testing.T, e *Endpoint, channel string) []*Session {
	t.Helper()
	m, err := e.Members(context.Background(), channel)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestChannelsLimits: bad names, names no pattern allows, refusals by
// OnSubscribe and the per-session bound.
func TestChannelsLimits(t *testing.T) {
	t.Parallel()
	refuse := errors.New("not in this room")
	cfg := ChannelConfig{Pattern: `room-\d+`, Handler: ChannelHandlerFuncs{
		Subscribe: func(s *Session, channel string) error {
			if channel == "room-13" {
				return refuse
			}
			return nil
		},
	}}
	opened := make(chan *Session, 1)
	h := HandlerFuncs{Open: func(s *Session) error { opened <- s; return nil }}
	cc := newChannelCluster(t, 1, Settings{MaxChannels: 2}, cfg, h)
	_, body := do(t, "POST", cc.bases[0]+"/0/p/xhr", "")
	want(t, "open", body, "o\n")
	s := <-opened
	ctx := context.Background()
	cases := []struct {
		channel string
		want    error
	}{
		{"", ErrInvalidChannel},
		{strings.Repeat("1", MaxChannelNameLen+1), ErrInvalidChannel},
		{"room 1", ErrInvalidChannel},
		{"room-{1}", ErrInvalidChannel},
		{"room-x", ErrChannelNotAllowed},
		{"xroom-1", ErrChannelNotAllowed},
		{"room-1x", ErrChannelNotAllowed},
		{"room-13", refuse},
	}
	for _, c := range cases {
		if err := s.Subscribe(ctx, c.channel); !errors.Is(err, c.want) {
			t.Errorf("Subscribe(%q) = %v, want %v", c.channel, err, c.want)
		}
		if err := cc.eps[0].Publish(ctx, c.channel, "m"); c.want != refuse && !errors.Is(err, c.want) {
			t.Errorf("Publish(%q) = %v, want %v", c.channel, err, c.want)
		}
	}
	for _, ch := range []string{"room-1", "room-2", "room-2"} {
		if err := s.Subscribe(ctx, ch); err != nil {
			t.Fatalf("Subscribe(%s): %v", ch, err)
		}
	}
	if err := s.Subscribe(ctx, "room-3"); !errors.Is(err, ErrTooManyChannels) {
		t.Fatalf("third channel: %v, want ErrTooManyChannels", err)
	}
	// An endpoint without HandleChannels has no channels.
	_, plain, _ := cc.node(t, HandlerFuncs{}, Settings{Prefix: "/plain"})
	if err := plain.Publish(ctx, "room-1", "m"); !errors.Is(err, ErrChannelsDisabled) {
		t.Fatalf("Publish without HandleChannels: %v", err)
	}
	if err := plain.HandleChannels(ChannelConfig{Pattern: "("}); err == nil {
		t.Fatal("HandleChannels accepted a broken pattern")
	}
}

// TestChannelsLossClosesSession: a polling session away for more messages
// than the log keeps is closed with CodeMessagesLost at its next poll; on
// an AllowLoss channel it gets what is left instead.
func TestChannelsLossClosesSession(t *testing.T) {
	t.Parallel()
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprint("AllowLoss=", allow), func(t *testing.T) {
			t.Parallel()
			cc := newChannelCluster(t, 2, Settings{}, ChannelConfig{Pattern: "room", MaxLen: 3, AllowLoss: allow}, joinRoom)
			_, body := do(t, "POST", cc.bases[0]+"/0/p/xhr", "")
			want(t, "open", body, "o\n")
			cc.waitMembers(t, "room", 1)
			for i := range 6 {
				if err := cc.eps[0].Publish(context.Background(), "room", fmt.Sprint(i)); err != nil {
					t.Fatal(err)
				}
			}
			_, body = do(t, "POST", cc.bases[1]+"/0/p/xhr", "")
			if allow {
				want(t, "poll after loss", body, `a["3","4","5"]`+"\n")
				return
			}
			if body != `c[3010,"Channel messages lost"]`+"\n" {
				// The close may follow a heartbeat-less empty answer.
				_, body = do(t, "POST", cc.bases[1]+"/0/p/xhr", "")
			}
			want(t, "poll after loss", body, `c[3010,"Channel messages lost"]`+"\n")
		})
	}
}

// TestChannelsBusLoss: messages whose bus copy never arrives (appended to
// the log behind the bus's back) still reach a live subscriber: a later
// message shows the gap and the node reads it from the log; a last one is
// found by the trailing check.
func TestChannelsBusLoss(t *testing.T) {
	t.Parallel()
	cc := newChannelCluster(t, 2, Settings{}, ChannelConfig{Pattern: "room"}, joinRoom,
		func(c *NodeConfig) { c.RecheckInterval = 100 * time.Millisecond })
	conn := dialWS(t, cc.bases[0]+"/0/s/websocket")
	want(t, "open", readWS(t, conn), "o")
	cc.waitMembers(t, "room", 1)
	key := cc.eps[1].channelKey("room")
	ctx := context.Background()
	cc.eps[1].Publish(ctx, "room", "1")
	want(t, "first", readWS(t, conn), `a["1"]`)
	if _, err := cc.store.AppendChannel(ctx, key, encodeEntry("", "2 (no bus)"), store.LogOptions{}); err != nil {
		t.Fatal(err)
	}
	cc.eps[1].Publish(ctx, "room", "3")
	if got := readWSMessages(t, conn, 2); !slices.Equal(got, []string{"2 (no bus)", "3"}) {
		t.Fatalf("after the gap: %q", got)
	}
	if _, err := cc.store.AppendChannel(ctx, key, encodeEntry("", "4 (no bus, last)"), store.LogOptions{}); err != nil {
		t.Fatal(err)
	}
	want(t, "trailing check", readWS(t, conn), `a["4 (no bus, last)"]`)
}

// readWSMessages reads websocket frames until they held n messages.
func readWSMessages(t *testing.T, conn *websocket.Conn, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		ev := parseFrame(t, readWS(t, conn))
		if ev.close != "" {
			t.Fatalf("closed after %q: %s", got, ev.close)
		}
		got = append(got, ev.msgs...)
	}
	return got
}

// TestChannelsSlowSubscriber: a websocket client that stops reading is
// closed with CodeQueueOverflow; publishing never waits for it, and the
// other subscribers get everything.
func TestChannelsSlowSubscriber(t *testing.T) {
	t.Parallel()
	cc := newChannelCluster(t, 1, Settings{MaxQueuedMessages: 8, WriteTimeout: 30 * time.Second}, ChannelConfig{Pattern: "room"}, joinRoom)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow := dialWS(t, cc.bases[0]+"/0/slow/websocket")
	want(t, "open", readWS(t, slow), "o")
	fast := newSubscriber("fast")
	fast.runPolling(ctx, t, cc.bases)
	<-fast.opened
	cc.waitMembers(t, "room", 2)
	big := strings.Repeat("x", 64<<10)
	start := time.Now()
	const n = 200
	for i := range n {
		if err := cc.eps[0].Publish(ctx, "room", fmt.Sprintf("0:%d:%s", i, big)); err != nil {
			t.Fatal(err)
		}
	}
	// Held up by the slow subscriber, publishing would wait for its
	// 30 s WriteTimeout; well under that, it was not held up (the margin
	// is for -race on a loaded CI machine: 5 s was once exceeded there).
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("publishing took %v: a slow subscriber held it up", d)
	}
	// The poller's queue overflows too (8 places); each overflow ends
	// its response and the next poll reads on from the log: all arrive,
	// once, in order.
	checkAll(t, []*subscriber{fast}, 1, n)
	// The slow one, reading now, finds its session closed for overflow.
	var last string
	for {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		_, b, err := slow.Read(rctx)
		rcancel()
		if err != nil {
			break
		}
		last = string(b)
	}
	want(t, "slow subscriber's last frame", last, `c[3009,"Queue overflow"]`)
}

// TestChannelsRepairLostNote: a subscription change whose note to the
// receiver's node is lost (made in the store behind the node's back here)
// is repaired when the long-lived receiver re-reads its channels.
func TestChannelsRepairLostNote(t *testing.T) {
	t.Parallel()
	var id atomic.Value
	h := HandlerFuncs{Open: func(s *Session) error { id.Store(s.ID()); return nil }}
	cc := newChannelCluster(t, 2, Settings{}, ChannelConfig{Pattern: "room"}, h,
		func(c *NodeConfig) { c.RecheckInterval = 10 * time.Millisecond })
	conn := dialWS(t, cc.bases[0]+"/0/s/websocket")
	want(t, "open", readWS(t, conn), "o")
	sess := cc.eps[0].Session(id.Load().(string))
	ctx := context.Background()
	key := cc.eps[0].channelKey("room")
	if _, err := cc.store.Subscribe(ctx, sess.key, key, 0); err != nil {
		t.Fatal(err)
	}
	// Published before the repair: delivered from the log once it joins.
	if err := cc.eps[1].Publish(ctx, "room", "missed note"); err != nil {
		t.Fatal(err)
	}
	if got := readWSMessages(t, conn, 1); !slices.Equal(got, []string{"missed note"}) {
		t.Fatalf("after repair: %q", got)
	}
	if _, _, err := cc.store.Unsubscribe(ctx, sess.key, key); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := fanoutSubs(cc.nodes[0], key); n != 0 {
			return fmt.Errorf("node still delivers the channel to %d receivers", n)
		}
		return nil
	})
	cc.eps[1].Publish(ctx, "room", "after leaving")
	sess.Send("direct")
	if got := readWSMessages(t, conn, 1); !slices.Equal(got, []string{"direct"}) {
		t.Fatalf("after repaired unsubscribe: %q", got)
	}
}

// fanoutSubs counts the receivers node delivers channel key to.
func fanoutSubs(n *Node, key string) int { return n.chans.fanout.Subscribers(key) }

// fanoutLiveSubs counts the subscriptions on key that the node's fan-out
// delivers to from memory; one still catching up from the log is not live
// yet.
func fanoutLiveSubs(n *Node, key string) int { return n.chans.fanout.LiveSubscribers(key) }

// TestChannelsListenWhileLive: a node listens on a channel while it has
// live subscribers, and stops a linger after the last one left.
func TestChannelsListenWhileLive(t *testing.T) {
	t.Parallel()
	cc := newChannelCluster(t, 1, Settings{}, ChannelConfig{Pattern: "room"}, joinRoom,
		func(c *NodeConfig) { c.RecheckInterval = 50 * time.Millisecond })
	key := cc.eps[0].channelKey("room")
	listening := func() bool { return cc.nodes[0].chans.fanout.Listening(key) }
	if listening() {
		t.Fatal("listening before anyone subscribed")
	}
	conn := dialWS(t, cc.bases[0]+"/0/s/websocket")
	want(t, "open", readWS(t, conn), "o")
	testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if !listening() || fanoutSubs(cc.nodes[0], key) != 1 {
			return errors.New("not delivering to the websocket")
		}
		return nil
	})
	conn.Close(websocket.StatusNormalClosure, "")
	testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if listening() {
			return errors.New("still listening")
		}
		return nil
	})
}

// TestChannelsStopAtNodeClose: a channel that lingers after its last
// subscriber left (its retire timer a RecheckInterval away) stops
// listening when Node.Close returns, not when the timer fires: the timer
// belongs to the node's lifecycle and no longer runs once it closed.
func TestChannelsStopAtNodeClose(t *testing.T) {
	t.Parallel()
	cc := newChannelCluster(t, 1, Settings{}, ChannelConfig{Pattern: "room"}, joinRoom,
		func(c *NodeConfig) { c.RecheckInterval = time.Hour })
	n, key := cc.nodes[0], cc.eps[0].channelKey("room")
	conn := dialWS(t, cc.bases[0]+"/0/s/websocket")
	want(t, "open", readWS(t, conn), "o")
	testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if fanoutLiveSubs(n, key) != 1 {
			return errors.New("not delivering to the websocket")
		}
		return nil
	})
	conn.Close(websocket.StatusNormalClosure, "")
	testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if fanoutSubs(n, key) != 0 {
			return errors.New("the websocket's subscription is still there")
		}
		return nil
	})
	if !n.chans.fanout.Listening(key) {
		t.Fatal("the channel did not linger after its last subscriber left")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n.chans.fanout.Listening(key) {
		t.Fatal("still listening on the channel after Node.Close returned")
	}
}
