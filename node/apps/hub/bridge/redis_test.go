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

// redisBridges is three nodes running the Redis bridge into log, a
// client that PUBLISHes on their Redis, and the node bridging first.
type redisBridges struct {
	pub    *redis.Client
	log    *channelLog
	prefix string
	nodes  []*bridgeNode
	first  int
}

func startRedisBridges(t *testing.T) *redisBridges {
	t.Helper()
	url := nodetest.Redis(t)
	b := &redisBridges{pub: redisClient(t, url), log: newChannelLog(), prefix: uniquePrefix(t)}
	for i := range 3 {
		b.nodes = append(b.nodes, startNode(t, url, func(c *redis.Client) runner {
			return NewRedis(b.log, RedisConfig{Client: c, Prefix: b.prefix,
				Options: Options{Lease: &RedisLease{Client: c, Key: b.prefix + "lease", Owner: fmt.Sprint("node", i), TTL: testTTL}}})
		}))
	}
	b.first = waitOneHolder(t, b.nodes, -1)
	return b
}

// TestRedisBridgeOnceInOrder: three nodes run the bridge; each PUBLISH is
// appended once, in order, and a graceful handover loses nothing.
func TestRedisBridgeOnceInOrder(t *testing.T) {
	b := startRedisBridges(t)
	pub, log, prefix, nodes, first := b.pub, b.log, b.prefix, b.nodes, b.first
	ctx := context.Background()
	rooms := []string{"room-1", "room-2", "room.3"}
	// publishUpTo publishes the numbers from..to-1 in every room and waits
	// until each room has to messages.
	publishUpTo := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			for _, r := range rooms {
				pub.Publish(ctx, prefix+r, strconv.Itoa(i))
			}
		}
		if from == 0 {
			pub.Publish(ctx, prefix, "no channel: ignored")
		}
		testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			for _, r := range rooms {
				if n := len(log.numbers(r)); n != to {
					return fmt.Errorf("%s has %d", r, n)
				}
			}
			return nil
		})
	}
	publishUpTo(0, 10)
	nodes[first].stop()
	waitOneHolder(t, nodes, first)
	publishUpTo(10, 20)
	for _, r := range rooms {
		if missing := checkSequence(t, log.numbers(r), 20); len(missing) > 0 {
			t.Fatalf("%s missing %v", r, missing)
		}
	}
}

// TestRedisBridgeCrash: the bridging node dies mid-stream (its Redis
// connections cut, its lease left to expire). No message is appended
// twice or out of order; what is lost is one contiguous run published
// within the documented window (lease TTL + TTL/8 + a round trip) after
// the crash.
func TestRedisBridgeCrash(t *testing.T) {
	b := startRedisBridges(t)
	pub, log, prefix, nodes, first := b.pub, b.log, b.prefix, b.nodes, b.first
	ctx := context.Background()
	sentAt := make([]time.Time, 0, 400)
	var crashedAt time.Time
	for i := 0; ; i++ {
		if i == 100 {
			crashedAt = time.Now()
			nodes[first].crash()
		}
		// Go on a while after another node took over.
		if !crashedAt.IsZero() && time.Since(crashedAt) > 2*testTTL && nodesLiveExcept(nodes, first) {
			break
		}
		sentAt = append(sentAt, time.Now())
		pub.Publish(ctx, prefix+"room", strconv.Itoa(i))
		time.Sleep(5 * time.Millisecond)
	}
	sent := len(sentAt)
	last := sent - 1
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		got := log.numbers("room")
		if len(got) == 0 || got[len(got)-1] != last {
			return fmt.Errorf("last bridged %v, want %d", got[max(0, len(got)-3):], last)
		}
		return nil
	})
	missing := checkSequence(t, log.numbers("room"), sent)
	if len(missing) == 0 {
		t.Logf("nothing lost (the crash fell between two messages)")
		return
	}
	for i := 1; i < len(missing); i++ {
		if missing[i] != missing[i-1]+1 {
			t.Fatalf("lost messages not one run: %v", missing)
		}
	}
	window := sentAt[missing[len(missing)-1]].Sub(crashedAt)
	limit := testTTL + testTTL/8 + 500*time.Millisecond // round trips on a loaded machine
	t.Logf("lost %d messages (%d..%d), the last sent %v after the crash", len(missing), missing[0], missing[len(missing)-1], window)
	if missing[0] < 90 || window > limit {
		t.Fatalf("lost %v: the last one sent %v after the crash, more than %v", missing, window, limit)
	}
}

func nodesLiveExcept(nodes []*bridgeNode, skip int) bool {
	for i, n := range nodes {
		if i != skip && n.bridge.Live() {
			return true
		}
	}
	return false
}

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
