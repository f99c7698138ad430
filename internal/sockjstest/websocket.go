package sockjstest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// DialWS opens a websocket to httpURL (http:// becomes ws://); it closes
// when the test ends.
func DialWS(t testing.TB, httpURL string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(httpURL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(1 << 24)
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

// ReadWS returns the next websocket message, which must come within 5 s.
func ReadWS(t testing.TB, conn *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
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
