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
// wsSocket). A websocket library's connection held ~2 KiB of heap per
// socket (its struct, eight mutexes with their channels, readers, writers
// and their buffers), the largest share of an idle websocket; this one
// holds a few words and, between messages, no buffer.

// websocketGUID is what RFC 6455 appends to the client's key.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Opcodes and bounds of RFC 6455 beside wsOpText and wsOpClose (wssocket.go).
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

// errFrameTooBig: a frame header announced more than the read limit.
var errFrameTooBig = fmt.Errorf("sockjs: websocket frame header announces too many bytes: %w", errMessageTooBig)

// errInvalidUTF8: a text message that is not UTF-8.
var errInvalidUTF8 = errors.New("sockjs: websocket text message is not UTF-8")

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
// websocket, whose data frames may announce at most limit bytes. On an
// error it has answered r.
func acceptWebsocket(w http.ResponseWriter, r *http.Request, limit int64) (*rfc6455Conn, error) {
	fail := func(code int, msg string) (*rfc6455Conn, error) {
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
	// The 101 leaves with the first frame, the open frame or a close
	// (wsSocket.handshake): one write and one segment instead of two, and
	// none of net/http's header machinery. A 101 needs no Date.
	resp := make([]byte, 0, 256)
	resp = append(resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	resp = base64.StdEncoding.AppendEncode(resp, sum[:])
	resp = append(resp, "\r\n"...)
	if h := w.Header(); len(h) > 0 { // what the endpoint set: cookies
		var b bytes.Buffer
		h.Write(&b)
		resp = append(resp, b.Bytes()...)
	}
	resp = append(resp, "\r\n"...)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("sockjs: websocket hijack: %w", err)
	}
	// What the server had buffered beyond the handshake is read first.
	// net/http's buffers (4 KiB each) go with its goroutine (see
	// runWebsocket).
	buffered, _ := brw.Reader.Peek(brw.Reader.Buffered())
	nc := &wsSocket{Conn: conn, raw: rawSocket(conn), handshake: resp}
	c := &rfc6455Conn{nc: nc, in: stashReader{r: socketReader{nc}}, limit: limit}
	if len(buffered) > 0 {
		c.in.stash = bytes.Clone(buffered)
	}
	return c, nil
}

// rfc6455Conn is an accepted RFC 6455 websocket. Its messages are read by
// one reader at a time (the websocket's wsReader), which alone parses
// frame headers (readHeader); its frames are written through its socket
// (wsSocket), whatever the goroutine.
type rfc6455Conn struct {
	nc    *wsSocket
	in    stashReader // the client's bytes; the reader's
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
	// msgBuf: the pooled buffer of the message being read, or of the one
	// readMessage returned, until releaseMessage; the reader's.
	msgBuf *[]byte
}

func (c *rfc6455Conn) waitReadable(idleAfter time.Duration) bool {
	if c.closing.Load() || len(c.in.stash) > 0 || c.in.err != nil {
		return false // the client's close frame, the socket's end, or stashed bytes are read at once
	}
	return c.nc.waitReadable(idleAfter, &c.in)
}

func (c *rfc6455Conn) socket() syscall.RawConn { return c.nc.raw }

// messageBuffered: the stash starts with a whole data frame that is a
// message by itself (final, text or binary). The reader asks between
// messages, so the stash starts with a frame header.
func (c *rfc6455Conn) messageBuffered() bool {
	h, size, ok := parseFrameHeader(c.in.stash)
	return ok && h.fin && (h.opcode == wsOpText || h.opcode == wsOpBinary) &&
		uint64(len(c.in.stash)-size) >= h.length
}

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
// releaseMessage).
func (c *rfc6455Conn) readMessage() ([]byte, error) {
	var msg []byte
	var op byte // the message's opcode, set by its first frame
	fail := func(err error) ([]byte, error) {
		if msg != nil {
			c.releaseMessage(msg)
		}
		return nil, err
	}
	if c.refused {
		return nil, errMessageTooBig // the reader's position is lost
	}
	for {
		h, err := c.readHeader()
		if err != nil {
			if errors.Is(err, errProtocol) {
				c.fail()
			}
			return fail(err)
		}
		if h.opcode >= 0x8 {
			if err := c.readControl(h); err != nil {
				return fail(err)
			}
			continue
		}
		switch {
		case h.opcode == wsOpContinuation && op == 0,
			h.opcode != wsOpContinuation && op != 0,
			h.opcode != wsOpContinuation && h.opcode != wsOpText && h.opcode != wsOpBinary:
			c.fail()
			return fail(errProtocol)
		case h.opcode != wsOpContinuation:
			op = h.opcode
		}
		if uint64(len(msg))+h.length > uint64(c.limit) {
			c.refused = true
			return fail(errMessageTooBig)
		}
		if msg == nil {
			c.msgBuf = readBuffers.Get().(*[]byte)
			msg = (*c.msgBuf)[:0]
		}
		start := len(msg)
		msg = grow(msg, int(h.length))
		if _, err := io.ReadFull(&c.in, msg[start:]); err != nil {
			return fail(err)
		}
		unmask(msg[start:], h.key)
		if !h.fin {
			continue
		}
		if c.closing.Load() {
			c.releaseMessage(msg) // after the close frame nothing is handed on
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

// frameHeader is a client frame's header.
type frameHeader struct {
	fin      bool
	opcode   byte
	reserved bool // an RSV bit is set
	masked   bool
	length   uint64 // of the payload
	key      [4]byte
}

// parseFrameHeader decodes the frame header b starts with: 2 bytes, the
// 16- or 64-bit length the 7-bit one may announce, the masking key if
// masked. size, the header's, is known from b's first two bytes; ok is
// false while b holds less.
func parseFrameHeader(b []byte) (h frameHeader, size int, ok bool) {
	if len(b) < 2 {
		return h, 2, false
	}
	size = 2
	switch b[1] & 0x7f {
	case 126:
		size += 2
	case 127:
		size += 8
	}
	h.masked = b[1]&0x80 != 0
	if h.masked {
		size += 4
	}
	if len(b) < size {
		return h, size, false
	}
	h.fin, h.opcode, h.reserved = b[0]&wsFin != 0, b[0]&0x0f, b[0]&0x70 != 0
	switch h.length = uint64(b[1] & 0x7f); h.length {
	case 126:
		h.length = uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		h.length = binary.BigEndian.Uint64(b[2:])
	}
	if h.masked {
		copy(h.key[:], b[size-4:size])
	}
	return h, size, true
}

// readHeader reads one frame header and checks it: a data frame may
// announce at most the limit, and no header more than 2^62 bytes
// (errFrameTooBig, before any of the payload is read, and whatever else
// is wrong with it); a client's frame must be masked, with no reserved
// bit (no extension is negotiated); a control frame must be whole and at
// most 125 bytes (errProtocol).
func (c *rfc6455Conn) readHeader() (h frameHeader, err error) {
	if _, err = io.ReadFull(&c.in, c.hdr[:2]); err != nil {
		return h, err
	}
	_, size, _ := parseFrameHeader(c.hdr[:2])
	if _, err = io.ReadFull(&c.in, c.hdr[2:size]); err != nil {
		return h, err
	}
	h, _, _ = parseFrameHeader(c.hdr[:size])
	switch {
	case h.length > 1<<62, h.opcode < 0x8 && h.length > uint64(c.limit):
		c.refused = true // the reader's position is lost
		return h, errFrameTooBig
	case h.reserved || !h.masked || h.opcode >= 0x8 && (!h.fin || h.length > wsMaxControl):
		return h, errProtocol
	}
	return h, nil
}

// readControl reads a control frame's payload and acts on it.
func (c *rfc6455Conn) readControl(h frameHeader) error {
	var buf [wsMaxControl]byte
	n := int(h.length)
	p := buf[:n]
	if _, err := io.ReadFull(&c.in, p); err != nil {
		return err
	}
	unmask(p, h.key)
	switch h.opcode {
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
// chunks of socket bytes stashReader fills (each a *[]byte).
var readBuffers = sync.Pool{New: func() any { b := make([]byte, 0, wsReadChunk); return &b }}

// A websocket's read chunk: a small read takes what the socket has into a
// pooled chunk of this size (stashReader.fill), kept only while its bytes
// wait; a read of a chunk or more goes straight into the message.
const wsReadChunk = 512

// stashReader reads the client's bytes for readHeader and readMessage,
// which ask for no more than the rest of a header or a payload: between
// messages, whatever the client sent is in the socket or the stash
// (waitReadable, messageBuffered).
type stashReader struct {
	r     io.Reader // the socket (socketReader)
	stash []byte    // read from r, not handed on yet
	chunk *[]byte   // the pooled buffer stash is in (fill, took), or nil
	err   error     // what the socket answered a wait's read (took) with instead of bytes
}

func (s *stashReader) Read(p []byte) (int, error) {
	if len(s.stash) == 0 && s.err != nil {
		return 0, s.err
	}
	if len(s.stash) == 0 && len(p) < wsReadChunk {
		s.fill() // an idle socket holds no read buffer
	}
	if len(s.stash) == 0 {
		return s.r.Read(p)
	}
	n := copy(p, s.stash)
	s.stash = s.stash[n:]
	if len(s.stash) == 0 {
		s.stash = nil
		if s.chunk != nil {
			readBuffers.Put(s.chunk)
			s.chunk = nil
		}
	}
	return n, nil
}

// fill reads what the socket has into a pooled chunk, the stash. An
// error is left for the next read of the socket to meet again.
func (s *stashReader) fill() {
	chunk := readBuffers.Get().(*[]byte)
	n, _ := s.r.Read((*chunk)[:cap(*chunk)])
	if n == 0 {
		readBuffers.Put(chunk)
		return
	}
	s.chunk, s.stash = chunk, (*chunk)[:n]
}

// took stashes what a wait read into chunk (wsSocket.waitReadable), a
// pooled buffer: n bytes, or the error the next read returns.
func (s *stashReader) took(chunk *[]byte, n int, err error) {
	if err != nil {
		readBuffers.Put(chunk)
		s.err = err
		return
	}
	s.chunk, s.stash = chunk, (*chunk)[:n]
}

// releaseMessage gives the pooled buffer of msg, the message readMessage
// returned, back once nothing refers to it any more. A big one is let go
// (the pooled buffer it outgrew goes back instead). The pointer the pool
// gave is put back as it came, so giving back allocates nothing.
func (c *rfc6455Conn) releaseMessage(msg []byte) {
	if c.msgBuf == nil {
		return
	}
	if cap(msg) <= 64<<10 {
		*c.msgBuf = msg[:0]
	}
	readBuffers.Put(c.msgBuf)
	c.msgBuf = nil
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
				io.Copy(io.Discard, c.in.r)
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
