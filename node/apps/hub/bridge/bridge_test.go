package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/node/apps/hub"
	"github.com/shoal-rt/shoal/node/nodetest"
)

// channelLog is the hub side of these tests: an append-only log per
// channel, as the store keeps it. The cluster tests in package node run
// the bridges against the real hub.
type channelLog struct {
	mu    sync.Mutex
	chans map[string][][]byte
	delay time.Duration
}

func newChannelLog() *channelLog { return &channelLog{chans: make(map[string][][]byte)} }

func (l *channelLog) Publish(ctx context.Context, channel string, payload []byte) (uint64, error) {
	if channel == "invalid channel" {
		return 0, fmt.Errorf("%w: %q", hub.ErrInvalidChannel, channel)
	}
	if l.delay > 0 {
		time.Sleep(l.delay)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.chans[channel] = append(l.chans[channel], bytes.Clone(payload))
	return uint64(len(l.chans[channel])), nil
}

// History answers in the hub's delivery form, as *hub.Hub does.
func (l *channelLog) History(ctx context.Context, channel string, since uint64, limit int) (hub.HistoryInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.chans[channel]
	out := hub.HistoryInfo{Channel: channel, Offset: uint64(len(c)), Recovered: true}
	if since == 0 {
		since = uint64(max(0, len(c)-limit))
	}
	for i := since; i < uint64(len(c)) && len(out.Messages) < limit; i++ {
		var v any = string(c[i])
		if json.Valid(c[i]) {
			json.Unmarshal(c[i], &v)
		}
		m, _ := json.Marshal(map[string]any{"data_type": "data", "channel": channel, "offset": i + 1, "data": v})
		out.Messages = append(out.Messages, m)
	}
	return out, nil
}

// numbers returns the channel's messages as the integers they are.
func (l *channelLog) numbers(channel string) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int
	for _, p := range l.chans[channel] {
		n, _ := strconv.Atoi(string(p))
		out = append(out, n)
	}
	return out
}

// checkSequence fails unless got is strictly increasing (no duplicate, in
// order) and returns the numbers of 0..sent-1 missing from it.
func checkSequence(t *testing.T, got []int, sent int) []int {
	t.Helper()
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("out of order or duplicate at %d: %v", i, got)
		}
	}
	return nodetest.Missing(got, sent)
}

func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// runner is a bridge as a node runs it.
type runner interface {
	Run(ctx context.Context)
	Live() bool
}

// bridgeNode is one node's bridge with its own Redis connections, so the
// test can cut them as a crash would.
type bridgeNode struct {
	client *redis.Client
	bridge runner
	cancel context.CancelFunc
	done   chan struct{}
}

// stop ends the node gracefully: its lease is released.
func (n *bridgeNode) stop() { n.cancel(); <-n.done }

// crash cuts the node's Redis connections first, as a SIGKILL would: its
// lease stays in Redis until it expires, its marks are not written.
func (n *bridgeNode) crash() { n.client.Close(); n.stop() }

func startNode(t *testing.T, url string, newBridge func(c *redis.Client) runner) *bridgeNode {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	n := &bridgeNode{client: redis.NewClient(opts), done: make(chan struct{})}
	n.bridge = newBridge(n.client)
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() {
		defer close(n.done)
		n.bridge.Run(ctx)
	}()
	t.Cleanup(func() { n.stop(); n.client.Close() })
	return n
}

// waitOneHolder waits until exactly one node bridges, and not skip.
func waitOneHolder(t *testing.T, nodes []*bridgeNode, skip int) int {
	t.Helper()
	var h int
	testenv.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		var live []int
		for i, n := range nodes {
			if n.bridge.Live() {
				live = append(live, i)
			}
		}
		if len(live) != 1 || live[0] == skip {
			return fmt.Errorf("live bridges %v", live)
		}
		h = live[0]
		return nil
	})
	return h
}

func uniquePrefix(t *testing.T) string {
	return strings.ToLower(strings.NewReplacer("/", "-").Replace(t.Name())) + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
}

const testTTL = 600 * time.Millisecond

func TestShardsKeepChannelOrder(t *testing.T) {
	s := newShards(4, 8)
	var mu sync.Mutex
	got := map[string][]int{}
	for i := 0; i < 200; i++ {
		ch := fmt.Sprint("c", i%7)
		s.add(ch, func() {
			mu.Lock()
			got[ch] = append(got[ch], i)
			mu.Unlock()
		})
	}
	s.close()
	for ch, v := range got {
		if len(v) < 28 {
			t.Fatalf("%s got %d", ch, len(v))
		}
		for i := 1; i < len(v); i++ {
			if v[i] < v[i-1] {
				t.Fatalf("%s out of order: %v", ch, v)
			}
		}
	}
}

func TestDelivers(t *testing.T) {
	for _, c := range []struct {
		msg, payload string
		want         bool
	}{
		{`{"text":"hi","channel":"c","offset":3}`, `{"text": "hi"}`, true},
		{`{"text":"hi","channel":"c","offset":3}`, `{"text":"ho"}`, false},
		{`{"text":"hi","channel":"d","offset":3}`, `{"text":"hi"}`, false},
		{`{"data_type":"data","channel":"c","offset":4,"data":"hello"}`, `hello`, true},
		{`{"data_type":"data","channel":"c","offset":4,"data":"hello"}`, `"hello"`, true},
		{`{"data_type":"data","channel":"c","offset":4,"data":[1,2]}`, `[1, 2]`, true},
		{`{"data_type":"data","channel":"c","offset":4,"data":7}`, `8`, false},
	} {
		if got := delivers(json.RawMessage(c.msg), "c", []byte(c.payload)); got != c.want {
			t.Errorf("delivers(%s, %s) = %v", c.msg, c.payload, got)
		}
	}
}
