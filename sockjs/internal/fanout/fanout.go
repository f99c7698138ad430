// Package fanout is a node's channel fan-out: for every channel that a live
// receiver of this node is subscribed to, it listens on the bus, puts what
// arrives into offset order, fills gaps from the store's log and hands each
// message to the node's subscriptions through their Sink. It knows nothing
// of HTTP, sessions or endpoints: package sockjs decides who subscribes to
// what and implements the Sink.
//
// A Channel puts what the bus brings back into offset order: a message that
// arrives early waits (gapWait) for the ones before it, and a gap that stays
// open is filled from the log, once for the node, not once per subscription.
// After activity it also reads the log once (a trailing check,
// Config.Recheck later), so a message whose bus copy was lost is late, not
// lost. A log that no longer holds what the node still needed is a loss:
// subscriptions that AllowLoss skip it, the others are told (Sink.Lost).
//
// A new Subscription catches up from the log first (CatchUp) and turns live
// under the Channel's lock once it has read everything the Channel has
// dispatched: from then on it takes the Channel's messages, and each offset
// reaches it once, in order.
//
// When its last subscription leaves, a Channel keeps listening for a linger
// (Config.Recheck): a polling client comes back at once, and should not
// cost a bus subscription per poll.
//
// Every timer (the linger, the gap and trailing checks) runs through
// Config.AfterFunc and every goroutine through Config.Go, the owner's
// lifecycle; Close stops what is left, so nothing of the fan-out runs
// after its owner has closed.
//
// Lock order, the only one of the fan-out:
//
//	Channels.mu  before  Channel.mu  before  the Sink's own locks
//
// Channels.mu guards the map of channels and each Channel's refs;
// Channel.mu its ordering state and every Subscription's last and live.
// Sink.Deliver and Sink.Lost run with Channel.mu held, so a Sink must not
// block there nor call back into this package; and its owner must not call
// into this package while holding a lock that Deliver takes.
package fanout

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/store"
)

const (
	gapWait        = 25 * time.Millisecond // how long an early message waits for those before it
	maxPending     = 1024                  // early messages a Channel holds before it reads the log
	readPage       = 1000                  // entries per log read
	catchUpRetries = 5
)

// Sink is where a subscription's messages go: one live receiver. Deliver
// and Lost are called with the Channel's lock held (or, for a subscription
// that is not live yet, by its catch-up), one at a time per subscription:
// they must not block. Gone is called with no lock held.
type Sink interface {
	// Deliver hands over the message at offset of s's channel, rendered.
	// skip: the message was published Except s's session: not to be
	// sent, but read. For a Framed s that is not skipped, frame is msg
	// encoded by Config.Frame, once for the node; it may be nil (a
	// catch-up encodes none), and means nothing when skip is set.
	Deliver(s *Subscription, offset uint64, msg string, frame []byte, skip bool)
	// Lost reports that messages s should have had are gone from the log
	// (s does not AllowLoss); s is no longer live.
	Lost(s *Subscription)
	// Gone reports that the receiver has finished: a catch-up stops.
	Gone() bool
}

// Subscription is one receiver's subscription to one channel. Its exported
// fields are set before Join and never change.
type Subscription struct {
	Name      string // the channel, as the store and the bus know it
	Session   string // store key of the receiver's session: a message published Except it is skipped
	AllowLoss bool   // skip lost messages instead of Sink.Lost
	Framed    bool   // Deliver gets the encoded frame (a websocket)
	Sink      Sink

	last uint64 // offset delivered last; guarded by Channel.mu
	live bool   // takes the Channel's messages; guarded by Channel.mu
}

// Config is what the fan-out works with. Zero durations, Logger, Go and
// AfterFunc take defaults; the rest is required.
type Config struct {
	Store store.Channels
	Bus   bus.Bus
	// Recheck is how long after activity a Channel reads its log once
	// more, how long a Channel nobody is subscribed to keeps listening,
	// and the delay before a failed read is tried again. Default 1 s.
	Recheck time.Duration
	// OpTimeout bounds each store read. Default 5 s.
	OpTimeout time.Duration
	Logger    *slog.Logger
	// Go runs f on a goroutine of the owner's lifecycle; false when it
	// refuses (the owner is closing). Default: a plain goroutine.
	Go func(f func()) bool
	// AfterFunc is time.AfterFunc inside the owner's lifecycle (a gap
	// check reads the store). Default time.AfterFunc.
	AfterFunc func(d time.Duration, f func()) *time.Timer
	// DecodeBus splits a message from the bus into its offset and log
	// entry; DecodeEntry splits a log entry into the store key of the
	// session it is not for and the message. The format is the owner's.
	DecodeBus   func(msg []byte) (offset uint64, entry string, ok bool)
	DecodeEntry func(entry string) (except, msg string, ok bool)
	// Frame encodes a message for Framed subscriptions; needed only when
	// there are some.
	Frame func(msg string) []byte
}

// Channels is the fan-out of one node: its Channels by name. It is safe for
// concurrent use.
type Channels struct {
	cfg Config

	mu       sync.Mutex // guards channels, closed and each Channel's refs
	channels map[string]*Channel
	closed   bool
}

// ErrClosed is returned by Join once the fan-out is closed.
var ErrClosed = errors.New("fanout: closed")

// New returns a node's fan-out, with no channel yet.
func New(cfg Config) (*Channels, error) {
	if cfg.Store == nil || cfg.Bus == nil || cfg.DecodeBus == nil || cfg.DecodeEntry == nil {
		return nil, errors.New("fanout: Config needs Store, Bus, DecodeBus and DecodeEntry")
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = time.Second
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Go == nil {
		cfg.Go = func(f func()) bool { go f(); return true }
	}
	if cfg.AfterFunc == nil {
		cfg.AfterFunc = time.AfterFunc
	}
	return &Channels{cfg: cfg, channels: make(map[string]*Channel)}, nil
}

// Channel is one channel on this node.
type Channel struct {
	owner  *Channels
	name   string
	refs   int // guarded by owner.mu
	cancel func()
	// render turns a message into what subscribers get, nil for as is;
	// the first Join of the channel sets it.
	render func(offset uint64, msg string) string

	mu      sync.Mutex // guards the fields below and every Subscription's last and live
	subs    map[*Subscription]struct{}
	next    uint64            // the offset expected next; 0 until the first is known
	pending map[uint64]string // early messages: offset → entry
	filling bool              // a log read is under way
	again   bool              // a check came due during that read: it reads once more after
	timer   *time.Timer
	timerAt time.Time // when timer fires; zero when it is not armed
	closed  bool
}

// Join adds s to its channel on this node, listening on the bus if the
// channel is new there. s is not live: CatchUp or CatchUpLater turns it
// live. Each Join that succeeds is matched by one Leave. render is used
// when the channel is new.
func (cs *Channels) Join(s *Subscription, render func(offset uint64, msg string) string) (*Channel, error) {
	c, err := cs.join(s.Name, render)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.subs[s] = struct{}{}
	c.mu.Unlock()
	return c, nil
}

func (cs *Channels) join(name string, render func(uint64, string) string) (*Channel, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return nil, ErrClosed
	}
	if c := cs.channels[name]; c != nil {
		c.refs++
		return c, nil
	}
	c := &Channel{owner: cs, name: name, render: render, refs: 1, subs: make(map[*Subscription]struct{}), pending: make(map[uint64]string)}
	cancel, err := cs.cfg.Bus.ListenChannel(name, c.onBus)
	if err != nil {
		return nil, err
	}
	c.cancel = cancel
	cs.channels[name] = c
	return c, nil
}

// Leave takes s out of c. The last one out stops listening a linger
// (Config.Recheck) later, unless someone joined again.
func (c *Channel) Leave(s *Subscription) {
	c.mu.Lock()
	delete(c.subs, s)
	c.mu.Unlock()
	cs := c.owner
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c.refs--
	if c.refs > 0 || cs.closed {
		return
	}
	// Inside the owner's lifecycle: once the owner closes, the timer does
	// not run, and Close stops c instead.
	cs.cfg.AfterFunc(cs.cfg.Recheck, func() { cs.retire(c) })
}

// retire stops c if nobody joined it again.
func (cs *Channels) retire(c *Channel) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c.refs > 0 || cs.channels[c.name] != c {
		return
	}
	delete(cs.channels, c.name)
	c.stop()
}

// Close stops every channel: it stops listening on the bus, its timers
// stop, and Join fails with ErrClosed from now on. The owner calls it when
// it closes, once its lifecycle runs no more timers (Config.AfterFunc) of
// the fan-out; a Leave after Close is harmless.
func (cs *Channels) Close() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.closed = true
	for name, c := range cs.channels {
		delete(cs.channels, name)
		c.stop()
	}
}

// stop ends c's bus listener and its timer. Channels.mu should be held.
func (c *Channel) stop() {
	c.cancel()
	c.mu.Lock()
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
}

// Listening reports whether this node listens on channel name.
func (cs *Channels) Listening(name string) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.channels[name] != nil
}

// Subscribers counts the subscriptions of channel name on this node.
func (cs *Channels) Subscribers(name string) int {
	return cs.countSubscriptions(name, func(*Subscription) bool { return true })
}

// LiveSubscribers counts the subscriptions of channel name on this node
// that take its messages (not those still catching up from the log).
func (cs *Channels) LiveSubscribers(name string) int {
	return cs.countSubscriptions(name, func(s *Subscription) bool { return s.live })
}

// countSubscriptions counts the subscriptions of channel name for which
// match, called with Channel.mu held, is true.
func (cs *Channels) countSubscriptions(name string, match func(*Subscription) bool) int {
	cs.mu.Lock()
	c := cs.channels[name]
	cs.mu.Unlock()
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for s := range c.subs {
		if match(s) {
			n++
		}
	}
	return n
}

// onBus takes one message from the bus listener (one at a time).
func (c *Channel) onBus(msg []byte) {
	cfg := &c.owner.cfg
	off, entry, ok := cfg.DecodeBus(msg)
	if !ok {
		cfg.Logger.Warn("sockjs: malformed channel message", "channel", c.name)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if c.next == 0 {
		// Nobody here is live yet (a subscription turns live only once
		// next is known), so starting at this offset skips nobody.
		c.next = off
	}
	switch {
	case off < c.next:
		return // already dispatched (a late duplicate)
	case off > c.next:
		c.pending[off] = entry
		if len(c.pending) > maxPending {
			c.schedule(0)
		} else {
			c.schedule(gapWait)
		}
		return
	}
	c.dispatch(off, entry)
	c.drainPending()
	if len(c.subs) > 0 {
		// Nobody to deliver to: a subscription that joins reads the log.
		c.schedule(cfg.Recheck)
	}
}

// drainPending dispatches early messages that are next now.
// Lock should be held.
func (c *Channel) drainPending() {
	for {
		e, ok := c.pending[c.next]
		if !ok {
			break
		}
		delete(c.pending, c.next)
		c.dispatch(c.next, e)
	}
	if len(c.pending) > 0 {
		for off := range c.pending {
			if off < c.next {
				delete(c.pending, off)
			}
		}
	}
}

// dispatch hands message off to every live subscription here and moves
// next past it. Lock should be held.
func (c *Channel) dispatch(off uint64, entry string) {
	c.next = off + 1
	if len(c.subs) == 0 {
		return
	}
	cfg := &c.owner.cfg
	except, msg, ok := cfg.DecodeEntry(entry)
	if !ok {
		cfg.Logger.Warn("sockjs: malformed channel entry", "channel", c.name, "offset", off)
		except, msg = "", ""
	}
	if ok && c.render != nil {
		msg = c.render(off, msg) // once for the node's subscribers
	}
	var frame []byte // encoded once, for every Framed subscription
	for s := range c.subs {
		if !s.live || off <= s.last {
			continue
		}
		if off != s.last+1 {
			// Cannot happen while the channel dispatches in order; if it
			// does, the subscription reads what it missed.
			s.live = false
			c.CatchUpLater(s, s.last)
			continue
		}
		s.last = off
		if !ok {
			continue
		}
		skip := except == s.Session
		if s.Framed && frame == nil && !skip {
			frame = cfg.Frame(msg)
		}
		s.Sink.Deliver(s, off, msg, frame, skip)
	}
}

// schedule arms the check timer to fire within d. Lock should be held.
func (c *Channel) schedule(d time.Duration) {
	at := time.Now().Add(d)
	if !c.timerAt.IsZero() && !at.Before(c.timerAt) {
		return
	}
	c.timerAt = at
	if c.timer == nil {
		c.timer = c.owner.cfg.AfterFunc(d, c.check)
	} else {
		c.timer.Reset(d)
	}
}

// check reads the log after the last dispatched offset: it fills gaps and
// finds messages whose bus copy never came.
func (c *Channel) check() {
	c.mu.Lock()
	c.timerAt = time.Time{}
	if c.filling {
		// The read under way may predate what this check is for (a
		// message whose bus copy was lost since): it reads again after.
		c.again = true
	}
	if c.closed || c.next == 0 || c.filling {
		c.mu.Unlock()
		return
	}
	after := c.next - 1
	c.filling = true
	c.mu.Unlock()

	cfg := &c.owner.cfg
	ctx, cancel := context.WithTimeout(context.Background(), cfg.OpTimeout)
	res, err := cfg.Store.ReadChannel(ctx, c.name, after, readPage)
	cancel()

	c.mu.Lock()
	defer c.mu.Unlock()
	c.filling = false
	again := c.again
	c.again = false
	if c.closed {
		return
	}
	if err != nil {
		cfg.Logger.Warn("sockjs: channel log read failed", "channel", c.name, "err", err)
		c.schedule(cfg.Recheck)
		return
	}
	if res.Truncated && c.next == after+1 {
		first := res.Head + 1
		if len(res.Entries) > 0 {
			first = res.Entries[0].Offset
		}
		c.lose(first)
	}
	found := false
	for _, e := range res.Entries {
		if e.Offset == c.next {
			c.dispatch(e.Offset, e.Msg)
			found = true
		}
	}
	c.drainPending()
	switch {
	case len(res.Entries) == readPage:
		c.schedule(0)
	case len(c.pending) > 0:
		c.schedule(gapWait)
	case again:
		c.schedule(0)
	case found && len(c.subs) > 0:
		// Activity: look once more later, as after a bus message.
		c.schedule(cfg.Recheck)
	}
}

// lose handles messages before first that this node can no longer get:
// live subscriptions that still wanted them lost them. Lock should be held.
func (c *Channel) lose(first uint64) {
	c.owner.cfg.Logger.Warn("sockjs: channel messages lost on this node", "channel", c.name, "from", c.next, "to", first-1)
	for s := range c.subs {
		if s.live && s.last+1 < first {
			if s.AllowLoss {
				s.last = first - 1
			} else {
				s.live = false
				s.Sink.Lost(s)
			}
		}
	}
	c.next = first
}

// CatchUpLater runs CatchUp on a goroutine of Config.Go.
func (c *Channel) CatchUpLater(s *Subscription, after uint64) {
	c.owner.cfg.Go(func() { c.CatchUp(s, after) })
}

// CatchUp delivers the log after offset after to s, then turns s live. It
// gives up (s stays not live) when the Sink is Gone, after repeated read
// failures (the next attempt comes from the owner), or on a loss.
func (c *Channel) CatchUp(s *Subscription, after uint64) {
	cfg := &c.owner.cfg
	failures, stale := 0, 0
	for {
		if s.Sink.Gone() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), cfg.OpTimeout)
		res, err := cfg.Store.ReadChannel(ctx, s.Name, after, readPage)
		cancel()
		if err != nil {
			failures++
			cfg.Logger.Warn("sockjs: channel catch-up failed", "channel", s.Name, "err", err)
			if failures >= catchUpRetries {
				return
			}
			time.Sleep(time.Duration(failures) * 50 * time.Millisecond)
			continue
		}
		if res.Truncated && !s.AllowLoss {
			s.Sink.Lost(s)
			return
		}
		progressed := false
		for _, e := range res.Entries {
			if e.Offset <= after {
				continue
			}
			after, progressed = e.Offset, true
			except, msg, ok := cfg.DecodeEntry(e.Msg)
			if !ok {
				continue
			}
			if c.render != nil {
				msg = c.render(e.Offset, msg)
			}
			s.Sink.Deliver(s, e.Offset, msg, nil, except == s.Session)
		}
		if len(res.Entries) == readPage {
			continue
		}
		c.mu.Lock()
		if c.next != 0 && after+1 < c.next {
			// The channel has dispatched past what this read saw:
			// messages appended since the read. Read again; a log that
			// no longer holds them answers Truncated, the loss case
			// above.
			if progressed {
				stale = 0
			} else {
				stale++
			}
			if stale <= catchUpRetries {
				c.mu.Unlock()
				continue
			}
			if !s.AllowLoss {
				c.mu.Unlock()
				s.Sink.Lost(s)
				return
			}
			after = c.next - 1
		}
		if c.next == 0 {
			c.next = after + 1
		}
		s.last, s.live = after, true
		c.mu.Unlock()
		return
	}
}
