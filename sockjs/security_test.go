package sockjs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The probes of issue 11's "Security" bullet that the sockjs package
// answers, each against a real HTTP server.

func TestAllowedOrigins(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &recorder{}, Settings{AllowedOrigins: []string{"https://good.example", "*.friends.example"}})
	host := strings.TrimPrefix(strings.SplitN(base, "/", 4)[2], "")

	for _, tc := range []struct {
		origin string
		status int
	}{
		{"https://good.example", 200},
		{"https://a.friends.example", 200},
		{"http://b.friends.example", 200},
		{"", 200},               // not a browser page: nothing to protect
		{"http://" + host, 200}, // same origin: the iframe transports
		{"https://evil.example", 403},
		{"https://good.example.evil.example", 403},
		{"https://friends.example", 403},
		{"null", 403},
	} {
		var hdr []string
		if tc.origin != "" {
			hdr = []string{"Origin", tc.origin}
		}
		resp, body := do(t, "GET", base+"/info", "", hdr...)
		if resp.StatusCode != tc.status {
			t.Errorf("info from %q: status %d, want %d", tc.origin, resp.StatusCode, tc.status)
		}
		acao := resp.Header.Get("Access-Control-Allow-Origin")
		if tc.status == 403 && (acao != "" || resp.Header.Get("Access-Control-Allow-Credentials") != "") {
			t.Errorf("refused %q still got CORS headers: %q", tc.origin, acao)
		}
		if tc.status == 200 && tc.origin != "" && acao != tc.origin {
			t.Errorf("allowed %q: Access-Control-Allow-Origin %q", tc.origin, acao)
		}
		if tc.status == 403 {
			want(t, "refusal", body, "Origin not allowed.")
		}
	}

	// A preflight and a send from elsewhere are refused before they reach
	// a session; a poll from an allowed page works.
	resp, _ := do(t, "OPTIONS", base+"/000/s/xhr_send", "", "Origin", "https://evil.example")
	want(t, "preflight from elsewhere", resp.StatusCode, 403)
	_, body := do(t, "POST", base+"/000/s/xhr", "", "Origin", "https://good.example")
	want(t, "poll from an allowed page", body, "o\n")
	resp, _ = do(t, "POST", base+"/000/s/xhr_send", `["x"]`, "Origin", "https://evil.example")
	want(t, "send from elsewhere", resp.StatusCode, 403)

	// Websockets: the same list.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/000/w/websocket"
	_, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("websocket from elsewhere: %v, %v", resp, err)
	}
	conn, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://good.example"}}})
	if err != nil {
		t.Fatalf("websocket from an allowed page: %v", err)
	}
	want(t, "ws open", readWS(t, conn), "o")
	conn.CloseNow()

	// The iframe page may only be framed by allowed pages.
	resp, _ = do(t, "GET", base+"/iframe.html", "")
	want(t, "iframe CSP", resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'self' https://good.example *.friends.example")
}

func TestAnyOriginByDefault(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &recorder{}, Settings{})
	resp, _ := do(t, "GET", base+"/info", "", "Origin", "https://anywhere.example")
	want(t, "status", resp.StatusCode, 200)
	want(t, "reflected", resp.Header.Get("Access-Control-Allow-Origin"), "https://anywhere.example")
	want(t, "credentials", resp.Header.Get("Access-Control-Allow-Credentials"), "true")
	resp, _ = do(t, "GET", base+"/iframe.html", "")
	want(t, "no CSP", resp.Header.Get("Content-Security-Policy"), "")
}

func TestOriginMatches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, origin string
		ok              bool
	}{
		{"*", "https://x.example", true},
		{"https://x.example", "HTTPS://X.EXAMPLE", true},
		{"https://x.example", "http://x.example", false},
		{"https://x.example", "https://x.example:8443", false},
		{"x.example", "http://x.example", true},
		{"x.example:8443", "https://x.example:8443", true},
		{"*.x.example", "https://a.b.x.example", true},
		{"*.x.example", "https://x.example", false},
		{"*.x.example", "https://evilx.example", false},
		{"https://*.x.example", "http://a.x.example", false},
		{"null", "null", true},
		{"x.example", "null", false},
	} {
		if got := originMatches(tc.pattern, tc.origin); got != tc.ok {
			t.Errorf("originMatches(%q, %q) = %v, want %v", tc.pattern, tc.origin, got, tc.ok)
		}
	}
}

func TestSessionIDBounds(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &recorder{}, Settings{})
	long := strings.Repeat("a", 60000)
	for _, path := range []string{
		"/000/" + long + "/xhr",
		"/" + long + "/s/xhr",
		"/000/" + strings.Repeat("b", maxSessionPartLen+1) + "/xhr_send",
		"/000/" + long + "/websocket",
	} {
		resp, body := do(t, "POST", base+path, `["x"]`)
		if resp.StatusCode != 404 {
			t.Errorf("%.40s…: status %d, want 404", path, resp.StatusCode)
		}
		want(t, "404 body", body, "404 Error: Page not found\n")
	}
	_, body := do(t, "POST", base+"/000/"+strings.Repeat("c", maxSessionPartLen)+"/xhr", "")
	want(t, "longest allowed id", body, "o\n")
}

func TestWebsocketInvalidUTF8(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	_, _, base := newCluster(t).node(t, rec, Settings{RawWebsocket: true})
	for _, path := range []string{"/000/s/websocket", "/websocket"} {
		conn := dialWS(t, base+path)
		if path != "/websocket" {
			want(t, "open", readWS(t, conn), "o")
		}
		if err := conn.Write(context.Background(), websocket.MessageText, []byte("[\"\xff\xfe\"]")); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _, err := conn.Read(ctx)
		cancel()
		want(t, path+" close status", websocket.CloseStatus(err), websocket.StatusInvalidFramePayloadData)
	}
	rec.wantNoMessages(t)
}

// rawWebsocket opens an RFC 6455 connection by hand, for frames no client
// library would send.
func rawWebsocket(t *testing.T, base, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	key := make([]byte, 16)
	rand.Read(key)
	conn, br, resp := rawHandshake(t, base, 10*time.Second, func(host, prefix string) string {
		return fmt.Sprintf("GET /%s%s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n", prefix, path, host, base64.StdEncoding.EncodeToString(key))
	})
	want(t, "upgrade", resp.StatusCode, 101)
	return conn, br
}

// readServerFrame reads one unmasked frame the server sent.
func readServerFrame(t *testing.T, br *bufio.Reader) (opcode byte, payload []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("frame header: %v", err)
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		var l [2]byte
		io.ReadFull(br, l[:])
		n = int(binary.BigEndian.Uint16(l[:]))
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatalf("frame payload: %v", err)
	}
	return h[0] & 0x0f, payload
}

func TestWebsocketFrameHeaderTooBig(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &recorder{}, Settings{MaxMessageSize: 1024})
	for _, announced := range []uint64{1 << 62, 1<<63 + 5, 1025} {
		conn, br := rawWebsocket(t, base, "/000/s/websocket")
		op, p := readServerFrame(t, br)
		if op != 1 || string(p) != "o" {
			t.Fatalf("open frame: %d %q", op, p)
		}
		// A masked text frame announcing more than the limit, and not one
		// byte of it: a server that waits for the payload never answers.
		hdr := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
		binary.BigEndian.PutUint64(hdr[2:10], announced)
		if _, err := conn.Write(hdr); err != nil {
			t.Fatal(err)
		}
		for op = 1; op == 1; { // a SockJS close frame may come first
			op, p = readServerFrame(t, br)
		}
		if op != 8 || len(p) < 2 || binary.BigEndian.Uint16(p) != 1009 {
			t.Fatalf("announcing %d: frame %d %q, want close 1009", announced, op, p)
		}
		conn.Close()
	}
}

// TestWebsocketOversizeMessageClosedCleanly: a client sending a message
// over the limit gets close 1009, and the server reads and drops the rest
// of what it sends until it closes: a socket closed with bytes unread is
// reset, and the reset can overtake the close frame (Chromium then reported
// 1006).
func TestWebsocketOversizeMessageClosedCleanly(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &recorder{}, Settings{MaxMessageSize: 1024})
	for _, fragmented := range []bool{false, true} {
		conn, br := rawWebsocket(t, base, "/000/s/websocket")
		if op, p := readServerFrame(t, br); op != 1 || string(p) != "o" {
			t.Fatalf("open frame: %d %q", op, p)
		}
		const size = 256 << 10
		sent := make(chan error, 1)
		go func() {
			// One frame announcing it all, or (fragmented) frames of 1000
			// bytes whose sum passes the limit; then the client's close
			// frame, and the end of what it sends.
			var out []byte
			if fragmented {
				for i := 0; i < size/1000; i++ {
					op := byte(0x00)
					if i == 0 {
						op = 0x01
					}
					out = append(out, op, 0x80|126, 1000>>8, 1000&0xff, 0, 0, 0, 0)
					out = append(out, make([]byte, 1000)...)
				}
			} else {
				hdr := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
				binary.BigEndian.PutUint64(hdr[2:10], size)
				out = append(append(out, hdr...), make([]byte, size)...)
			}
			out = append(out, 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xf1) // close 1009, zero mask
			_, err := conn.Write(out)
			if err == nil {
				err = conn.(*net.TCPConn).CloseWrite()
			}
			sent <- err
		}()
		op, p := readServerFrame(t, br)
		for op == 1 { // the SockJS close frame may come first
			op, p = readServerFrame(t, br)
		}
		if op != 8 || len(p) < 2 || binary.BigEndian.Uint16(p) != 1009 {
			t.Fatalf("fragmented %v: frame %d %q, want close 1009", fragmented, op, p)
		}
		if err := <-sent; err != nil {
			t.Fatalf("fragmented %v: the server stopped reading what the client sent: %v", fragmented, err)
		}
		if rest, err := io.ReadAll(br); err != nil {
			t.Fatalf("fragmented %v: after the close frame: %q, %v (want a clean end)", fragmented, rest, err)
		}
		conn.Close()
	}
}

// TestRFC6455FramesSplitAnywhere: frames are read whole however their
// bytes arrive, and a frame over the limit is refused at its header,
// before any of its payload is read.
func TestRFC6455FramesSplitAnywhere(t *testing.T) {
	t.Parallel()
	// Two frames (16-bit length, then 7-bit) split at every byte.
	var in []byte
	in = append(in, 0x82, 0x80|126, 0x01, 0x00, 9, 9, 9, 9)
	in = append(in, make([]byte, 256)...)
	in = append(in, 0x81, 0x80|3, 1, 2, 3, 4, 'a', 'b', 'c')
	read := func(r io.Reader, limit int64) (c *rfc6455Conn, msgs []string, err error) {
		c = &rfc6455Conn{in: stashReader{r: r}, limit: limit}
		for {
			msg, err := c.readMessage()
			if err != nil {
				return c, msgs, err
			}
			msgs = append(msgs, string(msg))
		}
	}
	want := []string{strings.Repeat("\x09", 256), "```"} // unmasked
	for split := 1; split < len(in); split++ {
		_, msgs, err := read(io.MultiReader(bytes.NewReader(in[:split]), bytes.NewReader(in[split:])), 256)
		if err != io.EOF || !slices.Equal(msgs, want) {
			t.Fatalf("split %d: %q, %v", split, msgs, err)
		}
	}
	socket := bytes.NewReader(in)
	c, msgs, err := read(socket, 255)
	if n := len(in) - socket.Len() - len(c.in.stash); !errors.Is(err, errMessageTooBig) || len(msgs) != 0 || n != 8 {
		t.Fatalf("over the limit: %q, %v, %d bytes read; want refused after the 8 of the header", msgs, err, n)
	}
}

func TestHixieInvalidUTF8(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	_, _, base := newCluster(t).node(t, rec, Settings{})
	conn, br, _ := dialHixie76(t, base)
	conn.Write([]byte("aaaaaaaa"))
	io.ReadFull(br, make([]byte, 16))
	conn.Write([]byte("\x00[\"\xc3\x28\"]\xff"))
	// Hixie-76 has no close codes: the server closes at once.
	if rest, err := io.ReadAll(br); err != nil || !strings.HasSuffix(string(rest), "\xff\x00") {
		t.Fatalf("after invalid UTF-8: %q, %v", rest, err)
	}
	rec.wantNoMessages(t)
}

func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	infos := make(chan ConnectionInfo, 10)
	rec := &recorder{onOpen: func(s *Session) error { infos <- s.Info(); return nil }}
	_, _, trusting := c.node(t, rec, Settings{Prefix: "/a"}, func(cfg *NodeConfig) {
		cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}
	})
	_, _, plain := c.node(t, rec, Settings{Prefix: "/b"})
	for i, tc := range []struct {
		base, xff, ip string
	}{
		{trusting, "203.0.113.9", "203.0.113.9"},
		// The client may send its own X-Forwarded-For: only what trusted
		// proxies appended counts.
		{trusting, "198.51.100.1, 203.0.113.9, 10.1.2.3", "203.0.113.9"},
		{trusting, "", "127.0.0.1"},
		{trusting, "garbage, 203.0.113.9", "203.0.113.9"},
		{trusting, "203.0.113.9, garbage", "127.0.0.1"},
		{trusting, "2001:db8::1", "2001:db8::1"},
		{plain, "203.0.113.9", "127.0.0.1"},
	} {
		var hdr []string
		if tc.xff != "" {
			hdr = []string{"X-Forwarded-For", tc.xff}
		}
		_, body := do(t, "POST", fmt.Sprintf("%s/000/ip%d/xhr", tc.base, i), "", hdr...)
		want(t, "open", body, "o\n")
		if info := <-infos; info.IP != tc.ip {
			t.Errorf("X-Forwarded-For %q: Info().IP %q, want %q", tc.xff, info.IP, tc.ip)
		}
	}
}

func TestNewSessionsPerIP(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &recorder{}, Settings{}, func(cfg *NodeConfig) {
		cfg.NewSessionsPerIP = 3
		cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	for i := range 3 {
		_, body := do(t, "POST", fmt.Sprintf("%s/000/n%d/xhr", base, i), "")
		want(t, "new session within the limit", body, "o\n")
	}
	resp, body := do(t, "POST", base+"/000/n3/xhr", "")
	want(t, "fourth new session", resp.StatusCode, http.StatusTooManyRequests)
	want(t, "error", body, "Too many new sessions from your address.")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/000/w/websocket", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("websocket past the limit: %v, %v", resp, err)
	}
	// Sessions already open go on; another client has its own count.
	do(t, "POST", base+"/000/n0/xhr_send", `["x"]`)
	_, body = do(t, "POST", base+"/000/n0/xhr", "")
	want(t, "open session polls", body, `a["x"]`+"\n")
	_, body = do(t, "POST", base+"/000/other/xhr", "", "X-Forwarded-For", "203.0.113.7")
	want(t, "another client", body, "o\n")
}

func TestIPLimiterWindows(t *testing.T) {
	t.Parallel()
	l := ipLimiter{perMinute: 2}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, tc := range []struct {
		ip string
		at time.Duration
		ok bool
	}{
		{"192.0.2.1", 0, true},
		{"192.0.2.1", time.Second, true},
		{"192.0.2.1", 2 * time.Second, false},
		{"::ffff:192.0.2.1", 3 * time.Second, false}, // the same address, mapped
		{"2001:db8::1", 0, true},
		{"2001:db8::2", 0, true},
		{"2001:db8::3", 0, false}, // the same /64
		{"2001:db8:0:1::1", 0, true},
		{"192.0.2.1", time.Minute, true}, // a new window
	} {
		if got := l.allow(tc.ip, t0.Add(tc.at)); got != tc.ok {
			t.Errorf("%d: allow(%s) = %v, want %v", i, tc.ip, got, tc.ok)
		}
	}
}
