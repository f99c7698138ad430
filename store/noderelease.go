package store

import "context"

// NodeReleaser is an optional Store capability: cleaning up, at once, after
// a node that died while it held receiver leases. Without it a dead node's
// leases simply run out after their TTL (store.DefaultLeaseTTL), and its
// sessions stay Busy for that long. Callers find it with a type assertion:
//
//	if r, ok := st.(store.NodeReleaser); ok { ... }
//
// ReleaseNode is safe for concurrent use by any number of nodes; each
// session is released in its own atomic step, so two survivors cleaning up
// after the same dead node at once do no harm.
type NodeReleaser interface {
	// ReleaseNode releases every live receiver lease held by node.
	//
	// A lease that is not Sticky (a poll or a stream, which the client
	// resumes on another node) is released as Detach would release it: the
	// session's disconnect deadline starts now, and the next receiver, on
	// any node, attaches at once.
	//
	// An open session whose lease is Sticky (a websocket: its socket died
	// with the node, so it cannot be resumed) is closed with code and
	// reason, and its lease released. Its id is in the result's Closed,
	// for exactly one caller cluster-wide (as with Close), who runs
	// OnClose.
	//
	// Leases of node that had already expired are only forgotten: their
	// session's deadline is already running, and Reap takes it from there.
	ReleaseNode(ctx context.Context, node string, code int, reason string) (ReleaseResult, error)
}

// ReleaseResult is what ReleaseNode did.
type ReleaseResult struct {
	// Released counts the live leases released, Closed sessions included.
	Released int
	// Closed lists the sessions this call closed.
	Closed []string
}
