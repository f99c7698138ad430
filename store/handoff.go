package store

import "context"

// Hand-off: a parked poll that is woken by a send would otherwise drain
// the queue (a store round trip) to learn what the sender had just
// appended. A poll that attaches with the HandOff option lets the next
// Append give the appender the messages it queued, with the holder's lease
// token and a batch number (AppendResult.HandOff): the sender passes them
// on with the wake-up, and the poll writes them without a drain. The
// messages stay queued until the poll commits them (CommitHandOff), so a
// wake-up that is lost, or a poll that ends first, loses nothing: the next
// drain takes them, which also makes the batch stale. Callers find the
// capability with a type assertion, as Committer.
type HandOffCommitter interface {
	Committer
	// CommitHandOff is Commit, which also takes batch (an
	// AppendResult.HandOff's) off the queue: token wrote it. A batch that
	// a drain or an attach took meanwhile is not taken again.
	CommitHandOff(ctx context.Context, id, token string, batch uint64, detach bool) error
}

// HandOff makes the lease that Attach takes accept hand-offs of at most
// maxBytes (message lengths summed; see HandOffCommitter): while the lease
// is live and nothing is queued or in flight, an Append of at most that
// many bytes is handed to it. A store without HandOffCommitter ignores it.
func HandOff(maxBytes int) DrainOption { return func(o *DrainOptions) { o.HandOff = maxBytes } }

// HandedOff is what an Append handed to the holder of a live lease taken
// with the HandOff option.
type HandedOff struct {
	Token string // the holder's lease token
	Batch uint64 // names the messages for CommitHandOff
}
