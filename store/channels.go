package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Channel errors. Implementations return them unwrapped or wrapped with %w.
var (
	// ErrInvalidChannel: the channel name is empty, too long or holds a
	// byte outside the channel charset (see CheckChannel).
	ErrInvalidChannel = errors.New("store: invalid channel name")
	// ErrTooManySubscriptions: subscribing would exceed the session's bound.
	ErrTooManySubscriptions = errors.New("store: too many subscriptions")
)

// MaxChannelLen bounds a channel name, in bytes.
const MaxChannelLen = 256

// Defaults used when a LogOptions field is zero or negative.
const (
	DefaultLogKeep   = 20 * time.Second // 2 × DefaultDisconnectDelay + 10 s
	DefaultLogMaxLen = 10000
)

// ChannelTTL is how long a channel's head and member set outlive its last
// Append or Subscribe. It is only a safety net so an abandoned cluster
// leaves no garbage: a channel nobody publishes on or subscribes to for
// that long starts over with larger offsets, and a session that stayed
// subscribed through it reads its next message as truncated.
const ChannelTTL = 7 * 24 * time.Hour

// CheckChannel returns an error wrapping ErrInvalidChannel unless name is
// 1 to MaxChannelLen bytes of A-Z a-z 0-9 and _ - . : @ / = +. The charset
// keeps names safe in Redis hash tags (no braces), NATS subjects and logs.
func CheckChannel(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidChannel)
	}
	if len(name) > MaxChannelLen {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidChannel, len(name), MaxChannelLen)
	}
	for i := 0; i < len(name); i++ {
		if !channelByte(name[i]) {
			return fmt.Errorf("%w: byte %q at %d", ErrInvalidChannel, name[i], i)
		}
	}
	return nil
}

func channelByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '_', '-', '.', ':', '@', '/', '=', '+':
		return true
	}
	return false
}

// LogOptions bound a channel's log. Every publisher of a channel should use
// the same options: each Append trims with its own.
type LogOptions struct {
	// Keep is how long a message stays readable for sessions that catch
	// up (a polling session between polls); keep it longer than the
	// disconnect delay. Zero means DefaultLogKeep.
	Keep time.Duration
	// MaxLen bounds how many messages the log holds. Zero means
	// DefaultLogMaxLen.
	MaxLen int
}

// LogEntry is one message of a channel log.
type LogEntry struct {
	Offset uint64
	Msg    string
}

// ReadResult is what ReadChannel returns.
type ReadResult struct {
	// Entries follow the requested offset, oldest first, with contiguous
	// offsets.
	Entries []LogEntry
	// Head is the offset of the newest message (the offset a subscriber
	// that joined now starts after); 0 when the channel has no log.
	Head uint64
	// Truncated reports that messages after the requested offset are no
	// longer in the log (trimmed by age or length, or the log started
	// over), so a reader that wanted them has lost them. Entries then
	// starts at the oldest message still kept.
	Truncated bool
}

// SubscribeResult is what Subscribe returns.
type SubscribeResult struct {
	// Cursor is the offset the session has read the channel up to: for a
	// new subscription the log head at the moment of subscribing, so only
	// later messages are the session's; for an existing one its cursor.
	Cursor uint64
	// Created is false when the session was already subscribed.
	Created bool
	// ReceiverNode holds the session's live receiver lease, empty when
	// none: the caller tells that node to start live delivery.
	ReceiverNode string
}

// Channels keeps channel registrations (channel → sessions and session →
// channels with a per-session cursor) and a per-channel log of published
// messages with strictly increasing offsets. Live subscribers are fed from
// memory by the nodes; the log serves sessions that were not live when a
// message was published (they read from their cursor at their next
// attach) and fills the gaps a node finds in what the bus brought it.
//
// All methods are safe for concurrent use by any number of goroutines on
// any number of nodes. Each is atomic on its own side (channel or session);
// a method that touches both (Subscribe, Unsubscribe, UnsubscribeAll) may
// be seen half done by a concurrent caller, as the method docs say.
// Session ids are those of Store; channel names must pass CheckChannel.
type Channels interface {
	// Subscribe registers session id on channel with its cursor at the
	// log head, unless it is subscribed already (then it is unchanged).
	// ErrTooManySubscriptions when the session already has max channels
	// (max <= 0: no bound); ErrNotFound or ErrClosed when the session is
	// missing or closed. Members may list the session a moment before
	// Subscriptions does.
	Subscribe(ctx context.Context, id, channel string, max int) (SubscribeResult, error)
	// SubscribeFrom is Subscribe with the cursor of a new subscription at
	// min(from, log head) instead of the head: the session's receivers
	// then catch up from there, so a client that reconnected as a new
	// session recovers what it missed. An existing subscription keeps its
	// cursor.
	SubscribeFrom(ctx context.Context, id, channel string, max int, from uint64) (SubscribeResult, error)
	// Unsubscribe removes the session from channel. removed is false when
	// it was not subscribed; receiverNode is the session's live receiver
	// (empty when none), so the caller can stop its live delivery.
	Unsubscribe(ctx context.Context, id, channel string) (removed bool, receiverNode string, err error)
	// UnsubscribeAll removes the session from every channel and returns
	// them, in no particular order; each channel is returned to one
	// caller only. It works on a session that was already reaped, so the
	// node that runs OnClose can leave its channels.
	UnsubscribeAll(ctx context.Context, id string) ([]string, error)
	// Subscriptions returns the session's channels and cursors (empty,
	// not an error, for a session that has none or does not exist).
	Subscriptions(ctx context.Context, id string) (map[string]uint64, error)
	// SetCursors records how far the session has read each channel.
	// Channels it is not subscribed to are ignored; a cursor never moves
	// back.
	SetCursors(ctx context.Context, id string, cursors map[string]uint64) error
	// Members returns the sessions subscribed to channel, in no particular
	// order; sessions that no longer exist are left out.
	Members(ctx context.Context, channel string) ([]string, error)

	// AppendChannel adds msg to the channel's log and returns its offset:
	// one more than the previous message's while the log lives, so a
	// reader that sees offsets o and o+2 knows o+1 exists. The log is
	// trimmed to opts first.
	AppendChannel(ctx context.Context, channel, msg string, opts LogOptions) (offset uint64, err error)
	// ReadChannel returns up to max (<= 0: 1000) messages with offsets
	// after after, oldest first.
	ReadChannel(ctx context.Context, channel string, after uint64, max int) (ReadResult, error)
}

// DefaultReadMax is how many entries ReadChannel returns when max <= 0.
const DefaultReadMax = 1000

// ChannelLogBase returns the first head of a channel log created at t.
// Offsets start from the clock (in microsecond-sized steps above the
// millisecond) so that a log which expired and started over counts on
// from above every offset it gave before: a reader's old cursor then reads
// as truncated instead of silently skipping the new log's first messages.
// It stays below 2^53, so Lua scripts handle offsets exactly.
func ChannelLogBase(t time.Time) uint64 {
	return uint64(t.UnixMilli()) * 1000
}
