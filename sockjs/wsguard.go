package sockjs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The hijacked connection of an RFC 6455 websocket (rfc6455.go reads and
// closes it).
//
// The read side: a frameReader follows the client's frames as their bytes
// pass and refuses a data frame whose header announces more than the read
// limit, before any of its payload is read (a limit counted as bytes
// arrive would read limit bytes of a 2^62-byte frame first). Compression
// is not negotiated, so a frame's length is its message bytes. It hands
// on at most the rest of one frame per read, so between messages anything
// the client sent is in the socket or its stash (waitReadable).
//
// The write side: Shoal frames its outgoing text messages itself
// (wsFrame): a channel message's frame, header included, is encoded once
// and the same bytes go to every subscriber; and a frame can be offered
// to the socket without blocking (tryWriteFrame), so the fan-out writes to
// an idle socket itself, with one syscall and no goroutine woken. Control
// frames (pong, close) go through writeControl; nothing follows a close.

// errInvalidUTF8: a text message that is not UTF-8.
var errInvalidUTF8 = errors.New("sockjs: websocket text message is not UTF-8")

// errFrameTooBig: a frame header announced more than the read limit.
var errFrameTooBig = fmt.Errorf("sockjs: websocket frame header announces too many bytes: %w", errMessageTooBig)

// A websocket's read chunk: the frame reader takes what the socket has
// into a pooled chunk of this size (frameReader.fill), kept only while its
// bytes wait; a read of a chunk or more goes straight into the message.
const wsReadChunk = 512

// rawSocket returns conn's descriptor for writes that must not block and
// for waiting until it is readable, or nil. Only a connection that is
// the socket itself (not TLS, not another wrapper) offers it: the bytes
// written there are the bytes on the wire.
func rawSocket(conn net.Conn) syscall.RawConn {
	sc, ok := conn.(syscall.Conn)
	if !ok || !nonblockingSupported {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// guardedConn is the hijacked connection as the websocket's reader and
// writer see it.
type guardedConn struct {
	net.Conn
	fr  frameReader
	raw syscall.RawConn // the socket, for writes that must not block; nil without

	// wmu is held while a frame is written, so frames never interleave;
	// it guards rest, closeSent and werr.
	wmu       sync.Mutex
	rest      []byte // the end of a frame tryWriteFrame began, not yet taken by the socket
	closeSent bool   // the close frame is written: no frame may follow
	// werr is the first write error: part of a frame may have gone out,
	// so nothing more can be written (the close then fails at once and
	// ends the socket, instead of waiting on a client that reads
	// nothing).
	werr error
	try  *socketWrite // made at the first tryWriteFrame
	peek *socketPeek  // made at the first waitReadable; the reader's
	// idleDeadline: waitReadable has set a read deadline, which only
	// its wait may meet.
	idleDeadline atomic.Bool
}

// socketWrite is one non-blocking write attempt, kept with its connection:
// a closure made per attempt, and what it captures, would be allocations
// per message. It runs under RawConn.Control, not Write: it never waits
// for the socket, so it needs the descriptor held open (Control's
// reference), not the poller's write lock and reset (in a broadcast
// profile RawConn.Write cost 7% on top of the write system call); the
// connection's writes are serialized by guardedConn.wmu.
type socketWrite struct {
	fn   func(fd uintptr) // do, bound once
	wire []byte
	n    int
	err  error
}

func (w *socketWrite) do(fd uintptr) {
	w.n, w.err = writeNonblocking(fd, w.wire)
}

// socketPeek is waitReadable's wait, kept like socketWrite.
type socketPeek struct {
	fn     func(fd uintptr) bool // ready, bound once
	waited bool
	buf    [1]byte
}

// ready is asked by the poller whether to stop waiting: at first only if
// the socket has something (or an error) to read; after a wake-up, yes
// (a spurious one only means the message's read waits instead).
func (p *socketPeek) ready(fd uintptr) bool {
	if p.waited {
		return true
	}
	p.waited = true
	return !peekWouldBlock(fd, p.buf[:])
}

// waitReadable returns once the client has sent something or the
// connection has ended (false), or, with idleAfter > 0, once the socket
// has stayed quiet for up to idleAfter (true): the reader may then give
// its goroutine up to the node's readPoller. The reader calls it between
// messages, not inside a message's read: anything sent since the last
// message is in the socket or the frameReader's stash.
func (c *guardedConn) waitReadable(idleAfter time.Duration) (idle bool) {
	if c.raw == nil || c.fr.stashed.Load() {
		return false
	}
	if c.peek == nil {
		c.peek = &socketPeek{}
		c.peek.fn = c.peek.ready
	}
	c.peek.waited = false
	if idleAfter > 0 && !c.idleDeadline.Swap(true) {
		// Set once per quiet spell, not per message: while messages
		// come, the deadline stays, and the messages' reads never see
		// it (socketReader).
		c.Conn.SetReadDeadline(time.Now().Add(idleAfter))
	}
	err := c.raw.Read(c.peek.fn) // another error: the message's read meets it too
	if idleAfter > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		c.clearIdleDeadline()
		return true
	}
	return false
}

// clearIdleDeadline lifts waitReadable's deadline.
func (c *guardedConn) clearIdleDeadline() {
	c.idleDeadline.Store(false)
	c.Conn.SetReadDeadline(time.Time{})
}

// socketReader reads the socket for frameReader. The deadline of
// waitReadable's wait may pass while a message is read: the read then
// goes on without it.
type socketReader struct{ c *guardedConn }

func (r socketReader) Read(p []byte) (int, error) {
	for {
		n, err := r.c.Conn.Read(p)
		if n == 0 && r.c.idleDeadline.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
			r.c.clearIdleDeadline()
			continue
		}
		return n, err
	}
}

func (c *guardedConn) Read(p []byte) (int, error) { return c.fr.Read(p) }

// writeControl writes a control frame (a pong, a close) with payload,
// at most 125 bytes, unless the close frame is out already.
func (c *guardedConn) writeControl(op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	if op == wsOpClose {
		c.closeSent = true
	}
	c.Conn.SetWriteDeadline(time.Now().Add(wsCloseWait))
	defer c.Conn.SetWriteDeadline(time.Time{})
	if err := c.writeRest(); err != nil {
		return err
	}
	var frame [2 + wsMaxControl]byte
	frame[0], frame[1] = wsFin|op, byte(len(payload))
	_, err := c.write(frame[:2+copy(frame[2:], payload)])
	return err
}

// write writes p, or fails with the first write error. wmu should be held.
func (c *guardedConn) write(p []byte) (int, error) {
	if c.werr != nil {
		return 0, c.werr
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		c.werr = err
	}
	return n, err
}

// writeFrame writes wire, a whole frame (wsFrame), after what an earlier
// tryWriteFrame left; it fails if the client has not taken them within
// d. A nil wire writes only the rest.
func (c *guardedConn) writeFrame(wire []byte, d time.Duration) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	// Cleared after the write: a deadline long past must not meet
	// the next write.
	c.Conn.SetWriteDeadline(time.Now().Add(d))
	defer c.Conn.SetWriteDeadline(time.Time{})
	if err := c.writeRest(); err != nil || wire == nil {
		return err
	}
	_, err := c.write(wire)
	return err
}

// writeRest writes what tryWriteFrame left. wmu should be held.
func (c *guardedConn) writeRest() error {
	if len(c.rest) == 0 {
		return nil
	}
	_, err := c.write(c.rest)
	c.rest = nil
	return err
}

// tryWriteFrame offers wire, a whole frame, to the socket without ever
// blocking. taken: the frame goes to the client; pending: the socket took
// only its start and the rest waits for writeFrame (the caller must make
// sure one follows). Not taken: nothing was written (no descriptor, a
// frame being written, a full socket buffer), so the caller writes it the
// blocking way.
func (c *guardedConn) tryWriteFrame(wire []byte) (taken, pending bool, err error) {
	if c.raw == nil || !c.wmu.TryLock() {
		return false, false, nil
	}
	defer c.wmu.Unlock()
	if c.closeSent {
		return false, false, net.ErrClosed
	}
	if c.werr != nil {
		return false, false, c.werr
	}
	if len(c.rest) > 0 {
		return false, false, nil
	}
	if c.try == nil {
		c.try = &socketWrite{}
		c.try.fn = c.try.do
	}
	c.try.wire = wire
	err = c.raw.Control(c.try.fn)
	n, werr := c.try.n, c.try.err
	c.try.wire, c.try.err = nil, nil
	if err != nil {
		return false, false, err
	}
	switch {
	case werr == syscall.EAGAIN:
		return false, false, nil
	case werr != nil:
		c.werr = werr
		return false, false, werr
	case n < len(wire):
		c.rest = bytes.Clone(wire[n:]) // wire is shared with other sockets
		return true, true, nil
	}
	return true, false, nil
}

// RFC 6455 framing of what a server sends: unmasked, one frame per
// message.
const (
	wsOpText  = 0x1
	wsOpClose = 0x8
	wsFin     = 0x80
	// wsHeaderRoom is the most a server frame's header takes: what
	// wsFrame wants free before the payload.
	wsHeaderRoom = 10
)

// wsRoom is wsHeaderRoom bytes, to append before a payload.
var wsRoom [wsHeaderRoom]byte

// wsFrame makes buf[wsHeaderRoom:] a text frame in place: its header goes
// into the room before it, and the frame is returned.
func wsFrame(buf []byte) []byte {
	n := len(buf) - wsHeaderRoom
	var hdr []byte
	switch {
	case n < 126:
		hdr = buf[wsHeaderRoom-2 : wsHeaderRoom]
		hdr[1] = byte(n)
	case n <= 0xffff:
		hdr = buf[wsHeaderRoom-4 : wsHeaderRoom]
		hdr[1] = 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(n))
	default:
		hdr = buf[:wsHeaderRoom]
		hdr[1] = 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(n))
	}
	hdr[0] = wsFin | wsOpText
	return buf[wsHeaderRoom-len(hdr):]
}

// wsFrameOf returns the text frame of payload.
func wsFrameOf(payload []byte) []byte {
	return wsFrame(append(append(make([]byte, 0, wsHeaderRoom+len(payload)), wsRoom[:]...), payload...))
}

// wsPayload returns the payload of a frame wsFrame made.
func wsPayload(wire []byte) []byte {
	switch wire[1] {
	case 126:
		return wire[4:]
	case 127:
		return wire[10:]
	}
	return wire[2:]
}

// frameReader passes a client's RFC 6455 byte stream through unchanged
// while following its frame boundaries; a data frame whose header
// announces more than limit payload bytes ends the stream with
// errFrameTooBig before any of that payload is read. A read hands on at
// most the rest of one frame: what the socket gave beyond it waits in the
// stash for the next read.
type frameReader struct {
	r       io.Reader
	limit   int64
	hdr     [14]byte // the header being read
	hdrLen  int
	payload int64 // payload bytes left in the current frame
	err     error
	stash   []byte      // read from r, not handed on yet
	chunk   *[]byte     // the pooled buffer stash is in (fill), or nil
	stashed atomic.Bool // len(stash) > 0, for waitReadable outside the library's reads
}

func (f *frameReader) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	var n int
	var err error
	if len(f.stash) == 0 && len(p) < wsReadChunk {
		// A small read (a frame header, a small payload) takes what
		// the socket has into a pooled chunk, kept only while its bytes
		// wait: an idle socket holds no read buffer.
		f.fill()
	}
	fromStash := len(f.stash) > 0
	if fromStash {
		n = copy(p, f.stash)
	} else {
		n, err = f.r.Read(p)
	}
	// Follow the frames in what was read; hand on only what comes before
	// a refused header, and nothing past the end of a frame.
	start := 0 // where the header being parsed began in p (0: in an earlier read)
	end := n
	for i := 0; i < n; {
		if f.payload > 0 {
			skip := int(min(f.payload, int64(n-i)))
			f.payload -= int64(skip)
			i += skip
			if f.payload == 0 {
				end = i
				break
			}
			continue
		}
		if f.hdrLen == 0 {
			start = i
		}
		f.hdr[f.hdrLen] = p[i]
		f.hdrLen++
		i++
		if f.headerNeed() > 0 {
			continue
		}
		if ferr := f.endHeader(); ferr != nil {
			f.err = ferr
			return start, ferr
		}
		if f.payload == 0 {
			end = i
			break
		}
	}
	if fromStash {
		f.unread(f.stash[end:])
	} else if end < n {
		f.unread(bytes.Clone(p[end:n]))
	}
	return end, err
}

// fill reads what the socket has into a pooled chunk, the stash. An
// error is left for the next read of the socket to meet again.
func (f *frameReader) fill() {
	chunk := readBuffers.Get().(*[]byte)
	n, _ := f.r.Read((*chunk)[:cap(*chunk)])
	if n == 0 {
		readBuffers.Put(chunk)
		return
	}
	f.chunk = chunk
	f.stash = (*chunk)[:n]
	f.stashed.Store(true)
}

// wholeMessageStashed reports whether, between frames, the stash starts
// with a whole data frame that is a message by itself (final, text or
// binary): reading it needs nothing more from the socket.
func (f *frameReader) wholeMessageStashed() bool {
	s := f.stash
	if f.hdrLen != 0 || f.payload != 0 || len(s) < 2 || s[0]&wsFin == 0 {
		return false
	}
	if op := s[0] & 0x0f; op != wsOpText && op != wsOpBinary {
		return false
	}
	n, length := 2, uint64(s[1]&0x7f)
	switch length {
	case 126:
		n += 2
		if len(s) < n {
			return false
		}
		length = uint64(binary.BigEndian.Uint16(s[2:]))
	case 127:
		n += 8
		if len(s) < n {
			return false
		}
		length = binary.BigEndian.Uint64(s[2:])
	}
	if s[1]&0x80 != 0 {
		n += 4 // the masking key
	}
	return len(s) >= n && uint64(len(s)-n) >= length
}

// unread makes b what the next reads hand on first.
func (f *frameReader) unread(b []byte) {
	if len(b) == 0 {
		b = nil // an idle socket keeps no buffer
		if f.chunk != nil {
			readBuffers.Put(f.chunk)
			f.chunk = nil
		}
	}
	f.stash = b
	f.stashed.Store(b != nil)
}

// headerNeed is how many more bytes the current header needs (its size is
// known once its first two bytes are).
func (f *frameReader) headerNeed() int {
	if f.hdrLen < 2 {
		return 2 - f.hdrLen
	}
	size := 2
	switch f.hdr[1] & 0x7f {
	case 126:
		size += 2
	case 127:
		size += 8
	}
	if f.hdr[1]&0x80 != 0 {
		size += 4 // masking key
	}
	return size - f.hdrLen
}

func (f *frameReader) endHeader() error {
	length := int64(f.hdr[1] & 0x7f)
	switch length {
	case 126:
		length = int64(f.hdr[2])<<8 | int64(f.hdr[3])
	case 127:
		var u uint64
		for _, b := range f.hdr[2:10] {
			u = u<<8 | uint64(b)
		}
		if u > 1<<62 {
			return errFrameTooBig
		}
		length = int64(u)
	}
	opcode := f.hdr[0] & 0x0f
	// Control frames (8 and up) are bounded by readHeader (125 bytes).
	if opcode < 8 && f.limit > 0 && length > f.limit {
		return errFrameTooBig
	}
	f.hdrLen, f.payload = 0, length
	return nil
}
