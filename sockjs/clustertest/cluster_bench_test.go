package clustertest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/sockjstest"
	"github.com/shoal-rt/shoal/sockjs"

	"github.com/coder/websocket"
)

// Echo round trips on the real backends (redis-server, NATS) next to the
// in-memory ones, with the Redis round trips each one costs:
//
//	go test -run '^$' -bench 'Cluster' -benchtime 2000x ./sockjs/clustertest/

const benchMsg = `["hello, this is a 40 byte chat message"]`

// reportRedis reports the Redis round trips (a command or a pipeline) and
// commands per operation since trips and cmds were taken.
func reportRedis(b *testing.B, c *redisCluster, trips, cmds int64) {
	b.ReportMetric(float64(c.redisTrips()-trips)/float64(b.N), "redis-trips/op")
	b.ReportMetric(float64(c.redisCmds()-cmds)/float64(b.N), "redis-cmds/op")
}

// redisCmds returns the Redis commands of all nodes so far.
func (c *redisCluster) redisCmds() int64 {
	var cmds int64
	for _, cn := range c.nodes {
		_, m := cn.redis.snapshot()
		for _, n := range m {
			cmds += n
		}
	}
	return cmds
}

// pollingEcho opens a session (open(0)), then b.N times sends a message
// with xhr_send (to send(i)) and polls its echo (from poll(i)). With
// parkedOn, the poll is parked before the send, as a browser's is: it
// goes to parkedOn(i), whose attach is done when that node's next Redis
// round trip has been answered.
func pollingEcho(b *testing.B, open, send, poll func(i int) string, parkedOn func(i int) *clusterNode) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	b.Cleanup(client.CloseIdleConnections)
	post := func(url, body string) string {
		resp, err := client.Post(url, "text/plain", strings.NewReader(body))
		if err != nil {
			b.Error(err)
			return ""
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			b.Error(err)
		}
		return string(got)
	}
	if got := post(open(0)+"/xhr", ""); got != "o\n" {
		b.Fatalf("open: %q", got)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchMsg)))
	b.ResetTimer()
	for i := range b.N {
		polled := make(chan string, 1)
		if parkedOn != nil {
			pn := parkedOn(i)
			answered := pn.redis.answered.Load()
			go func() { polled <- post(poll(i)+"/xhr", "") }()
			for pn.redis.answered.Load() == answered {
				time.Sleep(20 * time.Microsecond)
			}
		}
		post(send(i)+"/xhr_send", benchMsg)
		if parkedOn == nil {
			polled <- post(poll(i)+"/xhr", "")
		}
		if got := <-polled; !strings.HasPrefix(got, "a[") {
			b.Fatalf("poll got %q", got)
		}
	}
	b.StopTimer()
}

// BenchmarkClusterXHRPollingEcho: one xhr_send and one poll per op, on an
// in-memory node, on one node over Redis and NATS, and over three such
// nodes with the send and the poll each on another node than the last;
// "-parked": the poll is parked before the send (a browser's echo), so
// the send wakes it.
func BenchmarkClusterXHRPollingEcho(b *testing.B) {
	b.Run("memory-1node", func(b *testing.B) {
		_, bases := memoryNodes(b, 1, echo, sockjs.Settings{}, nil)
		base := bases[0]
		u := base + newClientSession()
		at := func(int) string { return u }
		pollingEcho(b, at, at, at, nil)
	})
	for _, bc := range []struct {
		name   string
		nodes  int
		parked bool
	}{{"redis-1node", 1, false}, {"redis-3nodes", 3, false}, {"redis-1node-parked", 1, true}, {"redis-3nodes-parked", 3, true}} {
		b.Run(bc.name, func(b *testing.B) {
			c := newRedisCluster(b, bc.nodes, sockjs.Settings{}, nil)
			sess := newClientSession()
			at := func(k int) func(i int) string {
				return func(i int) string { return c.node(2*i+k).base + sess }
			}
			var parkedOn func(i int) *clusterNode
			if bc.parked {
				parkedOn = func(i int) *clusterNode { return c.node(2*i + 2) }
			}
			trips, cmds := c.redisTrips(), c.redisCmds()
			pollingEcho(b, at(0), at(1), at(2), parkedOn)
			reportRedis(b, c, trips, cmds)
		})
	}
}

// wsEcho writes a message and reads its echo, b.N times.
func wsEcho(b *testing.B, conn *websocket.Conn) {
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchMsg)))
	b.ResetTimer()
	for range b.N {
		if err := conn.Write(ctx, websocket.MessageText, []byte(benchMsg)); err != nil {
			b.Fatal(err)
		}
		if _, _, err := conn.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
}

// BenchmarkClusterWebsocketEcho: a websocket echoed by the node that holds
// it, in memory mode and on Redis and NATS (the in-process fast path: no
// Redis round trip per message).
func BenchmarkClusterWebsocketEcho(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		_, bases := memoryNodes(b, 1, echo, sockjs.Settings{}, nil)
		base := bases[0]
		conn := sockjstest.DialWS(b, base+newClientSession()+"/websocket")
		sockjstest.ReadWS(b, conn)
		wsEcho(b, conn)
	})
	b.Run("redis-nats", func(b *testing.B) {
		c := newRedisCluster(b, 3, sockjs.Settings{}, nil)
		conn := sockjstest.DialWS(b, c.node(0).base+newClientSession()+"/websocket")
		sockjstest.ReadWS(b, conn)
		trips, cmds := c.redisTrips(), c.redisCmds()
		wsEcho(b, conn)
		reportRedis(b, c, trips, cmds)
	})
}

// BenchmarkClusterWebsocketSendFromOtherNode: Session.Send on one node to
// a websocket held by another (a store read for the holder, then one NATS
// message to that node), until the client has read it.
func BenchmarkClusterWebsocketSendFromOtherNode(b *testing.B) {
	c := newRedisCluster(b, 2, sockjs.Settings{}, nil)
	conn := sockjstest.DialWS(b, c.node(0).base+newClientSession()+"/websocket")
	sockjstest.ReadWS(b, conn)
	s := c.nodes[1].ep.Session(c.h.nextOpen(b))
	ctx := context.Background()
	trips, cmds := c.redisTrips(), c.redisCmds()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := s.Send("hello"); err != nil {
			b.Fatal(err)
		}
		if _, _, err := conn.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRedis(b, c, trips, cmds)
}
