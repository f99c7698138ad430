package nodetest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shoal-rt/shoal/internal/sockjstest"
	"github.com/shoal-rt/shoal/internal/testenv"
)

// HubClient is a hub session (the hub app at /hub) for tests that talk to
// the hub without a browser, over SockJS's websocket transport (DialHub)
// or one of its HTTP transports (DialHubHTTP): it keeps every message the
// hub sends, decoded as a JSON object, in arrival order.
type HubClient struct {
	send  func(msg []byte) error
	close func()
	mu    sync.Mutex // guards msgs
	msgs  []map[string]any
}

// hubSessions numbers the sessions of this test binary.
var hubSessions atomic.Int64

func hubSessionPath(addr string) string {
	return fmt.Sprintf("%s/hub/0/t%d", addr, hubSessions.Add(1))
}

// DialHub opens a websocket session on the hub at addr (host:port); the
// connection closes when the test ends.
func DialHub(t testing.TB, addr string) *HubClient {
	t.Helper()
	conn := sockjstest.DialWS(t, "ws://"+hubSessionPath(addr)+"/websocket")
	c := &HubClient{
		send: func(msg []byte) error {
			return conn.Write(context.Background(), websocket.MessageText, msg)
		},
		close: func() { conn.CloseNow() },
	}
	go func() {
		for {
			_, b, err := conn.Read(context.Background())
			if err != nil || !c.frame(string(b)) {
				return
			}
		}
	}()
	return c
}

// DialHubHTTP opens a session on the hub at addr over transport (xhr,
// xhr_streaming or eventsource) and keeps receiving, request after
// request, until the test ends: behind a balancer each request may land
// on another node.
func DialHubHTTP(t testing.TB, addr, transport string) *HubClient {
	t.Helper()
	base := "http://" + hubSessionPath(addr)
	client := testenv.HTTPClient(t)
	opened := make(chan struct{})
	var openOnce sync.Once
	c := &HubClient{send: func(msg []byte) error {
		resp, err := client.Post(base+"/xhr_send", "text/plain", strings.NewReader(string(msg)))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				err = fmt.Errorf("xhr_send: %d", resp.StatusCode)
			}
		}
		return err
	}}
	receive := func(ctx context.Context) error {
		method := http.MethodPost
		if transport == "eventsource" {
			method = http.MethodGet
		}
		req, _ := http.NewRequestWithContext(ctx, method, base+"/"+transport, nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			if transport == "eventsource" {
				var ok bool
				if line, ok = strings.CutPrefix(line, "data: "); !ok {
					continue
				}
			}
			if line == "o" {
				openOnce.Do(func() { close(opened) })
			}
			c.frame(line)
		}
		return sc.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c.close = func() { cancel(); <-done }
	t.Cleanup(c.close)
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := receive(ctx); err != nil && ctx.Err() == nil {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	select {
	case <-opened:
	case <-time.After(15 * time.Second):
		t.Fatalf("nodetest: %s session not opened", transport)
	}
	return c
}

// frame keeps the messages of an a[...] frame; false for the close frame
// (or an empty one), after which nothing more comes.
func (c *HubClient) frame(f string) bool {
	if f == "" || f[0] == 'c' {
		return false
	}
	var frames []string
	if f[0] != 'a' || json.Unmarshal([]byte(f[1:]), &frames) != nil {
		return true
	}
	for _, s := range frames {
		var m map[string]any
		if json.Unmarshal([]byte(s), &m) == nil {
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		}
	}
	return true
}

// Send sends one message (a JSON text, as the hub's clients send).
func (c *HubClient) Send(t testing.TB, msg string) {
	t.Helper()
	b, _ := json.Marshal([]string{msg})
	if err := c.send(b); err != nil {
		t.Fatal(err)
	}
}

// Close drops the session's connection (websocket) or stops receiving
// (HTTP), as a browser tab that went away.
func (c *HubClient) Close() { c.close() }

// Messages is a copy of what the hub sent so far.
func (c *HubClient) Messages() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.msgs...)
}

// ChannelMessages is what channels delivered so far (messages with a
// channel and an offset, subscribe replies left out).
func (c *HubClient) ChannelMessages() []map[string]any {
	var out []map[string]any
	for _, m := range c.Messages() {
		if _, ok := m["offset"]; ok && m["channel"] != nil && m["data_type"] != "subscribe" {
			out = append(out, m)
		}
	}
	return out
}

// WaitFor waits up to 15 s for a message that match accepts and returns
// it.
func (c *HubClient) WaitFor(t testing.TB, match func(m map[string]any) bool) map[string]any {
	t.Helper()
	var found map[string]any
	testenv.CheckFor(t, 15*time.Second, 10*time.Millisecond, func() error {
		msgs := c.Messages()
		for _, m := range msgs {
			if match(m) {
				found = m
				return nil
			}
		}
		return fmt.Errorf("not among %d messages: last %v", len(msgs), msgs[max(0, len(msgs)-5):])
	})
	return found
}

// Typed matches a message of data_type typ and, unless id is 0, that id.
func Typed(typ string, id float64) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["data_type"] == typ && (id == 0 || m["id"] == id) }
}

// Subscribe joins channel and waits for the reply.
func (c *HubClient) Subscribe(t testing.TB, channel string) {
	t.Helper()
	c.Send(t, fmt.Sprintf(`{"data_type":"subscribe","id":1,"data":{"channel":%q}}`, channel))
	c.WaitFor(t, Typed("subscribe", 0))
}
