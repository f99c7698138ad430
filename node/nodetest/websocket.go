package nodetest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/coder/websocket"
	"github.com/shoal-rt/shoal/internal/sockjstest"
)

// WS is a session on SockJS's websocket transport whose frames a test
// reads one by one.
type WS struct {
	*websocket.Conn
}

// DialWS opens url (ws://host/<prefix>/<server>/<session>/websocket, or
// http://, which becomes ws://); the connection closes when the test ends.
func DialWS(t testing.TB, url string) *WS {
	t.Helper()
	return &WS{sockjstest.DialWS(t, url)}
}

// Next returns the next frame, which must come within 10 s.
func (w *WS) Next(t testing.TB) string {
	t.Helper()
	return sockjstest.ReadWS(t, w.Conn)
}

// Send sends msgs in one frame.
func (w *WS) Send(t testing.TB, msgs ...string) {
	t.Helper()
	b, _ := json.Marshal(msgs)
	if err := w.Write(context.Background(), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}
