package main

// The hub's backend paths (Redis pub/sub and stream bridges, NATS, the
// HTTP API) across a cluster of node processes: what each delivers, a
// bridge holder killed mid-stream, and (SHOAL_MEASURE=1) what they cost.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/node/nodetest"
)

func apiCall(t *testing.T, n *nodetest.Node, key, path, body string) map[string]any {
	t.Helper()
	out, err := nodetest.HubAPI(t, n.URL(), key, path, body)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const testStream = "shoal:stream"

func startBackendCluster(t *testing.T) *nodetest.Cluster {
	return nodetest.StartCluster(t, 3, "--apps", "hub", "--api-key", "k", "--bridge-stream", testStream)
}

// checkRoom checks that msgs are exactly room's messages of each source
// (src -> how many), each source's in the order sent, offsets increasing.
func checkRoom(msgs []map[string]any, room string, want map[string]int) error {
	next := map[string]int{}
	var last float64
	for _, m := range msgs {
		if m["channel"] != room {
			return fmt.Errorf("message of another channel: %v", m)
		}
		src, _ := m["src"].(string)
		n, _ := m["n"].(float64)
		if int(n) != next[src] {
			return fmt.Errorf("%s: got %s #%v, want #%d", room, src, n, next[src])
		}
		next[src]++
		if off := m["offset"].(float64); off <= last {
			return fmt.Errorf("%s: offset %v after %v", room, off, last)
		} else {
			last = off
		}
	}
	for src, n := range want {
		if next[src] != n {
			return fmt.Errorf("%s: %d of %d from %s", room, next[src], n, src)
		}
	}
	if len(msgs) != total(want) {
		return fmt.Errorf("%s: %d messages, want %d", room, len(msgs), total(want))
	}
	return nil
}

func total(m map[string]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

// TestBackendPathsAcrossCluster: three nodes; per room two websocket
// sessions on different nodes and one xhr-polling, xhr-streaming or
// eventsource session through round-robin HAProxy; per room 10 messages
// by Redis PUBLISH and 10 by the HTTP API (to every node in turn),
// concurrently, plus 5 by NATS and 5 by the Redis stream: every session
// gets exactly its room's 30, each publisher's in order, nothing of other
// rooms.
func TestBackendPathsAcrossCluster(t *testing.T) {
	c := startBackendCluster(t)
	rdb := redis.NewClient(mustParseRedis(t, c.Redis))
	defer rdb.Close()
	nc, err := nats.Connect(c.NATS)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	rooms := []string{"room-1", "room-2", "room-3"}
	clients := map[string][]*nodetest.HubClient{}
	// Per room also one session on an HTTP transport through the
	// round-robin balancer: its requests land on every node.
	httpClients := map[string]*nodetest.HubClient{}
	for i, r := range rooms {
		for j := 0; j < 2; j++ {
			cl := nodetest.DialHub(t, c.Nodes[(i+j)%3].Addr)
			cl.Subscribe(t, r)
			clients[r] = append(clients[r], cl)
		}
		hc := nodetest.DialHubHTTP(t, c.Addr, []string{"xhr", "xhr_streaming", "eventsource"}[i])
		hc.Subscribe(t, r)
		httpClients[r] = hc
	}
	for _, name := range []string{"redis", "stream", "nats"} {
		nodetest.Bridging(t, c.Nodes, "k", name)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, r := range rooms {
		wg.Go(func() {
			for i := 0; i < 10; i++ {
				rdb.Publish(ctx, "shoal:"+r, fmt.Sprintf(`{"src":"redis","n":%d}`, i))
			}
		})
		wg.Go(func() {
			for i := 0; i < 10; i++ {
				apiCall(t, c.Nodes[i%3], "k", "/api/publish", fmt.Sprintf(`{"channel":%q,"data":{"src":"api","n":%d}}`, r, i))
			}
		})
		wg.Go(func() {
			for i := 0; i < 5; i++ {
				nc.Publish("shoal.bridge."+r, fmt.Appendf(nil, `{"src":"nats","n":%d}`, i))
			}
			nc.Flush()
		})
		wg.Go(func() {
			for i := 0; i < 5; i++ {
				rdb.XAdd(ctx, &redis.XAddArgs{Stream: testStream, Values: []any{"channel", r, "data", fmt.Sprintf(`{"src":"stream","n":%d}`, i)}})
			}
		})
	}
	wg.Wait()
	want := map[string]int{"redis": 10, "api": 10, "nats": 5, "stream": 5}
	for _, r := range rooms {
		for _, cl := range clients[r] {
			testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
				return checkRoom(cl.ChannelMessages(), r, want)
			})
		}
	}
	for i, r := range rooms {
		hc := httpClients[r]
		testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
			if err := checkRoom(hc.ChannelMessages(), r, want); err != nil {
				return fmt.Errorf("%s session: %w", []string{"xhr", "xhr_streaming", "eventsource"}[i], err)
			}
			return nil
		})
	}
	// A string payload arrives in the "data" envelope.
	rdb.Publish(ctx, "shoal:room-1", "hello")
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		msgs := clients["room-1"][0].ChannelMessages()
		if m := msgs[len(msgs)-1]; m["data_type"] != "data" || m["data"] != "hello" {
			return fmt.Errorf("last message %v", m)
		}
		return nil
	})
}

func mustParseRedis(t *testing.T, url string) *redis.Options {
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

// TestBridgeNodeKilled: the node running the Redis and stream bridges is
// SIGKILLed while backends publish every 5 ms. Sessions on the other
// nodes get no duplicate and nothing out of order; the pub/sub bridge
// loses one run of messages published within the lease window after the
// kill (docs/backends.md); the stream bridge loses nothing.
func TestBridgeNodeKilled(t *testing.T) {
	c := startBackendCluster(t)
	rdb := redis.NewClient(mustParseRedis(t, c.Redis))
	defer rdb.Close()
	holder := nodetest.Bridging(t, c.Nodes, "k", "redis")
	var clients []*nodetest.HubClient
	for i, n := range c.Nodes {
		if i != holder {
			cl := nodetest.DialHub(t, n.Addr)
			cl.Subscribe(t, "live")
			clients = append(clients, cl)
		}
	}
	ctx := context.Background()
	var sent []time.Time
	var killedAt time.Time
	// Publishing goes on 4 s after the kill: past the lease TTL (2 s).
	perSource := 0
	for i := 0; killedAt.IsZero() || time.Since(killedAt) < 4*time.Second; i++ {
		perSource++
		if i == 100 {
			killedAt = time.Now()
			c.Nodes[holder].Kill(t)
		}
		sent = append(sent, time.Now())
		rdb.Publish(ctx, "shoal:live", fmt.Sprintf(`{"src":"redis","n":%d}`, i))
		rdb.XAdd(ctx, &redis.XAddArgs{Stream: testStream, Values: []any{"channel", "live", "data", fmt.Sprintf(`{"src":"stream","n":%d}`, i)}})
		time.Sleep(5 * time.Millisecond)
	}
	for i, cl := range clients {
		testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			var stream int
			for _, m := range cl.ChannelMessages() {
				if m["src"] == "stream" {
					stream++
				}
			}
			if stream < perSource {
				return fmt.Errorf("client %d: %d stream messages", i, stream)
			}
			return nil
		})
		seen := map[string][]int{}
		var last float64
		for _, m := range cl.ChannelMessages() {
			src := m["src"].(string)
			seen[src] = append(seen[src], int(m["n"].(float64)))
			if off := m["offset"].(float64); off <= last {
				t.Fatalf("client %d: offset %v after %v", i, off, last)
			} else {
				last = off
			}
		}
		for src, ns := range seen {
			for j := 1; j < len(ns); j++ {
				if ns[j] <= ns[j-1] {
					t.Fatalf("client %d: %s out of order or twice: %v", i, src, ns)
				}
			}
		}
		if len(seen["stream"]) != perSource {
			t.Fatalf("client %d: stream lost messages: %d of %d", i, len(seen["stream"]), perSource)
		}
		lost := nodetest.Missing(seen["redis"], perSource)
		if len(lost) > 0 {
			if lost[len(lost)-1]-lost[0] != len(lost)-1 {
				t.Fatalf("client %d: pub/sub lost more than one run: %v", i, lost)
			}
			window := sent[lost[len(lost)-1]].Sub(killedAt)
			t.Logf("client %d: pub/sub lost %d (%d..%d), the last sent %v after the kill", i, len(lost), lost[0], lost[len(lost)-1], window)
			if window > 4*time.Second { // lease TTL 2 s + retry + subscribe, on a loaded machine
				t.Fatalf("client %d: lost messages sent up to %v after the kill", i, window)
			}
		}
	}
}

// TestMeasureBackendPublish measures publish-to-delivery latency and the
// nodes' CPU per delivery for the Redis bridge and the HTTP API, with
// 1,000 websocket subscribers of one channel spread over three node
// processes (built without -race). It is heavy: it runs only with
// SHOAL_MEASURE=1.
//
//	SHOAL_MEASURE=1 go test -run TestMeasureBackendPublish -v -timeout 10m ./node
func TestMeasureBackendPublish(t *testing.T) {
	if os.Getenv("SHOAL_MEASURE") == "" {
		t.Skip("a measurement, not a test: set SHOAL_MEASURE=1 (see docs/backends.md)")
	}
	subs := testenv.EnvInt("SHOAL_MEASURE_SUBS", 1000)
	msgs := testenv.EnvInt("SHOAL_MEASURE_MSGS", 200)
	// Messages per second: at 1,000 subscribers 10/s is 10,000 deliveries
	// a second, which a shared 2-core machine carries without queueing.
	rate := testenv.EnvInt("SHOAL_MEASURE_RATE", 10)
	gap := time.Second / time.Duration(rate)
	bin := nodetest.PlainBinary(t)
	redisURL, natsURL := nodetest.Redis(t), nodetest.NATS(t)
	var nodes []*nodetest.Node
	for i := 1; i <= 3; i++ {
		addr := testenv.FreeAddr(t)
		p := nodetest.Start(t, bin, "--listen", addr, "--node-id", fmt.Sprint("m", i), "--redis", redisURL, "--nats", natsURL,
			"--apps", "hub", "--api-key", "k", "--log-level", "warn")
		n := &nodetest.Node{Process: p, ID: fmt.Sprint("m", i), Addr: addr}
		testenv.WaitTCP(t, addr)
		nodes = append(nodes, n)
	}
	nodetest.Bridging(t, nodes, "k", "redis")

	// Subscribers: each records the latency of every message it gets.
	var mu sync.Mutex
	var lat []time.Duration
	var got int
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < subs; i++ {
		n := nodes[i%3]
		conn, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://%s/hub/0/m%d/websocket", n.Addr, i), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		sub, _ := json.Marshal([]string{`{"data_type":"subscribe","id":1,"data":{"channel":"bench"}}`})
		conn.Write(ctx, websocket.MessageText, sub)
		ready := make(chan struct{})
		wg.Go(func() {
			once := sync.OnceFunc(func() { close(ready) })
			for {
				_, b, err := conn.Read(ctx)
				if err != nil {
					once()
					return
				}
				now := time.Now()
				if len(b) == 0 || b[0] != 'a' {
					continue
				}
				var frames []string
				json.Unmarshal(b[1:], &frames)
				for _, f := range frames {
					var m struct {
						DataType string `json:"data_type"`
						Sent     int64  `json:"sent"`
					}
					json.Unmarshal([]byte(f), &m)
					if m.DataType == "subscribe" {
						once()
					}
					if m.Sent > 0 {
						mu.Lock()
						lat = append(lat, now.Sub(time.Unix(0, m.Sent)))
						got++
						mu.Unlock()
					}
				}
			}
		})
		<-ready
	}
	rdb := redis.NewClient(mustParseRedis(t, redisURL))
	defer rdb.Close()
	paths := []struct {
		name    string
		publish func(payload string) error
	}{
		{"redis bridge", func(p string) error { return rdb.Publish(ctx, "shoal:bench", p).Err() }},
		{"http api", func(p string) error {
			req, _ := http.NewRequest("POST", nodes[0].URL()+"/api/publish", strings.NewReader(`{"channel":"bench","data":`+p+`}`))
			req.Header.Set("Authorization", "apikey k")
			resp, err := testenv.HTTPClient(t).Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		}},
	}
	// The nodes' CPU while idle with these sessions over the same time
	// (heartbeats, lease renewals, store re-checks), subtracted below.
	idle0 := cpuOf(t, nodes)
	time.Sleep(time.Duration(msgs) * gap)
	idle := cpuOf(t, nodes) - idle0
	t.Logf("idle: nodes' CPU %v over %v", idle, time.Duration(msgs)*gap)
	for _, path := range paths {
		mu.Lock()
		lat, got = lat[:0], 0
		mu.Unlock()
		cpu0 := cpuOf(t, nodes)
		for i := 0; i < msgs; i++ {
			p := fmt.Sprintf(`{"data_type":"tick","n":%d,"sent":%d}`, i, time.Now().UnixNano())
			if err := path.publish(p); err != nil {
				t.Fatal(err)
			}
			time.Sleep(gap)
		}
		want := msgs * subs
		testenv.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
			mu.Lock()
			defer mu.Unlock()
			if got < want {
				return fmt.Errorf("%s: %d of %d deliveries", path.name, got, want)
			}
			return nil
		})
		cpu := cpuOf(t, nodes) - cpu0 - idle
		mu.Lock()
		ls := slices.Clone(lat)
		mu.Unlock()
		slices.Sort(ls)
		t.Logf("%s: %d subscribers on 3 nodes, %d messages at %d/s, %d deliveries: latency p50 %v p99 %v max %v; nodes' CPU above idle %v, %.1f µs per delivery",
			path.name, subs, msgs, rate, len(ls), ls[len(ls)/2], ls[len(ls)*99/100], ls[len(ls)-1],
			cpu.Round(time.Millisecond), float64(cpu.Microseconds())/float64(len(ls)))
	}
	cancel()
}

// cpuOf sums user + system CPU of the node processes (/proc/<pid>/stat).
func cpuOf(t *testing.T, nodes []*nodetest.Node) time.Duration {
	var total time.Duration
	for _, n := range nodes {
		cpu, err := testenv.ProcessCPU(n.Cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		total += cpu
	}
	return total
}
