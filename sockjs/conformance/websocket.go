package conformance

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsURL turns an http URL into its ws equivalent.
func wsURL(httpURL string) string { return "ws" + strings.TrimPrefix(httpURL, "http") }

// wsConn is a WebSocket client connection with bounded reads.
type wsConn struct {
	t    *testing.T
	c    *websocket.Conn
	what string
}

func dialWS(t *testing.T, u string) *wsConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	c, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		t.Fatalf("websocket dial %s: %v", u, err)
	}
	// amplify answers up to 2^18 bytes in one message.
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return &wsConn{t: t, c: c, what: u}
}

// openWS dials u and reads the session's open frame.
func openWS(t *testing.T, u string) *wsConn {
	t.Helper()
	w := dialWS(t, u)
	w.want("o")
	return w
}

// read returns the next text message.
func (w *wsConn) read() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	typ, p, err := w.c.Read(ctx)
	if err != nil {
		return "", err
	}
	if typ != websocket.MessageText {
		return "", errors.New("binary message")
	}
	return string(p), nil
}

func (w *wsConn) want(want string) {
	w.t.Helper()
	got, err := w.read()
	if err != nil {
		w.t.Fatalf("%s: want %s, got error %v", w.what, clip(want), err)
	}
	if got != want {
		w.t.Errorf("%s: got %s, want %s", w.what, clip(got), clip(want))
	}
}

func (w *wsConn) send(msg string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		w.t.Fatalf("%s: write: %v", w.what, err)
	}
}

// echo sends msg in a frame of its own and wants it back.
func (w *wsConn) echo(msg string) {
	w.t.Helper()
	w.send(`["` + msg + `"]`)
	w.want(`a["` + msg + `"]`)
}

// wantClosed checks that the server ends the connection with no further
// message and returns the close error.
func (w *wsConn) wantClosed() error {
	w.t.Helper()
	got, err := w.read()
	if err == nil {
		w.t.Errorf("%s: got message %s, want the connection closed", w.what, clip(got))
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		w.t.Errorf("%s: connection not closed by the server", w.what)
	}
	return err
}

// testWebsocketHTTPErrors: a session websocket URL refuses what is not a
// WebSocket upgrade.
func (s *suite) testWebsocketHTTPErrors(t *testing.T) {
	t.Run("plain get is 400", func(t *testing.T) {
		c := s.dialRaw(t)
		r := c.request("GET", s.url("/echo/0/0/websocket"), "1.1", "")
		c.readBody(r)
		wantStatus(t, "GET websocket", r.status, 400)
	})
	t.Run("upgrade with connection close is 400", func(t *testing.T) {
		// Proxies that rewrite Connection break the upgrade; refuse it.
		c := s.dialRaw(t)
		r := c.request("GET", s.url("/echo/0/0/websocket"), "1.1", "", "Upgrade", "WebSocket", "Connection", "close")
		c.readBody(r)
		wantStatus(t, "GET websocket with Connection: close", r.status, 400)
	})
	t.Run("post is 405 with allow and no body", func(t *testing.T) {
		for _, h := range [][]string{{"Upgrade", "WebSocket", "Connection", "Upgrade"}, nil} {
			if h != nil && s.opts.HTTPProxy {
				t.Log("POST with upgrade headers not checked: an HTTP proxy refuses it (Options.HTTPProxy)")
				continue
			}
			c := s.dialRaw(t)
			r := c.request("POST", s.url("/echo/0/0/websocket"), "1.1", "", h...)
			body := c.readBody(r)
			wantStatus(t, "POST websocket", r.status, 405)
			wantNoHeader(t, "POST websocket", r, "Content-Type")
			if r.Get("Allow") == "" {
				t.Errorf("POST websocket: no Allow header")
			}
			wantBody(t, "POST websocket", body, "")
		}
	})
	t.Run("disabled websocket endpoint is 404", func(t *testing.T) {
		for _, path := range []string{"/disabled_websocket_echo/000/" + newID() + "/websocket", "/disabled_websocket_echo/websocket"} {
			c := s.dialRaw(t)
			r := c.request("GET", s.url(path), "1.1", "",
				"Upgrade", "websocket", "Connection", "Upgrade",
				"Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw==")
			if r.status != 101 {
				c.readBody(r)
			}
			wantStatus(t, "upgrade "+path, r.status, 404)
		}
	})
}

// testWebsocket: the framed /<server>/<session>/websocket transport.
func (s *suite) testWebsocket(t *testing.T) {
	t.Run("open frame and echo", func(t *testing.T) {
		w := openWS(t, wsURL(s.sessionURL("/echo"))+"/websocket")
		w.echo("a")
	})
	t.Run("query string is ignored", func(t *testing.T) {
		w := openWS(t, wsURL(s.sessionURL("/echo"))+"/websocket?testqs=1")
		w.echo("q")
	})
	t.Run("server close sends 3000 go away then closes", func(t *testing.T) {
		w := openWS(t, wsURL(s.sessionURL("/close"))+"/websocket")
		w.want(frameGoAway)
		w.wantClosed()
	})
	t.Run("hybi-13 handshake headers", func(t *testing.T) {
		const key = "x3JJHMbDL1EzLkh9GBhXDw=="
		sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		accept := base64.StdEncoding.EncodeToString(sum[:])
		c := s.dialRaw(t)
		r := c.request("GET", s.sessionURL("/echo")+"/websocket", "1.1", "",
			"Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Version", "13",
			"Sec-WebSocket-Origin", "http://asd", "Sec-WebSocket-Key", key)
		wantStatus(t, "upgrade", r.status, 101)
		if got := r.Get("Sec-WebSocket-Accept"); got != accept || got != "HSmrc0sMlYUkAGmm5OPpG2HaGWk=" {
			t.Errorf("Sec-WebSocket-Accept %q, want %q", got, accept)
		}
		if got := strings.ToLower(r.Get("Connection")); got != "upgrade" {
			t.Errorf("Connection %q, want upgrade", r.Get("Connection"))
		}
		if got := strings.ToLower(r.Get("Upgrade")); got != "websocket" {
			t.Errorf("Upgrade %q, want websocket", r.Get("Upgrade"))
		}
		wantNoHeader(t, "101 response", r, "Content-Length")
	})
	t.Run("empty frames are ignored", func(t *testing.T) {
		w := openWS(t, wsURL(s.sessionURL("/echo"))+"/websocket")
		w.send("")
		w.send("[]")
		w.echo("a")
	})
	t.Run("session id may be reused by concurrent and later connections", func(t *testing.T) {
		// A websocket session lives as long as its connection: two live
		// connections on one session id are two sessions.
		u := wsURL(s.sessionURL("/echo")) + "/websocket"
		w1, w2 := dialWS(t, u), dialWS(t, u)
		w1.want("o")
		w2.want("o")
		w1.echo("a")
		w2.echo("b")
		w1.c.Close(websocket.StatusNormalClosure, "")
		w2.c.Close(websocket.StatusNormalClosure, "")
		w3 := openWS(t, u)
		w3.echo("a")
	})
	t.Run("broken json closes the connection", func(t *testing.T) {
		w := openWS(t, wsURL(s.sessionURL("/echo"))+"/websocket")
		w.send(`["a`)
		w.wantClosed()
	})
	t.Run("client close handshake completes", func(t *testing.T) {
		w := openWS(t, wsURL(s.sessionURL("/echo"))+"/websocket")
		if err := w.c.Close(websocket.StatusCode(3000), "User message"); err != nil {
			t.Errorf("close handshake: %v", err)
		}
	})
}

// testRawWebsocket: /websocket under the prefix speaks plain WebSocket, no
// SockJS framing.
func (s *suite) testRawWebsocket(t *testing.T) {
	t.Run("echo without framing", func(t *testing.T) {
		w := dialWS(t, wsURL(s.url("/echo/websocket")))
		w.send("Hello world!\uffff")
		w.want("Hello world!\uffff")
	})
	t.Run("server close carries go away", func(t *testing.T) {
		w := dialWS(t, wsURL(s.url("/close/websocket")))
		err := w.wantClosed()
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("want a close frame, got %v", err)
		}
		if ce.Code != 3000 || ce.Reason != "Go away!" {
			t.Errorf("close %d %q, want 3000 \"Go away!\"", ce.Code, ce.Reason)
		}
	})
}

// hixie76Key decodes a Sec-WebSocket-Key1/2 value: its digits as a number,
// divided by its count of spaces.
func hixie76Key(k string) uint32 {
	var n, spaces uint64
	for _, r := range k {
		switch {
		case r >= '0' && r <= '9':
			n = n*10 + uint64(r-'0')
		case r == ' ':
			spaces++
		}
	}
	if spaces == 0 {
		return 0
	}
	return uint32(n / spaces)
}

// testHixie76: the pre-RFC draft (hixie-76) handshake, still spoken by some
// proxies. The response head must go out before the 8-byte key arrives
// (HAProxy forwards it only after seeing the head).
func (s *suite) testHixie76(t *testing.T) {
	if s.opts.HTTPProxy {
		t.Skip("hixie-76 not checked: an HTTP proxy refuses its upgrade (Options.HTTPProxy)")
	}
	t.Run("handshake before key, digest, open frame, echo", func(t *testing.T) {
		const key1, key2, key3 = "4 @1  46546xW%0l 1 5", "12998 5 Y3 1  .P00", "aaaaaaaa"
		u := s.sessionURL("/echo") + "/websocket"
		origin := "http://" + s.host
		c := s.dialRaw(t)
		r := c.request("GET", u, "1.1", "",
			"Connection", "Upgrade", "Upgrade", "WebSocket", "Origin", origin,
			"Sec-WebSocket-Key1", key1, "Sec-WebSocket-Key2", key2)
		wantStatus(t, "hixie-76 upgrade", r.status, 101)
		if got := strings.ToLower(r.Get("Connection")); got != "upgrade" {
			t.Errorf("Connection %q, want upgrade", r.Get("Connection"))
		}
		if got := strings.ToLower(r.Get("Upgrade")); got != "websocket" {
			t.Errorf("Upgrade %q, want websocket", r.Get("Upgrade"))
		}
		if got := r.Get("Sec-WebSocket-Location"); got != wsURL(u) {
			t.Errorf("Sec-WebSocket-Location %q, want %q", got, wsURL(u))
		}
		if got := r.Get("Sec-WebSocket-Origin"); got != origin {
			t.Errorf("Sec-WebSocket-Origin %q, want %q", got, origin)
		}
		wantNoHeader(t, "hixie-76 101", r, "Content-Length")

		var challenge [16]byte
		binary.BigEndian.PutUint32(challenge[0:], hixie76Key(key1))
		binary.BigEndian.PutUint32(challenge[4:], hixie76Key(key2))
		copy(challenge[8:], key3)
		digest := md5.Sum(challenge[:])
		if string(digest[:]) != "\xca4\x00\xd8\xa5\x08G\x97,\xd5qZ\xba\xbfC{" {
			t.Fatalf("suite bug: hixie-76 digest %x", digest)
		}
		c.write([]byte(key3))
		got, err := c.readN(16)
		if err != nil || got != string(digest[:]) {
			t.Fatalf("hixie-76 digest %x (%v), want %x", got, err, digest)
		}
		readFrame := func() string {
			t.Helper()
			_ = c.conn.SetReadDeadline(time.Now().Add(requestTimeout))
			if b, err := c.br.ReadByte(); err != nil || b != 0x00 {
				t.Fatalf("hixie-76 frame start %#x, %v", b, err)
			}
			p, err := c.br.ReadString(0xff)
			if err != nil {
				t.Fatalf("hixie-76 frame: %v", err)
			}
			return strings.TrimSuffix(p, "\xff")
		}
		if f := readFrame(); f != "o" {
			t.Fatalf("first frame %q, want o", f)
		}
		c.write([]byte("\x00[\"a\"]\xff"))
		if f := readFrame(); f != `a["a"]` {
			t.Errorf("echo frame %q, want a[\"a\"]", f)
		}
	})
}
