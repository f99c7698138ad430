package sockjs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shoal-rt/shoal/sockjs/internal/fanout"
	"github.com/shoal-rt/shoal/store"
)

// The node side of channels: what routes subscriptions to this node's
// fan-out (package internal/fanout, which listens on the bus, orders by
// offset, fills gaps from the log and lingers) and takes its messages.
//
// nodeChannels is the node's: its fan-out, the subscription notes from
// other nodes, the repair of notes that were lost, and each endpoint's
// registry of channels.
//
// receiverChannels is one live receiver's view, which its subscriptions
// (chanSub, each the fanout.Sink of its own) deliver to: its channels
// and, for HTTP receivers, a bounded queue the
// receiver loop writes from and the offsets actually written, which become
// the session's cursors in the store when it detaches. A websocket gets
// messages straight into its writer's queue, the frame encoded once for
// every websocket of the node; its session ends with the socket, so it
// keeps no cursors.
//
// Lock order: the fan-out's (see package fanout) ends in
// receiverChannels.mu, which Deliver takes; so receiverChannels.mu is never
// held while calling the fan-out, and neither it nor nodeChannels.rmu is
// held while taking another lock.

type nodeChannels struct {
	n      *Node
	store  store.Channels
	fanout *fanout.Channels

	rmu       sync.Mutex // guards receivers
	receivers map[*receiverChannels]struct{}
	repairs   sync.Once // starts repairLoop
}

func newNodeChannels(n *Node, cs store.Channels) (*nodeChannels, error) {
	fo, err := fanout.New(fanout.Config{
		Store:       cs,
		Bus:         n.bus,
		Recheck:     n.cfg.RecheckInterval,
		OpTimeout:   n.cfg.OpTimeout,
		Logger:      n.log,
		Go:          n.goFunc,
		AfterFunc:   n.afterFunc,
		DecodeBus:   decodeBusEntry,
		DecodeEntry: decodeEntry,
		Frame:       messageFrame,
	})
	if err != nil {
		return nil, fmt.Errorf("sockjs: channels: %w", err)
	}
	return &nodeChannels{n: n, store: cs, fanout: fo, receivers: make(map[*receiverChannels]struct{})}, nil
}

// messageFrame is the websocket frame of one channel message, encoded once
// for every websocket of the node (wsFrame).
func messageFrame(msg string) []byte {
	buf := make([]byte, 0, wsHeaderRoom+len(msg)+8)
	return wsFrame(appendMessageFrame(append(buf, wsRoom[:]...), []string{msg}))
}

// registryLife is the channel registry session's disconnect delay: it has
// no receiver, so this is its lifetime; it is created again when gone.
const registryLife = 30 * 24 * time.Hour

// register puts channel key in e's registry (see Endpoint.ActiveChannels):
// one store write per new subscription. Failures are logged: the registry
// only serves listings.
func (nc *nodeChannels) register(ctx context.Context, e *Endpoint, key string) {
	reg := e.registryKey()
	_, err := nc.store.Subscribe(ctx, reg, key, 0)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrClosed) {
		if _, err = nc.n.store.Create(ctx, reg, store.CreateOptions{DisconnectDelay: registryLife}); err == nil {
			_, err = nc.store.Subscribe(ctx, reg, key, 0)
		}
	}
	if err != nil {
		nc.n.log.Warn("sockjs: registering a channel failed", "channel", key, "err", err)
	}
}

// repairInterval is how often long-lived receivers compare their channels
// with the store: a subscription note lost on the bus is repaired then.
func (nc *nodeChannels) repairInterval() time.Duration { return 30 * nc.n.cfg.RecheckInterval }

func (nc *nodeChannels) track(r *receiverChannels) {
	nc.repairs.Do(func() { nc.n.goFunc(nc.repairLoop) })
	nc.rmu.Lock()
	nc.receivers[r] = struct{}{}
	nc.rmu.Unlock()
}

func (nc *nodeChannels) untrack(r *receiverChannels) {
	nc.rmu.Lock()
	delete(nc.receivers, r)
	nc.rmu.Unlock()
}

// repairLoop re-reads, one receiver at a time, the subscriptions of the
// receivers that have been live for a repair interval (websockets and
// streams; a poll reads them at every attach anyway).
func (nc *nodeChannels) repairLoop() {
	every := nc.repairInterval()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-nc.n.done:
			return
		case <-t.C:
		}
		old := time.Now().Add(-every)
		nc.rmu.Lock()
		var due []*receiverChannels
		for r := range nc.receivers {
			if r.since.Before(old) {
				due = append(due, r)
			}
		}
		nc.rmu.Unlock()
		for _, r := range due {
			select {
			case <-nc.n.done:
				return
			default:
			}
			r.repair()
		}
	}
}

// notify tells the node holding the live receiver of key about a changed
// subscription; a note for this node is applied at once.
func (nc *nodeChannels) notify(ctx context.Context, node string, op byte, key, channel string, cursor uint64) {
	switch node {
	case "":
	case nc.n.id:
		nc.onNote(op, key, channel, cursor)
	default:
		if err := nc.n.bus.SendNode(ctx, node, encodeNote(op, key, channel, cursor)); err != nil {
			nc.n.log.Warn("sockjs: subscription note not sent", "node", node, "err", err)
		}
	}
}

// onNote applies a subscription note to this node's receivers of key.
func (nc *nodeChannels) onNote(op byte, key, channel string, cursor uint64) {
	sh := nc.n.shard(key)
	sh.mu.RLock()
	var targets []*receiverChannels
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

// chanItem is one channel message waiting in an HTTP receiver's queue.
type chanItem struct {
	sub    *chanSub
	offset uint64
	msg    string
	skip   bool // the session published it with Except: not sent, but read
}

// receiverChannels is a live receiver's channel state.
type receiverChannels struct {
	chans *nodeChannels
	e     *Endpoint
	key   string
	ws    *wsWriter      // websocket: messages go to its writer
	lr    *localReceiver // for waking an HTTP receiver

	mu       sync.Mutex // guards the fields below
	loaded   bool       // subscriptions were read from the store
	notes    []chanNote // arrived before loading
	subs     map[string]*chanSub
	finished bool
	queue    []chanItem        // HTTP: waiting to be written
	spare    []chanItem        // HTTP: the last batch written, for the queue to reuse
	overflow bool              // HTTP: queue overflowed; the receiver ends
	stored   map[string]uint64 // cursors as the store has them
	max      int
	since    time.Time         // when the receiver started
	gen      uint64            // counts subscription changes
	changed  map[string]uint64 // channel → gen of its last change
	// direct writes a message to an idle stream at once (nil without:
	// polls, websockets, streams on an unknown connection); set before
	// the stream's engine starts. parked: the engine waits for a signal
	// and writes nothing, so deliver may write through direct.
	direct *directStream
	parked bool
}

type chanNote struct {
	op     byte
	name   string
	cursor uint64
}

// newReceiverChannels returns the channel state of a live receiver, or nil when
// the endpoint has no channels. A websocket's session is new, so there is
// nothing to load.
func (e *Endpoint) newReceiverChannels(lr *localReceiver, ws *wsWriter) *receiverChannels {
	nc := e.node.chans
	if nc == nil || len(e.routes()) == 0 {
		return nil
	}
	r := &receiverChannels{
		chans: nc, e: e, key: lr.key, ws: ws, lr: lr,
		loaded:  ws != nil,
		subs:    make(map[string]*chanSub),
		stored:  make(map[string]uint64),
		max:     e.settings.MaxQueuedMessages,
		since:   time.Now(),
		changed: make(map[string]uint64),
	}
	nc.track(r)
	return r
}

// repair makes the receiver's channels those the store has, for changes
// whose note never came. A change made here after the store was read wins.
func (r *receiverChannels) repair() {
	r.mu.Lock()
	if r.finished || !r.loaded {
		r.mu.Unlock()
		return
	}
	gen := r.gen
	r.mu.Unlock()
	ctx, cancel := r.chans.n.opContext()
	subs, err := r.chans.store.Subscriptions(ctx, r.key)
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
		r.chans.n.log.Info("sockjs: repaired channel subscriptions (a note was lost)", "key", r.key, "joined", len(adds), "left", len(removes))
	}
	for name, cur := range adds {
		r.add(name, cur, false)
	}
	for _, name := range removes {
		r.remove(name)
	}
}

// load reads the session's subscriptions and catches each up from its
// cursor, before the receiver writes anything: what it missed while no
// receiver was attached goes out first.
func (r *receiverChannels) load(ctx context.Context) {
	if r == nil {
		return
	}
	subs, err := r.chans.store.Subscriptions(ctx, r.key)
	if err != nil {
		r.chans.n.log.Warn("sockjs: reading subscriptions failed", "err", err)
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
func (r *receiverChannels) note(op byte, name string, cursor uint64) {
	r.mu.Lock()
	if !r.loaded {
		r.notes = append(r.notes, chanNote{op, name, cursor})
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	r.apply(chanNote{op, name, cursor}, false)
}

func (r *receiverChannels) apply(nt chanNote, sync bool) {
	switch nt.op {
	case noteSubscribe:
		r.add(nt.name, nt.cursor, sync)
	case noteUnsubscribe:
		r.remove(nt.name)
	}
}

// chanSub is one of the receiver's subscriptions: the fan-out's, and the
// Channel it joined.
type chanSub struct {
	fanout.Subscription
	r  *receiverChannels
	ch *fanout.Channel // set once joined; guarded by receiverChannels.mu
	// written is the offset of the last message written to the client
	// (HTTP receivers), the cursor saveCursors stores; left: the
	// subscription is no longer the receiver's (removed, finished, or
	// its join failed), so what is written no longer counts. Guarded by
	// receiverChannels.mu.
	written uint64
	left    bool
}

// The fan-out delivers to the subscription itself, so a message's queue
// item names its subscription without a lookup by channel name.
var _ fanout.Sink = (*chanSub)(nil)

// Deliver implements fanout.Sink (receiverChannels.deliver).
func (s *chanSub) Deliver(_ *fanout.Subscription, off uint64, msg string, frame []byte, skip bool) {
	s.r.deliver(s, off, msg, frame, skip)
}

// Lost implements fanout.Sink (receiverChannels.lost).
func (s *chanSub) Lost(*fanout.Subscription) { s.r.lost() }

// Gone implements fanout.Sink: the receiver has finished.
func (s *chanSub) Gone() bool { return s.r.gone() }

// add subscribes the receiver to name from cursor: joins the fan-out's
// Channel, then catches up (now, or on its own goroutine).
func (r *receiverChannels) add(name string, cursor uint64, sync bool) {
	route := r.e.routeOfKey(name)
	if route != nil && route.membersOnly {
		return // nothing is ever published there
	}
	r.mu.Lock()
	if r.finished || r.subs[name] != nil {
		r.mu.Unlock()
		return
	}
	s := &chanSub{r: r, Subscription: fanout.Subscription{
		Name: name, Session: r.key, AllowLoss: route != nil && route.allowLoss, Framed: r.ws != nil,
	}}
	s.Sink = s
	r.subs[name] = s
	r.gen++
	r.changed[name] = r.gen
	if _, ok := r.stored[name]; !ok {
		r.stored[name] = cursor
	}
	r.mu.Unlock()

	ch, err := r.chans.fanout.Join(&s.Subscription, r.e.renderer(name))
	if err != nil {
		r.chans.n.log.Warn("sockjs: listening on a channel failed", "channel", name, "err", err)
		r.mu.Lock()
		if r.subs[name] == s {
			delete(r.subs, name)
		}
		s.left = true
		r.mu.Unlock()
		return
	}
	r.mu.Lock()
	s.ch = ch
	gone := r.finished || r.subs[name] != s
	r.mu.Unlock()
	if gone {
		// finish or remove ran while we joined and left this one to us.
		ch.Leave(&s.Subscription)
		return
	}
	if sync {
		ch.CatchUp(&s.Subscription, cursor)
	} else {
		ch.CatchUpLater(&s.Subscription, cursor)
	}
}

// remove unsubscribes the receiver from name.
func (r *receiverChannels) remove(name string) {
	r.mu.Lock()
	if r.finished {
		r.mu.Unlock()
		return
	}
	s := r.subs[name]
	delete(r.subs, name)
	if s != nil {
		s.left = true
	}
	r.gen++
	r.changed[name] = r.gen
	delete(r.stored, name)
	var ch *fanout.Channel
	if s != nil {
		ch = s.ch
	}
	r.mu.Unlock()
	if ch != nil {
		ch.Leave(&s.Subscription)
	}
}

// gone reports whether the receiver has finished.
func (r *receiverChannels) gone() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.finished
}

// deliver hands one message of s to the receiver and never blocks. The
// fan-out calls it under the Channel's lock (or by catch-up, before s is
// live), so each channel's messages come in offset order.
func (r *receiverChannels) deliver(s *chanSub, off uint64, msg string, frame []byte, skip bool) {
	if r.ws != nil {
		if skip {
			return
		}
		// An overflow closes the session (the writer sees it); a closed
		// writer means the session is ending anyway.
		r.ws.enqueue(oneItem(msg, frame))
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.overflow || r.finished {
		return
	}
	if r.parked && !skip && len(r.queue) == 0 {
		switch r.direct.write(msg) {
		case directWritten:
			r.markWritten(s, off)
			if r.direct.hr.written >= r.direct.hr.limit {
				r.parked = false // the engine ends the response
				r.lr.signal(lrLocal)
			}
			return
		case directPartial:
			r.direct.restItem = chanItem{sub: s, offset: off, msg: msg}
			r.parked = false // the engine writes the rest first
			r.lr.signal(lrLocal)
			return
		}
	}
	if len(r.queue) >= r.max {
		// The response ends; the client's next request catches up from
		// the log (cursors count only what was written).
		r.overflow = true
	} else {
		r.queue = append(r.queue, chanItem{sub: s, offset: off, msg: msg, skip: skip})
	}
	r.lr.signal(lrLocal)
}

// take appends the queued messages to msgs. The items go back to wrote
// once msgs are written. overflow tells the receiver to end its response.
func (r *receiverChannels) take(msgs []string) (_ []string, items []chanItem, overflow bool) {
	if r == nil {
		return msgs, nil, false
	}
	r.mu.Lock()
	items, r.queue, r.spare = r.queue, r.spare[:0], nil
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
func (r *receiverChannels) wrote(items []chanItem) {
	if r == nil || len(items) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, it := range items {
		r.markWritten(it.sub, it.offset)
	}
	if cap(items) <= 64 { // a burst's slice is let go
		clear(items)
		r.spare = items[:0]
	}
}

// markWritten records that s's message at off reached the client.
// receiverChannels.mu must be held.
func (r *receiverChannels) markWritten(s *chanSub, off uint64) {
	if !s.left && off > s.written {
		s.written = off
	}
}

// park tells deliver that the stream's engine waits for a signal: until
// unpark, deliver may write to the stream directly. A no-op without
// direct writes.
func (r *receiverChannels) park() {
	if r == nil || r.direct == nil {
		return
	}
	r.mu.Lock()
	// Not with the rest of a write still to go (deliver also writes
	// nothing while messages are queued: they go first).
	r.parked = !r.finished && len(r.direct.rest) == 0
	r.mu.Unlock()
}

// unpark ends what park allowed; a direct write under way ends first.
func (r *receiverChannels) unpark() {
	if r == nil || r.direct == nil {
		return
	}
	r.mu.Lock()
	r.parked = false
	r.mu.Unlock()
}

// lost closes the session, whose channel messages are gone.
func (r *receiverChannels) lost() {
	n := r.chans.n
	n.goFunc(func() {
		ctx, cancel := n.opContext()
		defer cancel()
		r.e.sessionFor("", r.key, nil).closeWith(ctx, CodeMessagesLost, ReasonMessagesLost)
	})
}

// saveCursors writes how far the client has read each channel; called by
// an HTTP receiver before it detaches, so the next receiver, on any node,
// goes on from there.
func (r *receiverChannels) saveCursors(ctx context.Context) {
	if r == nil {
		return
	}
	r.mu.Lock()
	var cursors map[string]uint64
	for name, s := range r.subs {
		if s.written > r.stored[name] {
			if cursors == nil {
				cursors = make(map[string]uint64)
			}
			cursors[name] = s.written
		}
	}
	r.mu.Unlock()
	if cursors == nil {
		return
	}
	if err := r.chans.store.SetCursors(ctx, r.key, cursors); err != nil {
		r.chans.n.log.Warn("sockjs: saving channel cursors failed", "err", err)
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
func (r *receiverChannels) finish() {
	if r == nil {
		return
	}
	r.mu.Lock()
	if r.finished {
		r.mu.Unlock()
		return
	}
	r.finished = true
	joined := make(map[*chanSub]*fanout.Channel, len(r.subs))
	for _, s := range r.subs {
		s.left = true
		if s.ch != nil {
			joined[s] = s.ch
		}
	}
	r.subs = nil
	r.queue = nil
	r.mu.Unlock()
	r.chans.untrack(r)
	for s, ch := range joined {
		ch.Leave(&s.Subscription)
	}
}

// markLoaded marks a receiver of a session it has just created: there are no
// subscriptions to read.
func (r *receiverChannels) markLoaded() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.loaded = true
	r.mu.Unlock()
}
