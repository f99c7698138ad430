package sockjs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The hijacked connection of an RFC 6455 websocket (rfc6455.go parses
// its frames and closes it).
//
// The read side: the socket's reads (socketReader) and the wait until it
// has something to read (waitReadable).
//
// The write side: Shoal frames its outgoing text messages itself
// (wsFrame): a channel message's frame, header included, is encoded once
// and the same bytes go to every subscriber; and a frame can be offered
// to the socket without blocking (tryWriteFrame), so the fan-out writes to
// an idle socket itself, with one syscall and no goroutine woken. Control
// frames (pong, close) go through writeControl; nothing follows a close.

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

// wsSocket is the hijacked connection as the websocket's reader and
// writer see it.
type wsSocket struct {
	net.Conn
	raw syscall.RawConn // the socket, for writes that must not block; nil without

	// wmu is held while a frame is written, so frames never interleave;
	// it guards rest, closeSent and werr.
	wmu  sync.Mutex
	rest []byte // the end of a frame tryWriteFrame began, not yet taken by the socket
	// handshake: the 101 response, written with the first frame (or
	// alone by a writeFrame of nil); its buffer has room for that frame.
	handshake []byte
	closeSent bool // the close frame is written: no frame may follow
	// werr is the first write error: part of a frame may have gone out,
	// so nothing more can be written (the close then fails at once and
	// ends the socket, instead of waiting on a client that reads
	// nothing).
	werr error
	try  *socketWrite // made at the first write
	rd   *socketRead  // made at the first read; the reader's
	wait *socketWait  // made at the first waitReadable; the reader's
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
// connection's writes are serialized by wsSocket.wmu.
type socketWrite struct {
	fn   func(fd uintptr) // do, bound once
	wire []byte
	n    int
	err  error
}

func (w *socketWrite) do(fd uintptr) {
	w.n, w.err = writeNonblocking(fd, w.wire)
}

// socketWait is waitReadable's wait, kept like socketWrite.
type socketWait struct {
	fn   func(fd uintptr) bool // ready, bound once
	into *stashReader          // the reader's stash, empty while it waits
}

// ready is asked by the poller whether to stop waiting: it reads what the
// socket has into a pooled chunk, the stash of the message's read, and
// says no only if there was nothing (a spurious wake-up waits on). One
// system call then both ends the wait and reads, where a peek that found
// bytes was followed by their read.
func (w *socketWait) ready(fd uintptr) bool {
	chunk := readBuffers.Get().(*[]byte)
	n, err := readNonblocking(fd, (*chunk)[:cap(*chunk)])
	if err == syscall.EAGAIN {
		readBuffers.Put(chunk)
		return false
	}
	n, err = readResult(n, err)
	w.into.took(chunk, n, err)
	return true
}

// waitReadable returns once the client has sent something or the
// connection has ended (false), or, with idleAfter > 0, once the socket
// has stayed quiet for up to idleAfter (true): the reader may then give
// its goroutine up to the node's readPoller. The reader calls it between
// messages, with nothing in into, its stash (rfc6455Conn.waitReadable),
// where what the wait read goes.
func (c *wsSocket) waitReadable(idleAfter time.Duration, into *stashReader) (idle bool) {
	if c.raw == nil {
		return false
	}
	if c.wait == nil {
		c.wait = &socketWait{}
		c.wait.fn = c.wait.ready
	}
	if idleAfter > 0 && !c.idleDeadline.Swap(true) {
		// Set once per quiet spell, not per message: while messages
		// come, the deadline stays, and the messages' reads never see
		// it (socketReader).
		c.Conn.SetReadDeadline(time.Now().Add(idleAfter))
	}
	c.wait.into = into
	err := c.raw.Read(c.wait.fn) // another error: the message's read meets it too
	c.wait.into = nil
	if idleAfter > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		c.clearIdleDeadline()
		return true
	}
	return false
}

// clearIdleDeadline lifts waitReadable's deadline.
func (c *wsSocket) clearIdleDeadline() {
	c.idleDeadline.Store(false)
	c.Conn.SetReadDeadline(time.Time{})
}

// socketReader reads the socket for stashReader. The deadline of
// waitReadable's wait may pass while a message is read: the read then
// goes on without it.
type socketReader struct{ c *wsSocket }

func (r socketReader) Read(p []byte) (int, error) {
	for {
		n, err := r.c.read(p)
		if n == 0 && r.c.idleDeadline.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
			r.c.clearIdleDeadline()
			continue
		}
		return n, err
	}
}

// socketRead is one read of the socket, kept with its connection as
// socketWrite is.
type socketRead struct {
	fn  func(fd uintptr) bool // do, bound once
	buf []byte
	n   int
	err error
}

// do reads what the socket has; false: nothing yet, the poller waits.
func (r *socketRead) do(fd uintptr) bool {
	n, err := readNonblocking(fd, r.buf)
	if err == syscall.EAGAIN {
		return false
	}
	r.n, r.err = max(n, 0), err
	return true
}

// read reads the socket as net.Conn.Read does (io.EOF at its end), the
// read itself made by readNonblocking (see there why) when the connection
// is the socket.
func (c *wsSocket) read(p []byte) (int, error) {
	if c.raw == nil || len(p) == 0 {
		return c.Conn.Read(p)
	}
	if c.rd == nil {
		c.rd = &socketRead{}
		c.rd.fn = c.rd.do
	}
	c.rd.buf, c.rd.n, c.rd.err = p, 0, nil
	err := c.raw.Read(c.rd.fn) // the connection's read deadline and close end the wait
	n, rerr := c.rd.n, c.rd.err
	c.rd.buf, c.rd.err = nil, nil
	if err != nil {
		return 0, err
	}
	return readResult(n, rerr)
}

// readResult is what net.Conn.Read returns for n bytes read and err,
// readNonblocking's.
func readResult(n int, err error) (int, error) {
	switch {
	case err != nil:
		return 0, os.NewSyscallError("read", err)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// writeControl writes a control frame (a pong, a close) with payload,
// at most 125 bytes, unless the close frame is out already.
func (c *wsSocket) writeControl(op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	if op == wsOpClose {
		c.closeSent = true
	}
	var frame [2 + wsMaxControl]byte
	frame[0], frame[1] = wsFin|op, byte(len(payload))
	return c.writeBounded(frame[:2+copy(frame[2:], payload)], wsCloseWait)
}

// writeFrame writes wire, a whole frame (wsFrame), after what an earlier
// tryWriteFrame left; it fails if the client has not taken them within
// d. A nil wire writes only the rest.
func (c *wsSocket) writeFrame(wire []byte, d time.Duration) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	return c.writeBounded(wire, d)
}

// writeBounded writes what tryWriteFrame left, then p, or fails with the
// first write error (part of a frame may have gone out, so nothing more
// can be written) or once the client has not taken them within d. A
// socket with room takes them at once, and no deadline is set: a write
// deadline costs two runtime timer updates per write. wmu should be held.
func (c *wsSocket) writeBounded(p []byte, d time.Duration) error {
	if c.werr != nil {
		return c.werr
	}
	if c.handshake != nil {
		p = append(c.handshake, p...)
		c.handshake = nil
	}
	rest := c.rest
	c.rest = nil
	if c.raw != nil {
		var err error
		if rest, err = c.writeOnce(rest); err == nil && len(rest) == 0 {
			p, err = c.writeOnce(p)
		}
		if err != nil {
			c.werr = err
			return err
		}
		if len(rest) == 0 && len(p) == 0 {
			return nil
		}
	}
	// Cleared after the write: a deadline long past must not meet
	// the next write.
	c.Conn.SetWriteDeadline(time.Now().Add(d))
	defer c.Conn.SetWriteDeadline(time.Time{})
	for _, b := range [2][]byte{rest, p} {
		if len(b) == 0 {
			continue
		}
		if _, err := c.Conn.Write(b); err != nil {
			c.werr = err
			return err
		}
	}
	return nil
}

// writeOnce offers p to the socket without blocking and returns what it
// did not take; a full socket buffer is no error. wmu should be held.
func (c *wsSocket) writeOnce(p []byte) ([]byte, error) {
	if len(p) == 0 {
		return p, nil
	}
	if c.try == nil {
		c.try = &socketWrite{}
		c.try.fn = c.try.do
	}
	c.try.wire = p
	err := c.raw.Control(c.try.fn)
	n, werr := c.try.n, c.try.err
	c.try.wire, c.try.err = nil, nil
	switch {
	case err != nil:
		return p, err
	case werr == syscall.EAGAIN:
		return p, nil
	case werr != nil:
		return p, werr
	}
	return p[n:], nil
}

// tryWriteFrame offers wire, a whole frame, to the socket without ever
// blocking. taken: the frame goes to the client; pending: the socket took
// only its start and the rest waits for writeFrame (the caller must make
// sure one follows). Not taken: nothing was written (no descriptor, a
// frame being written, a full socket buffer), so the caller writes it the
// blocking way.
func (c *wsSocket) tryWriteFrame(wire []byte) (taken, pending bool, err error) {
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
	if len(c.rest) > 0 || c.handshake != nil {
		return false, false, nil
	}
	left, err := c.writeOnce(wire)
	switch {
	case err != nil:
		c.werr = err
		return false, false, err
	case len(left) == len(wire):
		return false, false, nil // the socket buffer is full
	case len(left) > 0:
		c.rest = bytes.Clone(left) // wire is shared with other sockets
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
