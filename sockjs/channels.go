package sockjs

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/shoal-rt/shoal/store"
)

// Channels divide an endpoint's traffic: a chat room, a user's feed, a
// dashboard. Sessions join with Session.Subscribe; Endpoint.Publish, on any
// node, reaches every subscriber of the channel exactly once, and the
// messages of one publisher in the order published, whatever transport the
// subscriber uses and wherever its requests land.
//
// How (see channels_node.go and internal/fanout): a publish appends the message to the
// channel's log in the store (one operation, which gives it an offset) and
// sends it once on the bus; each node that has live receivers subscribed
// listens on the channel and hands the message to them from memory, in
// offset order, filling any gap from the log. A session that has no live
// receiver (a polling client between two polls) reads the log from its
// cursor when its next receiver attaches. So a publish costs one store
// write and one bus message, however many sessions are subscribed.
//
// Channels are enabled per endpoint with HandleChannels, which binds
// channel names (by regular expression) to a ChannelHandler and log
// options; a name that matches no pattern is refused. They need a store
// that implements store.Channels (the memory and Redis stores do).
//
// The log also serves clients that track offsets themselves (the hub,
// node/apps/hub): PublishOffset returns a message's offset,
// ChannelConfig.Render puts it into what subscribers get (computed once
// per node per message), Session.SubscribeWith with Since lets a new
// session resume where an earlier one stopped, History reads the log, and
// ActiveChannels lists the channels that have subscribers.

// Close code for a session whose channel messages were lost: it was away
// longer than the channel log keeps messages (ChannelConfig.Keep, MaxLen),
// or its node fell that far behind. Channels with AllowLoss skip instead.
const (
	CodeMessagesLost   = 3010
	ReasonMessagesLost = "Channel messages lost"
)

// Channel errors.
var (
	// ErrChannelsDisabled: the endpoint has no HandleChannels, or the
	// node's store does not implement store.Channels.
	ErrChannelsDisabled = errors.New("sockjs: channels not enabled")
	// ErrChannelNotAllowed: no HandleChannels pattern matches the name.
	ErrChannelNotAllowed = errors.New("sockjs: channel not allowed")
	// ErrInvalidChannel: the name is empty, longer than
	// MaxChannelNameLen, or outside the charset of store.CheckChannel.
	ErrInvalidChannel = errors.New("sockjs: invalid channel name")
	// ErrTooManyChannels: the session is subscribed to MaxChannels
	// channels already.
	ErrTooManyChannels = errors.New("sockjs: too many channels for one session")
)

// MaxChannelNameLen bounds a channel name, in bytes.
const MaxChannelNameLen = 200

// ChannelHandler is an application's side of a channel pattern. Like
// Handler, it runs on whichever node the call happens and keeps no
// per-session state in memory.
type ChannelHandler interface {
	// OnSubscribe is called before s joins channel: an error refuses
	// (Session.Subscribe returns it). Authorisation goes here.
	OnSubscribe(s *Session, channel string) error
	// OnUnsubscribe is called after s left channel, by Unsubscribe or
	// because the session closed or expired (then after OnClose).
	OnUnsubscribe(s *Session, channel string)
}

// ChannelHandlerFuncs adapts functions to a ChannelHandler; nil fields
// allow every subscription and do nothing on leave.
type ChannelHandlerFuncs struct {
	Subscribe   func(s *Session, channel string) error
	Unsubscribe func(s *Session, channel string)
}

var _ ChannelHandler = ChannelHandlerFuncs{}

// OnSubscribe implements ChannelHandler.
func (f ChannelHandlerFuncs) OnSubscribe(s *Session, channel string) error {
	if f.Subscribe == nil {
		return nil
	}
	return f.Subscribe(s, channel)
}

// OnUnsubscribe implements ChannelHandler.
func (f ChannelHandlerFuncs) OnUnsubscribe(s *Session, channel string) {
	if f.Unsubscribe != nil {
		f.Unsubscribe(s, channel)
	}
}

// ChannelConfig binds channel names to a handler and log options. Zero
// fields take defaults. Chat rooms and a dashboard, for instance:
//
//	e.HandleChannels(sockjs.ChannelConfig{Pattern: `room-\d+`, Handler: rooms})
//	e.HandleChannels(sockjs.ChannelConfig{Pattern: `dashboard`, MaxLen: 100, AllowLoss: true})
type ChannelConfig struct {
	// Pattern is a regular expression (RE2) that must match the whole
	// channel name. Patterns are tried in the order they were added.
	Pattern string
	// Handler is called on subscribe and unsubscribe; nil allows anyone.
	Handler ChannelHandler
	// Keep is how long a published message stays in the log for
	// sessions that were not live (a polling client between polls).
	// Default 2 × DisconnectDelay + 10 s: a session away longer expires.
	Keep time.Duration
	// MaxLen bounds the log; a session more than MaxLen messages behind
	// has lost messages. Default store.DefaultLogMaxLen.
	MaxLen int
	// AllowLoss makes a subscriber that lost messages skip them instead
	// of being closed with CodeMessagesLost: for channels where only the
	// latest state matters, or where clients see offsets and recover
	// themselves (SubscribeOptions.Since).
	AllowLoss bool
	// Render, when set, turns a published message into the text its
	// subscribers get, given the channel name and the message's offset
	// (the hub adds both to every message). It runs once per node per
	// message for the node's live subscribers, not once per subscriber;
	// messages read from the log (a catch-up, History) are rendered as
	// they are read. It must be safe for concurrent use and fast: it runs
	// under the channel's delivery lock.
	Render func(channel string, offset uint64, msg string) string
	// MembersOnly makes the channels a membership set and nothing more:
	// Members lists the sessions subscribed, but nothing is published
	// there (Publish refuses), so receivers neither listen for it nor
	// read its log. The hub keeps each user's sessions that way.
	MembersOnly bool
}

// channelRoute is a compiled ChannelConfig.
type channelRoute struct {
	re        *regexp.Regexp
	handler   ChannelHandler
	log       store.LogOptions
	allowLoss bool
	render    func(channel string, offset uint64, msg string) string
	// membersOnly: see ChannelConfig.MembersOnly.
	membersOnly bool
}

// renderer returns the function the fan-out's Channel of key renders with: the
// route's Render bound to the channel name, or nil.
func (e *Endpoint) renderer(key string) func(offset uint64, msg string) string {
	r := e.routeOfKey(key)
	if r == nil || r.render == nil {
		return nil
	}
	name, render := e.channelName(key), r.render
	return func(offset uint64, msg string) string { return render(name, offset, msg) }
}

// HandleChannels enables channels on the endpoint and binds the names that
// match c.Pattern to c. Call it on every node, like NewEndpoint, before
// serving.
func (e *Endpoint) HandleChannels(c ChannelConfig) error {
	if e.node.chans == nil {
		return fmt.Errorf("%w: the node's store does not implement store.Channels", ErrChannelsDisabled)
	}
	re, err := regexp.Compile(`^(?:` + c.Pattern + `)$`)
	if err != nil {
		return fmt.Errorf("sockjs: channel pattern: %w", err)
	}
	r := &channelRoute{
		re:        re,
		handler:   c.Handler,
		log:       store.LogOptions{Keep: c.Keep, MaxLen: c.MaxLen},
		allowLoss: c.AllowLoss,
		render:    c.Render,

		membersOnly: c.MembersOnly,
	}
	if r.log.Keep <= 0 {
		r.log.Keep = 2*e.settings.DisconnectDelay + 10*time.Second
	}
	e.chanMu.Lock()
	defer e.chanMu.Unlock()
	routes := append(append([]*channelRoute(nil), e.routes()...), r)
	e.chanRoutes.Store(&routes)
	return nil
}

// routes returns the endpoint's channel routes, in the order added.
func (e *Endpoint) routes() []*channelRoute {
	if p := e.chanRoutes.Load(); p != nil {
		return *p
	}
	return nil
}

// route finds the route of a channel name and returns the name the store
// and the bus know it by.
func (e *Endpoint) route(channel string) (*channelRoute, string, error) {
	routes := e.routes()
	if e.node.chans == nil || len(routes) == 0 {
		return nil, "", ErrChannelsDisabled
	}
	if len(channel) > MaxChannelNameLen {
		return nil, "", fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidChannel, len(channel), MaxChannelNameLen)
	}
	if err := store.CheckChannel(channel); err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrInvalidChannel, err)
	}
	for _, r := range routes {
		if r.re.MatchString(channel) {
			return r, e.channelKey(channel), nil
		}
	}
	return nil, "", fmt.Errorf("%w: %q", ErrChannelNotAllowed, channel)
}

// channelKey namespaces a channel by endpoint, as keyOf does sessions.
func (e *Endpoint) channelKey(channel string) string { return e.settings.Prefix + "/" + channel }

// channelName is the inverse of channelKey.
func (e *Endpoint) channelName(key string) string {
	return strings.TrimPrefix(key, e.settings.Prefix+"/")
}

// routeOfKey returns the route of a store channel name, or nil.
func (e *Endpoint) routeOfKey(key string) *channelRoute {
	name := e.channelName(key)
	for _, r := range e.routes() {
		if r.re.MatchString(name) {
			return r
		}
	}
	return nil
}

// Subscribe joins the session to channel: from now on every message
// published there reaches it, wherever its receiver is. Subscribing twice
// is harmless. The ChannelHandler's OnSubscribe may refuse.
func (s *Session) Subscribe(ctx context.Context, channel string) error {
	_, err := s.SubscribeWith(ctx, channel, SubscribeOptions{})
	return err
}

// SubscribeOptions are the knobs of Session.SubscribeWith.
type SubscribeOptions struct {
	// Since, when not zero, is the offset of the last message of the
	// channel the client saw (as a previous session, say, before a
	// reload): the messages after it that the log still holds reach the
	// session first, in order, then the newer ones, each once.
	Since uint64
	// Registered, when set, is called once the subscription is in the
	// store and before this call tells the session's receiver about it,
	// so what it sends with Session.Send is queued before any message of
	// the channel. A websocket gets it first; an HTTP receiver (polling,
	// streaming) writes the session's queue and the channel's messages
	// as each arrives, so there the order is not guaranteed.
	Registered func(SubscribeResult)
}

// SubscribeResult is what SubscribeWith did.
type SubscribeResult struct {
	// Head is the offset of the channel's newest message at the moment
	// of subscribing (0 for a channel that never had one).
	Head uint64
	// Created is false when the session was subscribed already; its
	// subscription, and what it has been sent, are unchanged (Since does
	// not move it back).
	Created bool
	// Recovered reports, for Since, that the log still held every
	// message after Since, so the session gets them all. False when some
	// were trimmed (the session gets what is left) or Since is past the
	// head (a log that started over). A trim racing with the subscribe
	// can still cost a message a true Recovered promised; on a channel
	// without AllowLoss the session is then closed with CodeMessagesLost.
	// For a subscription that existed already, Recovered reports that its
	// cursor is at or before Since (for a websocket, where it started), so
	// it delivers everything after Since; false when it started later.
	Recovered bool
}

// SubscribeWith is Subscribe with options: a starting offset (recovery
// across sessions) and a hook that runs before delivery starts.
func (s *Session) SubscribeWith(ctx context.Context, channel string, opts SubscribeOptions) (SubscribeResult, error) {
	var out SubscribeResult
	e := s.ep
	r, key, err := e.route(channel)
	if err != nil {
		return out, err
	}
	if r.handler != nil {
		if err := callOnSubscribe(e, r.handler, s, channel); err != nil {
			return out, err
		}
	}
	cs := e.node.chans.store
	from := uint64(math.MaxUint64)
	if opts.Since > 0 {
		// Where the replay can start: after Since if the log still
		// holds what follows it, else after what it dropped.
		rr, err := cs.ReadChannel(ctx, key, opts.Since, 1)
		if err != nil {
			return out, fmt.Errorf("sockjs: subscribe: %w", err)
		}
		from, out.Recovered = opts.Since, !rr.Truncated
		if rr.Truncated {
			from = rr.Head
			if len(rr.Entries) > 0 {
				from = rr.Entries[0].Offset - 1
			}
		}
	}
	res, err := cs.SubscribeFrom(ctx, s.key, key, e.settings.MaxChannels, from)
	switch {
	case errors.Is(err, store.ErrTooManySubscriptions):
		return out, ErrTooManyChannels
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrClosed):
		return out, ErrSessionClosed
	case err != nil:
		return out, fmt.Errorf("sockjs: subscribe: %w", err)
	}
	out.Created, out.Head = res.Created, res.Cursor
	if opts.Since > 0 && res.Created {
		head, err := e.head(ctx, key)
		if err != nil {
			return out, fmt.Errorf("sockjs: subscribe: %w", err)
		}
		out.Head = head
	} else if !res.Created {
		// The subscription delivers what follows its cursor: everything
		// after Since when it starts at or before Since.
		out.Recovered = opts.Since > 0 && opts.Since >= res.Cursor
		if out.Head, err = e.head(ctx, key); err != nil {
			return out, fmt.Errorf("sockjs: subscribe: %w", err)
		}
	}
	if opts.Registered != nil {
		opts.Registered(out)
	}
	if res.Created && !r.membersOnly {
		e.node.chans.notify(ctx, res.ReceiverNode, noteSubscribe, s.key, key, res.Cursor)
		e.node.chans.register(ctx, e, key)
	}
	return out, nil
}

// beyondOffsets is past every offset a log gives (they stay below 2^53):
// a read after it answers the head alone.
const beyondOffsets = 1 << 53

// head reads the offset of the channel's newest message.
func (e *Endpoint) head(ctx context.Context, key string) (uint64, error) {
	rr, err := e.node.chans.store.ReadChannel(ctx, key, beyondOffsets, 1)
	return rr.Head, err
}

func callOnSubscribe(e *Endpoint, h ChannelHandler, s *Session, channel string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			e.node.log.Error("sockjs: OnSubscribe panicked", "prefix", e.settings.Prefix, "panic", p)
			err = fmt.Errorf("sockjs: OnSubscribe panicked: %v", p)
		}
	}()
	return h.OnSubscribe(s, channel)
}

func callOnUnsubscribe(e *Endpoint, h ChannelHandler, s *Session, channel string) {
	defer func() {
		if p := recover(); p != nil {
			e.node.log.Error("sockjs: OnUnsubscribe panicked", "prefix", e.settings.Prefix, "panic", p)
		}
	}()
	h.OnUnsubscribe(s, channel)
}

// Unsubscribe takes the session out of channel. Unsubscribing from a
// channel it is not in does nothing. Called on a node other than the one
// holding the session's live receiver, it takes effect there when the
// bus brings that node the news: a message published in between may
// still reach the session.
func (s *Session) Unsubscribe(ctx context.Context, channel string) error {
	e := s.ep
	r, key, err := e.route(channel)
	if err != nil {
		return err
	}
	removed, node, err := e.node.chans.store.Unsubscribe(ctx, s.key, key)
	if err != nil {
		return fmt.Errorf("sockjs: unsubscribe: %w", err)
	}
	if removed {
		e.node.chans.notify(ctx, node, noteUnsubscribe, s.key, key, 0)
		if r.handler != nil {
			callOnUnsubscribe(e, r.handler, s, channel)
		}
	}
	return nil
}

// Channels returns the channels the session is subscribed to.
func (s *Session) Channels(ctx context.Context) ([]string, error) {
	c := s.ep.node.chans
	if c == nil {
		return nil, ErrChannelsDisabled
	}
	subs, err := c.store.Subscriptions(ctx, s.key)
	if err != nil {
		return nil, fmt.Errorf("sockjs: channels: %w", err)
	}
	out := make([]string, 0, len(subs))
	for key := range subs {
		out = append(out, s.ep.channelName(key))
	}
	return out, nil
}

// leaveChannels unsubscribes a session that closed or expired from all its
// channels; runOnClose calls it after OnClose, on one node.
func (e *Endpoint) leaveChannels(s *Session) {
	c := e.node.chans
	if c == nil || len(e.routes()) == 0 {
		return
	}
	ctx, cancel := e.node.opContext()
	defer cancel()
	keys, err := c.store.UnsubscribeAll(ctx, s.key)
	if err != nil {
		e.node.log.Warn("sockjs: leaving channels failed", "prefix", e.settings.Prefix, "err", err)
		return
	}
	for _, key := range keys {
		if r := e.routeOfKey(key); r != nil && r.handler != nil {
			callOnUnsubscribe(e, r.handler, s, e.channelName(key))
		}
	}
}

// Members returns the sessions subscribed to channel.
func (e *Endpoint) Members(ctx context.Context, channel string) ([]*Session, error) {
	_, key, err := e.route(channel)
	if err != nil {
		return nil, err
	}
	keys, err := e.node.chans.store.Members(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("sockjs: members: %w", err)
	}
	out := make([]*Session, 0, len(keys))
	prefix := e.settings.Prefix + "/"
	for _, k := range keys {
		if id, ok := strings.CutPrefix(k, prefix); ok {
			out = append(out, e.sessionFor(id, k, nil))
		}
	}
	return out, nil
}

// LiveSubscribers counts the subscriptions to channel of this node's
// receivers that take its messages as they are published, not those
// still catching up from the log: once every member is live, a publish
// costs no more log reads.
func (e *Endpoint) LiveSubscribers(channel string) int {
	if e.node.chans == nil {
		return 0
	}
	return e.node.chans.fanout.LiveSubscribers(e.channelKey(channel))
}

// ChannelMessage is one message of a channel's log, rendered (see
// ChannelConfig.Render).
type ChannelMessage struct {
	Offset uint64
	Msg    string
}

// History is what Endpoint.History read.
type History struct {
	// Messages are oldest first.
	Messages []ChannelMessage
	// Head is the offset of the channel's newest message.
	Head uint64
	// Complete reports that the log still held every message after
	// since; always true for a read of the newest messages (since 0).
	Complete bool
}

// MaxHistory bounds the messages one History call returns.
const MaxHistory = 1000

// History reads up to limit messages of channel's log (limit <= 0 or over
// MaxHistory: MaxHistory): those after offset since, or with since 0 the
// newest limit. The log keeps what ChannelConfig.Keep and MaxLen allow.
func (e *Endpoint) History(ctx context.Context, channel string, since uint64, limit int) (History, error) {
	r, key, err := e.route(channel)
	if err != nil {
		return History{}, err
	}
	if limit <= 0 || limit > MaxHistory {
		limit = MaxHistory
	}
	cs := e.node.chans.store
	newest := since == 0
	if newest {
		head, err := e.head(ctx, key)
		if err != nil {
			return History{}, fmt.Errorf("sockjs: history: %w", err)
		}
		if head == 0 {
			return History{Complete: true}, nil
		}
		since = head - min(head, uint64(limit))
	}
	rr, err := cs.ReadChannel(ctx, key, since, limit)
	if err != nil {
		return History{}, fmt.Errorf("sockjs: history: %w", err)
	}
	h := History{Head: rr.Head, Complete: newest || !rr.Truncated, Messages: make([]ChannelMessage, 0, len(rr.Entries))}
	for _, le := range rr.Entries {
		_, msg, ok := decodeEntry(le.Msg)
		if !ok {
			continue
		}
		if r.render != nil {
			msg = r.render(channel, le.Offset, msg)
		}
		h.Messages = append(h.Messages, ChannelMessage{Offset: le.Offset, Msg: msg})
	}
	return h, nil
}

// PublishOption is a per-call knob of Publish.
type PublishOption func(*publishOptions)

type publishOptions struct {
	except string // store key of a session that does not get the message
}

// Except leaves s out of a publish: a chat message goes to everyone in the
// room but its sender.
func Except(s *Session) PublishOption {
	return func(o *publishOptions) { o.except = s.key }
}

// Publish sends msg to every session subscribed to channel, on every node.
// It returns once the message is in the channel's log: from then on every
// subscriber gets it exactly once (a subscriber that is live at once, a
// detached one at its next attach). Messages published by one caller, one
// after another, arrive in that order. If the bus fails after the log
// append, Publish still returns nil: delivery is late, not lost.
func (e *Endpoint) Publish(ctx context.Context, channel, msg string, opts ...PublishOption) error {
	_, err := e.PublishOffset(ctx, channel, msg, opts...)
	return err
}

// PublishOffset is Publish that also returns the message's offset in the
// channel's log.
func (e *Endpoint) PublishOffset(ctx context.Context, channel, msg string, opts ...PublishOption) (uint64, error) {
	r, key, err := e.route(channel)
	if err != nil {
		return 0, err
	}
	if r.membersOnly {
		return 0, fmt.Errorf("%w: %q holds members only", ErrChannelNotAllowed, channel)
	}
	var o publishOptions
	for _, f := range opts {
		f(&o)
	}
	entry := encodeEntry(o.except, msg)
	off, err := e.node.chans.store.AppendChannel(ctx, key, entry, r.log)
	if err != nil {
		return 0, fmt.Errorf("sockjs: publish: %w", err)
	}
	if err := e.node.bus.Publish(ctx, key, encodeBusEntry(off, entry)); err != nil {
		// The nodes' checks of the log find it (see package fanout).
		e.node.log.Warn("sockjs: publish on the bus failed", "channel", key, "err", err)
	}
	return off, nil
}

// ActiveChannels lists the endpoint's channels that have subscribers,
// cluster-wide, sorted. It costs a store read per channel listed: it is
// meant for operators and backends, not for every message.
func (e *Endpoint) ActiveChannels(ctx context.Context) ([]string, error) {
	h := e.node.chans
	if h == nil || len(e.routes()) == 0 {
		return nil, ErrChannelsDisabled
	}
	reg := e.registryKey()
	subs, err := h.store.Subscriptions(ctx, reg)
	if err != nil {
		return nil, fmt.Errorf("sockjs: active channels: %w", err)
	}
	out := make([]string, 0, len(subs))
	for key := range subs {
		members, err := h.store.Members(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("sockjs: active channels: %w", err)
		}
		if slices.ContainsFunc(members, func(m string) bool { return m != reg }) {
			out = append(out, e.channelName(key))
			continue
		}
		// Nobody left: drop it from the registry, unless someone
		// joined meanwhile (their subscribe registered it first).
		if _, _, err := h.store.Unsubscribe(ctx, reg, key); err != nil {
			return nil, fmt.Errorf("sockjs: active channels: %w", err)
		}
		if members, err = h.store.Members(ctx, key); err == nil && len(members) > 0 {
			h.register(ctx, e, key)
			out = append(out, e.channelName(key))
		}
	}
	sort.Strings(out)
	return out, nil
}

// registryKey is the store id of the endpoint's channel registry: a
// session that never has a receiver, subscribed to every channel of the
// endpoint that had a subscriber lately, so its subscriptions list them.
// It lies outside the endpoint's keys (prefix + "/"), so no handler, no
// Members and no reaper's OnClose ever see it.
func (e *Endpoint) registryKey() string { return "_channels" + e.settings.Prefix }
