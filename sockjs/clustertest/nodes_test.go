package clustertest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/internal/backendtest"
	"github.com/shoal-rt/shoal/internal/sockjstest"
	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/sockjs"
	"github.com/shoal-rt/shoal/store"
)

// startNode starts a node on cfg serving h under "/t" with settings s and,
// unless ch is nil, channels ch, behind its own HTTP server, both closed
// when the test ends (before the backend clients cfg uses, which the test
// opened first). It returns the node, its endpoint and the endpoint's URL.
func startNode(t testing.TB, cfg sockjs.NodeConfig, h sockjs.Handler, s sockjs.Settings, ch *sockjs.ChannelConfig) (*sockjs.Node, *sockjs.Endpoint, string) {
	t.Helper()
	n, err := sockjs.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Prefix = "/t"
	e, err := n.NewEndpoint(h, s)
	if err != nil {
		t.Fatal(err)
	}
	if ch != nil {
		if err := e.HandleChannels(*ch); err != nil {
			t.Fatal(err)
		}
	}
	url := sockjstest.Serve(t, n.Handler(nil), func(ctx context.Context) { n.Close(ctx) }, func(srv *http.Server) {
		srv.ConnContext = sockjs.ConnContext // as ops.NewServer: streams take direct writes
	})
	return n, e, url + "/t"
}

// memoryNodes starts n nodes sharing one memory store and bus, each as
// startNode does: the baseline the benchmarks set the backends against.
func memoryNodes(t testing.TB, n int, h sockjs.Handler, s sockjs.Settings, ch *sockjs.ChannelConfig) ([]*sockjs.Endpoint, []string) {
	t.Helper()
	st, b := store.NewMemory(), bus.NewMemory()
	t.Cleanup(func() { b.Close() })
	var eps []*sockjs.Endpoint
	var bases []string
	for range n {
		_, e, base := startNode(t, sockjs.NodeConfig{Store: st, Bus: b, ReapInterval: 20 * time.Millisecond}, h, s, ch)
		eps = append(eps, e)
		bases = append(bases, base)
	}
	return eps, bases
}

// echo is a Handler that sends every message back.
var echo = sockjs.HandlerFuncs{Message: func(s *sockjs.Session, m string) { s.Send(m) }}

// joinRoom is a Handler whose sessions join channel "room" on open.
var joinRoom = sockjs.HandlerFuncs{Open: func(s *sockjs.Session) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Subscribe(ctx, "room")
}}

// backendConfig is the config of a node on its own Redis and NATS clients
// (backendtest.Connect), with no logs: teardown races the clients' close.
func backendConfig(t testing.TB, redisAddr, natsURL, prefix string, tune ...func(*redis.Options)) (sockjs.NodeConfig, *backendtest.Node) {
	t.Helper()
	bn := backendtest.Connect(t, redisAddr, natsURL, prefix, tune...)
	// A live holder answering later than HolderTimeout loses its lease:
	// slack for -race on a busy two-core machine (the default is 500 ms).
	return sockjs.NodeConfig{Store: bn.Store, Bus: bn.Bus, Logger: slog.New(slog.DiscardHandler), HolderTimeout: 2 * time.Second}, bn
}

// backendCluster starts nodes on Redis and NATS, each serving endpoint
// "/t" with handler h and channels cfg.
func backendCluster(t testing.TB, nodes int, redisAddr, natsURL string, h sockjs.Handler, s sockjs.Settings, cfg sockjs.ChannelConfig, tweak func(*sockjs.NodeConfig)) ([]*sockjs.Endpoint, []string) {
	t.Helper()
	prefix := testenv.Prefix(t)
	var eps []*sockjs.Endpoint
	var bases []string
	for range nodes {
		ncfg, _ := backendConfig(t, redisAddr, natsURL, prefix, func(o *redis.Options) { o.PoolSize = 64 })
		if tweak != nil {
			tweak(&ncfg)
		}
		_, e, base := startNode(t, ncfg, h, s, &cfg)
		eps = append(eps, e)
		bases = append(bases, base)
	}
	return eps, bases
}

// clusterNode is one node of a redisCluster.
type clusterNode struct {
	node  *sockjs.Node
	ep    *sockjs.Endpoint
	store store.Store // the node's, to read a session's state
	base  string      // http://host:port/t
	redis *redisCounter
	nc    *nats.Conn
}

type redisCluster struct {
	redis *testenv.RedisServer
	nats  *testenv.NATSServer
	nodes []*clusterNode
	h     *clusterHandler
}

// newRedisCluster starts a redis-server, a NATS server and n nodes on
// them, each serving endpoint "/t" with a clusterHandler and settings s.
func newRedisCluster(t testing.TB, n int, s sockjs.Settings, tweak func(*sockjs.NodeConfig)) *redisCluster {
	t.Helper()
	c := &redisCluster{redis: testenv.Redis(t), nats: testenv.NATS(t), h: newClusterHandler()}
	prefix := testenv.Prefix(t)
	for i := range n {
		cn := &clusterNode{redis: &redisCounter{}}
		cfg, bn := backendConfig(t, c.redis.Addr, c.nats.URL(), prefix)
		bn.Redis.AddHook(cn.redis)
		cn.nc = bn.NATS
		cfg.ID = fmt.Sprintf("n%d", i)
		cn.store = cfg.Store
		if tweak != nil {
			tweak(&cfg)
		}
		cn.node, cn.ep, cn.base = startNode(t, cfg, c.h, s, nil)
		c.h.mu.Lock()
		c.h.nodeOf[cn.ep] = cfg.ID
		c.h.mu.Unlock()
		c.nodes = append(c.nodes, cn)
	}
	return c
}

// node returns the i-th node, round robin.
func (c *redisCluster) node(i int) *clusterNode { return c.nodes[i%len(c.nodes)] }

// waitNATS waits until every node's NATS connection is up (connected) or
// down.
func (c *redisCluster) waitNATS(t *testing.T, connected bool) {
	t.Helper()
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		for _, cn := range c.nodes {
			if cn.nc.IsConnected() != connected {
				return fmt.Errorf("a node's NATS connection is not yet %s", map[bool]string{true: "up", false: "down"}[connected])
			}
		}
		return nil
	})
}

// redisTrips returns the Redis round trips of all nodes so far.
func (c *redisCluster) redisTrips() int64 {
	var n int64
	for _, cn := range c.nodes {
		trips, _ := cn.redis.snapshot()
		n += trips
	}
	return n
}

// redisCounter is a go-redis hook that counts round trips (a command or a
// pipeline) and commands, by name.
type redisCounter struct {
	mu     sync.Mutex
	trips  int64
	byName map[string]int64
	// answered counts round trips whose reply came back.
	answered atomic.Int64
}

func (c *redisCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *redisCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.count(cmd)
		defer c.answered.Add(1)
		return next(ctx, cmd)
	}
}

func (c *redisCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.count(cmds...)
		defer c.answered.Add(1)
		return next(ctx, cmds)
	}
}

func (c *redisCounter) count(cmds ...redis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trips++
	if c.byName == nil {
		c.byName = make(map[string]int64)
	}
	for _, cmd := range cmds {
		c.byName[cmd.Name()]++
	}
}

// snapshot returns the round trips so far and the commands by name.
func (c *redisCounter) snapshot() (int64, map[string]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int64, len(c.byName))
	for k, v := range c.byName {
		m[k] = v
	}
	return c.trips, m
}
