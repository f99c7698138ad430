package sockjs

import (
	"context"
	"time"
)

// Taking over from a dead holder. A node killed with SIGKILL leaves the
// leases of its polls and streams live in the store until their TTL runs
// out or membership declares it dead and releases them (seconds). Their
// clients reopen the poll or the stream elsewhere at once, and would get
// 2010 "Another connection still open" and give up. So a receiver that
// finds the lease held by another node asks that node over the bus
// whether the receiver still lives there; a node that does not answer
// within HolderTimeout, or answers no, loses the lease to the asker
// (store.LeaseTaker). A node that answers yes keeps it: the client really
// has two receivers open, and the second gets 2010. A poll answered and
// not yet committed is finishing: its response has left (so its client
// may already be polling again) and its commit will free the lease; the
// second receiver waits for that, asking again every HolderTimeout in
// case the holder dies first (then the messages it took go out again: a
// duplicate, not a loss).

// holderState is a holder's answer.
type holderState byte

const (
	holderGone      holderState = iota // no receiver of the key runs here
	holderServing                      // one does: the client has two
	holderFinishing                    // a poll has answered and is committing
)

// askHolder asks node whether it still serves the receiver of key. The
// answer arrives on the returned channel; nothing arrives
// when the node is gone. cancel forgets the question. ok is false when the
// question could not be sent (the bus is down): then silence proves
// nothing, and the caller must not take over.
func (n *Node) askHolder(ctx context.Context, node, key string) (answer <-chan holderState, cancel func(), ok bool) {
	if cb, isCB := n.bus.(connectedBus); isCB && !cb.Connected() {
		return nil, nil, false
	}
	id := n.askSeq.Add(1)
	ch := make(chan holderState, 1)
	n.asks.Store(id, ch)
	cancel = func() { n.asks.Delete(id) }
	if err := n.bus.SendNode(ctx, node, appendAskEnvelope(nil, n.id, key, id)); err != nil {
		cancel()
		return nil, nil, false
	}
	return ch, cancel, true
}

// onAsk answers a holder question from node.
func (n *Node) onAsk(node, key string, id uint64) {
	st := n.holderState(key)
	n.goFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.HolderTimeout)
		defer cancel()
		if err := n.bus.SendNode(ctx, node, appendAnswerEnvelope(nil, id, st)); err != nil {
			n.log.Debug("sockjs: holder answer not sent", "node", node, "err", err)
		}
	})
}

// onAnswer hands an answer to the question waiting for it, if any.
func (n *Node) onAnswer(id uint64, st holderState) {
	if ch, ok := n.asks.LoadAndDelete(id); ok {
		ch.(chan holderState) <- st // capacity 1, one answer per question
	}
}

// holderState says whether a receiver of key runs here: one that has not
// ended serves, unless it is a poll finishing (whose client may have gone
// once it had the response: it still finishes).
func (n *Node) holderState(key string) holderState {
	sh := n.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	st := holderGone
	for _, lr := range sh.m[key] {
		if lr.finishing.Load() {
			st = holderFinishing
			continue
		}
		select {
		case <-lr.reqCtx.Done():
		default:
			return holderServing
		}
	}
	return st
}

// defaultHolderTimeout is NodeConfig.HolderTimeout's default: a live node
// answers within a bus round trip (well under a millisecond on a LAN), so
// this is slack for a loaded node, and far below membership's seconds.
const defaultHolderTimeout = 500 * time.Millisecond
