package nodetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// WS is a session on SockJS's websocket transport whose frames a test
// reads one by one.
type WS struct {
	*websocket.Conn
}

// DialWS opens url (ws://host/<prefix>/<server>/<session>/websocket); the
// connection closes when the test ends.
func DialWS(t testing.TB, url string) *WS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return &WS{conn}
}

// Next returns the next frame, which must come within 10 s.
func (w *WS) Next(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := w.Read(ctx)
	if err != nil {
		t.Fatalf("nodetest: websocket read: %v", err)
	}
	return string(b)
}

// Send sends msgs in one frame.
func (w *WS) Send(t testing.TB, msgs ...string) {
	t.Helper()
	b, _ := json.Marshal(msgs)
	if err := w.Write(context.Background(), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}
