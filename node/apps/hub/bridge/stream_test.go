package bridge

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/node/nodetest"
)

// TestStreamBridgeLosesNothing: backends XADD to the stream while the
// bridging node crashes with entries read but not acknowledged, some of
// them appended but not marked. The next holder appends every entry
// exactly once, in stream order.
func TestStreamBridgeLosesNothing(t *testing.T) {
	url := nodetest.Redis(t)
	pub := redisClient(t, url)
	log := newChannelLog()
	log.delay = 2 * time.Millisecond // so entries are in flight at the crash
	prefix := uniquePrefix(t)
	stream := prefix + "stream"
	ctx := context.Background()
	// Entries added before any node runs are bridged too.
	for i := 0; i < 5; i++ {
		pub.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"channel", "room-1", "data", strconv.Itoa(i)}})
	}
	var nodes []*bridgeNode
	for i := 0; i < 3; i++ {
		nodes = append(nodes, startNode(t, url, func(c *redis.Client) runner {
			return NewStream(log, StreamConfig{Client: c, Stream: stream, Consumer: fmt.Sprint("node", i), Batch: 20,
				Options: Options{Lease: &RedisLease{Client: c, Key: prefix + "lease", Owner: fmt.Sprint("node", i), TTL: testTTL}}})
		}))
	}
	first := waitOneHolder(t, nodes, -1)
	const total = 400
	rooms := []string{"room-1", "room-2"}
	for i := 5; i < total; i++ {
		if i == 200 {
			nodes[first].crash()
		}
		for _, r := range rooms {
			if r == "room-2" && i < 5 {
				continue
			}
			pub.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"channel", r, "data", strconv.Itoa(i)}})
		}
	}
	pub.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"data", "no channel: dropped"}})
	pub.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"channel", "invalid channel", "data", "refused: dropped"}})
	for _, r := range rooms {
		pub.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"channel", r, "data", strconv.Itoa(total)}})
	}
	waitOneHolder(t, nodes, first)
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		for _, r := range rooms {
			if got := log.numbers(r); len(got) == 0 || got[len(got)-1] != total {
				return fmt.Errorf("%s has not got its last entry", r)
			}
		}
		return nil
	})
	if missing := checkSequence(t, log.numbers("room-1"), total+1); len(missing) > 0 {
		t.Fatalf("room-1 lost %v", missing)
	}
	got2 := log.numbers("room-2")
	checkSequence(t, got2, total+1)
	if len(got2) != total+1-5 {
		t.Fatalf("room-2 has %d, want %d", len(got2), total+1-5)
	}
	for i, n := range nodes {
		st := &n.bridge.(*Stream).Stats
		t.Logf("node%d: bridged %d, skipped as appended already %d, fenced %d, failed %d", i,
			st.Bridged.Load(), st.Skipped.Load(), st.Fenced.Load(), st.Failed.Load())
	}
	pending, err := pub.XPending(ctx, stream, "shoal-bridge").Result()
	if err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		pending, err = pub.XPending(ctx, stream, "shoal-bridge").Result()
		if err != nil || pending.Count != 0 {
			return fmt.Errorf("pending %v %v", pending, err)
		}
		return nil
	})
}
