package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// testBackend is a Backend in the test process: it allows subscribe to
// channels ending "-ok", rewrites publishes, answers events, and sleeps on
// event "slow" past the hub's backend timeout.
type testBackend struct {
	mu     sync.Mutex
	events map[string]int
	gone   []DisconnectRequest
}

func (b *testBackend) Connect(_ context.Context, req ConnectRequest) (ConnectReply, error) {
	if req.Token == "cookie" {
		return ConnectReply{User: "carol", Channels: []string{"feed"}}, nil
	}
	return ConnectReply{}, fmt.Errorf("%w: Who are you", ErrDenied)
}

func (b *testBackend) Subscribe(_ context.Context, req SubscribeRequest) error {
	if strings.HasSuffix(req.Channel, "-ok") {
		return nil
	}
	return fmt.Errorf("%w: Room is full", ErrDenied)
}

func (b *testBackend) Publish(_ context.Context, req PublishRequest) (json.RawMessage, error) {
	return json.RawMessage(`{"text":"rewritten","by":"` + req.User + `"}`), nil
}

func (b *testBackend) Event(ctx context.Context, req EventRequest) (json.RawMessage, error) {
	b.mu.Lock()
	b.events[req.Name]++
	b.mu.Unlock()
	if req.Name == "slow" {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return json.RawMessage(`{"echo":` + string(req.Data) + `}`), nil
}

func (b *testBackend) Disconnect(req DisconnectRequest) {
	b.mu.Lock()
	b.gone = append(b.gone, req)
	b.mu.Unlock()
}

func TestSubscribePermissions(t *testing.T) {
	t.Parallel()
	hubs := startHubs(t, memoryBackends(t), 1, Config{Verifier: testVerifier{}, File: File{Channels: []Rule{
		{Pattern: "user-{user}", Subscribe: SubscribeOwner},
		{Pattern: "public-*", Subscribe: SubscribeAuthenticated, Publish: PublishSubscribers},
		{Pattern: "granted-*"}, // default: granted only
	}}})
	c := dial(t, hubs[0].base)
	session := c.auth("user:ann:granted-1")["session"]
	for _, tc := range []struct{ channel, reply string }{
		{"user-ann", ""},
		{"user-bob", "Permission denied"},
		{"public-1", ""},
		{"granted-1", ""}, // already joined by auth: success again
		{"granted-2", "Permission denied"},
		{"other", "Unknown channel"},
		{"bad channel", "Invalid channel"},
	} {
		c.send(fmt.Sprintf(`{"data_type":"subscribe","id":%q,"data":{"channel":%q}}`, tc.channel, tc.channel))
		m := c.next()
		if m["id"] != tc.channel {
			t.Fatalf("reply %v to %s", m, tc.channel)
		}
		switch {
		case tc.reply == "" && m["data_type"] != "subscribe":
			t.Fatalf("subscribe %s: %v, want success", tc.channel, m)
		case tc.reply != "" && (m["data_type"] != "subscribe_error" || data(m)["message"] != tc.reply || data(m)["channel"] != tc.channel):
			t.Fatalf("subscribe %s: %v, want %q", tc.channel, m, tc.reply)
		}
	}
	// Client publish: subscribers of public-*; nobody on granted-*. The
	// hub stamps who published it, whatever "from" the client claimed.
	wantFrom := fmt.Sprint(map[string]any{"user": "ann", "session": session})
	c.send(`{"data_type":"publish","id":1,"data":{"channel":"public-1","data":{"data_type":"chat","from":{"user":"bob"},"text":"hi","from":"x"}}}`)
	var off any
	for range 2 { // the reply and the delivery, in either order
		m := c.next()
		switch m["data_type"] {
		case "publish":
			off = data(m)["offset"]
		case "chat":
			if m["text"] != "hi" || m["channel"] != "public-1" || fmt.Sprint(m["from"]) != wantFrom {
				t.Fatalf("delivery %v, want from %s", m, wantFrom)
			}
		default:
			t.Fatalf("unexpected %v", m)
		}
	}
	if off == nil {
		t.Fatal("no publish reply")
	}
	// Not an object: wrapped, so it can carry the stamp.
	c.send(`{"data_type":"publish","id":7,"data":{"channel":"public-1","data":"plain"}}`)
	for range 2 {
		m := c.next()
		switch m["data_type"] {
		case "publish":
		case "data":
			if m["data"] != "plain" || m["channel"] != "public-1" || fmt.Sprint(m["from"]) != wantFrom {
				t.Fatalf("delivery %v, want from %s", m, wantFrom)
			}
		default:
			t.Fatalf("unexpected %v", m)
		}
	}
	c.send(`{"data_type":"publish","id":2,"data":{"channel":"granted-1","data":"x"}}`)
	if m := c.expect("error"); data(m)["message"] != "Permission denied" || m["id"] != 2.0 {
		t.Fatalf("%v", m)
	}
	c.send(`{"data_type":"unsubscribe","id":3,"data":{"channel":"public-1"}}`)
	c.expect("unsubscribe")
	c.send(`{"data_type":"publish","id":4,"data":{"channel":"public-1","data":"x"}}`)
	if m := c.expect("error"); data(m)["message"] != "Permission denied" {
		t.Fatalf("publish after unsubscribe: %v", m)
	}
	c.send(`{"data_type":"history","id":5,"data":{"channel":"user-ann"}}`)
	if d := data(c.expect("history")); d["recovered"] != true || len(d["messages"].([]any)) != 0 {
		t.Fatalf("history: %v", d)
	}
	c.send(`{"data_type":"history","id":6,"data":{"channel":"public-1"}}`)
	if m := c.expect("error"); data(m)["message"] != "Not subscribed" {
		t.Fatalf("history unsubscribed: %v", m)
	}
}

// TestBackend: connect, subscribe, publish and events through a Backend;
// every event id gets exactly one reply, a timeout included.
func TestBackend(t *testing.T) {
	t.Parallel()
	be := &testBackend{events: make(map[string]int)}
	hubs := startHubs(t, memoryBackends(t), 2, Config{Backend: be, File: File{
		BackendTimeout: Duration(200 * time.Millisecond),
		Channels:       []Rule{{Pattern: "*", Subscribe: SubscribeBackend, Publish: PublishBackend}},
	}})
	c := dial(t, hubs[0].base)
	c.expect("request_auth")
	c.send(`{"data_type":"auth","data":{"token":"nope"}}`)
	if m := c.expect("auth_error"); data(m)["message"] != "Who are you" {
		t.Fatalf("%v", m)
	}
	c.send(`{"data_type":"auth","data":{"token":"cookie"}}`)
	if d := data(c.expect("auth")); d["user"] != "carol" || fmt.Sprint(d["channels"]) != "[feed]" {
		t.Fatalf("%v", d)
	}
	c.send(`{"data_type":"subscribe","id":1,"data":{"channel":"room-ok"}}`)
	c.expect("subscribe")
	c.send(`{"data_type":"subscribe","id":2,"data":{"channel":"room-2"}}`)
	if d := data(c.expect("subscribe_error")); d["message"] != "Room is full" {
		t.Fatalf("%v", d)
	}
	c.send(`{"data_type":"publish","id":3,"data":{"channel":"room-ok","data":{"text":"raw"}}}`)
	for range 2 {
		m := c.next()
		if m["data_type"] == nil && (m["text"] != "rewritten" || fmt.Sprint(m["from"]) != fmt.Sprint(map[string]any{"user": "carol", "session": m["from"].(map[string]any)["session"]})) {
			t.Fatalf("delivery %v, want the backend's rewrite stamped with carol", m)
		}
	}
	for i := range 20 {
		name := "typing"
		if i%5 == 0 {
			name = "slow"
		}
		c.send(fmt.Sprintf(`{"data_type":"event","id":%d,"data":{"name":%q,"data":%d}}`, 100+i, name, i))
	}
	seen := make(map[float64]int)
	for range 20 {
		m := c.next()
		id := m["id"].(float64)
		seen[id]++
		i := int(id) - 100
		switch {
		case i%5 == 0 && (m["data_type"] != "error" || data(m)["message"] != "Backend unavailable"):
			t.Fatalf("slow event %d: %v", i, m)
		case i%5 != 0 && (m["data_type"] != "ack" || data(m)["echo"] != float64(i)):
			t.Fatalf("event %d: %v", i, m)
		}
	}
	c.none(300 * time.Millisecond)
	if len(seen) != 20 {
		t.Fatalf("replies to %d event ids, want 20: %v", len(seen), seen)
	}
	c.conn.CloseNow()
	testenvCheck(t, func() error {
		be.mu.Lock()
		defer be.mu.Unlock()
		if len(be.gone) != 1 || be.gone[0].User != "carol" {
			return fmt.Errorf("disconnects %+v, want carol's one", be.gone)
		}
		return nil
	})
}

func testenvCheck(t *testing.T, f func() error) {
	t.Helper()
	testenv.CheckFor(t, 15*time.Second, 20*time.Millisecond, f)
}

func TestLimits(t *testing.T) {
	t.Parallel()
	hubs := startHubs(t, memoryBackends(t), 1, Config{File: File{Limits: Limits{
		MessageRate: 1, MessageBurst: 5, MaxMessageSize: 100, MaxSubscriptions: 2, MaxViolations: 4,
	}}})
	c := dial(t, hubs[0].base)
	for i := range 3 {
		c.send(fmt.Sprintf(`{"data_type":"subscribe","id":%d,"data":{"channel":"room-%d"}}`, i, i))
	}
	c.expect("subscribe")
	c.expect("subscribe")
	if d := data(c.expect("subscribe_error")); d["message"] != "Too many subscriptions" {
		t.Fatalf("%v", d)
	}
	c.send(`{"data_type":"ping","data":"` + strings.Repeat("x", 100) + `"}`)
	if d := data(c.expect("error")); d["message"] != "Message too big" {
		t.Fatalf("%v", d)
	}
	c.send(`{"data_type":"ping","data":{}}`)
	c.send(`{"data_type":"ping","data":{}}`)
	c.expect("pong")
	c.expect("pong")
	c.send(`{"data_type":"ping","id":9,"data":{}}`) // the burst of 5 is spent
	if m := c.expect("error"); data(m)["message"] != "Rate limit exceeded" || m["id"] != 9.0 {
		t.Fatalf("%v, want the rate limit's error with id 9", m)
	}
	c.send(`{"data_type":"ping","data":{}}`)
	c.expect("error")
	c.send(`{"data_type":"ping","data":{}}`) // the 4th violation
	if got := c.waitClosed(); got != `c[4008,"Policy violation"]` {
		t.Fatalf("closed with %q", got)
	}
}

func TestAuthTimeout(t *testing.T) {
	t.Parallel()
	// Long enough for a loaded machine to authenticate in time.
	const timeout = 2 * time.Second
	hubs := startHubs(t, memoryBackends(t), 1, Config{Verifier: testVerifier{}, File: File{AuthTimeout: Duration(timeout)}})
	ok := dial(t, hubs[0].base)
	c := dial(t, hubs[0].base)
	ok.auth("user:ann")
	c.expect("request_auth")
	if got := c.waitClosed(); got != `c[4001,"Not authenticated"]` {
		t.Fatalf("closed with %q", got)
	}
	ok.none(timeout / 4) // past the first one's timeout, which was armed later
	if ok.closedWith() != "" {
		t.Fatal("an authenticated session was closed")
	}
}

// TestVerifierAndBackend: with both, a token goes to the verifier and an
// auth without one to the backend (cookie-authenticated sites).
func TestVerifierAndBackend(t *testing.T) {
	t.Parallel()
	be := &testBackend{events: make(map[string]int)}
	hubs := startHubs(t, memoryBackends(t), 1, Config{Verifier: testVerifier{}, Backend: be})
	c := dial(t, hubs[0].base)
	if d := c.auth("user:ann"); d["user"] != "ann" {
		t.Fatalf("token auth: %v", d)
	}
	c2 := dial(t, hubs[0].base)
	c2.expect("request_auth")
	c2.send(`{"data_type":"auth","data":{}}`)
	if d := data(c2.expect("auth_error")); d["message"] != "Who are you" {
		t.Fatalf("tokenless auth refused by the backend: %v", d)
	}
	c2.send(`{"data_type":"auth","data":{"token":"cookie"}}`)
	if d := data(c2.expect("auth_error")); d["message"] != "Token invalid" {
		t.Fatalf("a token goes to the verifier: %v", d)
	}
}
