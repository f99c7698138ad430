package sockjs

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

// The server side of RFC 6455 on the hijacked connection: the handshake,
// the client's frames (unmasked, fragments joined, pings answered) and the
// closing handshake. Shoal writes its messages itself (wsFrame,
// guardedConn). A websocket library's connection held ~2 KiB of heap per
// socket (its struct, eight mutexes with their channels, readers, writers
// and their buffers), the largest share of an idle websocket; this one
// holds a few words and, between messages, no buffer.

// websocketGUID is what RFC 6455 appends to the client's key.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Opcodes and bounds of RFC 6455 beside wsOpText and wsOpClose (wsguard.go).
const (
	wsOpContinuation = 0x0
	wsOpBinary       = 0x2
	wsOpPing         = 0x9
	wsOpPong         = 0xa
	wsMaxControl     = 125
	// wsCloseWait bounds the closing handshake: how long the client has
	// to answer the server's close frame before the socket is closed.
	wsCloseWait = 5 * time.Second
)

// errProtocol: the client broke RFC 6455 (the socket is closed with 1002).
var errProtocol = errors.New("sockjs: websocket protocol violation")

// errClosing: the server's close frame is out; the client's answer or
// the socket's end is awaited.
var errClosing = errors.New("sockjs: websocket closing")

// wsCloseError is the client's close frame, as readMessage's error.
type wsCloseError struct {
	code   int // 1005 when the frame had no code
	reason string
}

func (e *wsCloseError) Error() string {
	return fmt.Sprintf("sockjs: websocket closed by the client: %d %q", e.code, e.reason)
}

// acceptWebsocket checks the rest of r's handshake (Upgrade and
// Connection are checked), answers 101 and returns the hijacked
// connection, whose data frames may announce at most limit bytes. On an
// error it has answered r.
func acceptWebsocket(w http.ResponseWriter, r *http.Request, limit int64) (*guardedConn, error) {
	fail := func(code int, msg string) (*guardedConn, error) {
		http.Error(w, msg, code)
		return nil, fmt.Errorf("sockjs: websocket handshake: %s", msg)
	}
	if r.Method != http.MethodGet {
		return fail(http.StatusMethodNotAllowed, "WebSocket protocol violation: handshake request method is not GET")
	}
	if !r.ProtoAtLeast(1, 1) {
		return fail(http.StatusUpgradeRequired, "WebSocket protocol violation: handshake request must be at least HTTP/1.1")
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		return fail(http.StatusBadRequest, "unsupported WebSocket protocol version (only 13 is supported)")
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return fail(http.StatusBadRequest, "WebSocket protocol violation: want one Sec-WebSocket-Key")
	}
	key := textproto.TrimString(keys[0])
	if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
		return fail(http.StatusBadRequest, "WebSocket protocol violation: Sec-WebSocket-Key must be 16 bytes in base64")
	}
	sum := sha1.Sum([]byte(key + websocketGUID))
	h := w.Header()
	h.Set("Upgrade", "websocket")
	h.Set("Connection", "Upgrade")
	h.Set("Sec-WebSocket-Accept", base64.StdEncoding.EncodeToString(sum[:]))
	// net/http writes the 101 (with what the endpoint set, cookies,
	// CORS) when the connection is hijacked.
	w.WriteHeader(http.StatusSwitchingProtocols)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("sockjs: websocket hijack: %w", err)
	}
	// What the server had buffered beyond the handshake goes through the
	// frame reader too. net/http's buffers (4 KiB each) go with its
	// goroutine (see runWebsocket).
	buffered, _ := brw.Reader.Peek(brw.Reader.Buffered())
	gc := &guardedConn{Conn: conn, raw: rawSocket(conn), fr: frameReader{limit: limit}}
	gc.fr.r = socketReader{gc}
	gc.fr.unread(bytes.Clone(buffered))
	return gc, nil
}

// rfc6455Conn is an accepted RFC 6455 websocket. Its messages are read by
// one reader at a time (the websocket's wsReader); its frames are
// written through the guarded connection, whatever the goroutine.
type rfc6455Conn struct {
	nc    *guardedConn
	limit int64
	hdr   [14]byte // the frame header being read; the reader's
	// closing: the server's close frame is out (or the socket broke);
	// messages read from then on are dropped.
	closing atomic.Bool
	once    sync.Once
	// mu guards timer and ended: the bound on the closing handshake,
	// and whether the socket is closed.
	mu    sync.Mutex
	timer *time.Timer
	ended bool
	// refused: a message over the limit was refused mid-frame; what the
	// client still sends of it cannot be parsed, only dropped (finishClose).
	refused bool
}

func (c *rfc6455Conn) waitReadable(idleAfter time.Duration) bool {
	if c.closing.Load() {
		return false // the client's close frame, or the socket's end, is read at once
	}
	return c.nc.waitReadable(idleAfter)
}

func (c *rfc6455Conn) socket() syscall.RawConn { return c.nc.raw }

func (c *rfc6455Conn) messageBuffered() bool { return c.nc.fr.wholeMessageStashed() }

func (c *rfc6455Conn) writeFrame(wire []byte, d time.Duration) error {
	return c.nc.writeFrame(wire, d)
}

func (c *rfc6455Conn) tryWriteFrame(wire []byte) (bool, bool, error) {
	return c.nc.tryWriteFrame(wire)
}

// readMessage reads frames until a whole data message: answers pings,
// drops pongs, and on the client's close frame answers it, closes the
// socket and returns a *wsCloseError. A protocol violation closes with
// 1002 and returns errProtocol. The message is in a pooled buffer (see
// putReadBuffer).
func (c *rfc6455Conn) readMessage() ([]byte, error) {
	var msg []byte
	var op byte // the message's opcode, set by its first frame
	fail := func(err error) ([]byte, error) {
		if msg != nil {
			putReadBuffer(msg)
		}
		return nil, err
	}
	if c.refused {
		return nil, errMessageTooBig // the reader's position is lost
	}
	for {
		fin, opcode, length, key, err := c.readHeader()
		if err != nil {
			if errors.Is(err, errProtocol) {
				c.fail()
			}
			return fail(err)
		}
		if opcode >= 0x8 {
			if err := c.readControl(opcode, int(length), key); err != nil {
				return fail(err)
			}
			continue
		}
		switch {
		case opcode == wsOpContinuation && op == 0,
			opcode != wsOpContinuation && op != 0,
			opcode != wsOpContinuation && opcode != wsOpText && opcode != wsOpBinary:
			c.fail()
			return fail(errProtocol)
		case opcode != wsOpContinuation:
			op = opcode
		}
		if int64(len(msg))+length > c.limit {
			c.refused = true
			return fail(errMessageTooBig)
		}
		if msg == nil {
			msg = (*readBuffers.Get().(*[]byte))[:0]
		}
		start := len(msg)
		msg = grow(msg, int(length))
		if _, err := io.ReadFull(&c.nc.fr, msg[start:]); err != nil {
			return fail(err)
		}
		unmask(msg[start:], key)
		if !fin {
			continue
		}
		if c.closing.Load() {
			putReadBuffer(msg) // after the close frame nothing is handed on
			msg, op = nil, 0
			continue
		}
		if op == wsOpText && !utf8.Valid(msg) {
			return fail(errInvalidUTF8)
		}
		return msg, nil
	}
}

// grow returns b with n more bytes of length.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		b = append(make([]byte, 0, len(b)+n), b...)
	}
	return b[:len(b)+n]
}

// readHeader reads one frame header. A frame from a client must be
// masked, with no reserved bit (no extension is negotiated); a control
// frame must be whole and at most 125 bytes.
func (c *rfc6455Conn) readHeader() (fin bool, opcode byte, length int64, key [4]byte, err error) {
	h := c.hdr[:]
	if _, err = io.ReadFull(&c.nc.fr, h[:2]); err != nil {
		return
	}
	fin, opcode = h[0]&wsFin != 0, h[0]&0x0f
	masked := h[1]&0x80 != 0
	n := 4 // the masking key
	switch h[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if _, err = io.ReadFull(&c.nc.fr, h[2:2+n]); err != nil {
		return
	}
	switch h[1] & 0x7f {
	case 126:
		length = int64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		length = int64(binary.BigEndian.Uint64(h[2:]))
	default:
		length = int64(h[1] & 0x7f)
	}
	copy(key[:], h[2+n-4:])
	if h[0]&0x70 != 0 || !masked || length < 0 || opcode >= 0x8 && (!fin || length > wsMaxControl) {
		err = errProtocol
	}
	return
}

// readControl reads a control frame's payload and acts on it.
func (c *rfc6455Conn) readControl(opcode byte, n int, key [4]byte) error {
	var buf [wsMaxControl]byte
	p := buf[:n]
	if _, err := io.ReadFull(&c.nc.fr, p); err != nil {
		return err
	}
	unmask(p, key)
	switch opcode {
	case wsOpPing:
		return c.nc.writeControl(wsOpPong, p)
	case wsOpPong:
		return nil
	case wsOpClose:
	default:
		c.fail()
		return errProtocol
	}
	ce := &wsCloseError{code: 1005}
	if n == 1 {
		c.fail()
		return errProtocol
	}
	if n >= 2 {
		ce.code, ce.reason = int(binary.BigEndian.Uint16(p)), string(p[2:])
		if !validCloseCode(ce.code) && (ce.code < 1012 || ce.code > 1014) || !utf8.ValidString(ce.reason) {
			c.fail()
			return errProtocol
		}
	}
	// Answered with the client's code (none for none), then the socket
	// is closed: the server ends the TCP connection.
	c.once.Do(func() {
		c.closing.Store(true)
		if ce.code == 1005 {
			c.nc.writeControl(wsOpClose, nil)
		} else {
			c.nc.writeControl(wsOpClose, p)
		}
	})
	c.endSocket()
	return ce
}

// readBuffers holds the buffers websocket messages are read into, and the
// chunks of socket bytes frameReader fills (each a *[]byte).
var readBuffers = sync.Pool{New: func() any { b := make([]byte, 0, wsReadChunk); return &b }}

// putReadBuffer gives b, read by readMessage, back once nothing refers to
// it any more; a big one is let go.
func putReadBuffer(b []byte) {
	if cap(b) <= 64<<10 {
		readBuffers.Put(&b)
	}
}

// unmask XORs p with the masking key (from its first byte).
func unmask(p []byte, key [4]byte) {
	k32 := binary.LittleEndian.Uint32(key[:])
	k64 := uint64(k32)<<32 | uint64(k32)
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^k64)
		p = p[8:]
	}
	for i := range p {
		p[i] ^= key[i&3]
	}
}

// close sends a close frame with code and reason and starts the closing
// handshake: the reader reads on until the client's close frame, and the
// socket is closed then, or wsCloseWait later; finishClose, which every
// websocket ends with, waits for that. Only the first call counts.
func (c *rfc6455Conn) close(code int, reason string) {
	c.once.Do(func() {
		c.closing.Store(true)
		if !validCloseCode(code) {
			code = CodeNormal
		}
		if len(reason) > 120 { // a close frame's payload is at most 125 bytes
			reason = reason[:120]
		}
		var p [wsMaxControl]byte
		binary.BigEndian.PutUint16(p[:], uint16(code))
		n := 2 + copy(p[2:], reason)
		if c.nc.writeControl(wsOpClose, p[:n]) != nil {
			c.endSocket()
			return
		}
		c.mu.Lock()
		if !c.ended {
			c.timer = time.AfterFunc(wsCloseWait, c.endSocket)
		}
		c.mu.Unlock()
	})
}

// fail ends a connection whose client broke the protocol: a close frame
// with 1002, and the socket closed without waiting for an answer (RFC
// 6455 section 7.1.7).
func (c *rfc6455Conn) fail() {
	c.close(1002, "protocol error")
	c.endSocket()
}

// finishClose ends the connection once the reader is done with it: what
// is left of the closing handshake is waited for (the client's close
// frame, dropping what comes before it, at most wsCloseWait after the
// server's), then the socket is closed. The websocket's reader calls it
// last, so no timer of the socket outlives it.
func (c *rfc6455Conn) finishClose() {
	c.close(CodeNormal, ReasonNormal) // if no one has
	for {
		if _, err := c.readMessage(); err != nil {
			if errors.Is(err, errMessageTooBig) {
				// The client may still be sending the message that was
				// refused: drop what comes, unparsed, until it closes or
				// the timer ends the socket. Closed with bytes unread, the
				// socket would be reset, and a reset can overtake the
				// close frame (the client then sees 1006, not 1009).
				io.Copy(io.Discard, c.nc.fr.r)
			}
			break // the client's close frame, the timer's end of the socket, or an error
		}
	}
	c.endSocket()
}

// endSocket closes the socket and stops the closing handshake's timer.
func (c *rfc6455Conn) endSocket() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return
	}
	c.ended = true
	c.closing.Store(true)
	if c.timer != nil {
		c.timer.Stop()
	}
	c.nc.Close()
}

// validCloseCode reports whether code may be sent in a websocket close
// frame (RFC 6455 section 7.4).
func validCloseCode(code int) bool {
	return code >= 1000 && code <= 1003 || code >= 1007 && code <= 1011 || code >= 3000 && code <= 4999
}
