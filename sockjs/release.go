package sockjs

import (
	"context"
	"errors"
	"fmt"

	"github.com/shoal-rt/shoal/store"
)

// ErrReleaseUnsupported: the node's store cannot release another node's
// leases (it does not implement store.NodeReleaser); they run out after
// NodeConfig.LeaseTTL instead.
var ErrReleaseUnsupported = errors.New("sockjs: store cannot release a node's leases")

// ReleaseNode cleans up after the node deadID, which died or left: polling
// and streaming sessions it held are released, so their clients' next
// request, on any node, carries on at once instead of getting "Another
// connection still open" until the lease runs out; websocket sessions it
// held (their sockets died with it) are closed with CodeInterrupted, and
// OnClose runs for each here, exactly once cluster-wide.
//
// Call it on the one surviving node that membership makes responsible
// (cluster.Membership.ResponsibleFor); calling it from several nodes at
// once, or twice, is harmless. Never call it for a node that is alive.
func (n *Node) ReleaseNode(ctx context.Context, deadID string) (store.ReleaseResult, error) {
	r, ok := n.store.(store.NodeReleaser)
	if !ok {
		return store.ReleaseResult{}, ErrReleaseUnsupported
	}
	res, err := r.ReleaseNode(ctx, deadID, CodeInterrupted, ReasonInterrupted)
	// What was closed is closed even if a later batch failed.
	for _, key := range res.Closed {
		if e, id := n.endpointForKey(key); e != nil {
			e.runOnClose(e.sessionFor(id, key, nil))
		} else {
			n.log.Warn("sockjs: released session of an endpoint not mounted here", "key", key)
		}
	}
	if err != nil {
		return res, fmt.Errorf("sockjs: release node %s: %w", deadID, err)
	}
	return res, nil
}
