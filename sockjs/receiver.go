package sockjs

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-rt/shoal/store"
)

// httpSink is the receiverSink of one receiving HTTP request (a poll or a
// stream): it writes the frames, each in its transport's envelope. (A
// websocket's sink is its wsWriter.)
type httpSink struct {
	w            http.ResponseWriter
	writeTimeout time.Duration
	rc           *http.ResponseController
	wrap         func(dst, frame []byte) []byte
	polling      bool // one frame per response
	limit        int  // streaming: bytes before the response is ended
	// prelude is what a stream sends before its first frame, flushed on
	// its own; it waits until the store has answered, so that a request
	// the store cannot serve still gets a plain 503.
	prelude []byte
	started bool // the response status has been sent
	// closeDelimited: a stream's response ends when the connection closes
	// instead of with a final chunk (see HeaderStreamEnd).
	closeDelimited bool
	written        int
	deadlineSet    time.Time // when setDeadline last moved the write deadline
	buf            []byte
	frame          []byte
	pooled         *frameBuffers     // a poll's buf and frame come from pollBuffers (recycle)
	msgs           []string          // writeLocal's, reused
	chans          *receiverChannels // the receiver's channels, nil without
	commit         func()            // a stream's commit of what it took; nil for polls
	direct         *directStream     // a stream's direct writes (stream_direct.go); nil without
	// finishing is the poll's localReceiver.finishing, set as its answer
	// leaves (answerPoll).
	finishing *atomic.Bool
	stats     *nodeStats

	// The receiver's registry entry and engine (receive), kept here: one
	// allocation per receiving request instead of three.
	lr localReceiver
	en receiverEngine
}

func (e *Endpoint) newHTTPSink(w http.ResponseWriter, polling bool, wrap func(dst, frame []byte) []byte) *httpSink {
	hr := &httpSink{
		w: w, rc: http.NewResponseController(w), wrap: wrap, polling: polling,
		limit: e.settings.ResponseLimit, writeTimeout: e.settings.WriteTimeout,
		stats: &e.node.stats,
	}
	if polling {
		hr.pooled = pollBuffers.Get().(*frameBuffers)
		hr.frame, hr.buf = hr.pooled.frame, hr.pooled.buf
	}
	return hr
}

// pollBuffers are the frame buffers of polls, reused from poll to poll: a
// poll writes its one frame synchronously (into net/http's buffer, or
// through it to the socket), so they are free once its request ends.
// (A stream's stay its own: its direct writes borrow them.)
var pollBuffers = sync.Pool{New: func() any { return new(frameBuffers) }}

// frameBuffers are an httpSink's frame and buf, kept in pollBuffers.
type frameBuffers struct{ frame, buf []byte }

// recycle gives a poll's frame buffers back for the next poll; buffers
// past maxPooledBody (a rare big answer) are let go.
func (hr *httpSink) recycle() {
	if hr.pooled == nil || cap(hr.frame) > maxPooledBody || cap(hr.buf) > maxPooledBody {
		return
	}
	hr.pooled.frame, hr.pooled.buf = hr.frame[:0], hr.buf[:0]
	pollBuffers.Put(hr.pooled)
	hr.pooled, hr.frame, hr.buf = nil, nil, nil
}

// setDeadline bounds the next write: a client that stops reading is
// dropped instead of holding the receiver (and its session) forever. A
// deadline moved less than an eighth of writeTimeout ago is left as it
// is (moving it is a runtime timer change, per message on a busy
// stream), so a write gets at least seven eighths of writeTimeout.
func (hr *httpSink) setDeadline() { hr.setDeadlineAt(time.Now()) }

// setDeadlineAt is setDeadline at now.
func (hr *httpSink) setDeadlineAt(now time.Time) {
	if now.Sub(hr.deadlineSet) < hr.writeTimeout/8 {
		return
	}
	hr.deadlineSet = now
	hr.rc.SetWriteDeadline(now.Add(hr.writeTimeout))
}

// start sends the response status and, for a stream, its prelude.
func (hr *httpSink) start() error {
	if hr.started {
		return nil
	}
	hr.started = true
	hr.setDeadline()
	if hr.polling {
		// A poll's status goes out with its one frame (answerPoll).
		return nil
	}
	if hr.closeDelimited {
		// net/http then writes no chunked framing and closes the
		// connection after the response.
		hr.w.Header().Set("Transfer-Encoding", "identity")
	}
	hr.w.WriteHeader(http.StatusOK)
	if hr.prelude == nil {
		return nil
	}
	if _, err := hr.w.Write(hr.prelude); err != nil {
		return err
	}
	return hr.rc.Flush()
}

// storeUnavailable answers a request the store could not serve: 503 if
// nothing was sent yet, else the frame of an interrupted session.
func (hr *httpSink) storeUnavailable() {
	if !hr.started {
		hr.started = true
		httpError(hr.w, http.StatusServiceUnavailable, "Session store unavailable.")
		return
	}
	hr.writeFrame(closeFrame(CodeInterrupted, ReasonInterrupted))
}

// writeFrame writes one frame. done reports that the response is complete
// (a poll answered, a stream past its limit).
func (hr *httpSink) writeFrame(frame []byte) (done bool, err error) {
	if err := hr.start(); err != nil {
		return true, err
	}
	if err := hr.finishDirect(); err != nil {
		return true, err
	}
	hr.buf = hr.wrap(hr.buf[:0], frame)
	hr.setDeadline()
	if hr.polling {
		return true, hr.answerPoll()
	}
	if _, err := hr.w.Write(hr.buf); err != nil {
		return true, err
	}
	hr.written += len(hr.buf)
	if err := hr.rc.Flush(); err != nil {
		return true, err
	}
	return hr.written >= hr.limit, nil
}

// netHTTPBuffered is what net/http keeps of a response body before it
// sends the header (its bufferBeforeChunkingSize): a response written
// whole within it, and not flushed, gets its Content-Length from net/http.
const netHTTPBuffered = 2048

// errPollAnswered: a poll's response is its one frame.
var errPollAnswered = errors.New("sockjs: poll already answered")

// answerPoll sends hr.buf as the whole response of a poll, with its
// length, before the poll commits what it took (receive): a node killed
// after its commit has handed the frame to its kernel already, which
// still delivers it. Its client may poll again from now on, while the
// lease is still held: the receiver is finishing. Without finishing (a
// store bound to this node: nothing outlives it) the frame waits in
// net/http's buffer for the commit, and leaves as the request ends.
func (hr *httpSink) answerPoll() error {
	if hr.written > 0 {
		return errPollAnswered
	}
	hr.written = len(hr.buf)
	if hr.finishing == nil && len(hr.buf) <= netHTTPBuffered {
		// The answer stays in net/http's buffer until the request ends,
		// and net/http then sets its Content-Length itself, without the
		// two allocations of ours.
		hr.w.WriteHeader(http.StatusOK)
		_, err := hr.w.Write(hr.buf)
		return err
	}
	hr.w.Header().Set("Content-Length", strconv.Itoa(len(hr.buf)))
	hr.w.WriteHeader(http.StatusOK)
	if hr.finishing == nil {
		_, err := hr.w.Write(hr.buf)
		return err
	}
	hr.finishing.Store(true)
	if _, err := hr.w.Write(hr.buf); err != nil {
		return err
	}
	return hr.rc.Flush()
}

// HeaderStreamEnd, set to "close" on a request by the balancer in front
// (haproxy/haproxy.cfg sets it on every request), asks for streams whose
// end is the connection's close rather than a final chunk. The balancer
// frames the response for its client itself, so a node that dies
// mid-stream (its kernel closes the connection) ends the client's response
// cleanly, and sockjs-client opens the stream again on another node; a
// chunked stream cut mid-way is an error to the client (the browser's XHR
// reports status 0), which sockjs-client takes for the end of the session.
// The header only changes the framing of the requester's own response:
// anyone may send it.
const HeaderStreamEnd = "X-Shoal-Stream-End"

// receive runs a receiving request of session sid: it opens the session if
// it is new, takes the receiver lease, and writes frames until the response
// is complete, the session closes, or the client goes away.
func (e *Endpoint) receive(r *http.Request, sid, transport string, hr *httpSink) {
	defer hr.recycle() // after every other deferred step: the response is written then
	n := e.node
	id, key := e.clientSession(sid)
	reqCtx := r.Context()
	hr.closeDelimited = !hr.polling && r.Header.Get(HeaderStreamEnd) == "close"
	lr := &hr.lr
	lr.init(key, reqCtx, nil)
	lr.chans = e.newReceiverChannels(lr, nil)
	hr.chans = lr.chans
	lease := store.Lease{Node: n.id, Token: n.newLeaseToken(), TTL: n.cfg.LeaseTTL}
	_, handOffs := n.store.(store.HandOffCommitter)
	if handOffs && hr.polling {
		lr.handOffToken = lease.Token
	}
	if hr.polling && !n.nodeBound {
		hr.finishing = &lr.finishing
	}
	// Close waits for the receiver to detach; one that starts while the
	// node closes finds n.done closed at once and detaches all the same,
	// and tells its client to take its next request elsewhere.
	lr.entered = n.enter()
	if !lr.entered {
		hr.w.Header().Set("Connection", "close")
	}
	n.register(lr)
	held := false // the lease is held: its release leaves the node
	defer func() {
		if !held {
			n.leave(lr)
		}
	}()

	res, created, info, err := e.attach(r, lr, lease, transport)
	if errors.Is(err, errTooManyNewSessions) {
		tooManyNewSessions(hr.w)
		return
	}
	if err != nil {
		n.log.Warn("sockjs: attach failed", "prefix", e.settings.Prefix, "err", err)
		hr.storeUnavailable()
		return
	}
	if res.Status != store.Attached {
		e.answerUnattached(hr, key, lease, res)
		return
	}
	held = true
	holding := n.stats.gauge(transport) // counted down by the release
	holding.Add(1)
	if res.More {
		lr.wake() // what the attach left queued goes in the next write
	}
	en := e.httpEngine(hr, lease, reqCtx)
	// The session's handle, for OnOpen or to close it if the client goes
	// (most polls need neither: made only then).
	var sess *Session
	if created {
		sess = e.sessionFor(id, key, info)
	}
	interrupted := false
	defer func() {
		if lr.finishing.Load() && !interrupted && lr.entered {
			// The poll's answer has left (answerPoll): the request ends
			// now, so that net/http has the connection back at once, as
			// after any response (the client's next request on it is read,
			// not cut by a shutdown under way), and the release follows,
			// within the node's life (Close waits for it).
			n.releases.Go(func() { en.release(nil, false, holding) })
			return
		}
		if interrupted && sess == nil {
			sess = e.sessionFor(id, key, info)
		}
		en.release(sess, interrupted, holding)
	}()
	if _, ok := n.store.(store.Committer); ok && !hr.polling {
		// A stream commits after each write: unlike a poll's, its
		// response goes on.
		hr.commit = func() { n.commitTaken(key, lease.Token, false) }
	}
	// The store has answered: the status and a stream's prelude go out
	// now, whether or not a frame follows soon.
	if hr.start() != nil {
		interrupted = true
		return
	}
	if done, err := e.writeFirst(hr, sess, res.Messages); done || err != nil {
		return
	}
	if lr.chans != nil && !hr.polling {
		hr.direct = newDirectStream(r, hr.w, hr, &en.lastWrite)
		lr.chans.direct = hr.direct
	}
	interrupted = hr.ended(en.run())
}

// answerUnattached answers a receiver that did not get the lease: 2010 to
// a second receiver, what a closed session had left and its close frame,
// and 1002 when the session is gone.
func (e *Endpoint) answerUnattached(hr *httpSink, key string, lease store.Lease, res store.AttachResult) {
	switch res.Status {
	case store.Busy:
		hr.writeFrame(closeFrame(CodeAnotherConnection, ReasonAnotherConnection))
	case store.AttachClosed:
		e.writeClosed(hr, key, lease, res)
	default:
		hr.writeFrame(closeFrame(CodeInterrupted, ReasonInterrupted))
	}
}

// httpEngine readies hr's receiver engine for the lease it holds.
func (e *Endpoint) httpEngine(hr *httpSink, lease store.Lease, reqCtx context.Context) *receiverEngine {
	recheck := e.node.cfg.RecheckInterval
	if e.node.nodeBound {
		recheck = 0 // nothing changes the store behind the node's back
	}
	hr.en = receiverEngine{
		n: e.node, lr: &hr.lr, lease: lease, sink: hr,
		clientGone:     reqCtx.Done(),
		selectsGone:    hr.polling,
		recheck:        recheck,
		heartbeatDelay: e.settings.HeartbeatDelay,
		quietRechecks:  true,
		drainOpts:      e.takeOptions(false),
	}
	return &hr.en
}

// writeFirst writes what a receiver that took the lease has at once: the
// open frame of the session it created (sess, after OnOpen), or else what
// the session's channels had while it was away; then what that and the
// attach (queued) brought. done: the response is complete.
func (e *Endpoint) writeFirst(hr *httpSink, sess *Session, queued []string) (done bool, err error) {
	lr := &hr.lr
	if sess != nil {
		// Nothing to load: channels OnOpen joins arrive as notes.
		lr.chans.markLoaded()
		// OnOpen first: see the websocket transport. What it queues is
		// drained by the engine.
		e.runOnOpen(sess)
		if done, err := hr.writeFrame([]byte(openFrame)); done || err != nil {
			return done, err
		}
	} else {
		ctx, cancel := e.node.opContext()
		lr.chans.load(ctx)
		cancel()
	}
	msgs, items, overflow := lr.chans.take(queued)
	if len(msgs) == 0 {
		lr.chans.wrote(items)
		if overflow {
			return hr.endOverflowed()
		}
		return false, nil
	}
	done, err = hr.writeFrame(appendMessageFrame(nil, msgs))
	if err != nil {
		return true, err
	}
	lr.chans.wrote(items)
	e.node.stats.sent.Add(uint64(len(msgs)))
	if len(queued) > 0 {
		hr.committed()
	}
	return done || overflow, nil
}

// ended finishes a response whose engine stopped with end, and reports
// whether the client was interrupted (it went, or a write failed).
func (hr *httpSink) ended(end receiverEnd) (interrupted bool) {
	if end != endClientGone && end != endWriteFailed && hr.finishDirect() != nil {
		// (The rest of a direct write the engine stopped before: the
		// response must not end inside a frame.)
		end = endWriteFailed
	}
	switch end {
	case endClientGone, endWriteFailed:
		return true
	case endNodeClosing:
		// The node is draining: a parked poll is answered so the client
		// polls again elsewhere (on another connection); a stream just
		// ends, which makes the client reopen it. A stream's lease is
		// released before the client sees its response end; a poll's
		// holder is finishing until then (takeover.go).
		if hr.polling {
			hr.w.Header().Set("Connection", "close")
			hr.writeFrame([]byte(heartbeatFrame))
		}
	}
	return false
}

// writeClosed answers a receiver of a closed session: what was queued
// before the close (the attach took it), then the close frame. A poll's
// response is complete with the messages: its next poll gets the close.
// What the attach took with Hold stays in flight under the lease it took
// with them (res.Leased), as an open session's: committed once written,
// before the next take, and the lease released at the end. A node killed
// before its write leaves them to the next receiver, and a poll that has
// answered is finishing until its commit (the next poll waits for it).
func (e *Endpoint) writeClosed(hr *httpSink, key string, lease store.Lease, res store.AttachResult) {
	n := e.node
	leased, written := res.Leased, true
	defer func() {
		if leased {
			n.endClosedTake(key, lease.Token, written)
		}
	}()
	for len(res.Messages) > 0 {
		done, err := hr.writeMessageFrame(res.Messages)
		if err != nil {
			written = false
			return
		}
		n.stats.sent.Add(uint64(len(res.Messages)))
		if done {
			return
		}
		if !res.More {
			break
		}
		if leased && n.commitTaken(key, lease.Token, false) != nil {
			return // its next take would send them again
		}
		ctx, cancel := n.opContext()
		res, err = n.store.Attach(ctx, key, lease, e.takeOptions(false)...)
		cancel()
		if err != nil || res.Status != store.AttachClosed {
			return
		}
		leased = leased || res.Leased
	}
	hr.writeClose(res.Code, res.Reason)
}

// endClosedTake ends the lease a receiver of a closed session took with
// what it took (store.AttachResult.Leased): it commits them when written,
// and only releases the lease when not, which leaves them in flight for
// the next receiver.
func (n *Node) endClosedTake(key, token string, written bool) {
	if written {
		n.commitTaken(key, token, true)
		return
	}
	ctx, cancel := n.opContext()
	defer cancel()
	if err := n.store.Detach(ctx, key, token); err != nil && !leaseGone(err) {
		n.log.Warn("sockjs: detach failed", "err", err)
	}
}

// commitTaken commits what token took with Hold and wrote, and with
// detach releases its lease.
func (n *Node) commitTaken(key, token string, detach bool) error {
	committer, ok := n.store.(store.Committer)
	if !ok {
		return nil // nothing is held without one
	}
	ctx, cancel := n.opContext()
	defer cancel()
	err := committer.Commit(ctx, key, token, detach)
	if err != nil && !leaseGone(err) {
		n.log.Warn("sockjs: commit failed", "err", err)
	}
	return err
}

// writeMessages implements receiverSink: msgs were drained from the
// store, and a stream commits them once written.
func (hr *httpSink) writeMessages(msgs []string) (bool, error) {
	done, err := hr.writeMessageFrame(msgs)
	if err == nil {
		hr.committed()
	}
	return done, err
}

func (hr *httpSink) writeMessageFrame(msgs []string) (bool, error) {
	hr.frame = appendMessageFrame(hr.frame[:0], msgs)
	return hr.writeFrame(hr.frame)
}

// committed tells the store that what the stream took reached the client.
func (hr *httpSink) committed() {
	if hr.commit != nil {
		hr.commit()
	}
}

// writeLocal implements receiverSink: it writes the waiting channel
// messages. A queue that overflowed ends the response: the client comes
// back and catches up from the log.
func (hr *httpSink) writeLocal() (bool, error) {
	if err := hr.finishDirect(); err != nil {
		return true, err
	}
	if hr.direct != nil && hr.written >= hr.limit {
		return true, nil // direct writes completed the response
	}
	msgs, items, overflow := hr.chans.take(hr.msgs[:0])
	defer func() {
		clear(msgs)
		hr.msgs = msgs[:0]
	}()
	if len(msgs) > 0 {
		done, err := hr.writeMessageFrame(msgs)
		if err != nil {
			return true, err
		}
		hr.chans.wrote(items)
		hr.stats.sent.Add(uint64(len(msgs)))
		if done {
			return true, nil
		}
	} else {
		hr.chans.wrote(items)
		if overflow {
			return hr.endOverflowed()
		}
	}
	return overflow, nil
}

// endOverflowed ends a response whose channel queue overflowed with nothing
// to write (it held only messages the session published Except itself): a
// poll's answer must be a frame (an empty one breaks a jsonp-polling
// client), so it is a heartbeat; a stream just ends.
func (hr *httpSink) endOverflowed() (bool, error) {
	if !hr.polling {
		return true, nil
	}
	return hr.writeHeartbeat()
}

// finishDirect writes the rest of a direct write the socket took only part
// of, before anything else goes out.
func (hr *httpSink) finishDirect() error {
	item, ok, err := hr.direct.finishRest()
	if ok {
		hr.chans.wrote([]chanItem{item})
	}
	return err
}

// writeHeartbeat implements receiverSink.
func (hr *httpSink) writeHeartbeat() (bool, error) { return hr.writeFrame([]byte(heartbeatFrame)) }

// writeClose implements receiverSink.
func (hr *httpSink) writeClose(code int, reason string) { hr.writeFrame(closeFrame(code, reason)) }

// takeOptions are what a poll or a stream passes when it takes messages:
// at most a response's worth, held in flight until committed when the
// store can (store.Committer). With handOff (a poll's attach), the lease
// also takes hand-offs when the store can (store.HandOffCommitter).
// Computed once per endpoint: they cost allocations.
func (e *Endpoint) takeOptions(handOff bool) []store.DrainOption {
	e.takeOptsOnce.Do(func() {
		e.takeOpts = []store.DrainOption{e.settings.drainLimit()}
		if _, ok := e.node.store.(store.Committer); ok {
			e.takeOpts = append(e.takeOpts, store.Hold())
		}
		e.handOffOpts = e.takeOpts[:len(e.takeOpts):len(e.takeOpts)]
		if _, ok := e.node.store.(store.HandOffCommitter); ok {
			e.handOffOpts = append(e.handOffOpts, store.HandOff(min(e.settings.ResponseLimit, maxHandOff)))
		}
	})
	if handOff {
		return e.handOffOpts
	}
	return e.takeOpts
}

// maxHandOff bounds the bytes a sender hands to a parked poll with its
// wake-up (store.HandOffCommitter); more goes through a drain.
const maxHandOff = 16 << 10

// busyGrace is how long a second receiver waits for a local holder that
// may be on its way out before answering 2010.
const busyGrace = 100 * time.Millisecond

// attach takes the receiver lease of key, creating the session first if it
// does not exist. created reports that this call created it (and must run
// OnOpen); info is the stored connection info when it did.
func (e *Endpoint) attach(r *http.Request, self *localReceiver, lease store.Lease, transport string) (res store.AttachResult, created bool, info []byte, err error) {
	n := e.node
	key := self.key
	ctx, cancel := n.opContext()
	defer cancel()
	opts := e.takeOptions(self.handOffToken != "")
	res, err = n.store.Attach(ctx, key, lease, opts...)
	if err != nil {
		return res, false, nil, err
	}
	switch res.Status {
	case store.Unknown:
		if !n.newPerIP.allow(n.clientIP(r), time.Now()) {
			return res, false, nil, errTooManyNewSessions
		}
		info, err = json.Marshal(newConnectionInfo(r, transport, e.settings.InfoHeaders))
		if err != nil {
			return res, false, nil, err
		}
		// The creator takes the lease in the same step: a receiver racing
		// with it (the same new session on another node) must not attach
		// in between and wait for an open frame nobody sends it.
		created, err = n.store.Create(ctx, key, store.CreateOptions{DisconnectDelay: e.settings.DisconnectDelay, Info: info, Lease: &lease})
		if err != nil {
			return res, false, nil, err
		}
		if !created {
			// Another receiver created it a moment ago and holds it.
			return store.AttachResult{Status: store.Busy}, false, nil, nil
		}
		res = store.AttachResult{Status: store.Attached}
	case store.Busy:
		// The holder may be a receiver here whose client has just gone
		// (a browser reconnecting after an abort) without the server
		// having noticed yet, or a poll that answered and is finishing.
		if old := n.otherReceiver(key, self); old != nil && old.ws == nil {
			if waitForLocal(ctx, old) {
				res, err = n.store.Attach(ctx, key, lease, opts...)
			}
		} else if old == nil {
			res, err = e.waitForHolder(r.Context(), ctx, key, lease, opts, res)
		}
	case store.AttachClosed:
		// What was queued before the close waits for the live receiver
		// beside this one (HeldBack). If that is a poll that has answered,
		// it holds the lease until its commit, which follows its response:
		// its client may be polling again already, here or on another
		// node. The poll never drains the queue, so wait for its commit
		// rather than answer the close alone. A live stream drains it
		// itself; this receiver gets the close.
		if !res.HeldBack {
			break
		}
		if old := n.otherReceiver(key, self); old == nil {
			res, err = e.waitForHolder(r.Context(), ctx, key, lease, opts, res)
		} else if old.ws == nil && old.finishing.Load() && waitForLocal(ctx, old) {
			res, err = n.store.Attach(ctx, key, lease, opts...)
		}
	}
	return res, created, info, err
}

// waitForLocal waits for old, another receiver of the same key here, to
// end, and reports whether it may have. A poll finishing (takeover.go) is
// waited for while ctx lasts: its commit frees the lease. One whose client
// has gone, a second at most: it closes the session, so the client learns
// 1002 rather than 2010. Any other, busyGrace: it may be on its way out.
func waitForLocal(ctx context.Context, old *localReceiver) bool {
	done := old.finished()
	grace := time.NewTimer(busyGrace)
	defer grace.Stop()
	select {
	case <-done:
		return true
	case <-old.reqCtx.Done():
	case <-grace.C:
		if !old.finishing.Load() {
			return false
		}
	}
	var limit <-chan time.Time
	if !old.finishing.Load() {
		limit = time.After(time.Second)
	}
	select {
	case <-done:
	case <-limit:
	case <-ctx.Done():
	}
	return true
}

// busyRetry is how often a second receiver asks the store again while the
// holder is on another node.
const busyRetry = 10 * time.Millisecond

// heldOut reports that res keeps a receiver out, waiting for the holder
// of the lease: Busy, or closed with messages held back for the holder.
func heldOut(res store.AttachResult) bool {
	return res.Status == store.Busy || res.Status == store.AttachClosed && res.HeldBack
}

// waitForHolder asks the store again, for up to busyGrace, whether the
// lease of key is free; first is what the store answered (heldOut). The
// holder lives on another node, which may be about to notice that its
// client has gone (a browser reconnecting after an abort, its new request
// balanced elsewhere) and close the session: the client should then learn
// 1002, as it would from one node, rather than 2010. Meanwhile it asks the
// holder whether it still serves the session, and takes the lease over
// when it does not, or does not answer within HolderTimeout: it died (see
// takeover.go). A holder finishing a poll is waited for beyond busyGrace
// (ctx bounds it), and asked again every HolderTimeout. A closed session's
// holder that serves drains the queue itself: this receiver gets the
// close alone.
func (e *Endpoint) waitForHolder(reqCtx, ctx context.Context, key string, lease store.Lease, opts []store.DrainOption, first store.AttachResult) (res store.AttachResult, err error) {
	n := e.node
	res = first
	var answer <-chan holderState
	var silence, reask <-chan time.Time
	holder := ""
	stopAsk := func() {}
	defer func() { stopAsk() }()
	// ask asks holder, done with the question before (it was answered);
	// a question that cannot be sent (the bus is down) proves nothing,
	// and forgets the holder.
	ask := func() {
		stopAsk()
		a, cancel, ok := n.askHolder(ctx, holder, key)
		if !ok {
			holder, stopAsk = "", func() {}
			return
		}
		answer = a
		t := time.NewTimer(n.cfg.HolderTimeout)
		silence = t.C
		stopAsk = func() { cancel(); t.Stop() }
	}
	if lt, ok := n.store.(store.LeaseTaker); ok {
		if st, err := n.store.Get(ctx, key); err == nil && st.ReceiverNode != "" && st.ReceiverNode != n.id && !st.ReceiverSticky {
			holder = st.ReceiverNode
			ask()
		}
		defer func() {
			if err == nil && heldOut(res) && holder != "" {
				res, err = lt.TakeOver(ctx, key, holder, lease, opts...)
				if err == nil && res.Status == store.Attached {
					n.log.Info("sockjs: took over the lease of a holder that did not answer", "key", key, "holder", holder)
				}
			}
		}()
	}
	grace := time.NewTimer(busyGrace)
	defer grace.Stop()
	tick := time.NewTicker(busyRetry)
	defer tick.Stop()
	graceOver := false
	for heldOut(res) {
		select {
		case <-tick.C:
		case <-grace.C:
			graceOver = true
			if holder == "" {
				return res, nil
			}
			continue
		case st := <-answer:
			switch st {
			case holderGone:
				return res, nil // the deferred take-over runs
			case holderFinishing:
				// Its commit frees the lease; ask again later, in
				// case it dies first.
				answer, silence = nil, nil
				reask = time.After(n.cfg.HolderTimeout)
				continue
			}
			holder, answer, silence = "", nil, nil
			if graceOver || res.Status == store.AttachClosed {
				return res, nil
			}
			continue
		case <-reask:
			reask = nil
			ask()
			continue
		case <-silence:
			return res, nil // the deferred take-over runs
		case <-reqCtx.Done():
			holder = ""
			return res, nil
		}
		if res, err = n.store.Attach(ctx, key, lease, opts...); err != nil {
			return res, err
		}
	}
	return res, nil
}

// bodyReadTimeout bounds reading one incoming body (xhr_send, jsonp_send).
const bodyReadTimeout = 30 * time.Second

// readBody reads the body of a send to session sid, of at most
// MaxMessageSize bytes. A bigger one closes the session with
// CodeMessageTooBig, as an oversized websocket frame does: its messages are
// lost, and a jsonp-polling client cannot even read the 413 it gets (it
// posts a form into a hidden iframe), so the close frame at its next poll
// is how it learns. ok is false when the body was refused (and body
// released). The body counts against the node's BodyBudget until
// body.release.
func (e *Endpoint) readBody(w http.ResponseWriter, r *http.Request, sid string, body *sendBody) (ok bool) {
	setReadDeadline(w, time.Now().Add(bodyReadTimeout))
	body.budget = budgetReader{r: http.MaxBytesReader(w, r.Body, e.settings.MaxMessageSize), b: &e.node.bodies}
	body.buf = bodyBuffers.Get().(*[]byte)
	var err error
	body.data, err = readAll(&body.budget, (*body.buf)[:0])
	setReadDeadline(w, time.Time{})
	if err != nil {
		body.release()
		var tooBig *http.MaxBytesError
		if errors.Is(err, errOverBudget) {
			e.node.log.Warn("sockjs: send refused, node body budget spent", "budget", e.node.cfg.BodyBudget)
			httpError(w, http.StatusServiceUnavailable, "Server busy.")
		} else if errors.As(err, &tooBig) {
			if err := e.Session(idFromClientSession(sid)).Close(CodeMessageTooBig, ReasonMessageTooBig); err != nil {
				e.node.log.Warn("sockjs: closing a session sent an oversized body", "err", err)
			}
			httpError(w, http.StatusRequestEntityTooLarge, "Message too big.")
		} else {
			httpError(w, http.StatusBadRequest, "Broken request body.")
		}
		return false
	}
	return true
}

// sendBody is the body of a send (readBody): its bytes in a pooled buffer,
// counted against the node's BodyBudget until release. A value the
// handler keeps on its stack: a closure to release it cost two
// allocations per send.
type sendBody struct {
	data   []byte
	buf    *[]byte // data's buffer, from bodyBuffers; nil once released
	budget budgetReader
}

// release gives the body's bytes back to the budget and its buffer back
// for reuse; data is gone then. Releasing twice does nothing.
func (b *sendBody) release() {
	b.budget.release()
	if b.buf != nil {
		putBodyBuffer(b.buf, b.data)
		b.buf, b.data = nil, nil
	}
}

// setReadDeadline is http.ResponseController's, without making one (an
// allocation per send) when w has the method itself, as net/http's own
// response does.
func setReadDeadline(w http.ResponseWriter, t time.Time) error {
	if d, ok := w.(interface{ SetReadDeadline(time.Time) error }); ok {
		return d.SetReadDeadline(t)
	}
	return http.NewResponseController(w).SetReadDeadline(t)
}

// bodyBuffers hold the bodies readBody reads, for reuse once handled: the
// decoders copy the messages out of them.
var bodyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBody bounds the buffers bodyBuffers keeps: a rare big body
// does not hold its memory after it.
const maxPooledBody = 64 << 10

func putBodyBuffer(buf *[]byte, body []byte) {
	if cap(body) > maxPooledBody {
		return
	}
	*buf = body[:0]
	bodyBuffers.Put(buf)
}

// readAll is io.ReadAll into buf, which it grows as needed; a buffer
// whose room runs out starts at 512 bytes, as io.ReadAll's.
func readAll(r *budgetReader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, max(512, cap(buf)))...)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// HeaderSendID, set by the balancer on each send (haproxy.cfg: an id
// unique per request, the same on the request's retries), makes a send
// safe to repeat: the appends its handler makes through the request's
// Session handle are tagged with it (store.OnceAppender), so a send that a
// dying node had started, and that the balancer then sent to another
// node, appends nothing twice. Its other effects (channel publishes,
// sends to other sessions) may run twice. Anyone may set it: it tags only
// the appends to the sender's own session; longer than
// store.MaxAppendTagID, it is ignored.
const HeaderSendID = "X-Shoal-Send-Id"

// deliver decodes body with decode and hands the messages of session sid
// to the handler. It answers 404 (and returns false) when the session does
// not exist, 500 when the body does not decode. A closed session drops
// what it is sent without decoding it, so a flood into a session its queue
// bound closed costs no more than reading it.
func (e *Endpoint) deliver(w http.ResponseWriter, r *http.Request, sid string, body []byte, decode func([]byte) ([]string, error)) bool {
	id, key := e.clientSession(sid)
	ctx, cancel := e.node.opContext()
	st, err := e.node.store.Get(ctx, key)
	cancel()
	if errors.Is(err, store.ErrNotFound) {
		notFound(w)
		return false
	}
	if err != nil {
		e.node.log.Warn("sockjs: session lookup failed", "err", err)
		httpError(w, http.StatusServiceUnavailable, "Session store unavailable.")
		return false
	}
	if st.State != store.StateOpen {
		return true
	}
	msgs, err := decode(body)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return false
	}
	sess := e.sessionFor(id, key, st.Info)
	if sendID := r.Header.Get(HeaderSendID); sendID != "" && len(sendID) <= store.MaxAppendTagID {
		sess.send.Store(&sendTag{id: sendID})
		defer sess.send.Store(nil)
	}
	for _, m := range msgs {
		e.runOnMessage(sess, m)
	}
	return true
}

// decodeFormOrJSON reads a jsonp_send body: form-encoded with the payload
// in d, or the payload itself.
func decodeFormOrJSON(r *http.Request, body []byte) ([]string, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/x-www-form-urlencoded" {
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, errBrokenJSON
		}
		d := vals.Get("d")
		if d == "" {
			return nil, errPayloadExpected
		}
		body = []byte(d)
	}
	return decodeMessages(body)
}

// callbackHeaders reads the callback of a jsonp or htmlfile receiver, and
// sets the headers of its answer, of contentType; false when the callback
// is missing or invalid (the answer, a 500, is sent).
func (e *Endpoint) callbackHeaders(w http.ResponseWriter, r *http.Request, contentType string) (string, bool) {
	callback, ok := callbackParam(w, r)
	if !ok {
		return "", false
	}
	h := w.Header()
	e.jsessionid(w, r)
	noCache(h)
	h.Set("Content-Type", contentType)
	return callback, true
}

// callbackParam returns the JSONP/htmlfile callback name, or answers 500
// as the protocol wants and returns ok false.
func callbackParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	q := r.URL.Query()
	cb, has := q.Get("c"), q.Has("c")
	if !has {
		cb, has = q.Get("callback"), q.Has("callback")
	}
	if !has || cb == "" {
		httpError(w, http.StatusInternalServerError, `"callback" parameter required`)
		return "", false
	}
	if len(cb) > 64 {
		httpError(w, http.StatusInternalServerError, `invalid "callback" parameter`)
		return "", false
	}
	for i := 0; i < len(cb); i++ {
		c := cb[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			httpError(w, http.StatusInternalServerError, `invalid "callback" parameter`)
			return "", false
		}
	}
	return cb, true
}
