// Package bus carries the messages that cross nodes without being state:
// wake-ups and frames addressed to the node that holds a live socket, and
// channel fan-out. Delivery is at most once; whatever must not be lost is in
// the store, and a bus message is only a hint or a fast path.
package bus

import (
	"context"
	"errors"
)

// ErrClosed is returned by a Bus after Close.
var ErrClosed = errors.New("bus: closed")

// Handler receives one message. The slice is owned by the handler. Handlers
// of one listener are called one at a time, in the order the bus received
// the messages; they must not block for long (hand off to a goroutine or a
// bounded queue instead).
type Handler func(msg []byte)

// Bus is safe for concurrent use. Every Listen returns a cancel function
// that stops delivery to that handler; calling it twice is harmless.
type Bus interface {
	// SendNode delivers msg to the listeners of node. Sending to a node
	// nobody listens for drops the message without error.
	SendNode(ctx context.Context, node string, msg []byte) error
	// ListenNode calls h for each message sent to node.
	ListenNode(node string, h Handler) (cancel func(), err error)

	// Publish delivers msg to the listeners of channel on every node.
	Publish(ctx context.Context, channel string, msg []byte) error
	// ListenChannel calls h for each message published on channel. A node
	// listens only while it has live subscribers of that channel.
	ListenChannel(channel string, h Handler) (cancel func(), err error)

	// Close stops every listener and releases the connection.
	Close() error
}

// LossCounter is a Bus that can tell whether it may have lost messages
// sent to this node. Losses counts the events that may have lost some (a
// reconnect, a message dropped for a slow listener); up is false while the
// bus is cut off from its server. While up holds and the count stays the
// same, every message sent to this node's listeners since has arrived or
// is on its way, so a receiver may trust its wake-ups and look at the
// store less often. A Bus without it never vouches for its wake-ups.
type LossCounter interface {
	Losses() (n uint64, up bool)
}
