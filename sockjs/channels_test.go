package sockjs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/sockjstest"
	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/coder/websocket"

	"github.com/shoal-rt/shoal/store"
)

// Channel tests run on clusters of nodes sharing one memory store and bus.

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

// TestChannelsExactlyOnceInOrder: subscribers on every transport, their
// requests spread over three nodes, and a publisher on each node. Every
// subscriber gets every message once, each publisher's in order.
func TestChannelsExactlyOnceInOrder(t *testing.T) {
	t.Parallel()
	cc := newChannelCluster(t, 3, Settings{ResponseLimit: 4096}, ChannelConfig{Pattern: "room"}, joinRoom)
	sockjstest.ExactlyOnceInOrder(t, cc.eps, cc.bases, 150)
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

// TestChannelsPollOverflowOwnMessages: a poll whose queue overflows with
// messages its own session published Except itself, and nothing else, has
// nothing to write but must still answer a frame (an empty answer is no
// SockJS frame: a jsonp-polling client takes it for a broken script). It
// answers a heartbeat, and the next poll goes on after those messages.
func TestChannelsPollOverflowOwnMessages(t *testing.T) {
	t.Parallel()
	var id atomic.Value
	h := HandlerFuncs{Open: func(s *Session) error { id.Store(s.ID()); return joinRoom.Open(s) }}
	cc := newChannelCluster(t, 1, Settings{MaxQueuedMessages: 2}, ChannelConfig{Pattern: "room"}, h)
	base := cc.bases[0]
	_, body := do(t, "POST", base+"/0/own/xhr", "")
	want(t, "open", body, "o\n")
	cc.waitMembers(t, "room", 1)
	ctx := context.Background()
	own := cc.eps[0].Session(id.Load().(string))
	for i := range 3 {
		if err := cc.eps[0].Publish(ctx, "room", fmt.Sprint("own ", i), Except(own)); err != nil {
			t.Fatal(err)
		}
	}
	if err := cc.eps[0].Publish(ctx, "room", "for you"); err != nil {
		t.Fatal(err)
	}
	_, body = do(t, "POST", base+"/0/own/xhr", "")
	want(t, "poll after an overflow of its own messages", body, "h\n")
	_, body = do(t, "POST", base+"/0/own/xhr", "")
	want(t, "next poll", body, `a["for you"]`+"\n")
}

// heldCursors is the shared store as one node sees it: once armed, its
// next SetCursors waits until free is closed.
type heldCursors struct {
	*store.Memory
	armed   atomic.Bool
	entered chan struct{} // closed when the held SetCursors has begun
	free    chan struct{}
}

func (h *heldCursors) SetCursors(ctx context.Context, id string, cursors map[string]uint64) error {
	if h.armed.CompareAndSwap(true, false) {
		close(h.entered)
		<-h.free
	}
	return h.Memory.SetCursors(ctx, id, cursors)
}

// requestInBackground sends a body-less request on a goroutine of its own
// and hands over its response body, or its error's text (not do: no
// t.Fatal off the test's goroutine).
func requestInBackground(t *testing.T, method, url string) <-chan string {
	out := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(method, url, nil)
		resp, err := testenv.HTTPClient(t).Do(req)
		if err != nil {
			out <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		out <- string(b)
	}()
	return out
}

// receiversOf counts the receivers of key registered on n.
func receiversOf(n *Node, key string) int {
	sh := n.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return len(sh.m[key])
}

// TestChannelsNextPollWaitsForCursors: a poll that has answered saves its
// channel cursors before it lets the lease go, and the client's next poll,
// on another node, waits for that: it gets what follows, never the same
// messages again from the cursors as they were.
func TestChannelsNextPollWaitsForCursors(t *testing.T) {
	t.Parallel()
	cc := newChannelCluster(t, 1, Settings{}, ChannelConfig{Pattern: "room"}, joinRoom)
	held := &heldCursors{Memory: cc.store, entered: make(chan struct{}), free: make(chan struct{})}
	_, onA, a := cc.node(t, joinRoom, Settings{}, func(c *NodeConfig) { c.Store = held })
	if err := onA.HandleChannels(ChannelConfig{Pattern: "room"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // before the nodes close: a failed test's hold ends too
		select {
		case <-held.free:
		default:
			close(held.free)
		}
	})
	b := cc.bases[0]
	_, body := do(t, "POST", b+"/0/p/xhr", "")
	want(t, "open", body, "o\n")
	cc.waitMembers(t, "room", 1)
	ctx := context.Background()
	if err := cc.eps[0].Publish(ctx, "room", "one"); err != nil {
		t.Fatal(err)
	}
	held.armed.Store(true)
	_, body = do(t, "POST", a+"/0/p/xhr", "")
	want(t, "poll on A", body, `a["one"]`+"\n")
	<-held.entered // A has answered; its cursors are not saved yet
	if err := cc.eps[0].Publish(ctx, "room", "two"); err != nil {
		t.Fatal(err)
	}
	_, key := cc.eps[0].clientSession("p")
	testenv.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if n := receiversOf(cc.nodes[0], key); n != 0 {
			return fmt.Errorf("%d receivers still on B", n)
		}
		return nil
	})
	next := requestInBackground(t, "POST", b+"/0/p/xhr")
	// The next poll, on B, is in (waiting for A's lease) before A saves,
	// or has even answered (wrongly, from the cursors as they were).
	got := ""
	testenv.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		select {
		case got = <-next:
			return nil
		default:
		}
		if receiversOf(cc.nodes[0], key) == 0 {
			return errors.New("the next poll is not in yet")
		}
		return nil
	})
	close(held.free)
	if got == "" {
		got = <-next
	}
	want(t, "next poll on B", got, `a["two"]`+"\n")
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
	left := make(chan string, 16) // the channel of each OnUnsubscribe
	cfg := ChannelConfig{Pattern: "room|other", Handler: ChannelHandlerFuncs{
		Unsubscribe: func(s *Session, channel string) { left <- channel },
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
		if n := len(left); n < 4 {
			return fmt.Errorf("OnUnsubscribe ran %d times", n)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // time for a call too many
	var got []string
	for len(left) > 0 {
		got = append(got, <-left)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"other", "other", "room", "room"}) {
		t.Fatalf("OnUnsubscribe ran for %q; want each channel of each session once", got)
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
		f := sockjstest.ParseFrame(t, readWS(t, conn))
		if f.Close != "" {
			t.Fatalf("closed after %q: %s", got, f.Close)
		}
		got = append(got, f.Msgs...)
	}
	return got
}

// TestChannelsSlowSubscriber: a websocket client that stops reading is
// closed with CodeQueueOverflow; publishing never waits for it, and the
// other subscribers get everything.
func TestChannelsSlowSubscriber(t *testing.T) {
	t.Parallel()
	// A minute's DisconnectDelay: the poller reads 512 KiB per response,
	// and under -race on a loaded machine a gap between two of its polls
	// could pass the default 5 s; its session then expires, the next poll
	// opens a new one that joins the room from its head, and the poller
	// waits for messages that are no longer its (a likely cause of the
	// one failure seen: stuck at 40 of 200 for 90 s, no close frame).
	// Expiry is not what this test is about.
	cc := newChannelCluster(t, 1, Settings{MaxQueuedMessages: 8, WriteTimeout: 30 * time.Second, DisconnectDelay: time.Minute},
		ChannelConfig{Pattern: "room"}, joinRoom)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow := dialWS(t, cc.bases[0]+"/0/slow/websocket")
	want(t, "open", readWS(t, slow), "o")
	fast := sockjstest.NewSubscriber("fast")
	fast.RunPolling(ctx, t, cc.bases)
	<-fast.Opened()
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
	sockjstest.CheckAll(t, []*sockjstest.Subscriber{fast}, 1, n)
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
