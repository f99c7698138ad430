package store

import "context"

// Committer is an optional Store capability: messages that stay the
// store's until they reached the client. A receiver that takes messages
// (Attach or Drain) and dies before its response is written would lose
// them; with the Hold option they stay in flight, held for the taker's
// lease, until it commits. Whoever takes the session's lease next (after a
// crash, a take-over or a lease that ran out) gets them again first, and
// so does the same token's next take: a take whose result never reached
// its caller (Redis ran the script, the connection broke before the reply)
// loses nothing when it is repeated. A receiver therefore commits what it
// wrote before it takes again. The cost is at-least-once in a narrow
// window: a receiver that wrote its response and whose commit did not
// reach the store (it died, or Redis went away) has them sent twice.
// Callers find it with a type assertion:
//
//	if c, ok := st.(store.Committer); ok { ... }
type Committer interface {
	// Commit forgets the messages token took with Hold: they reached the
	// client. With detach, it also releases the lease as Detach does, in
	// the same atomic step. ErrNotHolder when token does not hold the
	// live lease: nothing changes, and the lease's holder has those
	// messages (or will get them).
	Commit(ctx context.Context, id, token string, detach bool) error
}

// NodeBound is an optional Store capability: the store lives and dies with
// the one node that uses it (the node program's in-memory store, without
// --redis). Nothing it holds outlives that node, so a poll may commit what
// it took before its answer leaves: the order that costs a second poll no
// wait for a finishing one (see sockjs's answerPoll). Every other store,
// a Memory shared by several nodes in one process included, is taken to
// outlive the node, and a poll answers first.
type NodeBound interface {
	NodeBound() bool
}

// Hold makes Attach or Drain keep what it takes in flight until Commit
// (see Committer); messages taken with Hold and never committed, by an
// earlier lease or by the same token, come first. A store without
// Committer ignores it.
func Hold() DrainOption { return func(o *DrainOptions) { o.Hold = true } }
