package sockjstest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsTimeout bounds a dial and each read: generous, for nodes built with
// -race on a loaded machine.
const wsTimeout = 10 * time.Second

// DialWS opens a websocket to url (ws://, or http:// which becomes
// ws://); it closes when the test ends.
func DialWS(t testing.TB, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	if rest, ok := strings.CutPrefix(url, "http"); ok {
		url = "ws" + rest
	}
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(1 << 24)
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

// ReadWS returns the next websocket message, which must come within
// wsTimeout.
func ReadWS(t testing.TB, conn *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	_, b, err := conn.Read(ctx)
	if err != nil {
		t.Fatalf("websocket read: %v", err)
	}
	return string(b)
}

// WriteWS writes s as one text message.
func WriteWS(t testing.TB, conn *websocket.Conn, s string) {
	t.Helper()
	if err := conn.Write(context.Background(), websocket.MessageText, []byte(s)); err != nil {
		t.Fatalf("websocket write: %v", err)
	}
}
