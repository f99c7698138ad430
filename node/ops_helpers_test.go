package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/shoal-rt/shoal/haproxy"
	"github.com/shoal-rt/shoal/node/nodetest"
)

// Helpers of the operations tests: node processes in a gossiping cluster,
// a balancer with fast health checks, and minimal SockJS clients.

// clusterNode is a node process and what it takes to restart it as the
// same node.
type clusterNode struct {
	*nodetest.Node
	gossip string
	flags  []string
}

// gossipCluster is Redis, NATS and nodes that find each other with
// memberlist (each node lists every gossip address as a seed, as
// docker-compose.yml does).
type gossipCluster struct {
	redis, nats string
	nodes       []*clusterNode
}

func startGossipCluster(t *testing.T, n int, extra ...string) *gossipCluster {
	t.Helper()
	c := &gossipCluster{redis: nodetest.Redis(t), nats: nodetest.NATS(t)}
	gossip := make([]string, n)
	for i := range gossip {
		gossip[i] = testenv.FreeAddr(t)
	}
	for i := range n {
		flags := append([]string{
			"--redis", c.redis, "--nats", c.nats, "--apps", "echo",
			"--gossip-listen", gossip[i], "--join", strings.Join(gossip, ","),
		}, extra...)
		id := fmt.Sprintf("node%d", i+1)
		c.nodes = append(c.nodes, &clusterNode{
			Node:   nodetest.StartNodeAt(t, id, testenv.FreeAddr(t), flags...),
			gossip: gossip[i], flags: flags,
		})
	}
	return c
}

// restart starts the node again, with the same id, address and flags.
func (cn *clusterNode) restart(t *testing.T) {
	t.Helper()
	cn.Node = nodetest.StartNodeAt(t, cn.ID, cn.Addr, cn.flags...)
}

// balancer is the deployed haproxy.cfg in front of nodes; with fast, its
// health checks run every 200 ms (fall 2, rise 1) instead of every 2 s, so
// a drain test needs a drain delay of 1 s rather than 5.
type balancer struct {
	addr, stats string
}

func startBalancer(t *testing.T, nodes []*clusterNode, fast bool) *balancer {
	t.Helper()
	const deployed, quick = "check inter 1s downinter 1s fall 2 rise 2", "check inter 200ms downinter 200ms fall 2 rise 1"
	plain := make([]*nodetest.Node, len(nodes))
	for i, n := range nodes {
		plain[i] = n.Node
	}
	b := &balancer{}
	_, b.addr, b.stats = nodetest.HAProxyWith(t, plain, func(cfg string) string {
		if !strings.Contains(cfg, deployed) {
			t.Fatalf("haproxy.cfg no longer has %q; update this test", deployed)
		}
		if fast {
			cfg = strings.Replace(cfg, deployed, quick, 1)
		}
		return cfg
	})
	for _, n := range nodes {
		b.waitStatus(t, n.ID, "UP")
	}
	return b
}

func (b *balancer) url() string { return "http://" + b.addr }

// status is HAProxy's view of server name (UP, DOWN, ...).
func (b *balancer) status(name string) (string, error) {
	st, err := haproxy.ServerStatus("http://" + b.stats)
	if err != nil {
		return "", err
	}
	if s, ok := st[name]; ok {
		return s, nil
	}
	return "", fmt.Errorf("server %s not in HAProxy's statistics", name)
}

func (b *balancer) waitStatus(t *testing.T, name, want string) {
	t.Helper()
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		s, err := b.status(name)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(s, want) {
			return fmt.Errorf("HAProxy sees %s as %q, want %s", name, s, want)
		}
		return nil
	})
}
