package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/shoal-rt/shoal/node/nodetest"
)

// Settings of a run, from the environment (scripts/chaos sets them):
//
//	SHOAL_CHAOS=full            every scenario, at full size (default: the fast subset)
//	SHOAL_CHAOS_SESSIONS        sessions per scenario (full: 120, fast: 24)
//	SHOAL_CHAOS_INTERVAL        time between two messages of a session (500ms)
//	SHOAL_CHAOS_TRANSPORTS      comma list (websocket,xhr-streaming,xhr-polling,eventsource)
//	SHOAL_CHAOS_RUN             comma list of scenarios to run (default: all of the mode)
//	SHOAL_CHAOS_REPORT          directory to write each scenario's JSON report to
type settings struct {
	full       bool
	sessions   int
	interval   time.Duration
	transports []string
	only       map[string]bool
	reportDir  string
	// sessionsSet: SHOAL_CHAOS_SESSIONS was given (a lean HA run in CI
	// then keeps it).
	sessionsSet bool
}

// downtime is how long a failed server stays down before it starts
// again: d at full size; in the fast subset CI runs, a quarter, enough
// for the load to run on the failed-over cluster.
func (s settings) downtime(d time.Duration) time.Duration {
	if s.full {
		return d
	}
	return d / 4
}

func loadSettings(t *testing.T) settings {
	s := settings{
		full:       os.Getenv("SHOAL_CHAOS") == "full",
		sessions:   24,
		interval:   500 * time.Millisecond,
		transports: []string{"websocket", "xhr-streaming", "xhr-polling", "eventsource"},
		reportDir:  os.Getenv("SHOAL_CHAOS_REPORT"),
	}
	if s.full {
		s.sessions = 120
	}
	s.sessionsSet = os.Getenv("SHOAL_CHAOS_SESSIONS") != ""
	if v := os.Getenv("SHOAL_CHAOS_SESSIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("SHOAL_CHAOS_SESSIONS=%q: want a positive number", v)
		}
		s.sessions = n
	}
	if v := os.Getenv("SHOAL_CHAOS_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("SHOAL_CHAOS_INTERVAL=%q: want a positive duration", v)
		}
		s.interval = d
	}
	if v := os.Getenv("SHOAL_CHAOS_TRANSPORTS"); v != "" {
		s.transports = strings.Split(v, ",")
	}
	if v := os.Getenv("SHOAL_CHAOS_RUN"); v != "" {
		s.only = map[string]bool{}
		for _, name := range strings.Split(v, ",") {
			s.only[name] = true
		}
	}
	return s
}

// root is the top of the checkout.
func root(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// nodeBinary is the node program: the race-detector build the other tests
// share in the fast subset (its packages are in the build cache already),
// a plain build at full size, where -race would slow three nodes under 120
// sessions to the point of measuring the detector.
func nodeBinary(t *testing.T, s settings) string {
	if !s.full {
		return nodetest.Binary(t)
	}
	return nodetest.PlainBinary(t)
}

// server is a backend process that can be stopped and started again on
// the same address with the same data.
type server struct {
	name string
	bin  string
	args []string
	addr string // host:port clients use
	proc *nodetest.Process
}

func (s *server) start(t *testing.T) {
	t.Helper()
	s.proc = nodetest.Start(t, s.bin, s.args...)
	testenv.WaitTCP(t, s.addr)
}

// stop asks the process to end (SIGTERM: Redis writes its AOF) and waits
// for it to exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.proc.Terminate(t)
	if err := s.proc.Wait(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// node is one Shoal node process, restartable with the same id, address
// and flags.
type node struct {
	*nodetest.Node
	args  []string
	netns string // network namespace it runs in, if any
	bin   string
}

func (n *node) start(t *testing.T) {
	t.Helper()
	bin, args := n.bin, n.args
	if n.netns != "" {
		bin, args = "ip", append([]string{"netns", "exec", n.netns, n.bin}, n.args...)
	}
	n.Node = &nodetest.Node{Process: nodetest.Start(t, bin, args...), ID: n.Node.ID, Addr: n.Node.Addr}
	n.waitReady(t, 30*time.Second)
}

func (n *node) waitReady(t *testing.T, d time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	testenv.CheckFor(t, d, 50*time.Millisecond, func() error {
		if n.Exited() {
			t.Fatalf("chaos: node %s exited:\n%s", n.ID, n.Output())
		}
		resp, err := client.Get(n.URL() + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("node %s: /readyz %s", n.ID, resp.Status)
		}
		return nil
	})
}

// cluster is Redis (AOF on), NATS, three gossiping nodes and the shipped
// HAProxy configuration in front of them; or, with ha, a Redis Cluster of
// three masters with a replica each and a cluster of three NATS servers.
type cluster struct {
	redis, nats *server // the single servers (not ha)
	// ha: the Redis Cluster's and the NATS cluster's servers.
	redisNodes, natsNodes []*server
	sentinel              *testenv.SentinelGroup // Sentinel: master, replicas, Sentinels
	redisURL, natsURL     string
	natsMonitors          []string // host:port of each NATS server's monitoring
	nodes                 []*node
	lb                    string // HAProxy's host:port
	net                   *nodetest.HostNet
}

// haTopology is the replicated Redis a scenario runs on, if any.
type haTopology int

const (
	noHA            haTopology = iota // one redis-server, one nats-server
	redisClusterHA                    // Redis Cluster and a NATS cluster (startHA)
	redisSentinelHA                   // Redis under Sentinel and a NATS cluster (startSentinelHA)
)

// startCluster starts everything on loopback, or, with ownHosts, each node
// on a host of its own (a network namespace on a bridge, newHostNet) so
// that a node's address can vanish.
func startCluster(t *testing.T, s settings, ownHosts bool, ha haTopology) *cluster {
	t.Helper()
	c := &cluster{}
	if ownHosts {
		c.net = newHostNet(t, 3)
	}
	switch ha {
	case redisClusterHA:
		c.startHA(t)
	case redisSentinelHA:
		c.startSentinelHA(t)
	default:
		c.startSingle(t, c.net)
	}
	c.startNodes(t, s, c.net)
	return c
}

// startSingle starts one redis-server (AOF on) and one nats-server.
func (c *cluster) startSingle(t *testing.T, nsNet *nodetest.HostNet) {
	t.Helper()
	host := "127.0.0.1"
	redisBind := "127.0.0.1"
	if nsNet != nil {
		host = nsNet.HostIP()
		redisBind = "127.0.0.1 " + nsNet.HostIP()
	}
	free := testenv.FreePorts(t, 3)
	redisPort, natsPort := free[0], free[1]
	// Persistence on (AOF, fsync every second): a restart keeps the
	// sessions, as a production Redis does.
	args := append([]string{"--port", strconv.Itoa(redisPort), "--bind"}, strings.Fields(redisBind)...)
	c.redis = &server{name: "redis-server", bin: testenv.LookPath(t, "redis-server"), addr: fmt.Sprintf("%s:%d", host, redisPort),
		args: append(args, "--dir", t.TempDir(), "--appendonly", "yes", "--appendfsync", "everysec",
			"--save", "", "--loglevel", "warning")}
	if nsNet != nil {
		// The nodes connect from their namespaces, which protected mode
		// refuses; Redis listens only on loopback and the test's bridge.
		c.redis.args = append(c.redis.args, "--protected-mode", "no")
	}
	c.redis.start(t)
	monitor := fmt.Sprintf("127.0.0.1:%d", free[2])
	c.natsMonitors = []string{monitor}
	c.nats = &server{name: "nats-server", bin: testenv.LookPath(t, "nats-server"), addr: fmt.Sprintf("%s:%d", host, natsPort),
		args: []string{"-a", host, "-p", strconv.Itoa(natsPort), "--http_port", strings.TrimPrefix(monitor, "127.0.0.1:")}}
	c.nats.start(t)
	c.redisURL, c.natsURL = "redis://"+c.redis.addr+"/0", "nats://"+c.nats.addr
}

// startNodes starts three gossiping nodes on the backends and HAProxy.
func (c *cluster) startNodes(t *testing.T, s settings, nsNet *nodetest.HostNet) {
	t.Helper()
	bin := nodeBinary(t, s)
	const n = 3
	addrs, gossip := make([]string, n), make([]string, n)
	free := testenv.FreePorts(t, 2*n)
	for i := range n {
		if nsNet != nil {
			ip := nsNet.IP(hostName(i))
			addrs[i], gossip[i] = ip+":8080", ip+":7946"
		} else {
			addrs[i] = fmt.Sprintf("127.0.0.1:%d", free[2*i])
			gossip[i] = fmt.Sprintf("127.0.0.1:%d", free[2*i+1])
		}
	}
	for i := range n {
		id := fmt.Sprintf("node%d", i+1)
		nd := &node{Node: &nodetest.Node{ID: id, Addr: addrs[i]}, bin: bin, args: []string{
			"--listen", addrs[i], "--node-id", id, "--apps", "echo",
			"--redis", c.redisURL, "--nats", c.natsURL,
			"--gossip-listen", gossip[i], "--join", strings.Join(gossip, ","),
			"--log-level", "warn",
		}}
		if len(c.redisNodes) > 0 && !s.full || c.sentinel != nil {
			// The lean failovers of CI run beside every other package on
			// a loaded machine, where an election may outlast the
			// default 5 s; and with Sentinel the slowest request waited
			// 4.4 s here: docs/high-availability.md advises 10 s.
			nd.args = append(nd.args, "--redis-outage-wait", "10s")
		}
		if nsNet != nil {
			nd.netns = nsNet.NS(hostName(i))
		}
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		nd.start(t)
	}
	plain := make([]*nodetest.Node, n)
	for i, nd := range c.nodes {
		plain[i] = nd.Node
	}
	_, c.lb = nodetest.HAProxy(t, plain)
	// Every node in HAProxy's rotation before the load starts.
	testenv.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		seen := map[string]bool{}
		for range 12 {
			resp, err := http.Get("http://" + c.lb + "/echo/info")
			if err != nil {
				return err
			}
			resp.Body.Close()
			seen[resp.Header.Get("X-Shoal-Server")] = true
		}
		if len(seen) < n {
			return fmt.Errorf("HAProxy sends to %d nodes, want %d", len(seen), n)
		}
		return nil
	})
}

// driver is the Node.js load (testdata/driver.js); nodetest.NodeJS keeps
// its standard error and logs it if the test fails.
type driver struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

// transportReport is one transport's figures from driver.js.
type transportReport struct {
	Sessions     int            `json:"sessions"`
	Opened       int            `json:"opened"`
	FailedOpen   int            `json:"failed_open"`
	Closed       int            `json:"closed"`
	CloseCodes   map[string]int `json:"close_codes"`
	Sent         int            `json:"sent"`
	Received     int            `json:"received"`
	Lost         int            `json:"lost"`
	LostInClosed int            `json:"lost_in_closed"`
	Duplicated   int            `json:"duplicated"`
	Reordered    int            `json:"reordered"`
}

func startDriver(t *testing.T, s settings, url string) *driver {
	t.Helper()
	client := filepath.Join(root(t), "node", "e2e", "testdata", "client")
	if _, err := os.Stat(filepath.Join(client, "node_modules", "sockjs-client")); err != nil {
		t.Fatalf("chaos: sockjs-client not installed: run scripts/test (or npm ci in %s)", client)
	}
	d := &driver{lines: make(chan string, 4)}
	// t.Context ends when the scenario does: driver.js gets SIGTERM then.
	d.cmd = nodetest.NodeJS(t, t.Context(), filepath.Join(root(t), "chaos", "testdata", "driver.js"),
		url, strings.Join(s.transports, ","), strconv.Itoa(s.sessions), strconv.FormatInt(s.interval.Milliseconds(), 10))
	d.cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(client, "node_modules"))
	var err error
	if d.stdin, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("chaos: start node driver.js: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
		close(d.lines)
	}()
	t.Cleanup(func() { d.cmd.Wait() })
	select {
	case line, ok := <-d.lines:
		var r struct{ Ready, Of int }
		if !ok || json.Unmarshal([]byte(line), &r) != nil {
			t.Fatalf("chaos: driver.js did not start: %q", line) // stderr: logged at the end
		}
		t.Logf("load: %d of %d sessions open over %s, one message each per %v", r.Ready, r.Of, strings.Join(s.transports, ", "), s.interval)
	case <-time.After(90 * time.Second):
		t.Fatal("chaos: driver.js opened no sessions in 90 s")
	}
	return d
}

// stop ends the load and returns the figures per transport.
func (d *driver) stop(t *testing.T) map[string]*transportReport {
	t.Helper()
	io.WriteString(d.stdin, "stop\n")
	select {
	case line := <-d.lines:
		var r struct {
			Transports map[string]*transportReport
			Duplicates []json.RawMessage // the first few, with their times
			Error      string
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Error != "" {
			t.Fatalf("chaos: driver.js: %q %v", line, err)
		}
		for _, dup := range r.Duplicates {
			t.Logf("duplicate: %s", dup)
		}
		return r.Transports
	case <-time.After(60 * time.Second):
		t.Fatal("chaos: driver.js gave no report 60 s after stop")
	}
	return nil
}

// newHostNet gives the nodes hosts of their own (nodetest.HostNet), node
// i at <subnet>.(10+i), so that one's address can vanish. It needs root.
func newHostNet(t *testing.T, n int) *nodetest.HostNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("chaos: the vanished-address scenario needs root to create network namespaces (run scripts/chaos as root, or leave out vanish with SHOAL_CHAOS_RUN)")
	}
	h := nodetest.NewHostNet(t)
	for i := range n {
		h.AddHost(hostName(i), 10+i)
	}
	return h
}

// hostName names node i's host in a HostNet.
func hostName(i int) string { return "n" + strconv.Itoa(i) }

// rss returns a process's resident memory in bytes, from /proc.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

// redisNodeTimeout is the Redis Cluster's cluster-node-timeout: how long a
// master must be unreachable before its replica is promoted. A failover
// takes about this plus an election, and requests wait through it only if
// it stays under --redis-outage-wait (5 s by default).
const redisNodeTimeout = 2 * time.Second

// startHA starts a Redis Cluster (3 masters, 1 replica each, AOF on) and
// a NATS cluster.
func (c *cluster) startHA(t *testing.T) {
	t.Helper()
	var addrs []string
	for i := range 6 {
		port := testenv.ClusterPort(t)
		dir := t.TempDir()
		srv := &server{name: fmt.Sprintf("redis-cluster-%d", i), bin: testenv.LookPath(t, "redis-server"), addr: fmt.Sprintf("127.0.0.1:%d", port),
			args: []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
				"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", strconv.FormatInt(redisNodeTimeout.Milliseconds(), 10),
				"--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--loglevel", "warning"}}
		srv.start(t)
		c.redisNodes = append(c.redisNodes, srv)
		addrs = append(addrs, srv.addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	testenv.Run(t, testenv.LookPath(t, "redis-cli"), args...)
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		for _, a := range addrs {
			if info := redisCLI(t, a, "cluster", "info"); !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("%s: cluster not ready", a)
			}
		}
		return nil
	})
	// Every replica in sync with its master: a replica that never synced
	// refuses to be promoted (its data would be too old), so a master
	// killed before that has no failover at all.
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		replicas := 0
		for _, a := range addrs {
			info := redisCLI(t, a, "info", "replication")
			if strings.Contains(info, "role:slave") {
				if !strings.Contains(info, "master_link_status:up") {
					return fmt.Errorf("%s: replica not in sync yet", a)
				}
				replicas++
			}
		}
		if replicas != 3 {
			return fmt.Errorf("%d replicas, want 3", replicas)
		}
		return nil
	})
	c.redisURL = "redis://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")
	c.startNATSCluster(t)
}

// startNATSCluster starts three NATS servers routed to each other.
func (c *cluster) startNATSCluster(t *testing.T) {
	t.Helper()
	routes := make([]string, 3)
	free := testenv.FreePorts(t, 9)
	ports, monitorPorts := make([]int, 3), make([]int, 3)
	for i := range 3 {
		ports[i], monitorPorts[i] = free[3*i], free[3*i+1]
		c.natsMonitors = append(c.natsMonitors, fmt.Sprintf("127.0.0.1:%d", monitorPorts[i]))
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", free[3*i+2])
	}
	var urls []string
	for i := range 3 {
		var others []string
		for j, r := range routes {
			if j != i {
				others = append(others, r)
			}
		}
		srv := &server{name: fmt.Sprintf("nats-%d", i), bin: testenv.LookPath(t, "nats-server"), addr: fmt.Sprintf("127.0.0.1:%d", ports[i]),
			args: []string{"-a", "127.0.0.1", "-p", strconv.Itoa(ports[i]), "--cluster_name", "shoal", "--http_port", strconv.Itoa(monitorPorts[i]),
				"--cluster", routes[i], "--routes", strings.Join(others, ",")}}
		srv.start(t)
		c.natsNodes = append(c.natsNodes, srv)
		urls = append(urls, "nats://"+srv.addr)
	}
	c.natsURL = strings.Join(urls, ",")
	// Routes up: every server logs its two routes.
	testenv.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		for _, srv := range c.natsNodes {
			if n := strings.Count(srv.proc.Output(), "Route connection created"); n < 2 {
				return fmt.Errorf("%s has %d routes, want 2", srv.name, n)
			}
		}
		return nil
	})
}

// redisCLI runs redis-cli against addr and returns its output.
func redisCLI(t *testing.T, addr string, args ...string) string {
	host, port, _ := strings.Cut(addr, ":")
	out, _ := exec.Command(testenv.LookPath(t, "redis-cli"), append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
	return string(out)
}
