package nodetest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// HubClient is a hub session over SockJS's websocket transport, for tests
// that talk to the hub app without a browser: it keeps every message the
// hub sends, decoded as a JSON object, in arrival order.
type HubClient struct {
	conn *websocket.Conn
	mu   sync.Mutex // guards msgs
	msgs []map[string]any
}

// DialHub opens url (ws://host/hub/<server>/<session>/websocket); the
// connection closes when the test ends.
func DialHub(t testing.TB, url string) *HubClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	c := &HubClient{conn: conn}
	go c.read()
	return c
}

// read collects the messages of every a[...] frame until the close frame
// or the connection's end.
func (c *HubClient) read() {
	for {
		_, b, err := c.conn.Read(context.Background())
		if err != nil || len(b) == 0 || b[0] == 'c' {
			return
		}
		var frames []string
		if b[0] != 'a' || json.Unmarshal(b[1:], &frames) != nil {
			continue
		}
		for _, f := range frames {
			var m map[string]any
			if json.Unmarshal([]byte(f), &m) == nil {
				c.mu.Lock()
				c.msgs = append(c.msgs, m)
				c.mu.Unlock()
			}
		}
	}
}

// Send sends one message (a JSON text, as the hub's clients send).
func (c *HubClient) Send(t testing.TB, msg string) {
	t.Helper()
	b, _ := json.Marshal([]string{msg})
	if err := c.conn.Write(context.Background(), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// Messages is a copy of what the hub sent so far.
func (c *HubClient) Messages() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.msgs...)
}
