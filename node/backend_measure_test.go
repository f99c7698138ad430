package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/node/nodetest"
)

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
	subs := envInt("SHOAL_MEASURE_SUBS", 1000)
	msgs := envInt("SHOAL_MEASURE_MSGS", 200)
	// Messages per second: at 1,000 subscribers 10/s is 10,000 deliveries
	// a second, which a shared 2-core machine carries without queueing.
	rate := envInt("SHOAL_MEASURE_RATE", 10)
	gap := time.Second / time.Duration(rate)
	bin := filepath.Join(t.TempDir(), "shoal")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	redisURL, natsURL := nodetest.Redis(t), nodetest.NATS(t)
	var nodes []*nodetest.Node
	for i := 1; i <= 3; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		p := nodetest.Start(t, bin, "--listen", addr, "--node-id", fmt.Sprint("m", i), "--redis", redisURL, "--nats", natsURL,
			"--apps", "hub", "--api-key", "k", "--log-level", "warn")
		n := &nodetest.Node{Process: p, ID: fmt.Sprint("m", i), Addr: addr}
		testenv.WaitTCP(t, addr)
		nodes = append(nodes, n)
	}
	bridging(t, nodes, "k", "redis")

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
		wg.Add(1)
		go func() {
			defer wg.Done()
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
		}()
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
			resp, err := http.DefaultClient.Do(req)
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

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// cpuOf sums user + system CPU of the node processes (/proc/<pid>/stat).
func cpuOf(t *testing.T, nodes []*nodetest.Node) time.Duration {
	var total time.Duration
	for _, n := range nodes {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.Cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * time.Second / 100 // USER_HZ
	}
	return total
}
