package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/internal/sockjstest"
	"github.com/shoal-rt/shoal/node/apps/hub/token"
	"github.com/shoal-rt/shoal/sockjs"
	"github.com/shoal-rt/shoal/store"

	"github.com/shoal-rt/shoal/node/nodetest"
)

// Tests run hubs on nodes that share a store and a bus: the memory ones
// here, Redis and NATS in cluster_test.go.

// testVerifier accepts "user:<id>:<ch1>,<ch2>" (object payload),
// "chan:<channel>" (string payload) and "expired"; everything else is
// invalid.
type testVerifier struct{}

func (testVerifier) Verify(tok string) (token.Identity, error) {
	switch {
	case tok == "expired":
		return token.Identity{}, fmt.Errorf("%w: test", token.ErrExpired)
	case strings.HasPrefix(tok, "chan:"):
		return token.Identity{Channels: []string{strings.TrimPrefix(tok, "chan:")}}, nil
	case strings.HasPrefix(tok, "user:"):
		parts := strings.SplitN(strings.TrimPrefix(tok, "user:"), ":", 2)
		id := token.Identity{User: parts[0]}
		if len(parts) == 2 && parts[1] != "" {
			id.Channels = strings.Split(parts[1], ",")
		}
		return id, nil
	}
	return token.Identity{}, fmt.Errorf("%w: test", token.ErrInvalid)
}

// backends gives each node of a test its store and bus: the memory ones
// are shared; Redis and NATS (cluster_test.go) are a client per node.
type backends func(t testing.TB) (store.Store, bus.Bus)

func memoryBackends(t testing.TB) backends {
	st, b := store.NewMemory(), bus.NewMemory()
	t.Cleanup(func() { b.Close() })
	return func(testing.TB) (store.Store, bus.Bus) { return st, b }
}

// testHub is one node with a hub, served over HTTP.
type testHub struct {
	*Hub
	node *sockjs.Node
	base string // URL of the hub endpoint
}

func startHubs(t testing.TB, be backends, n int, cfg Config) []*testHub {
	t.Helper()
	var out []*testHub
	for range n {
		st, b := be(t)
		node := nodetest.SockJSNode(t, sockjs.NodeConfig{Store: st, Bus: b, ReapInterval: 20 * time.Millisecond})
		h, err := New(node, cfg)
		if err != nil {
			t.Fatal(err)
		}
		base := nodetest.Serve(t, node, node.Handler(nil))
		t.Cleanup(h.Close) // its auth timers stop before the node closes
		out = append(out, &testHub{Hub: h, node: node, base: base + DefaultPrefix})
	}
	return out
}

// client is a SockJS websocket client of a hub.
type client struct {
	t    testing.TB
	conn *websocket.Conn
	msgs chan map[string]any
	raw  chan string
	done chan struct{} // closed when the reader ends, after closed is set

	closed string // the close frame, if one came
}

var clientSeq atomic.Int64

func dial(t testing.TB, base string) *client {
	t.Helper()
	conn := sockjstest.DialWS(t, base+fmt.Sprintf("/0/c%d/websocket", clientSeq.Add(1)))
	c := &client{t: t, conn: conn, msgs: make(chan map[string]any, 10000), raw: make(chan string, 10000), done: make(chan struct{})}
	go c.read()
	return c
}

func (c *client) read() {
	defer close(c.done)
	for {
		_, b, err := c.conn.Read(context.Background())
		if err != nil {
			return
		}
		f := string(b)
		switch {
		case f == "o" || f == "h":
		case f[0] == 'a':
			var msgs []string
			if err := json.Unmarshal([]byte(f[1:]), &msgs); err != nil {
				c.t.Errorf("bad frame %q", f)
				return
			}
			for _, m := range msgs {
				var v map[string]any
				if err := json.Unmarshal([]byte(m), &v); err != nil {
					c.t.Errorf("message not a JSON object: %q", m)
					continue
				}
				c.raw <- m
				c.msgs <- v
			}
		case f[0] == 'c':
			c.closed = f
			return
		}
	}
}

func (c *client) send(msg string) {
	c.t.Helper()
	b, _ := json.Marshal([]string{msg})
	if err := c.conn.Write(context.Background(), websocket.MessageText, b); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next message, failing after 10 s.
func (c *client) next() map[string]any {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		<-c.raw
		return m
	case <-time.After(10 * time.Second):
		c.t.Fatalf("no message within 10 s (closed: %q)", c.closedWith())
		return nil
	}
}

// expect reads the next message and checks its data_type.
func (c *client) expect(typ string) map[string]any {
	c.t.Helper()
	m := c.next()
	if m["data_type"] != typ {
		c.t.Fatalf("got %v, want data_type %q", m, typ)
	}
	return m
}

// none checks that no message arrives within d.
func (c *client) none(d time.Duration) {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		c.t.Fatalf("unexpected message %v", m)
	case <-time.After(d):
	}
}

// closedWith is the close frame once the reader has ended ("" before).
func (c *client) closedWith() string {
	select {
	case <-c.done:
		return c.closed
	default:
		return ""
	}
}

// waitClosed waits for the close frame and returns it.
func (c *client) waitClosed() string {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.t.Fatal("not closed within 10 s")
	}
	return c.closedWith()
}

// auth authenticates with tok and returns the auth reply's data.
func (c *client) auth(tok string) map[string]any {
	c.t.Helper()
	c.expect("request_auth")
	c.send(fmt.Sprintf(`{"data_type":"auth","data":{"token":%q}}`, tok))
	return c.expect("auth")["data"].(map[string]any)
}

func data(m map[string]any) map[string]any {
	d, _ := m["data"].(map[string]any)
	return d
}

func TestAuth(t *testing.T) {
	t.Parallel()
	hubs := startHubs(t, memoryBackends(t), 1, Config{Verifier: testVerifier{}})
	base := hubs[0].base

	c := dial(t, base)
	c.expect("request_auth")
	c.send(`{"data_type":"subscribe","id":1,"data":{"channel":"room"}}`)
	if m := c.expect("error"); data(m)["message"] != "Not authenticated" || m["id"] != 1.0 {
		t.Fatalf("before auth: %v", m)
	}
	c.send(`{"data_type":"auth","data":{"token":"bogus","salt":"x"}}`)
	if m := c.expect("auth_error"); data(m)["message"] != "Token invalid" {
		t.Fatalf("bad token: %v", m)
	}
	c.send(`{"data_type":"auth","data":{"token":"expired"}}`)
	if m := c.expect("auth_error"); data(m)["message"] != "Token expired" {
		t.Fatalf("expired token: %v", m)
	}
	c.send(`{"data_type":"auth","data":{"token":"user:ann:room-1,room-2"}}`)
	d := data(c.expect("auth"))
	if d["message"] != "success" || d["user"] != "ann" || fmt.Sprint(d["channels"]) != "[room-1 room-2]" || d["session"] == "" {
		t.Fatalf("auth reply: %v", d)
	}
	c.send(`{"data_type":"auth","data":{"token":"user:bob"}}`)
	if m := c.expect("auth_error"); data(m)["message"] != "Already authenticated" {
		t.Fatalf("second auth: %v", m)
	}
	// Granted channels were joined at once.
	off, err := hubs[0].Publish(context.Background(), "room-2", []byte(`{"data_type":"chat","text":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.expect("chat"); m["text"] != "hi" || m["channel"] != "room-2" || m["offset"] != float64(off) {
		t.Fatalf("delivery: %v", m)
	}
	// A string payload joins that one channel.
	c2 := dial(t, base)
	if d := c2.auth("chan:news"); fmt.Sprint(d["channels"]) != "[news]" || d["user"] != "" {
		t.Fatalf("string-payload auth: %v", d)
	}
	hubs[0].Publish(context.Background(), "news", []byte("not json"))
	if m := c2.expect("data"); m["data"] != "not json" || m["channel"] != "news" {
		t.Fatalf("raw payload delivery: %v", m)
	}
}

func TestProtocolErrors(t *testing.T) {
	t.Parallel()
	hubs := startHubs(t, memoryBackends(t), 1, Config{})
	c := dial(t, hubs[0].base)
	c.send(`not json`)
	if m := c.expect("error"); data(m)["message"] != "Invalid JSON" {
		t.Fatalf("%v", m)
	}
	c.send(`[1,2]`)
	c.expect("error")
	c.send(`{"data_type":"nope","id":"x"}`)
	if m := c.expect("error"); data(m)["message"] != "Invalid data type nope" || m["id"] != "x" {
		t.Fatalf("%v", m)
	}
	c.send(`{"data_type":"ping","id":7,"data":{}}`)
	if m := c.expect("pong"); m["id"] != 7.0 {
		t.Fatalf("%v", m)
	}
	// An open hub: anyone subscribes, nobody publishes from the client.
	c.send(`{"data_type":"subscribe","id":1,"data":{"channel":"room"}}`)
	if d := data(c.expect("subscribe")); d["channel"] != "room" || d["recovered"] != true {
		t.Fatalf("%v", d)
	}
	c.send(`{"data_type":"publish","id":2,"data":{"channel":"room","data":1}}`)
	if m := c.expect("error"); data(m)["message"] != "Permission denied" {
		t.Fatalf("%v", m)
	}
	c.send(`{"data_type":"subscribe","id":3,"data":{"channel":"_hub/u/x"}}`)
	if d := data(c.expect("subscribe_error")); d["message"] != "Invalid channel" {
		t.Fatalf("%v", d)
	}
	c.send(`{"data_type":"event","id":4,"data":{"name":"typing","data":{}}}`)
	if m := c.expect("ack"); m["id"] != 4.0 || data(m)["received"] != true {
		t.Fatalf("%v", m)
	}
}
