package sockjs

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// clientFrame is a frame as a client sends it, masked unless unmasked.
func clientFrame(fin bool, op byte, payload []byte, unmasked bool) []byte {
	b := []byte{op, 0}
	if fin {
		b[0] |= 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b[1] = byte(n)
	case n <= 0xffff:
		b[1] = 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] = 127
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if unmasked {
		return append(b, payload...)
	}
	b[1] |= 0x80
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

// openRaw opens a SockJS websocket by hand and reads its open frame.
func openRaw(t *testing.T, base string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, br := rawWebsocket(t, base, "/000/s/websocket")
	if op, p := readServerFrame(t, br); op != wsOpText || string(p) != "o" {
		t.Fatalf("open frame: %d %q", op, p)
	}
	return conn, br
}

// wantClose reads frames up to the server's close frame, which must carry
// code, and then the end of the connection.
func wantClose(t *testing.T, conn net.Conn, br *bufio.Reader, code int) {
	t.Helper()
	for {
		op, p := readServerFrame(t, br)
		if op != wsOpClose {
			continue
		}
		if len(p) < 2 || int(binary.BigEndian.Uint16(p)) != code {
			t.Fatalf("close frame %q, want code %d", p, code)
		}
		break
	}
	conn.SetReadDeadline(time.Now().Add(wsCloseWait + 5*time.Second))
	// A reset is an end too: a server failing the connection closes it
	// at once, whatever the client sent after the faulty frame.
	if n, err := br.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after the close frame: %d bytes, %v; want the connection's end", n, err)
	}
}

// TestRFC6455HandshakeResponse: the 101 carries the accept key of the
// RFC's own example and what a middleware set (a cookie), and the open
// frame follows it.
func TestRFC6455HandshakeResponse(t *testing.T) {
	t.Parallel()
	n, _, _ := newCluster(t).node(t, &recorder{}, Settings{})
	h := n.Handler(nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "trace", Value: "t1"})
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(conn, "GET /t/000/s/websocket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	want(t, "status", resp.StatusCode, http.StatusSwitchingProtocols)
	for k, v := range map[string]string{
		"Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", // RFC 6455 section 1.3
		"Upgrade":              "websocket",
		"Connection":           "Upgrade",
		"Set-Cookie":           "trace=t1",
	} {
		want(t, k, resp.Header.Get(k), v)
	}
	op, p := readServerFrame(t, br)
	want(t, "open frame", fmt.Sprintf("%d %s", op, p), fmt.Sprintf("%d o", wsOpText))
}

// TestRFC6455Reading: fragments are joined (a ping between them answered
// with its payload), big messages read whole, and a client's close frame
// answered with its code before the server ends the connection.
func TestRFC6455Reading(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	_, _, base := newCluster(t).node(t, rec, Settings{})
	conn, br := openRaw(t, base)

	conn.Write(clientFrame(false, wsOpText, []byte(`["he`), false))
	conn.Write(clientFrame(false, wsOpContinuation, []byte(`ll`), false))
	conn.Write(clientFrame(true, wsOpPing, []byte("are you there"), false))
	conn.Write(clientFrame(true, wsOpContinuation, []byte(`o"]`), false))
	op, p := readServerFrame(t, br)
	want(t, "pong", fmt.Sprintf("%d %s", op, p), fmt.Sprintf("%d are you there", wsOpPong))
	op, p = readServerFrame(t, br)
	want(t, "echo of the fragments", fmt.Sprintf("%d %s", op, p), fmt.Sprintf(`%d a["hello"]`, wsOpText))

	big := strings.Repeat("x", 40000)
	frame := clientFrame(true, wsOpText, []byte(`["`+big+`"]`), false)
	conn.Write(frame[:50]) // in pieces
	conn.Write(frame[50:])
	op, p = readServerFrame(t, br)
	want(t, "echo of a big message", fmt.Sprintf("%d %d", op, len(p)), fmt.Sprintf("%d %d", wsOpText, len(big)+5))

	conn.Write(clientFrame(true, wsOpClose, append([]byte{0x03, 0xe8}, "bye"...), false))
	op, p = readServerFrame(t, br)
	want(t, "close answered", fmt.Sprintf("%d %q", op, p), fmt.Sprintf("%d %q", wsOpClose, "\x03\xe8bye"))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the close handshake: %v, want the connection's end", err)
	}
	rec.waitClosed(t, 1)
}

// TestRFC6455ProtocolErrors: frames RFC 6455 forbids a client end the
// connection with 1002, and nothing of them reaches the handler.
func TestRFC6455ProtocolErrors(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	_, _, base := newCluster(t).node(t, rec, Settings{})
	for name, frames := range map[string][]byte{
		"unmasked":                 clientFrame(true, wsOpText, []byte(`["a"]`), true),
		"reserved bit":             append([]byte{0xc1}, clientFrame(true, wsOpText, []byte(`["a"]`), false)[1:]...),
		"reserved opcode":          clientFrame(true, 0x3, []byte(`["a"]`), false),
		"continuation first":       clientFrame(true, wsOpContinuation, []byte(`["a"]`), false),
		"new message in fragments": append(clientFrame(false, wsOpText, []byte(`["a`), false), clientFrame(true, wsOpText, []byte(`"]`), false)...),
		"fragmented ping":          clientFrame(false, wsOpPing, nil, false),
		"long ping":                clientFrame(true, wsOpPing, make([]byte, 126), false),
		"close code 1005":          clientFrame(true, wsOpClose, []byte{0x03, 0xed}, false),
		"close of one byte":        clientFrame(true, wsOpClose, []byte{0x03}, false),
	} {
		conn, br := openRaw(t, base)
		conn.Write(frames)
		t.Run(name, func(t *testing.T) { wantClose(t, conn, br, 1002) })
	}
	rec.wantNoMessages(t)
}

// TestRFC6455ServerClose: after the server's close frame nothing else is
// written and what the client still sends is dropped; the client's
// answer ends the connection at once, and a client that never answers is
// cut off after wsCloseWait.
func TestRFC6455ServerClose(t *testing.T) {
	t.Parallel()
	rec, sessions := openedSessions()
	_, _, base := newCluster(t).node(t, rec, Settings{})

	conn, br := openRaw(t, base)
	s := <-sessions
	s.Close(3000, "Go away!")
	op, p := readServerFrame(t, br)
	want(t, "SockJS close frame", fmt.Sprintf("%d %s", op, p), fmt.Sprintf(`%d c[3000,"Go away!"]`, wsOpText))
	op, p = readServerFrame(t, br)
	want(t, "websocket close", fmt.Sprintf("%d %q", op, p), fmt.Sprintf("%d %q", wsOpClose, "\x03\xe8Normal closure"))
	conn.Write(clientFrame(true, wsOpText, []byte(`["late"]`), false))
	start := time.Now()
	conn.Write(clientFrame(true, wsOpClose, []byte{0x03, 0xe8}, false))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the client's answer: %d bytes, %v; want the connection's end", n, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the server ended the connection %v after the client's answer", d)
	}

	conn, br = openRaw(t, base)
	s = <-sessions
	s.Close(3000, "Go away!")
	start = time.Now()
	wantClose(t, conn, br, CodeNormal) // never answered
	if d := time.Since(start); d < wsCloseWait-time.Second {
		t.Fatalf("a client that never answered was cut off after %v, want %v", d, wsCloseWait)
	}
	rec.wantNoMessages(t)
}

// FuzzRFC6455Read: whatever a client sends, however it arrives, reading
// never panics, never hands on a message over the limit, and ends.
func FuzzRFC6455Read(f *testing.F) {
	f.Add(clientFrame(true, wsOpText, []byte(`["a"]`), false), uint8(3))
	f.Add(append(clientFrame(false, wsOpText, []byte("ab"), false), clientFrame(true, wsOpContinuation, []byte("c"), false)...), uint8(1))
	f.Add(append(clientFrame(true, wsOpPing, []byte("p"), false), clientFrame(true, wsOpClose, []byte{0x03, 0xe8}, false)...), uint8(2))
	f.Add(clientFrame(true, wsOpBinary, make([]byte, 300), false), uint8(15))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		const limit = 256
		server, client := net.Pipe()
		defer client.Close()
		go io.Copy(io.Discard, client) // pongs and close frames
		c := &rfc6455Conn{nc: &wsSocket{Conn: server}, in: stashReader{r: &chunkReader{b: in, step: int(chunk%16) + 1}}, limit: limit}
		defer c.finishClose()
		for range len(in) + 1 {
			msg, err := c.readMessage()
			if err != nil {
				return
			}
			if len(msg) > limit {
				t.Fatalf("%x: a message of %d bytes passed", in, len(msg))
			}
		}
		t.Fatalf("%x: more messages than bytes", in)
	})
}

// TestWebsocketRepliesBatched: the replies to messages a client sent
// together go out in order, several to a frame (wsWriter.cork).
func TestWebsocketRepliesBatched(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &recorder{}, Settings{})
	conn, br := openRaw(t, base)
	const n = 20
	var burst []byte
	for i := range n {
		burst = append(burst, clientFrame(true, wsOpText, fmt.Appendf(nil, `["m%d"]`, i), false)...)
	}
	conn.Write(burst) // one write: the server reads the messages together
	var got []string
	frames := 0
	for len(got) < n {
		op, p := readServerFrame(t, br)
		if op != wsOpText || len(p) < 2 || p[0] != 'a' {
			t.Fatalf("frame %d %q", op, p)
		}
		frames++
		for m := range strings.SplitSeq(strings.Trim(string(p[1:]), "[]"), ",") {
			got = append(got, strings.Trim(m, `"`))
		}
	}
	for i, m := range got {
		want(t, "reply in order", m, fmt.Sprintf("m%d", i))
	}
	if frames >= n {
		t.Fatalf("%d replies took %d frames: none batched", n, frames)
	}
	t.Logf("%d replies in %d frames", n, frames)
}

// TestWebsocketSlowHandlerUncorks: a handler slower than wsSlowHandler
// does not hold back the replies to the messages after it: the reader
// stops batching them. (The writer is idle when the frame arrives, as
// OnOpen sent nothing: the reader corks from "a" on.)
func TestWebsocketSlowHandlerUncorks(t *testing.T) {
	t.Parallel()
	// The second slow handler returns once "b" has reached the client:
	// a reader still batching holds "b" back until that handler returns,
	// which it then does only after a long wait.
	const wait = 5 * time.Second // within readServerFrame's deadline
	bArrived := make(chan struct{})
	var slows atomic.Int32
	var heldBack atomic.Bool
	h := HandlerFuncs{Message: func(s *Session, m string) {
		if m == "slow" {
			if slows.Add(1) == 1 {
				time.Sleep(300 * time.Millisecond) // the handler's own work, not a wait for the test
			} else {
				select {
				case <-bArrived:
				case <-time.After(wait):
					heldBack.Store(true)
				}
			}
		}
		s.Send(m)
	}}
	_, _, base := newCluster(t).node(t, h, Settings{})
	conn, br := openRaw(t, base)
	var burst []byte
	for _, m := range []string{"a", "slow", "b", "slow", "c"} {
		burst = append(burst, clientFrame(true, wsOpText, fmt.Appendf(nil, `[%q]`, m), false)...)
	}
	conn.Write(burst)
	// "a" and the first "slow" may come together (held back once); after
	// it the reader batches no more: "b" comes during the second slow
	// handler.
	var got []string
	for len(got) < 5 {
		_, p := readServerFrame(t, br)
		for m := range strings.SplitSeq(strings.Trim(string(p[1:]), "[]"), ",") {
			m = strings.Trim(m, `"`)
			got = append(got, m)
			if m == "b" {
				close(bArrived)
			}
		}
	}
	want(t, "replies", strings.Join(got, ","), "a,slow,b,slow,c")
	if heldBack.Load() {
		t.Fatalf("b held back over the second slow handler: it had not come after %v", wait)
	}
}

// TestWebsocketManyMessagesInOneFrame: a frame of more messages than the
// write queue holds gets every reply (held-back replies are written
// before the queue fills).
func TestWebsocketManyMessagesInOneFrame(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &recorder{}, Settings{MaxQueuedMessages: 16})
	conn, br := openRaw(t, base)
	const n = 100
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("%q", fmt.Sprint(i))
	}
	conn.Write(clientFrame(true, wsOpText, []byte("["+strings.Join(msgs, ",")+"]"), false))
	var got []string
	for len(got) < n {
		op, p := readServerFrame(t, br)
		if op != wsOpText || p[0] != 'a' {
			t.Fatalf("frame %d %q after %d replies", op, p, len(got))
		}
		got = append(got, strings.Split(strings.Trim(string(p[1:]), "[]"), ",")...)
	}
	want(t, "replies", strings.Join(got, ","), strings.Join(msgs, ","))
}

// TestWebsocketClientLeavesWithoutClose: a client that sends a message
// and shuts its side at once, with no close frame, gets its echo, and its
// session closes: the reader's wait reads the message and then meets the
// socket's end (stashReader.took). Its handle's sends fail from then on.
func TestWebsocketClientLeavesWithoutClose(t *testing.T) {
	t.Parallel()
	opened := make(chan *Session, 1)
	rec := &recorder{onOpen: func(s *Session) error { opened <- s; return nil }}
	_, _, base := newCluster(t).node(t, rec, Settings{})
	conn, br := openRaw(t, base)
	sess := <-opened
	if err := sess.Send("before"); err != nil {
		t.Fatalf("send to the open websocket: %v", err)
	}
	op, p := readServerFrame(t, br)
	want(t, "sent", fmt.Sprintf("%d %s", op, p), fmt.Sprintf(`%d a["before"]`, wsOpText))

	conn.Write(clientFrame(true, wsOpText, []byte(`["bye"]`), false))
	conn.(*net.TCPConn).CloseWrite()
	op, p = readServerFrame(t, br)
	want(t, "echo", fmt.Sprintf("%d %s", op, p), fmt.Sprintf(`%d a["bye"]`, wsOpText))
	rec.waitClosed(t, 1)
	if err := sess.Send("after"); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("send after the websocket ended: %v, want ErrSessionClosed", err)
	}
}
