package clustertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/sockjstest"
	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/sockjs"
)

// Channels on the real backends: three nodes in one process, each with its
// own Redis and NATS connections, as three processes would have.

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
		before := testenv.ReadRedisInfo(t, redisAddr, "commandstats").Calls()
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
		after := testenv.ReadRedisInfo(t, redisAddr, "commandstats").Calls()
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
