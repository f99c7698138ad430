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
