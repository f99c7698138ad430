package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-rt/shoal/haproxy"
)

// readyTimeout bounds a target's start: processes up and /echo/info served.
const readyTimeout = 30 * time.Second

// prepareTarget builds or installs what a target needs, once per
// comparison. A target that cannot be had is returned unavailable, with
// the reason; only an unknown name is an error.
func prepareTarget(ctx context.Context, c CompareConfig, name, binDir, cpus string) (*targetRunner, error) {
	tr := &targetRunner{info: TargetInfo{Name: name}}
	unavailable := func(format string, a ...any) (*targetRunner, error) {
		tr.info.Reason = fmt.Sprintf(format, a...)
		return tr, nil
	}
	peers := filepath.Join(c.RepoRoot, "loadtest", "peers")
	switch name {
	case TargetSockJSNode, TargetSockJSNodeSticky:
		dir := filepath.Join(peers, "sockjs-node")
		node, version, why := prepareSockJSNode(ctx, dir)
		if why != "" {
			return unavailable("%s", why)
		}
		if name == TargetSockJSNode {
			tr.info.Description = fmt.Sprintf("sockjs-node %s on Node.js %s, one process", version, nodeVersion(node))
			tr.start = func(ctx context.Context, logBase string) (*running, error) {
				return startSingle(ctx, "sockjs-node", logBase, dir, cpus, nil, func(addr string) []string {
					return []string{node, "server.js", addr}
				})
			}
			break
		}
		hp, err := lookPathSbin("haproxy")
		if err != nil {
			return unavailable("haproxy is not installed")
		}
		tr.info.Description = fmt.Sprintf("3 sockjs-node %s processes (Node.js %s) behind the shipped HAProxy, each session pinned to one by its URL (balance uri), all on the server CPUs; echo scenarios only (no broadcast across processes)", version, nodeVersion(node))
		tr.start = func(ctx context.Context, logBase string) (*running, error) {
			return startStickyTrio(ctx, logBase, dir, node, hp, cpus)
		}
		tr.skip = func(scen string) string {
			if kind, _, _ := ParseScenario(scen, ""); kind == KindBroadcast {
				return "sockjs-node has no broadcast across processes"
			}
			return peerSkips(scen)
		}
	case TargetSockJSGo:
		bin := filepath.Join(binDir, "sockjsgo-peer")
		if err := runCommand(ctx, 5*time.Minute, filepath.Join(peers, "sockjsgo"), widen("go", "build", "-o", bin, ".")...); err != nil {
			return unavailable("build: %v", err)
		}
		tr.info.Description = "sockjs-go v3.0.3 (gorilla/websocket), one process, GOMAXPROCS = its CPUs"
		tr.start = func(ctx context.Context, logBase string) (*running, error) {
			return startSingle(ctx, "sockjs-go", logBase, "", cpus, nil, func(addr string) []string {
				return []string{bin, "--listen", addr}
			})
		}
	case TargetShoal, TargetShoalCluster:
		bin := c.ShoalBin
		if bin == "" {
			bin = filepath.Join(binDir, "shoal-node")
		}
		if _, err := os.Stat(bin); err != nil {
			if err := runCommand(ctx, 10*time.Minute, c.RepoRoot, widen("go", "build", "-o", bin, "./node")...); err != nil {
				return unavailable("go build ./node: %v", firstLine(err))
			}
		}
		if name == TargetShoal {
			tr.info.Description = "Shoal, one node, in-memory store and bus (--apps conformance,hub)"
			tr.start = func(ctx context.Context, logBase string) (*running, error) {
				return startSingle(ctx, "shoal", logBase, "", cpus, nil, func(addr string) []string {
					return []string{bin, "--listen", addr, "--apps", "conformance,hub", "--api-key", compareAPIKey}
				})
			}
			break
		}
		var missing []string
		tools := map[string]string{}
		for _, t := range []string{"redis-server", "nats-server", "haproxy"} {
			p, err := lookPathSbin(t)
			if err != nil {
				missing = append(missing, t)
			}
			tools[t] = p
		}
		if len(missing) > 0 {
			return unavailable("not installed: %s", strings.Join(missing, ", "))
		}
		tr.info.Description = "Shoal, 3 nodes + Redis + NATS behind HAProxy round-robin (no stickiness), all on the server CPUs"
		gossip := !c.NoClusterGossip
		tr.start = func(ctx context.Context, logBase string) (*running, error) {
			rt, err := startCluster(ctx, logBase, bin, tools, cpus, gossip)
			if err != nil && gossip && errors.Is(err, errExited) && strings.Contains(err.Error(), "gossip") {
				// A node without memberlist yet: measure the data path
				// without it, and say so in every run.
				rt.stop()
				gossip = false
				rt, err = startCluster(ctx, logBase, bin, tools, cpus, false)
			}
			if rt != nil && !gossip && !c.NoClusterGossip {
				rt.notes = append(rt.notes, "cluster nodes ran without --gossip-listen/--join: the node program rejected them")
			}
			return rt, err
		}
	default:
		return nil, fmt.Errorf("loadtest: compare: unknown target %q (want %s, %s, %s or %s)", name, TargetSockJSNode, TargetSockJSGo, TargetShoal, TargetShoalCluster)
	}
	if tr.skip == nil && name != TargetShoal && name != TargetShoalCluster {
		tr.skip = peerSkips
	}
	tr.info.Available = true
	return tr, nil
}

// peerSkips says why a peer does not run a scenario: the hub is Shoal's own
// application, the peers have no such server.
func peerSkips(scen string) string {
	if kind, _, _ := ParseScenario(scen, ""); kind == KindHub {
		return "the hub is Shoal's own application"
	}
	return ""
}

// prepareSockJSNode installs sockjs-node 0.3.24 in dir when it is not
// there; why says what is missing when it cannot be had.
func prepareSockJSNode(ctx context.Context, dir string) (node, version, why string) {
	node, err := exec.LookPath("node")
	if err != nil {
		return "", "", "node (Node.js) is not installed"
	}
	pkg := filepath.Join(dir, "node_modules", "sockjs", "package.json")
	if _, err := os.Stat(pkg); err != nil {
		npm, err := exec.LookPath("npm")
		if err != nil {
			return "", "", "npm is not installed"
		}
		if err := runCommand(ctx, 5*time.Minute, dir, widen(npm, "install", "--no-audit", "--no-fund")...); err != nil {
			return "", "", fmt.Sprintf("npm install: %v", err)
		}
	}
	version = packageVersion(pkg)
	if version != "0.3.24" {
		return "", "", fmt.Sprintf("sockjs %q installed in %s, want 0.3.24", version, dir)
	}
	return node, version, ""
}

func nodeVersion(node string) string {
	out, _ := exec.Command(node, "--version").Output()
	return strings.TrimSpace(string(out))
}

// widen runs argv on every CPU: builds need not suffer the load
// generator's pinning.
func widen(argv ...string) []string {
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return argv
	}
	return append([]string{ts, "-c", fmt.Sprintf("0-%d", numCPUsOnline()-1)}, argv...)
}

func lookPathSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("loadtest: %s not found", name)
}

func packageVersion(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var p struct{ Version string }
	_ = json.Unmarshal(b, &p)
	return p.Version
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// startSingle starts a one-process server on a free port and waits for its
// /echo/info.
func startSingle(ctx context.Context, name, logBase, dir, cpus string, env []string, argv func(addr string) []string) (*running, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := startProc(name, logBase+".log", dir, cpus, env, argv(addr)...)
	if err != nil {
		return nil, err
	}
	rt := &running{url: "http://" + addr, procs: []*proc{p}}
	if err := waitHTTP(ctx, rt.procs, rt.url); err != nil {
		return rt, err
	}
	return rt, nil
}

// waitHTTP waits until url's /echo/info answers.
func waitHTTP(ctx context.Context, procs []*proc, url string) error {
	c, err := NewClient(ctx, ClientConfig{URL: url})
	if err != nil {
		return err
	}
	defer c.CloseIdle()
	return waitReady(ctx, readyTimeout, procs, func(ctx context.Context) error { return c.Info(ctx, "/echo") })
}

// waitTCP waits until addr accepts connections.
func waitTCP(ctx context.Context, procs []*proc, addr string) error {
	return waitReady(ctx, readyTimeout, procs, func(ctx context.Context) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	})
}

// startCluster starts Redis, NATS, three Shoal nodes sharing them and
// HAProxy in round-robin in front, all pinned to cpus. The returned
// running, even with an error, holds what was started so it can be
// stopped; it is nil only when nothing was.
func startCluster(ctx context.Context, logBase, bin string, tools map[string]string, cpus string, gossip bool) (rt *running, err error) {
	rt = &running{}
	ports := make([]int, 0, 11)
	for range 11 {
		p, err := freePort()
		if err != nil {
			return rt, err
		}
		ports = append(ports, p)
	}
	redisAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	natsAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	lbAddr := fmt.Sprintf("127.0.0.1:%d", ports[2])
	natsMonitor := fmt.Sprintf("127.0.0.1:%d", ports[9])
	statsAddr := fmt.Sprintf("127.0.0.1:%d", ports[10])

	redis, err := startProc("redis-server", logBase+"-redis.log", "", cpus, nil,
		tools["redis-server"], "--port", fmt.Sprint(ports[0]), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err != nil {
		return rt, err
	}
	rt.procs = append(rt.procs, redis)
	nats, err := startProc("nats-server", logBase+"-nats.log", "", cpus, nil,
		tools["nats-server"], "-a", "127.0.0.1", "-p", fmt.Sprint(ports[1]), "-m", fmt.Sprint(ports[9]))
	if err != nil {
		return rt, err
	}
	rt.procs = append(rt.procs, nats)
	rt.counters = joinCounters(redisCounters(redisAddr), natsCounters(natsMonitor))
	if err := waitTCP(ctx, rt.procs, redisAddr); err != nil {
		return rt, err
	}
	if err := waitTCP(ctx, rt.procs, natsAddr); err != nil {
		return rt, err
	}

	var nodeAddrs []string
	for i := range 3 {
		addr := fmt.Sprintf("127.0.0.1:%d", ports[3+i])
		argv := []string{bin, "--listen", addr, "--apps", "conformance,hub", "--api-key", compareAPIKey,
			"--redis", "redis://" + redisAddr, "--nats", "nats://" + natsAddr,
			"--node-id", fmt.Sprintf("load-%d", i+1)}
		if gossip {
			argv = append(argv, "--gossip-listen", fmt.Sprintf("127.0.0.1:%d", ports[6+i]))
			if i > 0 {
				argv = append(argv, "--join", fmt.Sprintf("127.0.0.1:%d", ports[6]))
			}
		}
		p, err := startProc(fmt.Sprintf("shoal node %d", i+1), fmt.Sprintf("%s-node%d.log", logBase, i+1), "", cpus, nil, argv...)
		if err != nil {
			return rt, err
		}
		rt.procs = append(rt.procs, p)
		nodeAddrs = append(nodeAddrs, addr)
	}
	cfg, err := haproxyConfig(nodeAddrs)
	if err != nil {
		return rt, err
	}
	return rt, rt.startBalancer(ctx, "shoal cluster node", nodeAddrs, logBase, tools["haproxy"], cpus, cfg, lbAddr, statsAddr)
}

// startBalancer waits for the servers at addrs (what names them in an
// error) to answer, then starts HAProxy with cfg in front of them, pinned
// to cpus, and makes its address rt's URL.
func (rt *running) startBalancer(ctx context.Context, what string, addrs []string, logBase, hp, cpus, cfg, listen, stats string) error {
	for _, a := range addrs {
		if err := waitHTTP(ctx, rt.procs, "http://"+a); err != nil {
			return fmt.Errorf("%s %s: %w", what, a, err)
		}
	}
	cfgPath := logBase + "-haproxy.cfg"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	lb, err := startProc("haproxy", logBase+"-haproxy.log", "", cpus, haproxyEnv(listen, stats), hp, "-db", "-f", cfgPath)
	if err != nil {
		return err
	}
	rt.procs = append(rt.procs, lb)
	rt.url = "http://" + listen
	if err := waitHTTP(ctx, rt.procs, rt.url); err != nil {
		return fmt.Errorf("haproxy: %w", err)
	}
	return nil
}

// natsCounters reads the in and out message counts of the NATS server
// whose monitoring endpoint (nats-server -m) is at monitor.
func natsCounters(monitor string) Counters {
	return func(ctx context.Context) (map[string]float64, error) {
		ctx, cancel := context.WithTimeout(ctx, countersTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+monitor+"/varz", nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("loadtest: nats monitor at %s: %w", monitor, err)
		}
		defer resp.Body.Close()
		var v struct {
			InMsgs  float64 `json:"in_msgs"`
			OutMsgs float64 `json:"out_msgs"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			return nil, fmt.Errorf("loadtest: nats monitor at %s: %w", monitor, err)
		}
		return map[string]float64{CountNATSIn: v.InMsgs, CountNATSOut: v.OutMsgs}, nil
	}
}

// haproxyConfig is the shipped haproxy/haproxy.cfg (what docker-compose.yml
// runs: per-request round robin, L7 retries, send ids, forwarded-for,
// health checks) with nodes as its servers, so the cluster is measured
// behind the balancer its users deploy. Where it listens comes from the
// environment haproxyEnv gives.
func haproxyConfig(nodes []string) (string, error) {
	servers := make([]haproxy.Server, len(nodes))
	for i, n := range nodes {
		servers[i] = haproxy.Server{Name: fmt.Sprintf("node%d", i+1), Addr: n}
	}
	return haproxy.Derive(servers)
}

// haproxyEnv sets where haproxyConfig's balancer and statistics page listen.
func haproxyEnv(listen, stats string) []string {
	return haproxy.Env(listen, stats)
}

// stickyHAProxyConfig is haproxyConfig turned into what sockjs-node needs:
// every request of a session to the same process, chosen by hashing the
// URL up to the session id (/echo/<server>/<session>), the way SockJS's own
// docs suggest; and a health check sockjs-node answers.
func stickyHAProxyConfig(nodes []string) (string, error) {
	cfg, err := haproxyConfig(nodes)
	if err != nil {
		return "", err
	}
	for _, r := range [][2]string{
		{"    balance roundrobin\n", "    balance uri depth 3\n    hash-type consistent\n"},
		{" uri /readyz ", " uri /echo/info "},
	} {
		if !strings.Contains(cfg, r[0]) {
			return "", fmt.Errorf("loadtest: haproxy.cfg has no %q to make sticky", strings.TrimSpace(r[0]))
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	return cfg, nil
}

// startStickyTrio starts three sockjs-node processes and HAProxy in front
// (stickyHAProxyConfig), all pinned to cpus.
func startStickyTrio(ctx context.Context, logBase, dir, node, hp, cpus string) (rt *running, err error) {
	rt = &running{}
	var addrs []string
	for i := range 3 {
		port, err := freePort()
		if err != nil {
			return rt, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		p, err := startProc(fmt.Sprintf("sockjs-node %d", i+1), fmt.Sprintf("%s-node%d.log", logBase, i+1), dir, cpus, nil, node, "server.js", addr)
		if err != nil {
			return rt, err
		}
		rt.procs = append(rt.procs, p)
		addrs = append(addrs, addr)
	}
	var lbAddr, statsAddr string
	for _, a := range []*string{&lbAddr, &statsAddr} {
		port, err := freePort()
		if err != nil {
			return rt, err
		}
		*a = fmt.Sprintf("127.0.0.1:%d", port)
	}
	cfg, err := stickyHAProxyConfig(addrs)
	if err != nil {
		return rt, err
	}
	return rt, rt.startBalancer(ctx, "sockjs-node", addrs, logBase, hp, cpus, cfg, lbAddr, statsAddr)
}
