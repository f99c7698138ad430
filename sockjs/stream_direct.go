package sockjs

import (
	"context"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// Direct stream writes: a channel message for an xhr-streaming or
// eventsource response whose engine is parked goes onto the socket from
// the fan-out's goroutine, with one write that does not block, instead of
// waking the stream's goroutine to write it through net/http (the wake-up
// and net/http's buffered, chunked writer were a fifth of a delivery's
// CPU). Only what the socket takes at once is written so; a socket that
// takes nothing leaves the message to the engine, as before, and one that
// takes part of it leaves the engine the rest, which it writes before
// anything else. The engine and the fan-out never write at the same time:
// the fan-out writes only while the engine is parked
// (receiverChannels.parked, under receiverChannels.mu), and the engine
// unparks before it does anything else.

// connKey is the context key of ConnContext.
type connKey struct{}

// ConnContext, set as the http.Server's ConnContext, tells a node's
// streams (xhr-streaming, eventsource) which connection they answer on, so
// that channel messages can be written to an idle stream's socket at once
// (see above). Without it a stream's messages go through its goroutine.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// directStream is a stream's side of direct writes. Its fields, and the
// httpSink's it touches (written, deadlineSet, buf, frame), belong to whoever
// may write: the fan-out while the engine is parked, the engine otherwise.
type directStream struct {
	hr      *httpSink
	conn    net.Conn
	raw     syscall.RawConn
	chunked bool // the response is chunked (else it ends with the connection)
	try     socketWrite
	// rest is the end of a write the socket took only part of, and
	// restItem its message: the engine writes it before anything else.
	rest     []byte
	restItem chanItem
	// lastWrite is the engine's (receiverEngine.lastWrite): a direct
	// write counts for the heartbeat.
	lastWrite *atomic.Int64
}

// newDirectStream returns the direct writer of a stream answering r on w,
// or nil when its connection is not known (no ConnContext), not a plain
// socket (TLS), or not HTTP/1, or w is not net/http's own HTTP/1 writer:
// only then are the bytes the handler writes the bytes on the wire (a
// wrapper could compress them).
func newDirectStream(r *http.Request, w http.ResponseWriter, hr *httpSink, lastWrite *atomic.Int64) *directStream {
	conn, _ := r.Context().Value(connKey{}).(net.Conn)
	if conn == nil || r.ProtoMajor != 1 || r.Method == http.MethodHead || reflect.TypeOf(w).String() != "*http.response" {
		return nil
	}
	raw := rawSocket(conn)
	if raw == nil {
		return nil
	}
	ds := &directStream{
		hr: hr, conn: conn, raw: raw, lastWrite: lastWrite,
		// As net/http frames it: chunked from HTTP/1.1 unless the
		// response ends with the connection.
		chunked: r.ProtoAtLeast(1, 1) && !hr.closeDelimited,
	}
	ds.try.fn = ds.try.do
	return ds
}

// directOutcome is what a direct write did.
type directOutcome int

const (
	directNone    directOutcome = iota // nothing was written: the engine writes the message
	directWritten                      // the socket took it all
	directPartial                      // the socket took part of it: rest holds the end
)

// chunkRoom is what a chunk's header takes at most (the size in hex,
// CRLF), left free before the body so the header goes in front of it
// without a copy of the body.
const chunkRoom = 8 + 2

// write tries to write msg as one frame without blocking; the caller holds
// receiverChannels.mu with the engine parked. (The sink's buffers are the
// engine's only while it is unparked.)
func (ds *directStream) write(msg string) directOutcome {
	hr := ds.hr
	hr.frame = appendMessageFrame(hr.frame[:0], []string{msg})
	var room [chunkRoom]byte
	hr.buf = hr.wrap(append(hr.buf[:0], room[:]...), hr.frame)
	body := len(hr.buf) - chunkRoom
	wire := hr.buf[chunkRoom:]
	if ds.chunked {
		header := append(strconv.AppendInt(room[:0], int64(body), 16), '\r', '\n')
		start := chunkRoom - len(header)
		copy(hr.buf[start:], header)
		hr.buf = append(hr.buf, '\r', '\n')
		wire = hr.buf[start:]
	}
	ds.try.wire = wire
	err := ds.raw.Control(ds.try.fn)
	n, werr := ds.try.n, ds.try.err
	ds.try.wire, ds.try.err = nil, nil
	if err != nil || werr != nil || n <= 0 {
		// EAGAIN, or an error the engine's own write will meet.
		return directNone
	}
	now := time.Now()
	hr.setDeadlineAt(now) // so that net/http's end of the response has one
	ds.lastWrite.Store(int64(now.Sub(engineEpoch)))
	hr.written += body // as writeFrame counts: without the chunk's framing
	hr.stats.sent.Add(1)
	if n < len(wire) {
		ds.rest = wire[n:]
		return directPartial
	}
	return directWritten
}

// finishRest writes what the socket did not take of the last direct
// write, blocking as the engine's writes do; the engine calls it before
// it writes anything else. item is the message it ended, to be marked
// written (ok false: there was none).
func (ds *directStream) finishRest() (item chanItem, ok bool, err error) {
	if ds == nil || len(ds.rest) == 0 {
		return chanItem{}, false, nil
	}
	ds.hr.setDeadline()
	_, err = ds.conn.Write(ds.rest)
	ds.rest = nil
	item, ds.restItem = ds.restItem, chanItem{}
	return item, err == nil, err
}
