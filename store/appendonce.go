package store

import (
	"context"
	"errors"
)

// OnceAppender is an optional Store capability: appends that a repeat
// does not double. A client's send (xhr_send, jsonp_send) may reach a node
// that dies before it answers; the balancer then sends the same request,
// with the same send id, to another node, whose handler appends the same
// messages again. Tagged with the send id and the append's rank within
// that send, the repeat appends nothing. The store keeps only the last
// tag per session, which is enough because one session's sends come one
// after another (sockjs-client waits for each answer), and untagged
// appends (other senders) leave it alone. Callers find it with a type
// assertion:
//
//	if a, ok := st.(store.OnceAppender); ok { ... }
type OnceAppender interface {
	// AppendOnce is Append, except that when the session's last tagged
	// append had tag.ID and a Seq at or above tag.Seq, it appends nothing
	// and succeeds (the messages are already queued, or were delivered).
	// ErrClosed and ErrNotFound are reported as by Append.
	AppendOnce(ctx context.Context, id string, msgs []string, limits QueueLimits, tag AppendTag) (AppendResult, error)
}

// AppendTag names one append of one send: the send's id, and the append's
// rank among those its handler made (0, 1, ...).
type AppendTag struct {
	ID  string
	Seq int
}

// MaxAppendTagID bounds the length of AppendTag.ID: the id comes from a
// request header, and the store keeps it with the session.
const MaxAppendTagID = 128

// ErrBadTag: an AppendTag with an empty id, or one longer than
// MaxAppendTagID.
var ErrBadTag = errors.New("store: append tag id empty or too long")

// Check returns ErrBadTag for a tag AppendOnce refuses.
func (t AppendTag) Check() error {
	if t.ID == "" || len(t.ID) > MaxAppendTagID {
		return ErrBadTag
	}
	return nil
}
