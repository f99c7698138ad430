package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/sockjs"

	"github.com/coder/websocket"
)

// The channel benchmark: one publisher, N websocket subscribers spread
// over the nodes, on three nodes (Redis + NATS), one node (Redis + NATS)
// and one node (memory store and bus). It reports deliveries per second,
// publish-to-delivery latency (p50, p99) and CPU per delivery of the Shoal
// process, Redis and NATS, each measured apart: the subscribers run in a
// child process (this test binary again, see TestMain), and Redis and NATS
// are processes of their own.
//
//	SHOAL_CHANNEL_BENCH=1 go test -run TestChannelsBenchmark -v -timeout 20m ./sockjs/clustertest/
//
// SHOAL_CHANNEL_BENCH_SUBS (default "1000,10000") lists subscriber counts;
// SHOAL_CHANNEL_BENCH_DELIVERIES (default 40000) is the target deliveries
// per second (the publish rate is that divided by the subscribers), for
// SHOAL_CHANNEL_BENCH_SECONDS (default 10); SHOAL_CHANNEL_BENCH_SETUP picks
// the setups whose names contain it ("3 nodes", "memory", ...).

func TestMain(m *testing.M) {
	if os.Getenv("SHOAL_BENCH_CLIENT") != "" {
		os.Exit(benchClient())
	}
	os.Exit(m.Run())
}

// benchResult is what the client process reports.
type benchResult struct {
	Received int64   `json:"received"`
	Expected int64   `json:"expected"`
	Closed   int     `json:"closed"`
	Failed   int     `json:"failed"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	MaxUs    float64 `json:"max_us"`
	LastNs   int64   `json:"last_ns"` // wall clock of the last delivery
}

// benchClient is the subscriber process: it opens SHOAL_BENCH_N SockJS
// websockets over SHOAL_BENCH_URLS, says READY, and reads until each has
// SHOAL_BENCH_MSGS messages (each a publish time in Unix ns) or the
// timeout passes, then prints RESULT and its JSON.
func benchClient() int {
	urls := strings.Split(os.Getenv("SHOAL_BENCH_URLS"), ",")
	n := testenv.EnvInt("SHOAL_BENCH_N", 1)
	msgs := testenv.EnvInt("SHOAL_BENCH_MSGS", 1)
	timeout := time.Duration(testenv.EnvInt("SHOAL_BENCH_TIMEOUT_S", 120)) * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	conns := make([]*websocket.Conn, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var mu sync.Mutex
	failed := 0
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			u := "ws" + strings.TrimPrefix(urls[i%len(urls)], "http") + "/0/" + strconv.Itoa(i) + "/websocket"
			dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
			defer dcancel()
			c, _, err := websocket.Dial(dctx, u, nil)
			if err == nil {
				_, b, rerr := c.Read(dctx)
				if rerr != nil || string(b) != "o" {
					err = fmt.Errorf("open frame %q: %v", b, rerr)
				}
			}
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
				return
			}
			c.SetReadLimit(1 << 20)
			conns[i] = c
		})
	}
	wg.Wait()
	fmt.Println("READY")

	var (
		resMu    sync.Mutex
		lat      []int32 // µs
		received int64
		closed   int
		last     int64
	)
	for _, c := range conns {
		if c == nil {
			continue
		}
		wg.Go(func() {
			defer c.CloseNow()
			local := make([]int32, 0, msgs)
			var got int
			var lastNs int64
			wasClosed := false
			for got < msgs {
				_, b, err := c.Read(ctx)
				if err != nil {
					break
				}
				if len(b) > 0 && b[0] == 'c' {
					wasClosed = true
					break
				}
				if len(b) < 2 || b[0] != 'a' {
					continue
				}
				var batch []string
				if json.Unmarshal(b[1:], &batch) != nil {
					continue
				}
				now := time.Now().UnixNano()
				for _, m := range batch {
					ts, err := strconv.ParseInt(m, 10, 64)
					if err != nil {
						continue
					}
					local = append(local, int32((now-ts)/1000))
					got++
				}
				lastNs = now
			}
			resMu.Lock()
			lat = append(lat, local...)
			received += int64(got)
			if wasClosed {
				closed++
			}
			last = max(last, lastNs)
			resMu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))])
	}
	out, _ := json.Marshal(benchResult{
		Received: received, Expected: int64(n) * int64(msgs), Closed: closed, Failed: failed,
		P50us: pct(0.50), P99us: pct(0.99), MaxUs: pct(1), LastNs: last,
	})
	fmt.Println("RESULT " + string(out))
	return 0
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startNATSProcess runs nats-server as a process of its own, so its CPU
// is counted apart from Shoal's.
func startNATSProcess(t *testing.T) (string, int) {
	t.Helper()
	port := strconv.Itoa(testenv.FreePort(t))
	addr := "127.0.0.1:" + port
	cmd := exec.Command(testenv.LookPath(t, "nats-server"), "-a", "127.0.0.1", "-p", port)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testenv.WaitTCP(t, addr)
	return "nats://" + addr, cmd.Process.Pid
}

type cpuSample struct{ shoal, redis, nats time.Duration }

func TestChannelsBenchmark(t *testing.T) {
	if os.Getenv("SHOAL_CHANNEL_BENCH") == "" {
		t.Skip("benchmark: set SHOAL_CHANNEL_BENCH=1")
	}
	var counts []int
	for s := range strings.SplitSeq(cmpOr(os.Getenv("SHOAL_CHANNEL_BENCH_SUBS"), "1000,10000"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			t.Fatal(err)
		}
		counts = append(counts, n)
	}
	target := testenv.EnvInt("SHOAL_CHANNEL_BENCH_DELIVERIES", 40000)
	seconds := testenv.EnvInt("SHOAL_CHANNEL_BENCH_SECONDS", 10)
	var report []string
	for _, subs := range counts {
		for _, setup := range []string{"3 nodes, Redis+NATS", "1 node, Redis+NATS", "1 node, memory"} {
			if only := os.Getenv("SHOAL_CHANNEL_BENCH_SETUP"); only != "" && !strings.Contains(setup, only) {
				continue
			}
			// A subtest each, so each setup's servers stop before the next.
			t.Run(fmt.Sprintf("%s/%d", setup, subs), func(t *testing.T) {
				line := runChannelBench(t, setup, subs, target, seconds)
				report = append(report, line)
				t.Log(line)
			})
		}
	}
	t.Log("summary:\n" + strings.Join(report, "\n"))
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func runChannelBench(t *testing.T, setup string, subs, target, seconds int) string {
	var eps []*sockjs.Endpoint
	var bases []string
	var redisProc, natsProc int
	cfg := sockjs.ChannelConfig{Pattern: "room"}
	switch setup {
	case "1 node, memory":
		eps, bases = memoryNodes(t, 1, joinRoom, sockjs.Settings{}, &cfg)
	default:
		nodes := 3
		if strings.HasPrefix(setup, "1") {
			nodes = 1
		}
		r := testenv.Redis(t)
		redisAddr := r.Addr
		redisProc = r.Pid()
		natsURL, pid := startNATSProcess(t)
		natsProc = pid
		eps, bases = backendCluster(t, nodes, redisAddr, natsURL, joinRoom, sockjs.Settings{}, cfg, nil)
	}
	rate := max(1, target/subs)
	msgs := rate * seconds

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		"SHOAL_BENCH_CLIENT=1",
		"SHOAL_BENCH_URLS="+strings.Join(bases, ","),
		"SHOAL_BENCH_N="+strconv.Itoa(subs),
		"SHOAL_BENCH_MSGS="+strconv.Itoa(msgs),
		"SHOAL_BENCH_TIMEOUT_S="+strconv.Itoa(seconds+120),
	)
	lines := testenv.StartReading(t, cmd)
	defer cmd.Process.Kill()
	next := func(prefix string) string {
		for lines.Scan() {
			if rest, ok := strings.CutPrefix(lines.Text(), prefix); ok {
				return rest
			}
		}
		t.Fatalf("client ended before %s", prefix)
		return ""
	}
	next("READY")

	sample := func() cpuSample {
		s := cpuSample{shoal: selfCPU()}
		if redisProc != 0 {
			s.redis, _ = testenv.ProcessCPU(redisProc)
			s.nats, _ = testenv.ProcessCPU(natsProc)
		}
		return s
	}
	// Idle: what the live sessions cost with nothing published.
	idle := 2 * time.Second
	i0 := sample()
	time.Sleep(idle)
	i1 := sample()

	ctx := context.Background()
	c0 := sample()
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for range msgs {
		<-tick.C
		if err := eps[0].Publish(ctx, "room", strconv.FormatInt(time.Now().UnixNano(), 10)); err != nil {
			t.Fatal(err)
		}
	}
	tick.Stop()
	publishTime := time.Since(start)
	var res benchResult
	if err := json.Unmarshal([]byte(next("RESULT ")), &res); err != nil {
		t.Fatal(err)
	}
	c1 := sample()
	cmd.Wait()

	elapsed := time.Duration(res.LastNs - start.UnixNano())
	if elapsed < publishTime {
		elapsed = publishTime
	}
	d := float64(res.Received)
	perDelivery := func(a, b time.Duration) float64 { return float64(b-a) / float64(time.Microsecond) / d }
	idleScale := float64(elapsed) / float64(idle)
	marginal := func(a, b, ia, ib time.Duration) float64 {
		return (float64(b-a) - float64(ib-ia)*idleScale) / float64(time.Microsecond) / d
	}
	line := fmt.Sprintf("%-20s subs %5d  %4d msg/s x %ds: delivered %d/%d (closed %d, failed %d), %.0f deliveries/s, latency p50 %.2f ms p99 %.2f ms max %.1f ms; CPU µs/delivery: shoal %.2f (above idle %.2f), redis %.2f (%.2f), nats %.2f (%.2f)",
		setup, subs, rate, seconds, res.Received, res.Expected, res.Closed, res.Failed,
		d/elapsed.Seconds(), res.P50us/1000, res.P99us/1000, res.MaxUs/1000,
		perDelivery(c0.shoal, c1.shoal), marginal(c0.shoal, c1.shoal, i0.shoal, i1.shoal),
		perDelivery(c0.redis, c1.redis), marginal(c0.redis, c1.redis, i0.redis, i1.redis),
		perDelivery(c0.nats, c1.nats), marginal(c0.nats, c1.nats, i0.nats, i1.nats))
	if res.Received != res.Expected {
		t.Errorf("%s, %d subscribers: %d of %d deliveries", setup, subs, res.Received, res.Expected)
	}
	return line
}
