// Package netns runs a Shoal cluster as docker-compose.yml lays it out, but
// with every service on a host of its own: Redis, NATS, three nodes and
// HAProxy each get a network namespace, an address on a bridge the test
// creates and a name every other one resolves (/etc/netns/<ns>/hosts, which
// "ip netns exec" mounts over /etc/hosts). Gossip, the HTTP addresses the
// nodes advertise and the balancer's health checks then cross real
// interfaces, which loopback tests cannot show; and a node can fail in the
// two ways a real one does: its process dies (its address answers with
// refusals) or its address vanishes (nothing answers at all).
//
// It needs root (network namespaces) and the binaries the other tests use
// (redis-server, nats-server, haproxy).
package netns

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/haproxy"
	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/node/nodetest"
)

// url is the base URL of port on host name.
func url(h *nodetest.HostNet, name string, port int) string {
	return fmt.Sprintf("http://%s:%d", h.IP(name), port)
}

func TestMultiHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces: sudo go test ./deploy/netns")
	}
	h := nodetest.NewHostNet(t)
	nodes := []string{"node1", "node2", "node3"}
	h.AddHost("redis", 2)
	h.AddHost("nats", 3)
	for i, n := range nodes {
		h.AddHost(n, 11+i)
	}
	h.AddHost("haproxy", 20)
	h.WriteHosts()

	h.Start("redis", nil, testenv.LookPath(t, "redis-server"), "--bind", "0.0.0.0", "--port", "6379",
		"--protected-mode", "no", "--save", "", "--appendonly", "no")
	h.Start("nats", nil, testenv.LookPath(t, "nats-server"), "-a", "0.0.0.0", "-p", "4222")
	testenv.WaitTCP(t, h.IP("redis")+":6379")
	testenv.WaitTCP(t, h.IP("nats")+":4222")

	bin := nodetest.Binary(t)
	// The flags docker-compose.yml gives its nodes: no --advertise-http, so
	// each node advertises its own interface's address.
	prefix := testenv.Prefix(t) // one cluster: one key prefix
	flags := func(id string, extra ...string) []string {
		return append([]string{"--listen", "0.0.0.0:8080", "--node-id", id, "--redis", "redis://redis:6379/0",
			"--nats", "nats://nats:4222", "--gossip-listen", "0.0.0.0:7946", "--join", "node1:7946,node2:7946,node3:7946",
			"--key-prefix", prefix, "--drain-delay", "0s"}, extra...)
	}
	procs := map[string]*nodetest.Process{}
	for _, n := range nodes {
		procs[n] = h.Start(n, nil, bin, flags(n)...)
	}

	cfg, err := haproxy.Derive([]haproxy.Server{{Name: "node1", Addr: "node1:8080"}, {Name: "node2", Addr: "node2:8080"}, {Name: "node3", Addr: "node3:8080"}})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := testenv.TempFile(t, "haproxy.cfg", cfg)
	h.Start("haproxy", []string{haproxy.EnvBind + "=0.0.0.0:8080", haproxy.EnvStatsBind + "=0.0.0.0:8404"},
		testenv.LookPath(t, "haproxy"), "-db", "-f", cfgPath)
	lbStarted := time.Now()
	lb, stats := url(h, "haproxy", 8080), url(h, "haproxy", 8404)

	// Every node sees all three, each at the address of its own interface.
	start := time.Now()
	for _, n := range nodes {
		testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
			got, err := nodetest.AliveMembers(url(h, n, 8080))
			if err != nil {
				return err
			}
			for _, m := range nodes {
				if got[m] != h.IP(m)+":8080" {
					return fmt.Errorf("%s sees %v; want %s at %s:8080", n, got, m, h.IP(m))
				}
			}
			return nil
		})
	}
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		up, err := haproxy.UpServers(stats)
		if err != nil || !slices.Equal(up, nodes) {
			return fmt.Errorf("HAProxy: UP %v, %v", up, err)
		}
		return nil
	})
	t.Logf("cluster of 3 on 6 hosts formed, HAProxy sees all UP: %v", time.Since(start).Round(10*time.Millisecond))

	// Cluster stats reach every member at its advertised address.
	var st struct {
		Nodes       map[string]json.RawMessage `json:"nodes"`
		Unreachable map[string]string          `json:"unreachable"`
	}
	if err := nodetest.GetJSON(url(h, "node1", 8080)+"/_shoal/stats", &st); err != nil || len(st.Nodes) != 3 || len(st.Unreachable) != 0 {
		t.Fatalf("/_shoal/stats: %d nodes, unreachable %v, %v", len(st.Nodes), st.Unreachable, err)
	}
	nodetest.CheckRotation(t, lb, nodes, 9)

	// A node's address vanishes (its link goes down: no refusal, no reset,
	// nothing comes back): the others declare it dead, HAProxy takes it out
	// and the balancer keeps answering.
	gone := time.Now()
	h.SetLink("node2", false)
	waitGone(t, h, lb, stats, "node2", []string{"node1", "node3"}, gone)

	// Its link comes back with the process still running: it rejoins.
	back := time.Now()
	h.SetLink("node2", true)
	waitMembers(t, h, nodes, stats)
	t.Logf("node2's link back: all members alive and UP again after %v", time.Since(back).Round(10*time.Millisecond))

	// A node's process dies (kill -9) while its address stays: its peers
	// get refusals at once.
	died := time.Now()
	procs["node3"].Cmd.Process.Kill()
	waitGone(t, h, lb, stats, "node3", []string{"node1", "node2"}, died)

	// It comes back with --advertise-http naming it by host name: the
	// others record that name and reach it through it.
	procs["node3"] = h.Start("node3", nil, bin, flags("node3", "--advertise-http", "node3:8080")...)
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		got, err := nodetest.AliveMembers(url(h, "node1", 8080))
		if err != nil || got["node3"] != "node3:8080" {
			return fmt.Errorf("node1 sees %v, %v; want node3 at node3:8080", got, err)
		}
		return nil
	})
	testenv.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		st.Nodes, st.Unreachable = nil, nil
		if err := nodetest.GetJSON(url(h, "node1", 8080)+"/_shoal/stats", &st); err != nil || len(st.Nodes) != 3 || len(st.Unreachable) != 0 {
			return fmt.Errorf("/_shoal/stats: %d nodes, unreachable %v, %v", len(st.Nodes), st.Unreachable, err)
		}
		return nil
	})
	waitMembers(t, h, nodes, stats)
	nodetest.CheckRotation(t, lb, nodes, 9)

	// haproxy.cfg resolves the node names through Docker's DNS, which is
	// not here: HAProxy must keep the addresses it resolved at start. With
	// HAProxy's default holds every server went into maintenance 30-35 s
	// after start.
	if wait := 45*time.Second - time.Since(lbStarted); wait > 0 {
		time.Sleep(wait)
	}
	if up, err := haproxy.UpServers(stats); err != nil || !slices.Equal(up, nodes) {
		t.Fatalf("HAProxy %v after start: UP %v, %v", time.Since(lbStarted).Round(time.Second), up, err)
	}
	nodetest.CheckRotation(t, lb, nodes, 9)
}

// waitGone waits until the survivors no longer list victim as alive and
// HAProxy has taken it out, then checks requests through HAProxy all
// succeed, on the survivors only.
func waitGone(t *testing.T, h *nodetest.HostNet, lb, stats, victim string, survivors []string, since time.Time) {
	t.Helper()
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		up, err := haproxy.UpServers(stats)
		if err != nil || !slices.Equal(up, survivors) {
			return fmt.Errorf("HAProxy: UP %v, %v", up, err)
		}
		return nil
	})
	lbOut := time.Since(since)
	for _, s := range survivors {
		testenv.CheckFor(t, 45*time.Second, 100*time.Millisecond, func() error {
			got, err := nodetest.AliveMembers(url(h, s, 8080))
			if err != nil {
				return err
			}
			if _, ok := got[victim]; ok {
				return fmt.Errorf("%s still sees %s alive", s, victim)
			}
			return nil
		})
	}
	t.Logf("%s: HAProxy took it out after %v, gossip declared it dead after %v", victim,
		lbOut.Round(10*time.Millisecond), time.Since(since).Round(10*time.Millisecond))
	nodetest.CheckRotation(t, lb, survivors, 9)
}

// waitMembers waits until every node sees every other alive and HAProxy
// has all of them UP.
func waitMembers(t *testing.T, h *nodetest.HostNet, nodes []string, stats string) {
	t.Helper()
	testenv.CheckFor(t, 45*time.Second, 100*time.Millisecond, func() error {
		for _, n := range nodes {
			got, err := nodetest.AliveMembers(url(h, n, 8080))
			if err != nil {
				return err
			}
			if len(got) != len(nodes) {
				return fmt.Errorf("%s sees %v", n, got)
			}
		}
		up, err := haproxy.UpServers(stats)
		if err != nil || !slices.Equal(up, nodes) {
			return fmt.Errorf("HAProxy: UP %v, %v", up, err)
		}
		return nil
	})
}
