package store

import (
	"context"
	"time"
)

var _ NodeReleaser = (*Memory)(nil)

// ReleaseNode implements NodeReleaser. It walks every session, one shard
// lock at a time: in-memory stores are small, and a node's death is rare.
func (m *Memory) ReleaseNode(ctx context.Context, node string, code int, reason string) (ReleaseResult, error) {
	var res ReleaseResult
	for i := range m.shards {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		sh := &m.shards[i]
		sh.mu.Lock()
		now := time.Now()
		for id, s := range sh.sessions {
			if s.leaseToken == "" || s.leaseNode != node {
				continue
			}
			live := s.leaseLive(now)
			sticky := s.leaseSticky
			s.leaseNode, s.leaseToken, s.leaseSticky = "", "", false
			s.leaseUntil = time.Time{}
			if !live {
				continue // its deadline has been running since the lease expired
			}
			res.Released++
			if sticky && s.state == StateOpen {
				s.state, s.code, s.reason = StateClosed, code, reason
				res.Closed = append(res.Closed, id)
			}
			s.deadline = now.Add(s.delay)
		}
		sh.mu.Unlock()
	}
	return res, nil
}
