package sockjs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/coder/websocket"
)

// Tests of the channel API the hub builds on: SubscribeWith's Since and
// Registered, ChannelConfig.Render, History, PublishOffset, ActiveChannels.

// renderOffset renders "msg@offset", counting its calls.
func renderOffset(calls *atomic.Int64) func(string, uint64, string) string {
	return func(channel string, off uint64, msg string) string {
		calls.Add(1)
		return channel + ":" + msg + "@" + strconv.FormatUint(off, 10)
	}
}

// TestChannelsSubscribeSince: a new session on another node subscribes
// with the offset the previous session saw last; it gets what it missed
// first, each once, then newer messages, and Recovered says so. The reply
// its Registered hook sends comes before them on a websocket.
func TestChannelsSubscribeSince(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	var id atomic.Value
	h := HandlerFuncs{Open: func(s *Session) error { id.Store(s.ID()); return nil }}
	cc := newChannelCluster(t, 2, Settings{}, ChannelConfig{Pattern: "room", AllowLoss: true, Render: renderOffset(&calls)}, h)
	ctx := context.Background()
	offs := publishNumbered(t, cc.eps[0], "room", 5)
	for i := 1; i < len(offs); i++ {
		if offs[i] != offs[i-1]+1 {
			t.Fatalf("offsets %v, want consecutive", offs)
		}
	}
	conn := dialWS(t, cc.bases[1]+"/0/s/websocket")
	want(t, "open", readWS(t, conn), "o")
	s := cc.eps[1].Session(id.Load().(string))
	res, err := s.SubscribeWith(ctx, "room", SubscribeOptions{
		Since:      offs[1],
		Registered: func(r SubscribeResult) { s.Send("reply " + strconv.FormatBool(r.Recovered)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || !res.Recovered || res.Head != offs[4] {
		t.Fatalf("SubscribeWith = %+v, want created, recovered, head %d", res, offs[4])
	}
	live, err := cc.eps[0].PublishOffset(ctx, "room", "5")
	if err != nil {
		t.Fatal(err)
	}
	got := readWSMessages(t, conn, 5)
	exp := []string{"reply true"}
	for i, off := range append(offs[2:], live) {
		exp = append(exp, fmt.Sprintf("room:%d@%d", i+2, off))
	}
	if !slices.Equal(got, exp) {
		t.Fatalf("got %q, want %q", got, exp)
	}
}

// TestChannelsSubscribeSinceTrimmed: a Since older than the log keeps
// reports Recovered false and delivers what is left, without closing.
func TestChannelsSubscribeSinceTrimmed(t *testing.T) {
	t.Parallel()
	var id atomic.Value
	h := HandlerFuncs{Open: func(s *Session) error { id.Store(s.ID()); return nil }}
	cc := newChannelCluster(t, 1, Settings{}, ChannelConfig{Pattern: "room", MaxLen: 2}, h)
	ctx := context.Background()
	first := publishNumbered(t, cc.eps[0], "room", 5)[0]
	conn := dialWS(t, cc.bases[0]+"/0/s/websocket")
	want(t, "open", readWS(t, conn), "o")
	s := cc.eps[0].Session(id.Load().(string))
	res, err := s.SubscribeWith(ctx, "room", SubscribeOptions{Since: first})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Recovered {
		t.Fatalf("SubscribeWith = %+v, want created, not recovered", res)
	}
	// MaxLen 2 trims on append, so the log holds the last two or three.
	got := readWSMessages(t, conn, 1)
	if got[0] != "2" && got[0] != "3" {
		t.Fatalf("first replayed %q, want the oldest message still kept", got)
	}
	if err := cc.eps[0].Publish(ctx, "room", "live"); err != nil {
		t.Fatal(err)
	}
	for {
		m := readWSMessages(t, conn, 1)[0]
		if m == "live" {
			break
		}
	}
}

// TestChannelsSubscribeSincePolling: recovery for a polling session that
// has no receiver when it subscribes: its next poll, on another node,
// gets the missed messages.
func TestChannelsSubscribeSincePolling(t *testing.T) {
	t.Parallel()
	var id atomic.Value
	h := HandlerFuncs{Open: func(s *Session) error { id.Store(s.ID()); return nil }}
	cc := newChannelCluster(t, 2, Settings{}, ChannelConfig{Pattern: "room", AllowLoss: true}, h)
	ctx := context.Background()
	offs := publishNumbered(t, cc.eps[0], "room", 3)
	_, body := do(t, "POST", cc.bases[0]+"/0/p/xhr", "")
	want(t, "open", body, "o\n")
	s := cc.eps[0].Session(id.Load().(string))
	if res, err := s.SubscribeWith(ctx, "room", SubscribeOptions{Since: offs[0]}); err != nil || !res.Recovered {
		t.Fatalf("SubscribeWith = %+v, %v", res, err)
	}
	_, body = do(t, "POST", cc.bases[1]+"/0/p/xhr", "")
	want(t, "poll on B", body, `a["1","2"]`+"\n")
}

// TestChannelsRenderOncePerNode: a node renders each message once, however
// many of its sessions subscribe.
func TestChannelsRenderOncePerNode(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	cc := newChannelCluster(t, 1, Settings{}, ChannelConfig{Pattern: "room", Render: renderOffset(&calls)}, joinRoom)
	var conns []*websocket.Conn
	for i := range 5 {
		c := dialWS(t, cc.bases[0]+"/0/s"+strconv.Itoa(i)+"/websocket")
		want(t, "open", readWS(t, c), "o")
		conns = append(conns, c)
	}
	cc.waitMembers(t, "room", 5)
	testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := fanoutLiveSubs(cc.nodes[0], cc.eps[0].channelKey("room")); n != 5 {
			return fmt.Errorf("%d live subscriptions, want 5", n)
		}
		return nil
	})
	calls.Store(0)
	off, err := cc.eps[0].PublishOffset(context.Background(), "room", "x")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		want(t, "delivered", readWS(t, c), fmt.Sprintf(`a["room:x@%d"]`, off))
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("Render called %d times for one message on one node, want 1", n)
	}
}

// TestChannelsHistory: the newest messages, or those after an offset,
// rendered; Complete turns false once the log was trimmed past since.
func TestChannelsHistory(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	cc := newChannelCluster(t, 1, Settings{}, ChannelConfig{Pattern: "room", MaxLen: 10, Render: renderOffset(&calls)}, HandlerFuncs{})
	ctx := context.Background()
	e := cc.eps[0]
	if h, err := e.History(ctx, "room", 0, 10); err != nil || len(h.Messages) != 0 || !h.Complete {
		t.Fatalf("History of an empty channel = %+v, %v", h, err)
	}
	offs := publishNumbered(t, e, "room", 15)
	h, err := e.History(ctx, "room", 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	exp := []ChannelMessage{{offs[12], fmt.Sprintf("room:12@%d", offs[12])}, {offs[13], fmt.Sprintf("room:13@%d", offs[13])}, {offs[14], fmt.Sprintf("room:14@%d", offs[14])}}
	if !slices.Equal(h.Messages, exp) || h.Head != offs[14] || !h.Complete {
		t.Fatalf("History(0, 3) = %+v, want %+v", h, exp)
	}
	h, err = e.History(ctx, "room", offs[13], 0)
	if err != nil || len(h.Messages) != 1 || h.Messages[0].Offset != offs[14] || !h.Complete {
		t.Fatalf("History(since) = %+v, %v", h, err)
	}
	h, err = e.History(ctx, "room", offs[0], 100)
	if err != nil || h.Complete || len(h.Messages) == 0 || h.Messages[len(h.Messages)-1].Offset != offs[14] {
		t.Fatalf("History(trimmed since) = %+v, %v; want incomplete, ending at %d", h, err, offs[14])
	}
}

// TestChannelsActiveChannels: channels with subscribers, on any node, are
// listed; one whose subscribers left is not.
func TestChannelsActiveChannels(t *testing.T) {
	t.Parallel()
	var id atomic.Value
	h := HandlerFuncs{Open: func(s *Session) error { id.Store(s.ID()); return nil }}
	cc := newChannelCluster(t, 2, Settings{}, ChannelConfig{Pattern: `room-\d`}, h)
	ctx := context.Background()
	if got, err := cc.eps[0].ActiveChannels(ctx); err != nil || len(got) != 0 {
		t.Fatalf("ActiveChannels = %q, %v; want none", got, err)
	}
	conn := dialWS(t, cc.bases[1]+"/0/s/websocket")
	want(t, "open", readWS(t, conn), "o")
	s := cc.eps[1].Session(id.Load().(string))
	for _, ch := range []string{"room-2", "room-1"} {
		if err := s.Subscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	got, err := cc.eps[0].ActiveChannels(ctx)
	if err != nil || !slices.Equal(got, []string{"room-1", "room-2"}) {
		t.Fatalf("ActiveChannels = %q, %v; want [room-1 room-2]", got, err)
	}
	if members := mustMembers(t, cc.eps[0], "room-1"); len(members) != 1 {
		t.Fatalf("Members lists %d sessions, want 1 (the registry is not one)", len(members))
	}
	if err := s.Unsubscribe(ctx, "room-1"); err != nil {
		t.Fatal(err)
	}
	if got, err = cc.eps[0].ActiveChannels(ctx); err != nil || !slices.Equal(got, []string{"room-2"}) {
		t.Fatalf("ActiveChannels = %q, %v; want [room-2]", got, err)
	}
	// Subscribing again lists it again.
	if err := s.Subscribe(ctx, "room-1"); err != nil {
		t.Fatal(err)
	}
	if got, err = cc.eps[1].ActiveChannels(ctx); err != nil || !slices.Equal(got, []string{"room-1", "room-2"}) {
		t.Fatalf("ActiveChannels = %q, %v; want [room-1 room-2]", got, err)
	}
}

// TestChannelsMembersOnly: a members-only channel lists its sessions but
// costs their receivers nothing (no listening, no log reads), and refuses
// publishes.
func TestChannelsMembersOnly(t *testing.T) {
	t.Parallel()
	var id atomic.Value
	h := HandlerFuncs{Open: func(s *Session) error { id.Store(s.ID()); return nil }}
	cc := newChannelCluster(t, 2, Settings{}, ChannelConfig{Pattern: `user-.+`, MembersOnly: true}, h)
	ctx := context.Background()
	conn := dialWS(t, cc.bases[0]+"/0/s/websocket")
	want(t, "open", readWS(t, conn), "o")
	s := cc.eps[1].Session(id.Load().(string))
	if err := s.Subscribe(ctx, "user-ann"); err != nil {
		t.Fatal(err)
	}
	if members := mustMembers(t, cc.eps[0], "user-ann"); len(members) != 1 || members[0].ID() != s.ID() {
		t.Fatalf("Members = %v", members)
	}
	if err := cc.eps[0].Publish(ctx, "user-ann", "x"); !errors.Is(err, ErrChannelNotAllowed) {
		t.Fatalf("Publish = %v, want ErrChannelNotAllowed", err)
	}
	// The note reached node A (it holds the websocket); it did not listen.
	onA := cc.eps[0].Session(s.ID())
	if err := onA.Send("after"); err != nil {
		t.Fatal(err)
	}
	want(t, "direct", readWS(t, conn), `a["after"]`)
	if n := fanoutSubs(cc.nodes[0], cc.eps[0].channelKey("user-ann")); n != 0 {
		t.Fatalf("node A delivers the members-only channel to %d receivers", n)
	}
}

// publishNumbered publishes "0", "1", … up to n-1 on channel through e and
// returns their offsets.
func publishNumbered(t *testing.T, e *Endpoint, channel string, n int) []uint64 {
	t.Helper()
	offs := make([]uint64, n)
	for i := range offs {
		off, err := e.PublishOffset(context.Background(), channel, fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		offs[i] = off
	}
	return offs
}
