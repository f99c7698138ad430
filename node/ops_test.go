package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/coder/websocket"

	"github.com/shoal-rt/shoal/node/nodetest"
	"github.com/shoal-rt/shoal/node/ops"
)

func TestDrainFlags(t *testing.T) {
	none := func(string) string { return "" }
	cfg, err := parseFlags(nil, none)
	if err != nil || cfg.DrainDelay != 0 || cfg.DrainTimeout != defaultDrainTimeout {
		t.Fatalf("alone: delay %v timeout %v (%v); want 0 and %v", cfg.DrainDelay, cfg.DrainTimeout, err, defaultDrainTimeout)
	}
	cfg, err = parseFlags([]string{"--redis", "redis://x"}, none)
	if err != nil || cfg.DrainDelay != defaultDrainDelay {
		t.Fatalf("with redis: delay %v (%v); want %v", cfg.DrainDelay, err, defaultDrainDelay)
	}
	cfg, err = parseFlags(nil, func(k string) string { return map[string]string{"SHOAL_DRAIN_DELAY": "3s"}[k] })
	if err != nil || cfg.DrainDelay != 3*time.Second {
		t.Fatalf("from env: delay %v (%v); want 3s", cfg.DrainDelay, err)
	}
	if _, err := parseFlags([]string{"--drain-delay", "-1s"}, none); err == nil {
		t.Fatal("negative drain delay accepted")
	}
}

func TestAdvertisedHTTP(t *testing.T) {
	if a, err := advertisedHTTP(config{}, "127.0.0.1:8080"); err != nil || a != "127.0.0.1:8080" {
		t.Fatalf("specific host: %q, %v", a, err)
	}
	if a, err := advertisedHTTP(config{AdvertiseHTTP: "node1:8080"}, "0.0.0.0:8080"); err != nil || a != "node1:8080" {
		t.Fatalf("flag: %q, %v", a, err)
	}
	// An unspecified host becomes a private IP, or an error saying what
	// to set; never the unspecified address itself.
	a, err := advertisedHTTP(config{}, "0.0.0.0:8080")
	if err == nil && (strings.HasPrefix(a, "0.0.0.0") || !strings.HasSuffix(a, ":8080")) {
		t.Fatalf("unspecified host advertised as %q", a)
	}
	if err != nil && !strings.Contains(err.Error(), "--advertise-http") {
		t.Fatalf("error does not name the flag: %v", err)
	}
}

// viewOf reads a node's /_shoal/cluster.
func viewOf(n *clusterNode) (ops.ClusterView, error) {
	var v ops.ClusterView
	err := nodetest.GetJSON(n.URL()+"/_shoal/cluster", &v)
	return v, err
}

func memberIDs(v ops.ClusterView) []string {
	var ids []string
	for _, m := range v.Members {
		if m.State == "alive" {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// TestClusterNodeDeath: three nodes see each other; one is SIGKILLed while
// it holds a websocket session and a parked poll; the others notice within
// a bounded time, the responsible one closes the websocket session (OnClose
// once in the whole cluster) and releases what leases are left. The polling
// session carries on on another node at once: its poll there asks node3,
// gets no answer and takes the lease over (sockjs/takeover.go), so the
// client never sees 2010.
func TestClusterNodeDeath(t *testing.T) {
	start := time.Now()
	c := startGossipCluster(t, 3)
	all := []string{"node1", "node2", "node3"}
	testenv.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		for _, n := range c.nodes {
			v, err := viewOf(n)
			if err != nil {
				return err
			}
			if got := memberIDs(v); !slices.Equal(got, all) {
				return fmt.Errorf("%s sees %v", n.ID, got)
			}
			for _, m := range v.Members {
				if m.HTTPAddr == "" || m.Version == "" {
					return fmt.Errorf("%s: member %s has no metadata: %+v", n.ID, m.ID, m)
				}
			}
		}
		return nil
	})
	t.Logf("3 nodes up and seeing each other after %v", time.Since(start).Round(time.Millisecond))
	victim := c.nodes[2]

	// A websocket session and a parked poll on node3.
	ctx := context.Background()
	ws := nodetest.DialWS(t, "ws://"+victim.Addr+"/echo/000/ws1/websocket")
	if f := ws.Next(t); f != "o" {
		t.Fatalf("websocket open frame %q", f)
	}
	ws.Write(ctx, websocket.MessageText, []byte(`["hi"]`))
	if f := ws.Next(t); f != `a["hi"]` {
		t.Fatalf("websocket echo %q", f)
	}
	poller := nodetest.NewSockJSClient(victim.URL()+"/echo", "p1")
	if err := poller.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	holding := func(want int64, what string) func() error {
		return func() error {
			var st ops.ClusterStats
			if err := nodetest.GetJSON(victim.URL()+"/_shoal/stats", &st); err != nil {
				return err
			}
			if st.Node.SessionsActive != want || st.Cluster.SessionsActive != want || len(st.Nodes) != 3 {
				return fmt.Errorf("node3 holds %d receivers (cluster %d over %d nodes), want %s",
					st.Node.SessionsActive, st.Cluster.SessionsActive, len(st.Nodes), what)
			}
			return nil
		}
	}
	// The open poll holds its lease until it has committed, after its
	// response: the parked poll is the next one.
	testenv.CheckFor(t, 5*time.Second, 20*time.Millisecond, holding(1, "the websocket"))
	go poller.PollOnce(ctx) // parks on node3 until node3 dies
	testenv.CheckFor(t, 5*time.Second, 20*time.Millisecond, holding(2, "the websocket and the parked poll"))

	victim.Kill(t)
	killed := time.Now()
	survivors := c.nodes[:2]

	// Each survivor's view, watched concurrently.
	var wg sync.WaitGroup
	detected := make([]time.Duration, len(survivors))
	for i, n := range survivors {
		wg.Go(func() {
			testenv.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error {
				v, err := viewOf(n)
				if err != nil {
					return err
				}
				if got := memberIDs(v); !slices.Equal(got, []string{"node1", "node2"}) {
					return fmt.Errorf("%s still sees %v", n.ID, got)
				}
				if len(v.Departed) == 0 || v.Departed[len(v.Departed)-1].ID != "node3" || v.Departed[len(v.Departed)-1].State != "dead" {
					return fmt.Errorf("%s lists departures %+v", n.ID, v.Departed)
				}
				return nil
			})
			detected[i] = time.Since(killed)
		})
	}

	// The polling session, on node1: served within the holder timeout with
	// what was sent meanwhile, never busy (2010).
	other := nodetest.NewSockJSClient(c.nodes[0].URL()+"/echo", "p1")
	if err := other.Send(ctx, "after-death"); err != nil {
		t.Fatal(err)
	}
	busy := 0
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := other.PollOnce(pctx); err != nil {
			return err
		}
		got, _, closes, _, _ := other.Snapshot()
		if len(closes) > 0 {
			if closes[len(closes)-1] != `c[2010,"Another connection still open"]` {
				t.Fatalf("polling session closed: %v", closes)
			}
			busy++
			other.ForgetCloses()
			return fmt.Errorf("busy")
		}
		if !slices.Equal(got, []string{"after-death"}) {
			return fmt.Errorf("poll got %q", got)
		}
		return nil
	})
	served := time.Since(killed)
	wg.Wait()
	t.Logf("SIGKILL: node1 noticed after %v, node2 after %v; the poll on node1 was served %v after the kill (%d polls answered 2010 before)",
		detected[0].Round(time.Millisecond), detected[1].Round(time.Millisecond), served.Round(time.Millisecond), busy)
	if busy > 0 || served > 15*time.Second {
		t.Fatalf("poll served %v after the kill, after %d answers 2010: the lease was not taken over", served, busy)
	}

	// OnClose ran once for the websocket session, on the responsible node;
	// one cleanup released its lease (the poll's was taken over before).
	sum := func(name string) (float64, error) {
		total := 0.0
		for _, n := range survivors {
			v, err := nodetest.Metric(n.URL(), name)
			if err != nil {
				return 0, err
			}
			total += v
		}
		return total, nil
	}
	want := map[string]float64{
		"shoal_sessions_closed_total":           1,
		"shoal_dead_node_sessions_closed_total": 1,
		"shoal_dead_node_leases_released_total": 1,
		"shoal_dead_node_cleanups_total":        1,
	}
	check := func() error {
		for name, w := range want {
			got, err := sum(name)
			if err != nil {
				return err
			}
			if got != w {
				return fmt.Errorf("%s = %v over the survivors, want %v", name, got, w)
			}
		}
		return nil
	}
	testenv.CheckFor(t, 5*time.Second, 50*time.Millisecond, check)
	time.Sleep(time.Second) // nothing closes it a second time (reaper, late cleanup)
	if err := check(); err != nil {
		t.Fatal(err)
	}

	// Cluster stats now cover the two survivors, none unreachable.
	var st ops.ClusterStats
	if err := nodetest.GetJSON(c.nodes[1].URL()+"/_shoal/stats", &st); err != nil {
		t.Fatal(err)
	}
	// Both sessions were opened on node3, whose figures died with it;
	// the websocket session's close counts on its cleaner.
	if len(st.Nodes) != 2 || len(st.Unreachable) != 0 || st.Cluster.SessionsOpened != 0 || st.Cluster.SessionsClosed != 1 {
		t.Fatalf("cluster stats after the death: %d nodes, unreachable %v, sessions opened %d, closed %d (want 2, none, 0, 1)",
			len(st.Nodes), st.Unreachable, st.Cluster.SessionsOpened, st.Cluster.SessionsClosed)
	}
}

// TestStatsAgreeWithTraffic: /metrics, /_shoal/stats?scope=node and the
// cluster figures of /_shoal/stats count exactly what two clients did on
// two nodes.
func TestStatsAgreeWithTraffic(t *testing.T) {
	c := startGossipCluster(t, 2)
	n1, n2 := c.nodes[0], c.nodes[1]
	testenv.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		for _, n := range c.nodes {
			v, err := viewOf(n)
			if err != nil {
				return err
			}
			if len(memberIDs(v)) != 2 {
				return fmt.Errorf("%s sees %v", n.ID, memberIDs(v))
			}
		}
		return nil
	})
	ctx := context.Background()

	// Ten messages over a websocket on node1.
	ws := nodetest.DialWS(t, "ws://"+n1.Addr+"/echo/000/w/websocket")
	for i := range 11 {
		want := "o"
		if i > 0 {
			want = fmt.Sprintf(`a["m%d"]`, i-1)
		}
		if got := ws.Next(t); got != want {
			t.Fatalf("websocket frame %q, want %q", got, want)
		}
		if i < 10 {
			ws.Send(t, fmt.Sprintf("m%d", i))
		}
	}
	// Five messages in one xhr_send on node2, echoed in one poll, then a
	// parked poll.
	p := nodetest.NewSockJSClient(n2.URL()+"/echo", "p")
	if err := p.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := testenv.HTTPClient(t).Post(p.URL("xhr_send"), "text/plain", strings.NewReader(`["a","b","c","d","e"]`))
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("xhr_send: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := p.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _, _, _, _ := p.Snapshot(); len(got) != 5 {
		t.Fatalf("poll got %q", got)
	}
	pctx, cancelPoll := context.WithCancel(ctx)
	defer cancelPoll()
	go p.PollOnce(pctx)

	type counts struct{ recv, sent, opened, active, ws, xhr float64 }
	want := map[*clusterNode]counts{n1: {10, 10, 1, 1, 1, 0}, n2: {5, 5, 1, 1, 0, 1}}
	testenv.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		for n, w := range want {
			var st struct {
				Recv   float64 `json:"packets_recv"`
				Sent   float64 `json:"packets_sent"`
				Opened float64 `json:"sessions_opened"`
				Active float64 `json:"sessions_active"`
				WS     float64 `json:"transp_websocket"`
				XHR    float64 `json:"transp_xhr"`
			}
			if err := nodetest.GetJSON(n.URL()+"/_shoal/stats?scope=node", &st); err != nil {
				return err
			}
			if got := (counts{st.Recv, st.Sent, st.Opened, st.Active, st.WS, st.XHR}); got != w {
				return fmt.Errorf("%s stats %+v, want %+v", n.ID, got, w)
			}
			for name, v := range map[string]float64{
				"shoal_packets_received_total": w.recv, "shoal_packets_sent_total": w.sent,
				"shoal_sessions_opened_total": w.opened, "shoal_sessions_active": w.active,
				"shoal_sessions_active{transport=\"websocket\"}": w.ws,
				"shoal_ready": 1, "shoal_cluster_members": 2,
			} {
				got, err := nodetest.Metric(n.URL(), name)
				if err != nil {
					return err
				}
				if got != v {
					return fmt.Errorf("%s: %s = %v, want %v", n.ID, name, got, v)
				}
			}
		}
		return nil
	})
	for _, n := range c.nodes {
		var st ops.ClusterStats
		if err := nodetest.GetJSON(n.URL()+"/_shoal/stats", &st); err != nil {
			t.Fatal(err)
		}
		cl := st.Cluster
		if cl.PacketsRecv != 15 || cl.PacketsSent != 15 || cl.SessionsActive != 2 || cl.SessionsOpened != 2 ||
			cl.Transports["websocket"] != 1 || cl.Transports["xhr"] != 1 || len(st.Nodes) != 2 || len(st.Unreachable) != 0 {
			t.Fatalf("cluster stats from %s: %+v (nodes %d, unreachable %v)", n.ID, cl, len(st.Nodes), st.Unreachable)
		}
	}
}

// TestReadiness: /readyz follows the backends (a stopped Redis or NATS
// that no other member reaches either leaves the node ready but says it is
// degraded; their return clears it) and drops at once on SIGTERM while
// /healthz stays up; the process exits after its drain. A backend lost by
// one node alone is TestReadinessAlone's.
func TestReadiness(t *testing.T) {
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	redisPort, natsPort := testenv.FreePort(t), testenv.FreePort(t)
	redis := nodetest.Start(t, testenv.LookPath(t, "redis-server"), "--port", fmt.Sprint(redisPort), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	nats := nodetest.Start(t, testenv.LookPath(t, "nats-server"), "-a", "127.0.0.1", "-p", fmt.Sprint(natsPort))
	testenv.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", redisPort))
	testenv.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", natsPort))
	n := nodetest.StartNodeAt(t, "ready1", testenv.FreeAddr(t),
		"--redis", fmt.Sprintf("redis://127.0.0.1:%d/0", redisPort), "--nats", fmt.Sprintf("nats://127.0.0.1:%d", natsPort),
		"--drain-delay", "1500ms")

	waitReady := func(wantCode int, wantBody string) {
		t.Helper()
		nodetest.WaitGet(t, 10*time.Second, n.URL()+"/readyz", wantCode, wantBody)
	}
	for _, b := range []struct {
		name string
		p    *nodetest.Process
	}{{"redis", redis}, {"nats", nats}} {
		b.p.Pause(t)
		stopped := time.Now()
		waitReady(http.StatusOK, "degraded: "+b.name+" unreachable from every member")
		t.Logf("%s stopped: /readyz said degraded after %v", b.name, time.Since(stopped).Round(time.Millisecond))
		if up, err := nodetest.Metric(n.URL(), `shoal_backend_up{backend="`+b.name+`"}`); err != nil || up != 0 {
			t.Fatalf("shoal_backend_up for %s = %v, %v; want 0", b.name, up, err)
		}
		if code, _, err := nodetest.TryGet(n.URL() + "/healthz"); err != nil || code != http.StatusOK {
			t.Fatalf("/healthz = %d, %v while %s is stopped; want 200", code, err, b.name)
		}
		b.p.Resume(t)
		waitReady(http.StatusOK, "ready\n")
	}

	n.Terminate(t)
	term := time.Now()
	waitReady(http.StatusServiceUnavailable, "draining")
	if code, _, err := nodetest.TryGet(n.URL() + "/healthz"); err != nil || code != http.StatusOK {
		t.Fatalf("/healthz = %d, %v while draining; want 200", code, err)
	}
	var v ops.ClusterView
	if err := nodetest.GetJSON(n.URL()+"/_shoal/cluster", &v); err != nil || !v.Draining || v.Ready {
		t.Fatalf("/_shoal/cluster while draining: %+v, %v", v, err)
	}
	if err := n.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	took := time.Since(term)
	if took < 1500*time.Millisecond {
		t.Fatalf("exited %v after SIGTERM, before its 1.5 s drain delay", took)
	}
	if code := n.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	t.Logf("SIGTERM to exit: %v (drain delay 1.5 s)", took.Round(time.Millisecond))
}

// TestReadinessAlone: a node that loses Redis or NATS while the other
// members still reach it (its own connection cut, here by a proxy that
// stops forwarding) answers /readyz with 503, so the balancer sends its
// requests to nodes that can serve them; the others stay ready. When the
// connection is back, so is the node.
func TestReadinessAlone(t *testing.T) {
	c := startGossipCluster(t, 1)
	redisProxy := testenv.NewProxy(t, strings.TrimSuffix(strings.TrimPrefix(c.redis, "redis://"), "/0"), nil)
	natsProxy := testenv.NewProxy(t, strings.TrimPrefix(c.nats, "nats://"), nil)
	gossip := testenv.FreeAddr(t)
	alone := nodetest.StartNodeAt(t, "alone", testenv.FreeAddr(t),
		"--redis", "redis://"+redisProxy.Addr+"/0", "--nats", "nats://"+natsProxy.Addr, "--apps", "echo",
		"--gossip-listen", gossip, "--join", c.nodes[0].gossip)
	testenv.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		var v ops.ClusterView
		if err := nodetest.GetJSON(alone.URL()+"/_shoal/cluster", &v); err != nil {
			return err
		}
		if len(v.Members) != 2 {
			return fmt.Errorf("members %+v, want 2", v.Members)
		}
		return nil
	})
	for _, b := range []struct {
		name  string
		proxy *testenv.Proxy
	}{{"redis", redisProxy}, {"nats", natsProxy}} {
		b.proxy.Cut(true)
		nodetest.WaitGet(t, 15*time.Second, alone.URL()+"/readyz", http.StatusServiceUnavailable, b.name+" unreachable")
		if code, body, err := nodetest.TryGet(c.nodes[0].URL() + "/readyz"); err != nil || code != http.StatusOK || body != "ready\n" {
			t.Fatalf("/readyz of the other node = %d %q, %v; want 200 ready", code, body, err)
		}
		b.proxy.Cut(false)
		nodetest.WaitGet(t, 15*time.Second, alone.URL()+"/readyz", http.StatusOK, "ready\n")
	}
}
