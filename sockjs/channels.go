package sockjs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
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
// How (see channels_hub.go): a publish appends the message to the
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
	// latest state matters.
	AllowLoss bool
}

// channelRoute is a compiled ChannelConfig.
type channelRoute struct {
	re        *regexp.Regexp
	handler   ChannelHandler
	log       store.LogOptions
	allowLoss bool
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
	e := s.ep
	r, key, err := e.route(channel)
	if err != nil {
		return err
	}
	if r.handler != nil {
		if err := callOnSubscribe(e, r.handler, s, channel); err != nil {
			return err
		}
	}
	res, err := e.node.chans.store.Subscribe(ctx, s.key, key, e.settings.MaxChannels)
	switch {
	case errors.Is(err, store.ErrTooManySubscriptions):
		return ErrTooManyChannels
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrClosed):
		return ErrSessionClosed
	case err != nil:
		return fmt.Errorf("sockjs: subscribe: %w", err)
	}
	if res.Created {
		e.node.chans.notify(ctx, res.ReceiverNode, noteSubscribe, s.key, key, res.Cursor)
	}
	return nil
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
	r, key, err := e.route(channel)
	if err != nil {
		return err
	}
	var o publishOptions
	for _, f := range opts {
		f(&o)
	}
	entry := encodeEntry(o.except, msg)
	off, err := e.node.chans.store.AppendChannel(ctx, key, entry, r.log)
	if err != nil {
		return fmt.Errorf("sockjs: publish: %w", err)
	}
	if err := e.node.bus.Publish(ctx, key, encodeBusEntry(off, entry)); err != nil {
		// The nodes' checks of the log find it (see hubChannel).
		e.node.log.Warn("sockjs: publish on the bus failed", "channel", key, "err", err)
	}
	return nil
}

// Encodings.
//
// A log entry (what the store keeps) is: uvarint length of the except
// session key, the key, then the message. A bus message on a channel is:
// uvarint offset, then the log entry. A subscription note to a node is:
// envelopeChannels, op, uvarint-prefixed session key and channel, uvarint
// cursor.

func encodeEntry(except, msg string) string {
	b := make([]byte, 0, binary.MaxVarintLen64+len(except)+len(msg))
	b = binary.AppendUvarint(b, uint64(len(except)))
	b = append(b, except...)
	b = append(b, msg...)
	return string(b)
}

func decodeEntry(entry string) (except, msg string, ok bool) {
	l, n := binary.Uvarint([]byte(entry[:min(len(entry), binary.MaxVarintLen64)]))
	if n <= 0 || l > uint64(len(entry)-n) {
		return "", "", false
	}
	return entry[n : n+int(l)], entry[n+int(l):], true
}

func encodeBusEntry(off uint64, entry string) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(entry))
	b = binary.AppendUvarint(b, off)
	return append(b, entry...)
}

func decodeBusEntry(b []byte) (off uint64, entry string, ok bool) {
	off, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, "", false
	}
	return off, string(b[n:]), true
}

// Note operations.
const (
	noteSubscribe   = 's'
	noteUnsubscribe = 'u'
)

const envelopeChannels = 'c' // payload: a subscription note (see above)

func encodeNote(op byte, key, channel string, cursor uint64) []byte {
	b := make([]byte, 0, 2+3*binary.MaxVarintLen64+len(key)+len(channel))
	b = append(b, envelopeChannels, op)
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	b = binary.AppendUvarint(b, uint64(len(channel)))
	b = append(b, channel...)
	return binary.AppendUvarint(b, cursor)
}

// decodeNote reads a note without its envelope byte.
func decodeNote(b []byte) (op byte, key, channel string, cursor uint64, ok bool) {
	if len(b) < 1 {
		return 0, "", "", 0, false
	}
	op, b = b[0], b[1:]
	next := func() (string, bool) {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return "", false
		}
		s := string(b[n : n+int(l)])
		b = b[n+int(l):]
		return s, true
	}
	var ok1, ok2 bool
	key, ok1 = next()
	channel, ok2 = next()
	cursor, n := binary.Uvarint(b)
	if !ok1 || !ok2 || n <= 0 || (op != noteSubscribe && op != noteUnsubscribe) {
		return 0, "", "", 0, false
	}
	return op, key, channel, cursor, true
}
