// Package store holds the session state that every Shoal node shares:
// sessions, their receiver leases and outgoing queues, attributes and
// channel registrations. Each method is one atomic transition, so two nodes
// racing on the same session cannot both win.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Implementations return them unwrapped or wrapped with %w.
var (
	// ErrNotFound: the session does not exist (never created, or expired).
	ErrNotFound = errors.New("store: session not found")
	// ErrClosed: the session is closed; nothing more may be queued for it.
	ErrClosed = errors.New("store: session closed")
	// ErrQueueFull: appending would exceed the session's queue bound.
	ErrQueueFull = errors.New("store: session queue full")
	// ErrNotHolder: the caller's lease token is not the session's current one.
	ErrNotHolder = errors.New("store: receiver lease not held")
)

// State is where a session is in its life. A session is created open; a
// close is one transition to closed that keeps the code and reason, so later
// receivers can be told why until the session expires. DESIGN.md's "new"
// and "closing" states have no stored form: creation is atomic with
// opening, and closing is the single transition that decides who runs
// OnClose.
type State uint8

const (
	StateOpen State = iota + 1
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateOpen:
		return "open"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// Defaults used when a duration is zero or negative.
const (
	DefaultDisconnectDelay = 5 * time.Second  // SockJS disconnect_delay
	DefaultLeaseTTL        = 30 * time.Second // receiver lease TTL
)

// CreateOptions describe a session being created.
type CreateOptions struct {
	// DisconnectDelay is how long the session lives without a receiver
	// before it is reaped (SockJS disconnect_delay). Zero means
	// DefaultDisconnectDelay.
	DisconnectDelay time.Duration
	// Info is opaque data kept with the session (the sockjs package stores
	// the connection info there, so handlers on any node can read it).
	Info []byte
	// Lease, when set, is taken in the same atomic step by the caller that
	// creates the session, so the creator is its first receiver: a
	// receiver racing with it (another node, same new session) cannot
	// attach in between and miss the open frame. A caller that did not
	// create the session takes nothing. An empty Token is ErrNotHolder.
	Lease *Lease
}

// Lease identifies one receiver (a poll, a stream, a websocket) holding a
// session. Only one lease is live per session at a time.
type Lease struct {
	Node  string        // node holding the live socket
	Token string        // unique per receiving request, cluster-wide
	TTL   time.Duration // lease expires unless renewed within TTL; zero: DefaultLeaseTTL
	// Sticky marks a receiver that cannot move to another node (a websocket):
	// senders elsewhere address that node directly.
	Sticky bool
}

// Session is a snapshot of a session's shared state.
type Session struct {
	ID     string
	State  State
	Code   int    // close code, when State is StateClosed
	Reason string // close reason, when State is StateClosed
	Info   []byte // CreateOptions.Info; read-only (a store may share it)
	// ReceiverNode and ReceiverSticky describe the live lease; both are
	// zero when no receiver is attached. The lease token is never exposed.
	ReceiverNode   string
	ReceiverSticky bool
}

// AttachStatus tells what Attach found.
type AttachStatus uint8

const (
	// Attached: the caller holds the lease now.
	Attached AttachStatus = iota + 1
	// Busy: another receiver holds a live lease (SockJS c[2010,...]).
	Busy
	// AttachClosed: the session is closed; Code and Reason say why.
	// Unless another receiver holds a live lease, Messages holds what was
	// queued before the close (and what a dead receiver left in flight),
	// taken off the queue: the client gets it before the close frame.
	// Beside a live lease, HeldBack reports that some are still queued
	// or in flight. With Hold (Committer), what is taken stays in flight
	// under the caller's lease, which it takes for that (Leased).
	AttachClosed
	// Unknown: no such session.
	Unknown
)

// AttachResult is what Attach returns. When Status is Attached (or
// AttachClosed, see there), Messages holds what was queued (drained in the
// same atomic step, up to the MaxBytes option); More reports that messages
// are still queued.
type AttachResult struct {
	Status   AttachStatus
	Code     int
	Reason   string
	Messages []string
	More     bool
	// HeldBack (AttachClosed only): another receiver holds a live lease
	// and messages queued before the close wait for it, or it holds some
	// in flight (Committer). A poll that has answered never drains them;
	// once its commit frees the lease, the next Attach takes them. A
	// holder that died before its write leaves what it had in flight to
	// the receiver that takes its lease over (LeaseTaker).
	HeldBack bool
	// Leased (AttachClosed with Hold only): Messages were taken and are
	// held in flight under the lease the caller took with them. It
	// commits them once written (Committer.Commit, with detach when it
	// has no more to take), as a receiver of an open session does; a
	// caller that dies first leaves them to the next receiver, and one
	// taken again with the same token returns them again.
	Leased bool
}

// DrainResult is what Drain returns: the queued messages, oldest first (up
// to the MaxBytes option), and the session state observed in the same
// atomic step. More reports that messages are still queued.
type DrainResult struct {
	Messages []string
	State    State
	Code     int
	Reason   string
	More     bool
}

// QueueLimits bound one session's queue. A zero field means no bound.
type QueueLimits struct {
	Messages int // how many messages may wait
	Bytes    int // how many bytes of messages (their lengths summed) may wait
}

// DrainOption is a per-call knob of Attach and Drain.
type DrainOption func(*DrainOptions)

// DrainOptions is what the DrainOption values of one call set;
// implementations read it with DrainOptionsOf.
type DrainOptions struct {
	// MaxBytes bounds the bytes (message lengths summed) one call takes
	// off the queue; the rest stays queued, oldest first. The oldest
	// message is always taken, however big, so a queue always moves.
	// Zero or negative: everything.
	MaxBytes int
	// Hold keeps what is taken in flight until committed (see
	// Committer and the Hold option).
	Hold bool
	// HandOff: the lease Attach takes accepts hand-offs of up to this
	// many bytes (see HandOffCommitter and the HandOff option).
	HandOff int
}

// MaxBytes makes Attach or Drain take at most n bytes of messages (see
// DrainOptions.MaxBytes).
func MaxBytes(n int) DrainOption { return func(o *DrainOptions) { o.MaxBytes = n } }

// DrainOptionsOf applies opts.
func DrainOptionsOf(opts []DrainOption) DrainOptions {
	var o DrainOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// AppendResult tells a sender who should be woken up.
type AppendResult struct {
	// ReceiverNode holds the live lease at the time of the append; empty
	// when no receiver is attached (the next one will drain the queue).
	ReceiverNode string
	// HandOff, when its Token is set, names the receiver the messages
	// were handed to (see HandOffCommitter): the wake-up may carry them.
	HandOff HandedOff
}

// Store is the shared session state. All methods are safe for concurrent use
// by any number of goroutines on any number of nodes; each is atomic.
type Store interface {
	// Create creates the session if it does not exist. created reports
	// whether this call created it: exactly one caller cluster-wide gets
	// true for a given id, and only that caller runs OnOpen.
	Create(ctx context.Context, id string, opts CreateOptions) (created bool, err error)
	// Get reads the session. ErrNotFound if it does not exist.
	Get(ctx context.Context, id string) (Session, error)

	// Attach takes the receiver lease and drains the queue, in one step.
	// A live lease held by someone else yields Busy; a closed session
	// AttachClosed; a missing one Unknown. A lease whose TTL passed
	// counts as released. Attaching again with the token that holds the
	// live lease succeeds (it renews). An empty token is ErrNotHolder.
	Attach(ctx context.Context, id string, lease Lease, opts ...DrainOption) (AttachResult, error)
	// Renew extends the lease by its TTL. ErrNotHolder if it was lost
	// (taken by another token, detached, or expired: an expired lease is
	// released even if nobody took it since).
	Renew(ctx context.Context, id string, lease Lease) error
	// Detach releases the lease held with token and starts the session's
	// disconnect deadline. ErrNotHolder if token does not hold a live
	// lease; the deadline of an expired lease already started when it
	// expired.
	Detach(ctx context.Context, id, token string) error

	// Append queues messages at the tail, all or nothing. ErrQueueFull when
	// the queue would pass one of limits (or a bound of the store's own,
	// see Memory), ErrClosed when the session is closed, ErrNotFound when
	// it is gone.
	Append(ctx context.Context, id string, msgs []string, limits QueueLimits) (AppendResult, error)
	// Drain takes the queued messages (all, or up to the MaxBytes option);
	// only the holder of token may. ErrNotHolder otherwise. A closed
	// session drains what is left and reports StateClosed with its code
	// and reason.
	Drain(ctx context.Context, id, token string, opts ...DrainOption) (DrainResult, error)

	// Close moves an open session to closed with code and reason. won is
	// true for exactly one caller cluster-wide, who runs OnClose. The closed
	// session is kept for its disconnect delay (after its receiver detaches)
	// so later receivers get the close frame, then deleted. Closing a
	// closed session returns false; a missing one ErrNotFound.
	Close(ctx context.Context, id string, code int, reason string) (won bool, err error)
	// Reap closes and deletes sessions whose disconnect deadline passed
	// (no live lease, deadline < now), at most limit of them. Each id of a
	// session that was open is returned to exactly one caller cluster-wide,
	// who runs OnClose for it; closed sessions are deleted silently and do
	// not count towards limit. limit <= 0: no bound. Implementations may
	// judge deadlines by their own clock (see store/redis).
	Reap(ctx context.Context, now time.Time, limit int) (ids []string, err error)

	// SetAttr and Attr keep small per-session key/value attributes, deleted
	// with the session. Attr reports ok=false for a missing key; both
	// return ErrNotFound for a missing session.
	SetAttr(ctx context.Context, id, key, value string) error
	Attr(ctx context.Context, id, key string) (value string, ok bool, err error)
}
