package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
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
		gossip[i] = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	}
	for i := range n {
		flags := append([]string{
			"--redis", c.redis, "--nats", c.nats, "--apps", "echo",
			"--gossip-listen", gossip[i], "--join", strings.Join(gossip, ","),
		}, extra...)
		id := fmt.Sprintf("node%d", i+1)
		c.nodes = append(c.nodes, &clusterNode{
			Node:   nodetest.StartNodeAt(t, id, fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), flags...),
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

// sjsClient is a SockJS client of one session over xhr-polling or
// xhr-streaming, that keeps receiving (polling again, reopening streams)
// until stopped, as sockjs-client does, and records everything it gets.
type sjsClient struct {
	base, sid string
	http      *http.Client

	mu       sync.Mutex // guards the fields below
	got      []string   // messages, in order
	opens    int        // "o" frames: more than one means a new session
	closes   []string   // "c" frames
	errs     []string   // failed requests
	receives int        // polls answered, streams opened
}

func newSJSClient(base, sid string) *sjsClient {
	return &sjsClient{base: base, sid: sid, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
}

func (c *sjsClient) url(transport string) string {
	return c.base + "/000/" + c.sid + "/" + transport
}

func (c *sjsClient) frame(f string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case f == "o":
		c.opens++
	case f == "h":
	case strings.HasPrefix(f, "a"):
		var msgs []string
		if err := json.Unmarshal([]byte(f[1:]), &msgs); err != nil {
			c.errs = append(c.errs, "bad frame "+f)
			return
		}
		c.got = append(c.got, msgs...)
	case strings.HasPrefix(f, "c"):
		c.closes = append(c.closes, f)
	default:
		c.errs = append(c.errs, "unknown frame "+f)
	}
}

func (c *sjsClient) fail(err error) {
	c.mu.Lock()
	c.errs = append(c.errs, err.Error())
	c.mu.Unlock()
}

func (c *sjsClient) post(ctx context.Context, transport, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(transport), strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	return c.http.Do(req)
}

// receive polls or streams until ctx ends. A failed request is recorded
// and retried after a pause.
func (c *sjsClient) receive(ctx context.Context, streaming bool) {
	for ctx.Err() == nil {
		var err error
		if streaming {
			err = c.streamOnce(ctx)
		} else {
			err = c.pollOnce(ctx)
		}
		if err != nil && ctx.Err() == nil {
			c.fail(err)
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func (c *sjsClient) pollOnce(ctx context.Context) error {
	resp, err := c.post(ctx, "xhr", "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("poll: %s %q", resp.Status, body)
	}
	c.mu.Lock()
	c.receives++
	c.mu.Unlock()
	if f := strings.TrimSuffix(string(body), "\n"); f != "" {
		c.frame(f)
	}
	return nil
}

func (c *sjsClient) streamOnce(ctx context.Context) error {
	resp, err := c.post(ctx, "xhr_streaming", "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("stream: %s", resp.Status)
	}
	c.mu.Lock()
	c.receives++
	c.mu.Unlock()
	br := bufio.NewReader(resp.Body)
	prelude := true
	for {
		line, err := br.ReadString('\n')
		if errors.Is(err, io.EOF) && line == "" {
			return nil // the stream ended cleanly: reopen it
		}
		if err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if prelude {
			prelude = false
			if strings.Trim(line, "h") == "" && len(line) == 2048 {
				continue
			}
		}
		c.frame(line)
	}
}

// send sends one message with xhr_send.
func (c *sjsClient) send(ctx context.Context, msg string) error {
	b, _ := json.Marshal([]string{msg})
	resp, err := c.post(ctx, "xhr_send", string(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("xhr_send: %s", resp.Status)
	}
	return nil
}

func (c *sjsClient) snapshot() (got []string, opens int, closes, errs []string, receives int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...), c.opens, append([]string(nil), c.closes...), append([]string(nil), c.errs...), c.receives
}
