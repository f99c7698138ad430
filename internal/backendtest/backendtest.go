// Package backendtest gives a node in a test its own clients of the real
// backends the test started (testenv.Redis, testenv.NATS), as a node
// process has them: a go-redis client and a NATS connection, and the
// store/redis Store and bus/nats Bus on them under the test's key prefix.
// Several of them on one server are several nodes of one cluster.
package backendtest

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	natsbus "github.com/shoal-rt/shoal/bus/nats"
	redisstore "github.com/shoal-rt/shoal/store/redis"
)

// Node is one node's connections and the store and bus on them.
type Node struct {
	Redis *redis.Client
	NATS  *nats.Conn
	Store *redisstore.Store
	Bus   *natsbus.Bus
}

// Connect opens a node's Redis client of redisAddr (commands honour their
// context's deadline; tune sets more options) and its NATS connection to
// natsURL, with the store and bus on them under prefix. They close when
// the test ends, after whatever the test registered later (the node using
// them).
func Connect(t testing.TB, redisAddr, natsURL, prefix string, tune ...func(*redis.Options)) *Node {
	t.Helper()
	opts := &redis.Options{Addr: redisAddr, ContextTimeoutEnabled: true}
	for _, f := range tune {
		f(opts)
	}
	rc := redis.NewClient(opts)
	t.Cleanup(func() { rc.Close() })
	nc, err := natsbus.Connect(natsURL, nats.Name(prefix))
	if err != nil {
		t.Fatalf("backendtest: nats: %v", err)
	}
	t.Cleanup(nc.Close)
	b := natsbus.New(nc, natsbus.Config{Prefix: prefix})
	t.Cleanup(func() { b.Close() })
	return &Node{Redis: rc, NATS: nc, Store: redisstore.New(rc, redisstore.Config{Prefix: prefix}), Bus: b}
}
