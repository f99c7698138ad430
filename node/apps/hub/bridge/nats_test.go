package bridge

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/node/nodetest"
)

// TestNATSBridgeOnceInOrder: three nodes run the NATS bridge; each
// message on <prefix>.<channel> is appended once, in order, also after a
// handover.
func TestNATSBridgeOnceInOrder(t *testing.T) {
	url := nodetest.Redis(t)
	ns := testenv.NATS(t)
	log := newChannelLog()
	prefix := uniquePrefix(t)
	subject := "t" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var nodes []*bridgeNode
	for i := 0; i < 3; i++ {
		nc, err := nats.Connect(ns.URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		nodes = append(nodes, startNode(t, url, func(c *redis.Client) runner {
			return NewNATS(log, NATSConfig{Conn: nc, Prefix: subject,
				Options: Options{Lease: &RedisLease{Client: c, Key: prefix + "lease", Owner: fmt.Sprint("node", i), TTL: testTTL}}})
		}))
	}
	pub, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	first := waitOneHolder(t, nodes, -1)
	send := func(from, to int) {
		for i := from; i < to; i++ {
			pub.Publish(subject+".room.1", []byte(strconv.Itoa(i)))
			pub.Publish(subject+".room-2", []byte(strconv.Itoa(i)))
		}
		pub.Flush()
	}
	wait := func(n int) {
		testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			for _, r := range []string{"room.1", "room-2"} {
				if got := len(log.numbers(r)); got != n {
					return fmt.Errorf("%s has %d of %d", r, got, n)
				}
			}
			return nil
		})
	}
	send(0, 50)
	wait(50)
	nodes[first].stop()
	waitOneHolder(t, nodes, first)
	send(50, 100)
	wait(100)
	for _, r := range []string{"room.1", "room-2"} {
		if missing := checkSequence(t, log.numbers(r), 100); len(missing) > 0 {
			t.Fatalf("%s missing %v", r, missing)
		}
	}
}
