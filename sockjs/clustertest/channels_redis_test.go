package clustertest

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/sockjstest"
	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/sockjs"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	natsbus "github.com/shoal-rt/shoal/bus/nats"
	redisstore "github.com/shoal-rt/shoal/store/redis"
)

// Channels on the real backends: three nodes in one process, each with its
// own Redis and NATS connections, as three processes would have.

var backendPrefixes atomic.Int64

// backendCluster starts nodes on Redis and NATS, each serving endpoint
// "/t" with handler h and channels cfg.
func backendCluster(t testing.TB, nodes int, redisAddr, natsURL string, h sockjs.Handler, s sockjs.Settings, cfg sockjs.ChannelConfig, tweak func(*sockjs.NodeConfig)) ([]*sockjs.Endpoint, []string) {
	t.Helper()
	prefix := fmt.Sprintf("chtest%d-%d", time.Now().UnixNano(), backendPrefixes.Add(1))
	var eps []*sockjs.Endpoint
	var bases []string
	for range nodes {
		rc := redis.NewClient(&redis.Options{Addr: redisAddr, ContextTimeoutEnabled: true, PoolSize: 64})
		nc, err := natsbus.Connect(natsURL, nats.Name(prefix))
		if err != nil {
			t.Fatal(err)
		}
		b := natsbus.New(nc, natsbus.Config{Prefix: prefix})
		ncfg := sockjs.NodeConfig{
			Store:  redisstore.New(rc, redisstore.Config{Prefix: prefix}),
			Bus:    b,
			Logger: slog.New(slog.DiscardHandler), // teardown races the clients' close
		}
		if tweak != nil {
			tweak(&ncfg)
		}
		_, e, base := startNode(t, ncfg, h, s, &cfg, func() {
			b.Close()
			nc.Close()
			rc.Close()
		})
		eps = append(eps, e)
		bases = append(bases, base)
	}
	return eps, bases
}

// commandStats returns Redis's command counters (calls per command,
// commands run inside scripts included).
func commandStats(t testing.TB, c *redis.Client) map[string]int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]int64)
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, _ := strconv.ParseInt(calls, 10, 64)
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out
}

// TestChannelsRedisExactlyOnceInOrder: the transports test of
// TestChannelsExactlyOnceInOrder on Redis and NATS, where messages from
// three nodes' connections really do arrive out of offset order.
func TestChannelsRedisExactlyOnceInOrder(t *testing.T) {
	t.Parallel()
	eps, bases := backendCluster(t, 3, testenv.Redis(t).Addr, testenv.NATS(t).URL(), joinRoom,
		sockjs.Settings{ResponseLimit: 4096}, sockjs.ChannelConfig{Pattern: "room"}, nil)
	sockjstest.ExactlyOnceInOrder(t, eps, bases, 150)
}

// TestChannelsRedisCostPerPublish: what one publish costs in Redis
// commands and NATS messages does not grow with the live subscribers.
// Background work (lease renewals, rechecks, reaping) runs on long
// intervals here so the counters hold only what publishing does.
func TestChannelsRedisCostPerPublish(t *testing.T) {
	redisAddr := testenv.Redis(t).Addr
	ns := testenv.NATS(t).Server()
	quiet := func(c *sockjs.NodeConfig) {
		c.RecheckInterval = time.Hour
		c.ReapInterval = time.Hour
		c.LeaseTTL = time.Hour
	}
	eps, bases := backendCluster(t, 3, redisAddr, ns.ClientURL(), joinRoom, sockjs.Settings{}, sockjs.ChannelConfig{Pattern: "room"}, quiet)
	admin := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer admin.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var subs []*sockjstest.Subscriber
	measure := func(live int) (redisPer, natsInPer, natsOutPer float64, perCmd map[string]float64) {
		for len(subs) < live {
			s := sockjstest.NewSubscriber(fmt.Sprint("s", len(subs)))
			s.RunWS(ctx, t, bases[len(subs)%len(bases)])
			<-s.Opened()
			subs = append(subs, s)
		}
		testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			m, err := eps[0].Members(ctx, "room")
			if err != nil || len(m) != live {
				return fmt.Errorf("%d members (%v), want %d", len(m), err, live)
			}
			// A member whose subscription still catches up from the log
			// reads the log for itself (get, evalsha, llen, lrange): cost
			// counted against the publishes if measured now.
			n := 0
			for _, ep := range eps {
				n += ep.LiveSubscribers("room")
			}
			if n != live {
				return fmt.Errorf("%d live subscriptions, want %d", n, live)
			}
			return nil
		})
		already := make([]int, len(subs))
		for i, s := range subs {
			msgs, _ := s.Got()
			already[i] = len(msgs)
		}
		const publishes = 200
		before := commandStats(t, admin)
		v0, _ := ns.Varz(nil)
		for i := range publishes {
			if err := eps[i%len(eps)].Publish(ctx, "room", fmt.Sprint("m", i)); err != nil {
				t.Fatal(err)
			}
		}
		for i, s := range subs {
			testenv.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
				msgs, closed := s.Got()
				if closed != "" {
					return fmt.Errorf("%s closed: %s", s.Name(), closed)
				}
				if got := len(msgs) - already[i]; got != publishes {
					return fmt.Errorf("%s: %d of %d", s.Name(), got, publishes)
				}
				return nil
			})
		}
		after := commandStats(t, admin)
		v1, _ := ns.Varz(nil)
		var total int64
		perCmd = make(map[string]float64)
		for name, n := range after {
			if name == "info" {
				continue
			}
			if d := n - before[name]; d > 0 {
				total += d
				perCmd[name] = float64(d) / publishes
			}
		}
		return float64(total) / publishes, float64(v1.InMsgs-v0.InMsgs) / publishes,
			float64(v1.OutMsgs-v0.OutMsgs) / publishes, perCmd
	}

	r10, in10, out10, cmds10 := measure(10)
	r200, in200, out200, cmds200 := measure(200)
	t.Logf("per publish, 10 live subscribers:  %.2f Redis commands %v, NATS in %.2f out %.2f", r10, cmds10, in10, out10)
	t.Logf("per publish, 200 live subscribers: %.2f Redis commands %v, NATS in %.2f out %.2f", r200, cmds200, in200, out200)
	if r200 > r10+0.5 || r200 > 15 {
		t.Fatalf("Redis commands per publish grew with live subscribers: %.2f at 10, %.2f at 200", r10, r200)
	}
	// One message into NATS per publish, one out to each of the 3 nodes.
	if in200 > 1.05 || out200 > 3.05 || in10 > 1.05 || out10 > 3.05 {
		t.Fatalf("NATS messages per publish: in %.2f/%.2f, out %.2f/%.2f; want 1 in, at most 3 out", in10, in200, out10, out200)
	}
}
