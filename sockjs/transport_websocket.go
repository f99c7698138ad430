package sockjs

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shoal-rt/shoal/store"
)

// The SockJS websocket transport (GET <session>/websocket: frames are
// SockJS frames, incoming messages JSON) and the raw websocket (GET
// <prefix>/websocket: one message per websocket message, no framing).
//
// A websocket session cannot move to another node, and the protocol lets
// two websockets share a client session id, so each websocket gets a fresh
// session id. Its receiver lease is sticky: its node is where senders
// elsewhere wake it. Messages sent on this node skip the store (wsWriter).

// wsConn is one accepted websocket, RFC 6455 (rfc6455.go) or Hixie-76.
type wsConn interface {
	// readMessage returns the next message, which the caller may hand to
	// releaseMessage once done with it. errMessageTooBig when it exceeds
	// the limit, errInvalidUTF8 for text that is not UTF-8; any other
	// error ends the connection. A read waiting for the client ends when
	// close is called.
	readMessage() ([]byte, error)
	// releaseMessage takes back the message readMessage returned last,
	// whose bytes the caller no longer refers to.
	releaseMessage(msg []byte)
	// waitReadable returns once the client has sent something or the
	// connection has ended (false), or, with idleAfter > 0, once it
	// has been quiet for up to idleAfter (true). A connection without
	// a socket (socket) returns false at once.
	waitReadable(idleAfter time.Duration) (idle bool)
	// socket returns the connection's socket, for the node's
	// readPoller, or nil: its reader then keeps its goroutine.
	socket() syscall.RawConn
	// messageBuffered reports whether a whole message has been read
	// from the socket already: readMessage returns it without waiting.
	messageBuffered() bool
	// writeFrame sends wire, one text message framed by wsFrame (a
	// Hixie-76 connection frames its payload its own way), failing if
	// the client has not taken it within d. A nil wire only finishes
	// what tryWriteFrame left pending.
	writeFrame(wire []byte, d time.Duration) error
	// tryWriteFrame sends wire only if the socket takes it without
	// blocking. taken: it goes to the client, and pending: its end waits
	// for the next writeFrame. Not taken: nothing was written.
	tryWriteFrame(wire []byte) (taken, pending bool, err error)
	// close sends a close (code and reason where the protocol has them)
	// and starts releasing the connection. Only the first call counts.
	close(code int, reason string)
	// finishClose ends what close started (an RFC 6455 closing
	// handshake waits, bounded, for the client's close frame), closing
	// first if no one has. The websocket's last reader calls it.
	finishClose()
}

var errMessageTooBig = errors.New("sockjs: websocket message too big")

// headerHasToken reports whether a comma-separated header holds token.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func (e *Endpoint) serveWebsocket(w http.ResponseWriter, r *http.Request, raw bool) {
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		httpError(w, http.StatusBadRequest, `Can "Upgrade" only to "WebSocket".`)
		return
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") {
		httpError(w, http.StatusBadRequest, `"Connection" must be "Upgrade".`)
		return
	}
	if e.settings.CheckOrigin != nil && !e.settings.CheckOrigin(r) {
		httpError(w, http.StatusForbidden, "Origin not allowed.")
		return
	}
	if !e.node.newPerIP.allow(e.node.clientIP(r), time.Now()) {
		tooManyNewSessions(w) // every websocket opens a new session
		return
	}
	switch r.Header.Get("Sec-WebSocket-Version") {
	case "":
		if raw {
			httpError(w, http.StatusBadRequest, "Only supported WebSocket protocol is RFC 6455.")
			return
		}
		e.serveHixie(w, r)
		return
	case "7", "8":
		// hybi-07 and -08 frame like RFC 6455 (13); only the handshake's
		// version number differs.
		r.Header.Set("Sec-WebSocket-Version", "13")
	}
	// Origins are checked above; oversized frames are refused at their
	// header (rfc6455Conn.readHeader).
	conn, err := acceptWebsocket(w, r, e.settings.MaxMessageSize)
	if err != nil {
		return // acceptWebsocket has answered the request
	}
	e.runWebsocket(r, conn, raw)
}

// openWire is the open frame, framed for the wire.
var openWire = wsFrameOf([]byte(openFrame))

// wsItem is one Send or Broadcast to a live websocket. frame, when set, is
// the frame of its messages, encoded once for many sessions (wsFrame).
// A channel message is one (oneItem), not a slice of one: the fan-out
// would allocate that for each subscriber.
type wsItem struct {
	msgs   []string
	one    string // the message, when single
	single bool
	frame  []byte
}

// oneItem is the item of one message and its frame.
func oneItem(msg string, frame []byte) wsItem { return wsItem{one: msg, single: true, frame: frame} }

// count is how many messages it holds.
func (it *wsItem) count() int {
	if it.single {
		return 1
	}
	return len(it.msgs)
}

// first is its first message.
func (it *wsItem) first() string {
	if it.single {
		return it.one
	}
	return it.msgs[0]
}

// appendTo appends its messages to msgs.
func (it *wsItem) appendTo(msgs []string) []string {
	if it.single {
		return append(msgs, it.one)
	}
	return append(msgs, it.msgs...)
}

// wsWriter is the single writer of one websocket: sends on this node go
// into its bounded queue; it also drains the store when woken. It runs the
// receiver engine's steps only while there is something to do: an event
// (a send, a wake-up, a timer, the reader's end, the node's close) starts
// a goroutine that handles what has piled up and exits, so an idle socket
// costs no parked goroutine, only its timers. A channel message for an
// idle writer is written by the fan-out itself if the socket takes it at
// once (writeNow).
type wsWriter struct {
	e    *Endpoint
	conn wsConn
	raw  bool
	key  string
	// mu guards items and itemBytes: what waits to be written, at most
	// MaxQueuedMessages items and MaxQueuedBytes of messages. A slice, not
	// a buffered channel, so an idle socket holds no queue memory (a
	// 1024-slot channel cost ~48 KiB). It guards wrote too.
	mu        sync.Mutex
	items     []wsItem
	itemBytes int
	spare     []wsItem      // the writer's last batch, reused by the next
	wrote     chan struct{} // capacity 1: the writer has written items; made by the first waitForRoom that waits
	stop      chan struct{} // closed by finish: the reader has ended
	closed    atomic.Bool   // no more messages will be written
	// overflowed: a send found the queue full; the writer closes the
	// session.
	overflowed atomic.Bool

	// The writer's own: buffers reused from one write to the next, and
	// how the session closed.
	buf           []byte
	batch         []string
	sessionCode   int
	sessionReason string

	// evMu guards events, running and ended: the events not yet
	// handled, whether a goroutine is handling them, and whether the
	// writer has ended (events are ignored from then on); and done,
	// closed when the writer has finished, its channel made only when
	// endWebsocket waits (an idle socket holds none).
	evMu    sync.Mutex
	events  wsEvent
	running bool
	ended   bool
	done    doneOnDemand

	// en is the receiver engine: its lease and localReceiver are the
	// websocket's, set when the writer is made; the rest at start.
	en     receiverEngine
	reader *wsReader

	finishOnce  sync.Once
	closeCode   int // websocket close code, set before stop is closed
	closeReason string
}

func (ww *wsWriter) enqueue(it wsItem) error {
	if ww.closed.Load() {
		return ErrSessionClosed
	}
	if ww.writeNow(it) {
		return nil
	}
	size := len(it.one)
	for _, m := range it.msgs {
		size += len(m)
	}
	ww.mu.Lock()
	if len(ww.items) < ww.e.settings.MaxQueuedMessages && ww.itemBytes+size <= ww.e.settings.MaxQueuedBytes {
		ww.items = append(ww.items, it)
		ww.itemBytes += size
		ww.mu.Unlock()
		ww.kick(wsEvLocal)
		return nil
	}
	ww.mu.Unlock()
	ww.overflowed.Store(true)
	ww.kick(wsEvLocal)
	return ErrQueueOverflow
}

// wsSlowHandler: a websocket's reader that saw a handler take longer
// while it held back replies (wsWriter.cork) holds them back no more, so
// that a slow handler delays the replies before it once at most.
const wsSlowHandler = 100 * time.Microsecond

// cork takes the writer's part for the websocket's reader while it
// handles messages the client sent together: what is sent meanwhile
// queues (writeNow finds the writer running), and uncork writes it as
// one frame. false: the writer is busy or ended, and sends go as usual.
// The reader must uncork before it waits for anything (waitForRoom, the
// socket).
func (ww *wsWriter) cork() bool {
	ww.evMu.Lock()
	defer ww.evMu.Unlock()
	if ww.running || ww.ended || ww.events != 0 {
		return false
	}
	ww.running = true
	return true
}

// uncork writes what was queued while corked, on the reader's goroutine
// when that is all there is to do, and gives the writer's part back (to
// a writer goroutine if other events came meanwhile, as kick would).
func (ww *wsWriter) uncork() {
	ww.evMu.Lock()
	local := ww.events == wsEvLocal
	if local {
		ww.events = 0
	}
	ww.evMu.Unlock()
	if local {
		if end, stop := ww.en.wrote(ww.writeLocal()); stop {
			ww.end(end)
			return
		}
	}
	ww.evMu.Lock()
	ww.handOn()
}

// handOn, called with evMu held (and released), gives the writer's part
// to a writer goroutine when events wait, or leaves the writer idle.
func (ww *wsWriter) handOn() {
	if ww.events == 0 {
		ww.running = false
		ww.evMu.Unlock()
		return
	}
	ww.evMu.Unlock()
	go ww.handleEvents()
}

// writeNow writes an item on the caller's goroutine (the fan-out's, a
// sender's) when the writer is idle, nothing waits before the item, and
// the socket takes the frame without blocking: a message to a live
// websocket then costs one syscall and wakes no goroutine. It reports
// false when the item must be queued instead. A socket that took only
// part of the frame, or a write that failed, starts the writer, which
// finishes it or ends the socket.
func (ww *wsWriter) writeNow(it wsItem) bool {
	ww.evMu.Lock()
	if ww.running || ww.ended || ww.events != 0 {
		ww.evMu.Unlock()
		return false
	}
	ww.running = true // the writer's part, for this write
	ww.evMu.Unlock()
	var taken, pending bool
	var err error
	if n, _ := ww.queued(); n == 0 && (!ww.raw || it.count() == 1) {
		// The writer's buffer is this goroutine's while it holds the
		// writer's part.
		wire := it.frame
		switch {
		case ww.raw:
			ww.buf = append(append(ww.buf[:0], wsRoom[:]...), it.first()...)
			wire = wsFrame(ww.buf)
		case wire == nil:
			ww.batch = it.appendTo(ww.batch[:0])
			wire = ww.encode(ww.batch)
			clear(ww.batch)
		}
		taken, pending, err = ww.conn.tryWriteFrame(wire)
		if cap(ww.buf) > 64<<10 {
			ww.buf = nil // an idle socket keeps no big message's buffer
		}
	}
	if taken {
		ww.en.noteWrite()
		ww.e.node.stats.sent.Add(uint64(it.count()))
	}
	ww.evMu.Lock()
	switch {
	case err != nil:
		ww.events |= wsEvWriteFailed
	case pending:
		ww.events |= wsEvFlush
	}
	if ww.events == 0 {
		ww.running = false
		ww.evMu.Unlock()
	} else {
		ww.evMu.Unlock()
		go ww.handleEvents() // as kick would
	}
	return taken || err != nil
}

func (ww *wsWriter) isClosed() bool { return ww.closed.Load() }

// queued reports how many items wait, and their message bytes.
func (ww *wsWriter) queued() (items, bytes int) {
	ww.mu.Lock()
	defer ww.mu.Unlock()
	return len(ww.items), ww.itemBytes
}

// take removes and returns every waiting item. Only the writer calls it;
// it hands the slice back with release once written.
func (ww *wsWriter) take() []wsItem {
	ww.mu.Lock()
	defer ww.mu.Unlock()
	items := ww.items
	ww.items, ww.spare, ww.itemBytes = ww.spare[:0], nil, 0
	return items
}

// release keeps a written batch's slice for reuse, unless a burst made it
// big: an idle socket should not keep a burst's memory.
func (ww *wsWriter) release(items []wsItem) {
	if cap(items) > 64 {
		return
	}
	clear(items)
	ww.mu.Lock()
	ww.spare = items[:0]
	ww.mu.Unlock()
}

// waitForRoom holds the reader back while the write queue is more than
// half full (in items or bytes): a client that floods its own session
// (every message echoed) is slowed down by TCP flow control instead of
// overflowing the queue. Other senders are never held back.
func (ww *wsWriter) waitForRoom(ctx context.Context) {
	for !ww.closed.Load() {
		ww.mu.Lock()
		if !ww.halfFullLocked() {
			ww.mu.Unlock()
			return
		}
		if ww.wrote == nil {
			ww.wrote = make(chan struct{}, 1)
		}
		wrote := ww.wrote
		ww.mu.Unlock()
		select {
		case <-wrote:
		case <-ctx.Done():
			return
		case <-time.After(ww.e.settings.WriteTimeout):
			return
		}
	}
}

// halfFullLocked reports whether the queue is more than half full, in
// items or bytes. mu must be held.
func (ww *wsWriter) halfFullLocked() bool {
	return len(ww.items) > ww.e.settings.MaxQueuedMessages/2 || ww.itemBytes > ww.e.settings.MaxQueuedBytes/2
}

// halfFull is halfFullLocked for the reader while it holds replies back
// (cork): past half, it writes them, as it would wait for room otherwise.
func (ww *wsWriter) halfFull() bool {
	ww.mu.Lock()
	defer ww.mu.Unlock()
	return ww.halfFullLocked()
}

// finish tells the writer the reader has ended, and how to close.
func (ww *wsWriter) finish(code int, reason string) {
	ww.finishOnce.Do(func() {
		ww.closeCode, ww.closeReason = code, reason
		close(ww.stop)
	})
	ww.kick(wsEvStop)
}

func (e *Endpoint) runWebsocket(r *http.Request, conn wsConn, raw bool) {
	n := e.node
	transport := TransportWebsocket
	if raw {
		transport = TransportRawWebsocket
	}
	// Close waits for the websocket to close its session and detach.
	if !n.enter() {
		conn.close(CodeGoingAway, ReasonGoingAway)
		conn.finishClose()
		return
	}
	id := newULID()
	key := e.keyOf(id)
	info, _ := json.Marshal(newConnectionInfo(r, transport, e.settings.InfoHeaders))
	rd, ww, lr := e.newWebsocket(conn, raw, key)
	n.register(lr)
	// ended undoes the above when the websocket has ended.
	ended := func() {
		n.unregister(lr)
		rd.stop()
		n.exit()
	}
	// The session is new: it is created with the lease taken, one store
	// operation (as an HTTP receiver creates its session), with the
	// receiver registered first so that the lease names a node that
	// knows it.
	ctx, cancel := n.opContext()
	created, err := n.store.Create(ctx, key, store.CreateOptions{DisconnectDelay: e.settings.DisconnectDelay, Info: info, Lease: &ww.en.lease})
	cancel()
	if err != nil || !created {
		n.log.Warn("sockjs: websocket session not created", "err", err)
		conn.close(1011, "Session store unavailable")
		conn.finishClose()
		ended()
		return
	}
	sess := e.sessionFor(id, key, info)
	sess.ws = ww
	unholding := n.stats.holding(transport)
	defer func() {
		if ended != nil {
			unholding()
			ended()
		}
	}()
	// OnOpen runs before the client sees the open frame, so nothing the
	// client does can reach a handler that has not finished opening (a
	// broadcast app must have registered the session first). What OnOpen
	// sends waits in the writer's queue until after "o".
	e.runOnOpen(sess)
	open := openWire // with the 101 before it
	if raw {
		open = nil // the 101 alone
	}
	if err := conn.writeFrame(open, e.settings.WriteTimeout); err != nil {
		ww.endUnstarted()
		conn.close(CodeInterrupted, ReasonInterrupted)
		e.endWebsocket(sess, ww, CodeInterrupted, ReasonInterrupted)
		conn.finishClose()
		return
	}
	ww.start(rd)

	// The reads run on a goroutine of their own and this one, net/http's,
	// returns: its stack, grown by the handshake, the store calls and
	// OnOpen, ends with it, and so does what net/http kept of the
	// connection. An idle socket holds its own small buffers, and no
	// goroutine once it has been quiet for a while (wsReader).
	rd.sess = sess
	end := ended
	rd.end = func() {
		unholding()
		end()
	}
	ended = nil // the reads end it now
	if !n.goFunc(rd.run) {
		rd.run() // the node is closing: the writer ends the socket
	}
}

// newWebsocket makes the reader, the writer and the registry entry of a
// websocket whose session is key.
func (e *Endpoint) newWebsocket(conn wsConn, raw bool, key string) (*wsReader, *wsWriter, *localReceiver) {
	rd := &wsReader{e: e, conn: conn, raw: raw}
	rd.ctx, rd.cancel = context.WithCancel(context.Background())
	rd.poll.raw, rd.poll.fd, rd.poll.wake = conn.socket(), -1, rd.run
	ww := &wsWriter{
		e: e, conn: conn, raw: raw, key: key,
		stop: make(chan struct{}),
		// Events wait until start: what OnOpen sends goes after "o".
		running: true,
	}
	ww.en.lease = store.Lease{Node: e.node.id, Token: newULID(), TTL: e.node.cfg.LeaseTTL, Sticky: true}
	rd.ww = ww
	lr := newLocalReceiver(key, rd.ctx, ww)
	ww.en.lr = lr
	lr.chans = e.newReceiverChannels(lr, ww)
	return rd, ww, lr
}

// wsReader is the reading side of a websocket: it hands what the client
// sends to the handler and ends the websocket when the connection ends.
// It holds a goroutine only while the client sends: once the socket has
// been quiet for NodeConfig.WebsocketQuietAfter, the node's readPoller watches it instead and
// starts run again when something comes (Linux, a connection that is the
// socket itself; elsewhere the goroutine stays). Its goroutines belong to
// the node's lifecycle: runWebsocket entered the node for the websocket,
// and the last run exits it (end).
type wsReader struct {
	e      *Endpoint
	sess   *Session
	ww     *wsWriter
	conn   wsConn
	raw    bool
	ctx    context.Context // ends when the websocket has ended (stop)
	cancel context.CancelFunc
	end    func() // runWebsocket's part of the websocket's end
	poll   pollReader
	msgs   []string // the last frame's messages' slice, for the next frame's
}

// stop tells the reader the connection is done with: a reader waiting in
// the poller runs once more and meets the connection's end.
func (rd *wsReader) stop() {
	rd.cancel()
	rd.poll.stopped.Store(true)
	if rd.poll.raw != nil {
		if p := rd.e.node.pollerIfAny(); p != nil {
			p.stop(&rd.poll)
		}
	}
}

// run reads and hands on messages until the socket has been quiet for
// WebsocketQuietAfter (it returns, armed in the poller) or the connection
// ends (it ends the websocket's session).
func (rd *wsReader) run() {
	code, reason := CodeInterrupted, ReasonInterrupted
	idleAfter := time.Duration(0)
	if rd.poll.raw != nil && readPollSupported {
		idleAfter = rd.e.node.cfg.WebsocketQuietAfter
	}
	var c wsCork
	for {
		if c.corked && !rd.conn.messageBuffered() {
			rd.ww.uncork()
			c.corked, c.mark = false, 0
		}
		if !c.corked {
			rd.ww.waitForRoom(rd.ctx)
		}
		if !c.corked && rd.conn.waitReadable(idleAfter) {
			if p := rd.e.node.readPoller(); p != nil && p.arm(&rd.poll) {
				return // the poller starts run again
			}
			idleAfter = 0 // stopped or closing: wait here
			continue
		}
		msg, err := rd.conn.readMessage()
		if err != nil {
			code, reason = readEnd(err)
			break
		}
		if rd.raw {
			text := string(msg)
			rd.conn.releaseMessage(msg)
			rd.e.runOnMessage(rd.sess, text)
			continue
		}
		msgs, err := decodeWebsocketMessages(msg, rd.msgs) // copies what it keeps
		rd.conn.releaseMessage(msg)
		if err != nil {
			code, reason = CodeBrokenFraming, ReasonBrokenFraming
			break
		}
		if !c.corked && !c.slow && (len(msgs) > 1 || rd.conn.messageBuffered()) {
			c.corked = rd.ww.cork()
		}
		rd.handle(msgs, &c)
		// The handlers have the messages: keep the slice, not them, and
		// not a big frame's.
		clear(msgs)
		if cap(msgs) <= 64 {
			rd.msgs = msgs[:0]
		} else {
			rd.msgs = nil
		}
	}
	if c.corked {
		rd.ww.uncork()
	}
	rd.ww.finish(code, reason)
	rd.e.endWebsocket(rd.sess, rd.ww, code, reason)
	rd.conn.finishClose()
	rd.end()
}

// wsCork is the reader's hold on its writer (wsWriter.cork) while it
// handles messages the client sent together, so that their replies go out
// as one frame (uncork), one write instead of one each.
type wsCork struct {
	corked bool
	// slow: a handler took more than wsSlowHandler while corked, holding
	// back the replies before it: this reader corks no more.
	slow bool
	// mark: the engine's clock when the last corked handler ended (or
	// the first began); 0 when there is none. The time between two
	// handlers (reading the next frame from the stash) counts as the
	// next one's: one clock reading per message, not time.Now's two
	// and time.Since's one.
	mark time.Duration
}

// handle hands msgs, one frame's, to the handler, corked or not (c).
func (rd *wsReader) handle(msgs []string, c *wsCork) {
	for i, m := range msgs {
		if !c.corked {
			if i > 0 {
				// A frame of many messages, not corked (the writer was
				// busy): their replies must not overflow the queue.
				rd.ww.waitForRoom(rd.ctx)
			}
			rd.e.runOnMessage(rd.sess, m)
			continue
		}
		if c.mark == 0 {
			c.mark = time.Since(engineEpoch)
		}
		rd.e.runOnMessage(rd.sess, m)
		end := time.Since(engineEpoch)
		took := end - c.mark
		c.mark = end
		switch {
		case took > wsSlowHandler:
			rd.ww.uncork()
			c.corked, c.slow, c.mark = false, true, 0
		case rd.ww.halfFull():
			// A frame of many messages: their replies must not
			// overflow the queue they wait in.
			rd.ww.uncork()
			c.corked, c.mark = rd.ww.cork(), 0
		}
	}
}

// readEnd is the close code and reason for the error that ended a
// websocket's reads.
func readEnd(err error) (code int, reason string) {
	switch {
	case errors.Is(err, errMessageTooBig):
		return CodeMessageTooBig, ReasonMessageTooBig
	case errors.Is(err, errInvalidUTF8):
		return CodeInvalidUTF8, ReasonInvalidUTF8
	case errors.Is(err, io.EOF):
		return CodeNormal, ReasonNormal
	}
	var ce *wsCloseError
	if errors.As(err, &ce) && (ce.code == 1000 || ce.code == 1001) {
		return CodeNormal, ReasonNormal
	}
	return CodeInterrupted, ReasonInterrupted
}

// endWebsocket closes the session of a websocket that ended (it cannot be
// resumed), waits for its writer and releases the lease.
func (e *Endpoint) endWebsocket(sess *Session, ww *wsWriter, code int, reason string) {
	ww.closed.Store(true)
	ctx, cancel := e.node.opContext()
	defer cancel()
	sess.closeWith(ctx, code, reason)
	ww.finish(code, reason)
	select {
	case <-ww.writerDone():
	case <-time.After(e.settings.WriteTimeout + 5*time.Second):
	}
	if err := e.node.store.Detach(ctx, sess.key, ww.en.lease.Token); err != nil && !leaseGone(err) {
		e.node.log.Warn("sockjs: detach failed", "err", err)
	}
}

// wsEvent is a set of things for the writer to do.
type wsEvent uint16

const (
	wsEvWake        wsEvent = 1 << iota // the store may hold messages or a close
	wsEvClock                           // the engine's clock: a duty may be due
	wsEvLocal                           // sends on this node wait (or overflowed)
	wsEvStop                            // the reader has ended
	wsEvNodeClosing                     // the node is closing
	wsEvFlush                           // the socket took only part of a frame writeNow wrote
	wsEvWriteFailed                     // a write by writeNow failed
)

// start arms the writer's timers and lets it handle events, those that
// came before (what OnOpen sent) first.
func (ww *wsWriter) start(reader *wsReader) {
	e, n := ww.e, ww.e.node
	ww.reader = reader
	ww.en.n, ww.en.sink = n, ww
	ww.en.clientGone = ww.stop
	ww.en.recheck = n.cfg.WebsocketRecheckInterval
	if !ww.raw {
		ww.en.heartbeatDelay = e.settings.HeartbeatDelay
	}
	ww.en.startClock(func() { ww.kick(wsEvClock) })
	ww.evMu.Lock()
	select {
	case <-n.done:
		// Node.Close kicks the writers it finds registered; this one may
		// have registered after it looked.
		ww.events |= wsEvNodeClosing
	default:
	}
	// With nothing waiting (OnOpen sent nothing) the writer is idle before
	// the reader starts, so a first frame of several messages finds it
	// free to cork, whenever a writer goroutine would have run.
	ww.handOn()
}

// endUnstarted ends a writer that never started.
func (ww *wsWriter) endUnstarted() {
	ww.evMu.Lock()
	ww.ended = true
	ww.evMu.Unlock()
	ww.closed.Store(true)
	ww.markFinished()
}

// writerDone returns a channel closed once the writer has finished.
func (ww *wsWriter) writerDone() <-chan struct{} {
	ww.evMu.Lock()
	defer ww.evMu.Unlock()
	return ww.done.wait()
}

// markFinished records that the writer has finished, for writerDone.
func (ww *wsWriter) markFinished() {
	ww.evMu.Lock()
	defer ww.evMu.Unlock()
	ww.done.finish()
}

// kick records ev and starts a goroutine to handle it unless one runs.
// That goroutine belongs to the node's lifecycle through the websocket's
// reader, which waits for the writer to end (endWebsocket) and is itself
// waited for by Node.Close.
func (ww *wsWriter) kick(ev wsEvent) {
	ww.evMu.Lock()
	if ww.ended {
		ww.evMu.Unlock()
		return
	}
	ww.events |= ev
	if ww.running {
		ww.evMu.Unlock()
		return
	}
	ww.running = true
	ww.evMu.Unlock()
	go ww.handleEvents()
}

// handleEvents handles events until none is left, or the writer ends.
func (ww *wsWriter) handleEvents() {
	for {
		ww.evMu.Lock()
		ev := ww.events
		ww.events = 0
		if ev == 0 {
			ww.running = false
			ww.evMu.Unlock()
			return
		}
		ww.evMu.Unlock()
		if end, stop := ww.handle(ev); stop {
			ww.end(end)
			return
		}
	}
}

// handle does what ev asks, in the order the engine's loop would.
func (ww *wsWriter) handle(ev wsEvent) (receiverEnd, bool) {
	en := &ww.en
	if ev&wsEvWriteFailed != 0 {
		return endWriteFailed, true
	}
	if ev&wsEvFlush != 0 {
		if end, stop := en.wrote(false, ww.conn.writeFrame(nil, ww.e.settings.WriteTimeout)); stop {
			return end, true
		}
	}
	if ev&wsEvLocal != 0 {
		// Before an end too: what was sent before it goes out before the
		// close frame. A client that stops sending may still read the
		// replies to its last messages; a draining node's clients get
		// what was sent to them before its 1001.
		if end, stop := en.wrote(ww.writeLocal()); stop {
			return end, true
		}
	}
	switch {
	case ev&wsEvStop != 0:
		return endClientGone, true
	case ev&wsEvNodeClosing != 0:
		return endNodeClosing, true
	}
	return en.tickAndDrain(ev&wsEvWake != 0, ev&wsEvClock != 0)
}

// end ends the writer: it tells the client why, when the client is there
// to hear it, and closes the connection, which ends the reader too.
func (ww *wsWriter) end(why receiverEnd) {
	ww.evMu.Lock()
	ww.ended = true
	ww.evMu.Unlock()
	ww.en.clock.Stop()
	code, reason := CodeInterrupted, ReasonInterrupted
	switch why {
	case endClientGone:
		code, reason = ww.closeCode, ww.closeReason
	case endNodeClosing:
		sessClose(ww, CodeGoingAway, ReasonGoingAway)
		ww.writeClosed(CodeGoingAway, ReasonGoingAway)
		code, reason = CodeGoingAway, ReasonGoingAway
	case endSessionClosed:
		code, reason = ww.sessionCode, ww.sessionReason
		if !ww.raw {
			code, reason = CodeNormal, ReasonNormal
		}
	}
	ww.closed.Store(true)
	ww.conn.close(code, reason)
	ww.reader.stop()
	ww.markFinished()
}

// writeMessages implements receiverSink.
func (ww *wsWriter) writeMessages(msgs []string) (bool, error) {
	return false, ww.writeItems([]wsItem{{msgs: msgs}})
}

// writeLocal implements receiverSink. A queue that overflowed closes the
// session; the engine's next drain finds it closed and says so.
func (ww *wsWriter) writeLocal() (bool, error) {
	if ww.overflowed.CompareAndSwap(true, false) {
		sessClose(ww, CodeQueueOverflow, ReasonQueueOverflow)
	}
	items := ww.take()
	err := ww.writeItems(items)
	ww.release(items)
	if err != nil {
		return true, err
	}
	ww.mu.Lock()
	wrote := ww.wrote
	ww.mu.Unlock()
	if wrote != nil {
		select {
		case wrote <- struct{}{}:
		default:
		}
	}
	return false, nil
}

// writeHeartbeat implements receiverSink.
func (ww *wsWriter) writeHeartbeat() (bool, error) { return false, ww.write([]byte(heartbeatFrame)) }

// writeClose implements receiverSink: what was sent before the close goes out
// before its frame.
func (ww *wsWriter) writeClose(code int, reason string) {
	ww.writeItems(ww.take())
	ww.writeClosed(code, reason)
	ww.sessionCode, ww.sessionReason = code, reason
}

func sessClose(ww *wsWriter, code int, reason string) {
	ctx, cancel := ww.e.node.opContext()
	defer cancel()
	ww.e.sessionFor("", ww.key, nil).closeWith(ctx, code, reason)
}

// writeClosed tells a SockJS client why the session ended.
func (ww *wsWriter) writeClosed(code int, reason string) {
	ww.closed.Store(true)
	if !ww.raw {
		ww.write(closeFrame(code, reason))
	}
}

// writeItems writes items. One item with a frame encoded for many
// sockets goes out as is; anything else becomes one frame (one write, one
// syscall), which beats a shared encoding when several wait.
func (ww *wsWriter) writeItems(items []wsItem) error {
	if len(items) == 0 {
		return nil
	}
	if len(items) == 1 && items[0].frame != nil && !ww.raw {
		if err := ww.writeWire(items[0].frame); err != nil {
			return err
		}
		ww.e.node.stats.sent.Add(uint64(items[0].count()))
		return nil
	}
	batch := ww.batch[:0]
	for i := range items {
		batch = items[i].appendTo(batch)
	}
	if ww.raw {
		for _, m := range batch {
			ww.buf = append(append(ww.buf[:0], wsRoom[:]...), m...)
			if err := ww.writeWire(wsFrame(ww.buf)); err != nil {
				return err
			}
			ww.e.node.stats.sent.Add(1)
		}
	} else {
		if err := ww.writeWire(ww.encode(batch)); err != nil {
			return err
		}
		ww.e.node.stats.sent.Add(uint64(len(batch)))
	}
	// Keep small buffers for the next write; let a burst's go.
	clear(batch)
	ww.batch = batch[:0]
	if cap(ww.buf) > 64<<10 {
		ww.buf = nil
	}
	if cap(ww.batch) > 1024 {
		ww.batch = nil
	}
	return nil
}

// encode returns the frame of msgs, in the writer's buffer.
func (ww *wsWriter) encode(msgs []string) []byte {
	ww.buf = appendMessageFrame(append(ww.buf[:0], wsRoom[:]...), msgs)
	return wsFrame(ww.buf)
}

// write writes one frame of payload.
func (ww *wsWriter) write(payload []byte) error {
	ww.buf = append(append(ww.buf[:0], wsRoom[:]...), payload...)
	return ww.writeWire(wsFrame(ww.buf))
}

func (ww *wsWriter) writeWire(wire []byte) error {
	return ww.conn.writeFrame(wire, ww.e.settings.WriteTimeout)
}
