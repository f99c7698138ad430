package store

import "context"

// LeaseTaker is an optional Store capability: taking over, at once, the
// lease of a receiver whose node stopped answering. A node killed with
// SIGKILL leaves its polls' and streams' leases live until their TTL runs
// out or membership declares it dead (seconds); a client that reopens its
// poll elsewhere meanwhile would get Busy (SockJS 2010) and give up. The
// sockjs package asks the holder over the bus first and takes over only
// when it does not answer. Callers find it with a type assertion:
//
//	if lt, ok := st.(store.LeaseTaker); ok { ... }
type LeaseTaker interface {
	// TakeOver attaches as Attach does, and also when the live lease is
	// held by node from and is not Sticky (a websocket cannot move):
	// that lease is void from then on, as if it had expired, and the
	// queue is drained for the new holder. A live lease of another node,
	// or a Sticky one, still yields Busy. Safe for concurrent use; one
	// atomic step, so of two callers taking over the same lease one wins
	// and the other sees Busy.
	TakeOver(ctx context.Context, id, from string, lease Lease, opts ...DrainOption) (AttachResult, error)
}
