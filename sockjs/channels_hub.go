package sockjs

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/shoal-rt/shoal/store"
)

// The node side of channels.
//
// channelHub holds, per channel, the hubChannel of this node: the bus
// listener (only while a live receiver here is subscribed) and the
// subscriptions of this node's live receivers. A hubChannel puts what the
// bus brings back into offset order: a message that arrives early waits
// (gapWait) for the ones before it, and a gap that stays open is filled
// from the store's log, once for the node, not once per receiver. After
// activity it also reads the log once (trailing check, RecheckInterval
// later), so a message whose bus copy was lost is late, not lost.
//
// chanReceiver is one live receiver's view: its channels, each with the
// offset delivered last (chanSub.last), and, for HTTP receivers, a bounded
// queue the receiver loop writes from and the offsets actually written,
// which become the session's cursors in the store when it detaches. A
// websocket gets messages straight into its writer's queue, the frame
// encoded once for every websocket of the node; its session ends with the
// socket, so it keeps no cursors.
//
// A new subscription (or a receiver attaching) catches up from the log
// first and turns live under the hubChannel's lock once it has read
// everything the hub has dispatched: from then on it takes the hub's
// messages, and each offset reaches it once, in order.
//
// Lock order: channelHub.mu before hubChannel.mu before chanReceiver.mu;
// chanReceiver.mu and channelHub.rmu are never held while taking another
// lock.

const (
	gapWait        = 25 * time.Millisecond // how long an early message waits for those before it
	maxPending     = 1024                  // early messages a hubChannel holds before it reads the log
	chanReadPage   = 1000                  // entries per log read
	catchUpRetries = 5
)

type channelHub struct {
	n     *Node
	store store.Channels

	mu       sync.Mutex // guards channels and each hubChannel's refs
	channels map[string]*hubChannel

	rmu       sync.Mutex // guards receivers
	receivers map[*chanReceiver]struct{}
	repairs   sync.Once // starts repairLoop

}

func newChannelHub(n *Node, cs store.Channels) *channelHub {
	return &channelHub{n: n, store: cs, channels: make(map[string]*hubChannel), receivers: make(map[*chanReceiver]struct{})}
}

// registryLife is the channel registry session's disconnect delay: it has
// no receiver, so this is its lifetime; it is created again when gone.
const registryLife = 30 * 24 * time.Hour

// register puts channel key in e's registry (see Endpoint.ActiveChannels):
// one store write per new subscription. Failures are logged: the registry
// only serves listings.
func (h *channelHub) register(ctx context.Context, e *Endpoint, key string) {
	reg := e.registryKey()
	_, err := h.store.Subscribe(ctx, reg, key, 0)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrClosed) {
		if _, err = h.n.store.Create(ctx, reg, store.CreateOptions{DisconnectDelay: registryLife}); err == nil {
			_, err = h.store.Subscribe(ctx, reg, key, 0)
		}
	}
	if err != nil {
		h.n.log.Warn("sockjs: registering a channel failed", "channel", key, "err", err)
	}
}

// repairInterval is how often long-lived receivers compare their channels
// with the store: a subscription note lost on the bus is repaired then.
func (h *channelHub) repairInterval() time.Duration { return 30 * h.n.cfg.RecheckInterval }

func (h *channelHub) track(r *chanReceiver) {
	h.repairs.Do(func() { h.n.goFunc(h.repairLoop) })
	h.rmu.Lock()
	h.receivers[r] = struct{}{}
	h.rmu.Unlock()
}

func (h *channelHub) untrack(r *chanReceiver) {
	h.rmu.Lock()
	delete(h.receivers, r)
	h.rmu.Unlock()
}

// repairLoop re-reads, one receiver at a time, the subscriptions of the
// receivers that have been live for a repair interval (websockets and
// streams; a poll reads them at every attach anyway).
func (h *channelHub) repairLoop() {
	every := h.repairInterval()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.n.done:
			return
		case <-t.C:
		}
		old := time.Now().Add(-every)
		h.rmu.Lock()
		var due []*chanReceiver
		for r := range h.receivers {
			if r.since.Before(old) {
				due = append(due, r)
			}
		}
		h.rmu.Unlock()
		for _, r := range due {
			select {
			case <-h.n.done:
				return
			default:
			}
			r.repair()
		}
	}
}

// join returns this node's hubChannel of name, listening on the bus if it
// is new. Each join is matched by one leave.
func (h *channelHub) join(name string, render func(uint64, string) string) (*hubChannel, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hc := h.channels[name]; hc != nil {
		hc.refs++
		return hc, nil
	}
	hc := &hubChannel{hub: h, name: name, render: render, refs: 1, subs: make(map[*chanSub]struct{}), pending: make(map[uint64]string)}
	cancel, err := h.n.bus.ListenChannel(name, hc.onBus)
	if err != nil {
		return nil, err
	}
	hc.cancel = cancel
	h.channels[name] = hc
	return hc, nil
}

// leave drops one reference. The last one stops listening a linger
// (RecheckInterval) later, unless someone joined again: a polling client
// comes back at once, and should not cost a bus subscription per poll.
func (h *channelHub) leave(hc *hubChannel) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hc.refs--
	if hc.refs > 0 {
		return
	}
	// retire reads no store, so it may run after Close.
	time.AfterFunc(h.n.cfg.RecheckInterval, func() { h.retire(hc) })
}

// retire stops hc if nobody joined it again.
func (h *channelHub) retire(hc *hubChannel) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hc.refs > 0 || h.channels[hc.name] != hc {
		return
	}
	delete(h.channels, hc.name)
	hc.cancel()
	hc.mu.Lock()
	hc.closed = true
	if hc.timer != nil {
		hc.timer.Stop()
	}
	hc.mu.Unlock()
}

// notify tells the node holding the live receiver of key about a changed
// subscription; a note for this node is applied at once.
func (h *channelHub) notify(ctx context.Context, node string, op byte, key, channel string, cursor uint64) {
	switch node {
	case "":
	case h.n.id:
		h.onNote(op, key, channel, cursor)
	default:
		if err := h.n.bus.SendNode(ctx, node, encodeNote(op, key, channel, cursor)); err != nil {
			h.n.log.Warn("sockjs: subscription note not sent", "node", node, "err", err)
		}
	}
}

// onNote applies a subscription note to this node's receivers of key.
func (h *channelHub) onNote(op byte, key, channel string, cursor uint64) {
	sh := h.n.shard(key)
	sh.mu.RLock()
	var targets []*chanReceiver
	for _, lr := range sh.m[key] {
		if lr.chans != nil {
			targets = append(targets, lr.chans)
		}
	}
	sh.mu.RUnlock()
	for _, r := range targets {
		r.note(op, channel, cursor)
	}
}

// hubChannel is one channel on this node.
type hubChannel struct {
	hub    *channelHub
	name   string
	refs   int // guarded by hub.mu
	cancel func()
	// render is the route's ChannelConfig.Render for this channel, nil
	// for none; the name (a key) carries the endpoint, so it never
	// changes.
	render func(offset uint64, msg string) string

	mu      sync.Mutex // guards the fields below and every chanSub's last and live
	subs    map[*chanSub]struct{}
	next    uint64            // the offset expected next; 0 until the first is known
	pending map[uint64]string // early messages: offset → entry
	filling bool              // a log read is under way
	timer   *time.Timer
	timerAt time.Time // when timer fires; zero when it is not armed
	closed  bool
}

// onBus takes one message from the bus listener (one at a time).
func (hc *hubChannel) onBus(msg []byte) {
	off, entry, ok := decodeBusEntry(msg)
	if !ok {
		hc.hub.n.log.Warn("sockjs: malformed channel message", "channel", hc.name)
		return
	}
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.closed {
		return
	}
	if hc.next == 0 {
		// Nobody here is live yet (a receiver turns live only once next
		// is known), so starting at this offset skips nobody.
		hc.next = off
	}
	switch {
	case off < hc.next:
		return // already dispatched (a late duplicate)
	case off > hc.next:
		hc.pending[off] = entry
		if len(hc.pending) > maxPending {
			hc.schedule(0)
		} else {
			hc.schedule(gapWait)
		}
		return
	}
	hc.dispatch(off, entry)
	hc.drainPending()
	if len(hc.subs) > 0 {
		// Nobody to deliver to: a receiver that joins reads the log.
		hc.schedule(hc.hub.n.cfg.RecheckInterval)
	}
}

// drainPending dispatches early messages that are next now.
// Lock should be held.
func (hc *hubChannel) drainPending() {
	for {
		e, ok := hc.pending[hc.next]
		if !ok {
			break
		}
		delete(hc.pending, hc.next)
		hc.dispatch(hc.next, e)
	}
	if len(hc.pending) > 0 {
		for off := range hc.pending {
			if off < hc.next {
				delete(hc.pending, off)
			}
		}
	}
}

// dispatch hands message off to every live subscription here and moves
// next past it. Lock should be held.
func (hc *hubChannel) dispatch(off uint64, entry string) {
	hc.next = off + 1
	if len(hc.subs) == 0 {
		return
	}
	except, msg, ok := decodeEntry(entry)
	if !ok {
		hc.hub.n.log.Warn("sockjs: malformed channel entry", "channel", hc.name, "offset", off)
		except, msg = "", ""
	}
	if ok && hc.render != nil {
		msg = hc.render(off, msg) // once for the node's subscribers
	}
	var frame []byte // encoded once, for every websocket
	for s := range hc.subs {
		if !s.live || off <= s.last {
			continue
		}
		if off != s.last+1 {
			// Cannot happen while the hub dispatches in order; if it
			// does, the receiver reads what it missed.
			s.live = false
			s.r.catchUpLater(s, s.last)
			continue
		}
		s.last = off
		if !ok {
			continue
		}
		if s.r.ws != nil && frame == nil && except != s.r.key {
			frame = appendMessageFrame(nil, []string{msg})
		}
		s.r.push(s, off, msg, frame, except == s.r.key)
	}
}

// schedule arms the check timer to fire within d. Lock should be held.
func (hc *hubChannel) schedule(d time.Duration) {
	at := time.Now().Add(d)
	if !hc.timerAt.IsZero() && !at.Before(hc.timerAt) {
		return
	}
	hc.timerAt = at
	if hc.timer == nil {
		hc.timer = hc.hub.n.afterFunc(d, hc.check)
	} else {
		hc.timer.Reset(d)
	}
}

// check reads the log after the last dispatched offset: it fills gaps and
// finds messages whose bus copy never came.
func (hc *hubChannel) check() {
	hc.mu.Lock()
	hc.timerAt = time.Time{}
	if hc.closed || hc.next == 0 || hc.filling {
		hc.mu.Unlock()
		return
	}
	after := hc.next - 1
	hc.filling = true
	hc.mu.Unlock()

	n := hc.hub.n
	ctx, cancel := n.opContext()
	res, err := hc.hub.store.ReadChannel(ctx, hc.name, after, chanReadPage)
	cancel()

	hc.mu.Lock()
	defer hc.mu.Unlock()
	hc.filling = false
	if hc.closed {
		return
	}
	if err != nil {
		n.log.Warn("sockjs: channel log read failed", "channel", hc.name, "err", err)
		hc.schedule(n.cfg.RecheckInterval)
		return
	}
	if res.Truncated && hc.next == after+1 {
		first := res.Head + 1
		if len(res.Entries) > 0 {
			first = res.Entries[0].Offset
		}
		hc.lose(first)
	}
	found := false
	for _, e := range res.Entries {
		if e.Offset == hc.next {
			hc.dispatch(e.Offset, e.Msg)
			found = true
		}
	}
	hc.drainPending()
	switch {
	case len(res.Entries) == chanReadPage:
		hc.schedule(0)
	case len(hc.pending) > 0:
		hc.schedule(gapWait)
	case found && len(hc.subs) > 0:
		// Activity: look once more later, as after a bus message.
		hc.schedule(n.cfg.RecheckInterval)
	}
}

// lose handles messages before first that this node can no longer get:
// live subscribers that still wanted them lost them. Lock should be held.
func (hc *hubChannel) lose(first uint64) {
	n := hc.hub.n
	n.log.Warn("sockjs: channel messages lost on this node", "channel", hc.name, "from", hc.next, "to", first-1)
	for s := range hc.subs {
		if s.live && s.last+1 < first {
			if s.allowLoss {
				s.last = first - 1
			} else {
				s.live = false
				s.r.lost()
			}
		}
	}
	hc.next = first
}

// chanSub is one receiver's subscription to one channel.
type chanSub struct {
	r         *chanReceiver
	name      string
	allowLoss bool
	hc        *hubChannel // set once joined; guarded by r.mu

	last uint64 // offset delivered last; guarded by hc.mu
	live bool   // takes the hub's messages; guarded by hc.mu
}

// chanItem is one channel message waiting in an HTTP receiver's queue.
type chanItem struct {
	name   string
	offset uint64
	msg    string
	skip   bool // the session published it with Except: not sent, but read
}

// chanReceiver is a live receiver's channel state.
type chanReceiver struct {
	hub *channelHub
	e   *Endpoint
	key string
	ws  *wsWriter     // websocket: messages go to its writer
	lr  *liveReceiver // for waking an HTTP receiver

	mu       sync.Mutex // guards the fields below
	loaded   bool       // subscriptions were read from the store
	notes    []chanNote // arrived before loading
	subs     map[string]*chanSub
	finished bool
	queue    []chanItem    // HTTP: waiting to be written
	ready    chan struct{} // HTTP: capacity 1, queue has items
	overflow bool          // HTTP: queue overflowed; the receiver ends
	written  map[string]uint64
	stored   map[string]uint64 // cursors as the store has them
	max      int
	since    time.Time         // when the receiver started
	gen      uint64            // counts subscription changes
	changed  map[string]uint64 // channel → gen of its last change
}

type chanNote struct {
	op     byte
	name   string
	cursor uint64
}

// newChanReceiver returns the channel state of a live receiver, or nil when
// the endpoint has no channels. A websocket's session is new, so there is
// nothing to load.
func (e *Endpoint) newChanReceiver(lr *liveReceiver, ws *wsWriter) *chanReceiver {
	h := e.node.chans
	if h == nil || len(e.routes()) == 0 {
		return nil
	}
	r := &chanReceiver{
		hub: h, e: e, key: lr.key, ws: ws, lr: lr,
		loaded:  ws != nil,
		subs:    make(map[string]*chanSub),
		ready:   make(chan struct{}, 1),
		written: make(map[string]uint64),
		stored:  make(map[string]uint64),
		max:     e.settings.MaxQueuedMessages,
		since:   time.Now(),
		changed: make(map[string]uint64),
	}
	h.track(r)
	return r
}

// repair makes the receiver's channels those the store has, for changes
// whose note never came. A change made here after the store was read wins.
func (r *chanReceiver) repair() {
	r.mu.Lock()
	if r.finished || !r.loaded {
		r.mu.Unlock()
		return
	}
	gen := r.gen
	r.mu.Unlock()
	ctx, cancel := r.hub.n.opContext()
	subs, err := r.hub.store.Subscriptions(ctx, r.key)
	cancel()
	if err != nil {
		return
	}
	r.mu.Lock()
	if r.finished {
		r.mu.Unlock()
		return
	}
	adds := make(map[string]uint64)
	var removes []string
	for name, cur := range subs {
		if r.subs[name] == nil && r.changed[name] <= gen {
			adds[name] = cur
		}
	}
	for name := range r.subs {
		if _, ok := subs[name]; !ok && r.changed[name] <= gen {
			removes = append(removes, name)
		}
	}
	r.mu.Unlock()
	for name := range adds {
		if rt := r.e.routeOfKey(name); rt != nil && rt.membersOnly {
			delete(adds, name) // never live here (see add)
		}
	}
	if len(adds)+len(removes) > 0 {
		r.hub.n.log.Info("sockjs: repaired channel subscriptions (a note was lost)", "key", r.key, "joined", len(adds), "left", len(removes))
	}
	for name, cur := range adds {
		r.add(name, cur, false)
	}
	for _, name := range removes {
		r.remove(name)
	}
}

// readyC is closed-over by the receiver loop: it has something when
// messages wait. nil (never ready) without channels.
func (r *chanReceiver) readyC() <-chan struct{} {
	if r == nil {
		return nil
	}
	return r.ready
}

// load reads the session's subscriptions and catches each up from its
// cursor, before the receiver writes anything: what it missed while no
// receiver was attached goes out first.
func (r *chanReceiver) load(ctx context.Context) {
	if r == nil {
		return
	}
	subs, err := r.hub.store.Subscriptions(ctx, r.key)
	if err != nil {
		r.hub.n.log.Warn("sockjs: reading subscriptions failed", "err", err)
	}
	for name, cur := range subs {
		r.add(name, cur, true)
	}
	r.mu.Lock()
	r.loaded = true
	notes := r.notes
	r.notes = nil
	r.mu.Unlock()
	for _, nt := range notes {
		r.apply(nt, false)
	}
}

// note applies a subscription change made elsewhere.
func (r *chanReceiver) note(op byte, name string, cursor uint64) {
	r.mu.Lock()
	if !r.loaded {
		r.notes = append(r.notes, chanNote{op, name, cursor})
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	r.apply(chanNote{op, name, cursor}, false)
}

func (r *chanReceiver) apply(nt chanNote, sync bool) {
	switch nt.op {
	case noteSubscribe:
		r.add(nt.name, nt.cursor, sync)
	case noteUnsubscribe:
		r.remove(nt.name)
	}
}

// add subscribes the receiver to name from cursor: joins the hubChannel,
// then catches up (now, or on its own goroutine).
func (r *chanReceiver) add(name string, cursor uint64, sync bool) {
	route := r.e.routeOfKey(name)
	if route != nil && route.membersOnly {
		return // nothing is ever published there
	}
	r.mu.Lock()
	if r.finished || r.subs[name] != nil {
		r.mu.Unlock()
		return
	}
	s := &chanSub{r: r, name: name, allowLoss: route != nil && route.allowLoss}
	r.subs[name] = s
	r.gen++
	r.changed[name] = r.gen
	if _, ok := r.stored[name]; !ok {
		r.stored[name] = cursor
	}
	r.mu.Unlock()

	hc, err := r.hub.join(name, r.e.renderer(name))
	if err != nil {
		r.hub.n.log.Warn("sockjs: listening on a channel failed", "channel", name, "err", err)
		r.mu.Lock()
		if r.subs[name] == s {
			delete(r.subs, name)
		}
		r.mu.Unlock()
		return
	}
	hc.mu.Lock()
	hc.subs[s] = struct{}{}
	hc.mu.Unlock()
	r.mu.Lock()
	s.hc = hc
	gone := r.finished || r.subs[name] != s
	r.mu.Unlock()
	if gone {
		// finish or remove ran while we joined and left this one to us.
		r.drop(s, hc)
		return
	}
	if sync {
		r.catchUp(s, cursor)
	} else {
		r.catchUpLater(s, cursor)
	}
}

// remove unsubscribes the receiver from name.
func (r *chanReceiver) remove(name string) {
	r.mu.Lock()
	if r.finished {
		r.mu.Unlock()
		return
	}
	s := r.subs[name]
	delete(r.subs, name)
	r.gen++
	r.changed[name] = r.gen
	delete(r.stored, name)
	delete(r.written, name)
	var hc *hubChannel
	if s != nil {
		hc = s.hc
	}
	r.mu.Unlock()
	if hc != nil {
		r.drop(s, hc)
	}
}

func (r *chanReceiver) drop(s *chanSub, hc *hubChannel) {
	hc.mu.Lock()
	delete(hc.subs, s)
	hc.mu.Unlock()
	r.hub.leave(hc)
}

func (r *chanReceiver) catchUpLater(s *chanSub, after uint64) {
	r.hub.n.goFunc(func() { r.catchUp(s, after) })
}

// catchUp delivers the log after the cursor, then turns s live.
func (r *chanReceiver) catchUp(s *chanSub, after uint64) {
	n := r.hub.n
	hc := s.hc
	failures, stale := 0, 0
	for {
		if r.isFinished() {
			return
		}
		ctx, cancel := n.opContext()
		res, err := r.hub.store.ReadChannel(ctx, s.name, after, chanReadPage)
		cancel()
		if err != nil {
			failures++
			n.log.Warn("sockjs: channel catch-up failed", "channel", s.name, "err", err)
			if failures >= catchUpRetries {
				return // not live: the next attach (or the next note) tries again
			}
			time.Sleep(time.Duration(failures) * 50 * time.Millisecond)
			continue
		}
		if res.Truncated {
			if !s.allowLoss {
				r.lost()
				return
			}
		}
		progressed := false
		for _, e := range res.Entries {
			if e.Offset <= after {
				continue
			}
			after, progressed = e.Offset, true
			except, msg, ok := decodeEntry(e.Msg)
			if !ok {
				continue
			}
			if hc.render != nil {
				msg = hc.render(e.Offset, msg)
			}
			r.push(s, e.Offset, msg, nil, except == r.key)
		}
		if len(res.Entries) == chanReadPage {
			continue
		}
		hc.mu.Lock()
		if hc.next != 0 && after+1 < hc.next {
			// The hub has dispatched past what this read saw: messages
			// appended since the read. Read again; a log that no longer
			// holds them answers Truncated, the loss case above.
			if progressed {
				stale = 0
			} else {
				stale++
			}
			if stale <= catchUpRetries {
				hc.mu.Unlock()
				continue
			}
			if !s.allowLoss {
				hc.mu.Unlock()
				r.lost()
				return
			}
			after = hc.next - 1
		}
		if hc.next == 0 {
			hc.next = after + 1
		}
		s.last, s.live = after, true
		hc.mu.Unlock()
		return
	}
}

func (r *chanReceiver) isFinished() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.finished
}

// push hands one message to the receiver; it never blocks. Called under
// the hubChannel's lock (or by catch-up, before s is live), so each
// channel's messages come in offset order.
func (r *chanReceiver) push(s *chanSub, off uint64, msg string, frame []byte, skip bool) {
	if r.ws != nil {
		if skip {
			return
		}
		// An overflow closes the session (the writer sees it); a closed
		// writer means the session is ending anyway.
		r.ws.enqueue(wsItem{msgs: []string{msg}, frame: frame})
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.overflow || r.finished {
		return
	}
	if len(r.queue) >= r.max {
		// The response ends; the client's next request catches up from
		// the log (cursors count only what was written).
		r.overflow = true
	} else {
		r.queue = append(r.queue, chanItem{name: s.name, offset: off, msg: msg, skip: skip})
	}
	select {
	case r.ready <- struct{}{}:
	default:
	}
}

// take appends the queued messages to msgs. The items go back to wrote
// once msgs are written. overflow tells the receiver to end its response.
func (r *chanReceiver) take(msgs []string) (_ []string, items []chanItem, overflow bool) {
	if r == nil {
		return msgs, nil, false
	}
	r.mu.Lock()
	items, r.queue = r.queue, nil
	overflow = r.overflow
	r.mu.Unlock()
	for _, it := range items {
		if !it.skip {
			msgs = append(msgs, it.msg)
		}
	}
	return msgs, items, overflow
}

// wrote records that items reached the client's response.
func (r *chanReceiver) wrote(items []chanItem) {
	if r == nil || len(items) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, it := range items {
		if _, ok := r.subs[it.name]; ok && it.offset > r.written[it.name] {
			r.written[it.name] = it.offset
		}
	}
}

// lost closes the session: channel messages it should have had are gone.
func (r *chanReceiver) lost() {
	r.hub.n.goFunc(func() {
		ctx, cancel := r.hub.n.opContext()
		defer cancel()
		r.e.sessionFor("", r.key, nil).closeWith(ctx, CodeMessagesLost, ReasonMessagesLost)
	})
}

// saveCursors writes how far the client has read each channel; called by
// an HTTP receiver before it detaches, so the next receiver, on any node,
// goes on from there.
func (r *chanReceiver) saveCursors(ctx context.Context) {
	if r == nil {
		return
	}
	r.mu.Lock()
	var cursors map[string]uint64
	for name, off := range r.written {
		if off > r.stored[name] {
			if cursors == nil {
				cursors = make(map[string]uint64)
			}
			cursors[name] = off
		}
	}
	r.mu.Unlock()
	if cursors == nil {
		return
	}
	if err := r.hub.store.SetCursors(ctx, r.key, cursors); err != nil {
		r.hub.n.log.Warn("sockjs: saving channel cursors failed", "err", err)
		return
	}
	r.mu.Lock()
	for name, off := range cursors {
		if _, ok := r.stored[name]; ok {
			r.stored[name] = off
		}
	}
	r.mu.Unlock()
}

// finish ends the receiver's subscriptions on this node.
func (r *chanReceiver) finish() {
	if r == nil {
		return
	}
	r.mu.Lock()
	if r.finished {
		r.mu.Unlock()
		return
	}
	r.finished = true
	joined := make(map[*chanSub]*hubChannel, len(r.subs))
	for _, s := range r.subs {
		if s.hc != nil {
			joined[s] = s.hc
		}
	}
	r.subs = nil
	r.queue = nil
	r.mu.Unlock()
	r.hub.untrack(r)
	for s, hc := range joined {
		r.drop(s, hc)
	}
}

// markLoaded marks a receiver of a session it has just created: there are no
// subscriptions to read.
func (r *chanReceiver) markLoaded() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.loaded = true
	r.mu.Unlock()
}
