package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// httpHubClient is a hub session over one of SockJS's HTTP transports
// (xhr, xhr_streaming, eventsource), meant for the balancer: each of its
// requests may land on another node.
type httpHubClient struct {
	t         *testing.T
	base, sid string
	mu        sync.Mutex
	msgs      []map[string]any
	opened    chan struct{}
	openOnce  sync.Once
}

var httpSeq struct {
	sync.Mutex
	n int
}

// dialHTTPHub opens a session on transport at base (http://host:port)
// and keeps receiving until the test ends.
func dialHTTPHub(t *testing.T, base, transport string) *httpHubClient {
	httpSeq.Lock()
	httpSeq.n++
	sid := fmt.Sprintf("h%d%d", httpSeq.n, time.Now().UnixNano()%100000)
	httpSeq.Unlock()
	c := &httpHubClient{t: t, base: base + "/hub/0/" + sid, sid: sid, opened: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := c.receive(ctx, transport); err != nil && ctx.Err() == nil {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	select {
	case <-c.opened:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s session not opened", transport)
	}
	return c
}

// receive runs one receiving request and hands its frames to frame.
func (c *httpHubClient) receive(ctx context.Context, transport string) error {
	method := "POST"
	if transport == "eventsource" {
		method = "GET"
	}
	req, _ := http.NewRequestWithContext(ctx, method, c.base+"/"+transport, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if transport == "eventsource" {
			var ok bool
			if line, ok = strings.CutPrefix(line, "data: "); !ok {
				continue
			}
		}
		c.frame(line)
	}
	return sc.Err()
}

func (c *httpHubClient) frame(f string) {
	switch {
	case f == "o":
		c.openOnce.Do(func() { close(c.opened) })
	case strings.HasPrefix(f, "a["):
		var frames []string
		json.Unmarshal([]byte(f[1:]), &frames)
		for _, s := range frames {
			var m map[string]any
			if json.Unmarshal([]byte(s), &m) == nil {
				c.mu.Lock()
				c.msgs = append(c.msgs, m)
				c.mu.Unlock()
			}
		}
	}
}

func (c *httpHubClient) send(msg string) {
	b, _ := json.Marshal([]string{msg})
	resp, err := http.Post(c.base+"/xhr_send", "text/plain", strings.NewReader(string(b)))
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		c.t.Fatalf("xhr_send: %d", resp.StatusCode)
	}
}

func (c *httpHubClient) messages() []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]any(nil), c.msgs...)
}

func (c *httpHubClient) subscribe(channel string) {
	c.t.Helper()
	c.send(fmt.Sprintf(`{"data_type":"subscribe","id":1,"data":{"channel":%q}}`, channel))
	testenv.CheckFor(c.t, 15*time.Second, 10*time.Millisecond, func() error {
		for _, m := range c.messages() {
			if m["data_type"] == "subscribe" {
				return nil
			}
		}
		return fmt.Errorf("no subscribe reply in %v", c.messages())
	})
}

// channelMessages returns the messages delivered from channels.
func (c *httpHubClient) channelMessages() []map[string]any {
	var out []map[string]any
	for _, m := range c.messages() {
		if _, ok := m["offset"]; ok && m["channel"] != nil && m["data_type"] != "subscribe" {
			out = append(out, m)
		}
	}
	return out
}
