package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/node/nodetest"
)

// hubClient is a hub session over SockJS's websocket transport, on one
// node, collecting the channel messages it gets.
type hubClient struct {
	t    *testing.T
	conn *websocket.Conn
	mu   sync.Mutex
	msgs []map[string]any
}

var hubClientSeq sync.Mutex
var hubClientN int

func dialHub(t *testing.T, n *nodetest.Node) *hubClient {
	t.Helper()
	hubClientSeq.Lock()
	hubClientN++
	id := hubClientN
	hubClientSeq.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://%s/hub/0/b%d/websocket", n.Addr, id), nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(1 << 24)
	c := &hubClient{t: t, conn: conn}
	t.Cleanup(func() { conn.CloseNow() })
	go c.read()
	return c
}

func (c *hubClient) read() {
	for {
		_, b, err := c.conn.Read(context.Background())
		if err != nil || len(b) == 0 || b[0] == 'c' {
			return
		}
		if b[0] != 'a' {
			continue
		}
		var frames []string
		json.Unmarshal(b[1:], &frames)
		for _, f := range frames {
			var m map[string]any
			if json.Unmarshal([]byte(f), &m) == nil {
				c.mu.Lock()
				c.msgs = append(c.msgs, m)
				c.mu.Unlock()
			}
		}
	}
}

func (c *hubClient) send(msg string) {
	b, _ := json.Marshal([]string{msg})
	if err := c.conn.Write(context.Background(), websocket.MessageText, b); err != nil {
		c.t.Fatal(err)
	}
}

// subscribe joins channel and waits for the reply.
func (c *hubClient) subscribe(channel string) {
	c.t.Helper()
	c.send(fmt.Sprintf(`{"data_type":"subscribe","id":1,"data":{"channel":%q}}`, channel))
	testenv.CheckFor(c.t, 10*time.Second, 10*time.Millisecond, func() error {
		for _, m := range c.messages() {
			if m["data_type"] == "subscribe" {
				return nil
			}
		}
		return fmt.Errorf("no subscribe reply in %v", c.messages())
	})
}

func (c *hubClient) messages() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.msgs...)
}

// channelMessages returns the messages delivered from channels.
func (c *hubClient) channelMessages() []map[string]any {
	var out []map[string]any
	for _, m := range c.messages() {
		if _, ok := m["offset"]; ok && m["channel"] != nil && m["data_type"] != "subscribe" {
			out = append(out, m)
		}
	}
	return out
}

func apiCall(t *testing.T, n *nodetest.Node, key, path, body string) map[string]any {
	t.Helper()
	out, err := apiTry(n, key, path, body)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// apiTry makes one API call; a status other than 200 is an error.
func apiTry(n *nodetest.Node, key, path, body string) (map[string]any, error) {
	method := "GET"
	if body != "" {
		method = "POST"
	}
	req, _ := http.NewRequest(method, n.URL()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "apikey "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil || resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return out, nil
}

// bridging returns the node running bridge name, once exactly one does.
func bridging(t *testing.T, nodes []*nodetest.Node, key, name string) int {
	t.Helper()
	var holder int
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		var live []int
		for i, n := range nodes {
			if n.Exited() {
				continue
			}
			info, err := apiTry(n, key, "/api/info", "")
			if err != nil {
				return err // a node still starting answers 503
			}
			if info["node"].(map[string]any)["bridging"].(map[string]any)[name] == true {
				live = append(live, i)
			}
		}
		if len(live) != 1 {
			return fmt.Errorf("%s bridging on %v", name, live)
		}
		holder = live[0]
		return nil
	})
	return holder
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
	clients := map[string][]*hubClient{}
	// Per room also one session on an HTTP transport through the
	// round-robin balancer: its requests land on every node.
	httpClients := map[string]*httpHubClient{}
	for i, r := range rooms {
		for j := 0; j < 2; j++ {
			cl := dialHub(t, c.Nodes[(i+j)%3])
			cl.subscribe(r)
			clients[r] = append(clients[r], cl)
		}
		hc := dialHTTPHub(t, c.URL(), []string{"xhr", "xhr_streaming", "eventsource"}[i])
		hc.subscribe(r)
		httpClients[r] = hc
	}
	for _, name := range []string{"redis", "stream", "nats"} {
		bridging(t, c.Nodes, "k", name)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, r := range rooms {
		wg.Add(4)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				rdb.Publish(ctx, "shoal:"+r, fmt.Sprintf(`{"src":"redis","n":%d}`, i))
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				apiCall(t, c.Nodes[i%3], "k", "/api/publish", fmt.Sprintf(`{"channel":%q,"data":{"src":"api","n":%d}}`, r, i))
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				nc.Publish("shoal.bridge."+r, fmt.Appendf(nil, `{"src":"nats","n":%d}`, i))
			}
			nc.Flush()
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				rdb.XAdd(ctx, &redis.XAddArgs{Stream: testStream, Values: []any{"channel", r, "data", fmt.Sprintf(`{"src":"stream","n":%d}`, i)}})
			}
		}()
	}
	wg.Wait()
	want := map[string]int{"redis": 10, "api": 10, "nats": 5, "stream": 5}
	for _, r := range rooms {
		for _, cl := range clients[r] {
			testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
				return checkRoom(cl.channelMessages(), r, want)
			})
		}
	}
	for i, r := range rooms {
		hc := httpClients[r]
		testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
			if err := checkRoom(hc.channelMessages(), r, want); err != nil {
				return fmt.Errorf("%s session: %w", []string{"xhr", "xhr_streaming", "eventsource"}[i], err)
			}
			return nil
		})
	}
	// A string payload arrives in the "data" envelope.
	rdb.Publish(ctx, "shoal:room-1", "hello")
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		msgs := clients["room-1"][0].channelMessages()
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
	holder := bridging(t, c.Nodes, "k", "redis")
	var clients []*hubClient
	for i, n := range c.Nodes {
		if i != holder {
			cl := dialHub(t, n)
			cl.subscribe("live")
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
			if err := c.Nodes[holder].Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		sent = append(sent, time.Now())
		rdb.Publish(ctx, "shoal:live", fmt.Sprintf(`{"src":"redis","n":%d}`, i))
		rdb.XAdd(ctx, &redis.XAddArgs{Stream: testStream, Values: []any{"channel", "live", "data", fmt.Sprintf(`{"src":"stream","n":%d}`, i)}})
		time.Sleep(5 * time.Millisecond)
	}
	for i, cl := range clients {
		testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			var stream int
			for _, m := range cl.channelMessages() {
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
		for _, m := range cl.channelMessages() {
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
		lost := missingOf(seen["redis"], perSource)
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

func missingOf(got []int, sent int) (missing []int) {
	have := map[int]bool{}
	for _, n := range got {
		have[n] = true
	}
	for i := 0; i < sent; i++ {
		if !have[i] {
			missing = append(missing, i)
		}
	}
	return missing
}
