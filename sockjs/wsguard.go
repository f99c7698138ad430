package sockjs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
)

// Input checks of websocket frames that coder/websocket does not make.
//
// Its read limit counts bytes as they arrive: a frame header announcing
// 2^62 bytes is only refused after limit bytes of payload were read. A
// frameGuard sits between the hijacked connection and the library and
// refuses such a frame at its header. Compression is not negotiated (the
// AcceptOptions default), so a frame's length is its message bytes. The
// library does not check that text messages are UTF-8 either (RFC 6455
// section 8.1); readMessage does and closes with CodeInvalidUTF8.

// errInvalidUTF8: a text message that is not UTF-8.
var errInvalidUTF8 = errors.New("sockjs: websocket text message is not UTF-8")

// errFrameTooBig: a frame header announced more than the read limit.
var errFrameTooBig = fmt.Errorf("sockjs: websocket frame header announces too many bytes: %w", errMessageTooBig)

// frameGuard is the ResponseWriter given to websocket.Accept: its Hijack
// hands the library a connection whose reads pass a frameReader.
type frameGuard struct {
	http.ResponseWriter
	limit int64
	conn  net.Conn // set by Hijack: the hijacked connection, for its deadlines
}

func (g *frameGuard) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(g.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// What the server had buffered beyond the handshake goes through the
	// guard too. The socket gets small buffers of its own: an idle one
	// holds them, and net/http's (4 KiB each) go with its goroutine (see
	// runWebsocket).
	buffered, _ := brw.Reader.Peek(brw.Reader.Buffered())
	gc := &guardedConn{Conn: conn, fr: frameReader{r: io.MultiReader(bytes.NewReader(bytes.Clone(buffered)), conn), limit: g.limit}}
	g.conn = gc
	return gc, bufio.NewReadWriter(bufio.NewReaderSize(gc, wsReadBuffer), bufio.NewWriterSize(gc, wsWriteBuffer)), nil
}

// A websocket's buffers. A frame that fits the write buffer goes out in
// one write, a bigger one in two (the buffer, then the rest); a read
// bigger than the read buffer goes straight into the message.
const (
	wsReadBuffer  = 512
	wsWriteBuffer = 1 << 10
)

type guardedConn struct {
	net.Conn
	fr frameReader
}

func (c *guardedConn) Read(p []byte) (int, error) { return c.fr.Read(p) }

// frameReader passes a client's RFC 6455 byte stream through unchanged
// while following its frame boundaries; a data frame whose header
// announces more than limit payload bytes ends the stream with
// errFrameTooBig before any of that payload is read.
type frameReader struct {
	r       io.Reader
	limit   int64
	hdr     [14]byte // the header being read
	hdrLen  int
	payload int64 // payload bytes left in the current frame
	err     error
}

func (f *frameReader) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.r.Read(p)
	// Follow the frames in what was read; hand on only what comes before
	// a refused header.
	start := 0 // where the header being parsed began in p (0: in an earlier read)
	for i := 0; i < n; {
		if f.payload > 0 {
			skip := int(min(f.payload, int64(n-i)))
			f.payload -= int64(skip)
			i += skip
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
	}
	return n, err
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
	// Control frames (8 and up) are bounded by the library (125 bytes).
	if opcode < 8 && f.limit > 0 && length > f.limit {
		return errFrameTooBig
	}
	f.hdrLen, f.payload = 0, length
	return nil
}
