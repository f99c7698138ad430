// Package nodetest starts the real parts of a Shoal cluster for tests:
// HAProxy and node processes built from ./node on Redis and NATS from
// internal/testenv, each on a free loopback port and stopped when the test
// ends.
package nodetest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/haproxy"
	"github.com/shoal-rt/shoal/internal/testenv"
)

// Process is a child process with its output kept for failure reports.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// Output returns what the process printed so far.
func (p *Process) Output() string { return p.out.String() }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// mustSignal sends sig and fails the test if it cannot.
func (p *Process) mustSignal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.Signal(sig); err != nil {
		t.Fatalf("nodetest: signal %s to %s: %v", sig, p.Name, err)
	}
}

// Kill ends the process without a word (SIGKILL) and waits until it is gone.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	p.mustSignal(t, syscall.SIGKILL)
	if err := p.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// Terminate asks the process to end (SIGTERM): a node drains first, so the
// caller watches the drain and then Waits.
func (p *Process) Terminate(t testing.TB) {
	t.Helper()
	p.mustSignal(t, syscall.SIGTERM)
}

// Pause freezes the process (SIGSTOP): it keeps its sockets but answers
// nothing until Resume.
func (p *Process) Pause(t testing.TB) {
	t.Helper()
	p.mustSignal(t, syscall.SIGSTOP)
}

// Resume thaws a paused process (SIGCONT).
func (p *Process) Resume(t testing.TB) {
	t.Helper()
	p.mustSignal(t, syscall.SIGCONT)
}

// Wait waits up to d for the process to end.
func (p *Process) Wait(d time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("nodetest: %s still running after %v", p.Name, d)
	}
}

// Start runs name with args until the test ends, and prints its output if
// the test failed.
func Start(t testing.TB, name string, args ...string) *Process {
	t.Helper()
	return StartEnv(t, nil, name, args...)
}

// StartEnv is Start with extra environment variables (KEY=value).
func StartEnv(t testing.TB, env []string, name string, args ...string) *Process {
	t.Helper()
	p := &Process{Name: filepath.Base(name), Cmd: exec.Command(name, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.out, p.out
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("nodetest: start %s: %v", name, err)
	}
	go func() { p.Cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if !p.Exited() {
			p.Cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- output of %s %s:\n%s", p.Name, strings.Join(args, " "), testenv.LastLines(p.Output(), 60))
		}
	})
	return p
}

// Redis starts a redis-server (testenv.Redis) and returns its URL.
func Redis(t testing.TB) string {
	t.Helper()
	return testenv.Redis(t).URL()
}

// NATS starts an embedded NATS server (testenv.NATS) and returns its URL.
func NATS(t testing.TB) string {
	t.Helper()
	return testenv.NATS(t).URL()
}

// nodeBuild is one build of ./node, made once per test binary.
type nodeBuild struct {
	once sync.Once
	path string
	err  error
}

var raceBuild, plainBuild nodeBuild

// Binary builds ./node with the race detector once per test binary and
// returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	return raceBuild.binary(t, "-race")
}

// PlainBinary builds ./node without the race detector once per test
// binary and returns its path: for measurements, of which the detector
// would be most.
func PlainBinary(t testing.TB) string {
	t.Helper()
	return plainBuild.binary(t)
}

func (b *nodeBuild) binary(t testing.TB, flags ...string) string {
	t.Helper()
	b.once.Do(func() {
		dir, err := buildDir()
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "shoal")
		args := append(append([]string{"build"}, flags...), "-o", b.path, "github.com/shoal-rt/shoal/node")
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("nodetest: build node: %v", b.err)
	}
	return b.path
}

// buildDir makes the directory this test process builds the node into,
// named after the process, after removing those of test processes that
// are gone: a build is shared by all of a process's tests, so nothing can
// remove it when the last one ends, and each left 44 MB behind (hundreds
// of them filled a disk). The age guard spares a live process whose
// directory predates the pid in its name (MkdirTemp's random suffix).
func buildDir() (string, error) {
	tmp := os.TempDir()
	old, _ := filepath.Glob(filepath.Join(tmp, "shoal-node-*"))
	for _, d := range old {
		pid, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), "shoal-node-"), "-")
		n, err := strconv.Atoi(pid)
		st, statErr := os.Stat(d)
		if err == nil && statErr == nil && syscall.Kill(n, 0) == syscall.ESRCH && time.Since(st.ModTime()) > 10*time.Minute {
			os.RemoveAll(d)
		}
	}
	return os.MkdirTemp(tmp, fmt.Sprintf("shoal-node-%d-", os.Getpid()))
}

// Node is one running Shoal node.
type Node struct {
	*Process
	ID   string
	Addr string // host:port of its HTTP listener
}

// URL returns the node's base URL.
func (n *Node) URL() string { return "http://" + n.Addr }

// StartNode starts a node on a free port with the given extra flags and
// waits until it answers HTTP (ready or not: its backends may be away).
func StartNode(t testing.TB, id string, flags ...string) *Node {
	t.Helper()
	return startNode(t, id, testenv.FreeAddr(t), false, flags)
}

// StartNodeAt starts a node at addr (say, again where a balancer expects
// it) and waits until it is ready (/readyz answers 200).
func StartNodeAt(t testing.TB, id, addr string, flags ...string) *Node {
	t.Helper()
	return startNode(t, id, addr, true, flags)
}

func startNode(t testing.TB, id, addr string, ready bool, flags []string) *Node {
	t.Helper()
	args := append([]string{"--listen", addr, "--node-id", id}, flags...)
	n := &Node{Process: Start(t, Binary(t), args...), ID: id, Addr: addr}
	path := "/healthz"
	if ready {
		path = "/readyz"
	}
	testenv.CheckFor(t, 30*time.Second, 25*time.Millisecond, func() error {
		if n.Exited() {
			t.Fatalf("nodetest: node %s exited:\n%s", id, testenv.LastLines(n.Output(), 40))
		}
		resp, err := testenv.HTTPClient(t).Get(n.URL() + path)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if ready && resp.StatusCode != http.StatusOK {
			return fmt.Errorf("nodetest: %s not ready: %s", id, resp.Status)
		}
		return nil
	})
	return n
}

// Cluster is N nodes sharing one Redis and one NATS, behind HAProxy.
type Cluster struct {
	Redis, NATS string
	Nodes       []*Node
	HAProxy     *Process
	Addr        string // the balancer's host:port
}

// URL returns the balancer's base URL.
func (c *Cluster) URL() string { return "http://" + c.Addr }

// StartCluster starts Redis, NATS, n nodes with the given flags, and a
// round-robin HAProxy that balances every request, not every connection.
func StartCluster(t testing.TB, n int, flags ...string) *Cluster {
	t.Helper()
	c := &Cluster{Redis: Redis(t), NATS: NATS(t)}
	for i := 0; i < n; i++ {
		args := append([]string{"--redis", c.Redis, "--nats", c.NATS}, flags...)
		c.Nodes = append(c.Nodes, StartNode(t, fmt.Sprintf("node%d", i+1), args...))
	}
	c.HAProxy, c.Addr = HAProxy(t, c.Nodes)
	return c
}

// HAProxy starts the deployed haproxy/haproxy.cfg (round robin on every
// request, no stickiness, health checks on /readyz) in front of nodes.
func HAProxy(t testing.TB, nodes []*Node) (*Process, string) {
	t.Helper()
	p, addr, _ := HAProxyWith(t, nodes, nil)
	return p, addr
}

// HAProxyWith is HAProxy with the configuration passed through edit
// first, if not nil; it also returns the address of HAProxy's statistics
// page.
func HAProxyWith(t testing.TB, nodes []*Node, edit func(cfg string) string) (p *Process, addr, stats string) {
	t.Helper()
	servers := make([]haproxy.Server, len(nodes))
	for i, n := range nodes {
		servers[i] = haproxy.Server{Name: n.ID, Addr: n.Addr}
	}
	cfg, err := haproxy.Derive(servers)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		cfg = edit(cfg)
	}
	path := testenv.TempFile(t, "haproxy.cfg", cfg)
	addr = testenv.FreeAddr(t)
	stats = testenv.FreeAddr(t)
	p = StartEnv(t, haproxy.Env(addr, stats),
		testenv.LookPath(t, "haproxy"), "-db", "-f", path)
	testenv.WaitTCP(t, addr)
	return p, addr, stats
}

// RunClient runs the sockjs-client driver (testdata/client/client.js under
// dir) with args and returns its JSON output line.
func RunClient(t testing.TB, dir string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := NodeJS(t, ctx, filepath.Join(dir, "client.js"), args...).Output()
	if err != nil && len(out) == 0 {
		t.Fatalf("nodetest: sockjs-client %v: %v", args, err) // stderr: logged at the end
	}
	return out
}

// Missing returns the numbers of 0..sent-1 that got lacks: what a test
// that sent numbered messages did not receive.
func Missing(got []int, sent int) (missing []int) {
	have := make(map[int]bool, len(got))
	for _, n := range got {
		have[n] = true
	}
	for i := range sent {
		if !have[i] {
			missing = append(missing, i)
		}
	}
	return missing
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 4<<20 { // keep memory bounded on chatty processes
		s.b.Reset()
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
