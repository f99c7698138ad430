package redisstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/store"
)

var _ store.NodeReleaser = (*Store)(nil)

// Batch sizes of ReleaseNode: how many buckets' holder sets one pipeline
// reads, and how many sessions one pipeline of scripts releases.
const (
	releaseBucketBatch  = 32
	releaseSessionBatch = 500
)

// ReleaseNode implements store.NodeReleaser. It reads node's holder index
// in every bucket (pipelined) and releases each session listed there with
// one script, so each session's release is atomic and concurrent callers
// split the work without doubling it.
func (s *Store) ReleaseNode(ctx context.Context, node string, code int, reason string) (res store.ReleaseResult, err error) {
	defer wrap(&err, "release node")
	for first := 0; first < s.buckets; first += releaseBucketBatch {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		last := min(first+releaseBucketBatch, s.buckets)
		ids, err := s.readBuckets(ctx, last-first, func(p redis.Pipeliner, i int) *redis.StringSliceCmd {
			return p.SMembers(ctx, s.tag(first+i)+":h:"+node)
		})
		if err != nil {
			return res, err
		}
		for len(ids) > 0 {
			n := min(len(ids), releaseSessionBatch)
			if err := s.releaseBatch(ctx, ids[:n], node, code, reason, &res); err != nil {
				return res, err
			}
			ids = ids[n:]
		}
	}
	return res, nil
}

// releaseBatch runs the release script for each id in one pipeline.
func (s *Store) releaseBatch(ctx context.Context, ids []string, node string, code int, reason string, res *store.ReleaseResult) error {
	args := func(id string) []any { return []any{id, s.margin, node, code, reason} }
	return s.evalEach(ctx, releaseScript, ids, args, func(id string, n int) error {
		switch n {
		case releaseClosed:
			res.Released++
			res.Closed = append(res.Closed, id)
		case releaseReleased:
			res.Released++
		case releaseNothing:
		default:
			return fmt.Errorf("unexpected reply code %d", n)
		}
		return nil
	})
}
