package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/node/nodetest"
)

// The backend publish paths end to end (issue 10): inside TestHubCluster's
// cluster, sessions of the real sockjs-client in Node.js on every transport,
// authenticated by Django tokens granting one of two rooms, while the
// backend publishes per room 10 messages by Redis PUBLISH and 10 by
// POST /api/publish through the round-robin balancer, the two publishers
// at once.

const (
	hubAPIKey = "e2e-backend-api-key"
	// hubBridgePrefix is --bridge-prefix's default: the Redis bridge is on
	// with --redis unless --bridge-redis off.
	hubBridgePrefix = "shoal:"
	hubBackendEach  = 10 // messages per room per publisher
)

// hubBackendRooms are channels the config file's "*" rule lets in only
// those whose token grants them (hubRoomTokens mints one per room).
var hubBackendRooms = []string{"backend-a", "backend-b"}

// hubRoomTokens mints, with real Django, one token per backend room
// granting just that room.
func hubRoomTokens(t *testing.T) map[string]string {
	t.Helper()
	var reqs []map[string]any
	for i, r := range hubBackendRooms {
		reqs = append(reqs, map[string]any{"secret": hubSecret, "salt": hubSalt,
			"django": map[string]any{"user": fmt.Sprintf("backend-user-%d", i), "channels": []string{r}}})
	}
	toks := runMint(t, reqs)
	out := map[string]string{}
	for i, r := range hubBackendRooms {
		out[r] = toks[i]
	}
	return out
}

func runMint(t *testing.T, requests []map[string]any) []string {
	t.Helper()
	var toks []string
	nodetest.RunPython(t, []string{"django"}, filepath.Join("..", "apps", "hub", "token", "testdata", "mint.py"), requests, &toks)
	if len(toks) != len(requests) {
		t.Fatalf("mint.py: %d tokens for %d requests", len(toks), len(requests))
	}
	return toks
}

// waitRedisBridge waits until exactly one node runs the Redis bridge: a
// PUBLISH before that reaches nobody (pub/sub keeps nothing).
func waitRedisBridge(t *testing.T, c *nodetest.Cluster) {
	t.Helper()
	nodetest.Bridging(t, c.Nodes, hubAPIKey, "redis")
}

type backendMessage struct {
	Src     string `json:"src"`
	N       int    `json:"n"`
	Room    string `json:"room"`
	Channel string `json:"channel"`
	Offset  int64  `json:"offset"`
}

type backendResult struct {
	Errors   []string `json:"errors"`
	ReadyMs  int      `json:"readyMs"`
	Ms       int      `json:"ms"`
	Sessions []struct {
		Room      string           `json:"room"`
		Transport string           `json:"transport"`
		Closed    any              `json:"closed"`
		Got       []backendMessage `json:"got"`
	} `json:"sessions"`
}

// runBackendRooms runs backendRooms (testdata/hub/scenarios.js), publishes
// once its sessions are in, and judges what each session got.
func runBackendRooms(t *testing.T, c *nodetest.Cluster, cfg map[string]any) {
	waitRedisBridge(t, c)
	rdbOpts, err := redis.ParseURL(c.Redis)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(rdbOpts)
	defer rdb.Close()

	arg, _ := json.Marshal(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := nodetest.NodeJS(t, ctx, filepath.Join("testdata", "hub", "hub.js"), string(arg))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 2)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(what string) string {
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("hub.js ended before its %s line", what)
			}
			return l
		case <-time.After(60 * time.Second):
			t.Fatalf("no %s line from hub.js in 60 s", what)
		}
		return ""
	}

	first := next("ready")
	if !strings.Contains(first, `"ready"`) {
		cmd.Wait()
		t.Fatalf("hub.js: %s", first)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, room := range hubBackendRooms {
		wg.Go(func() {
			for i := 0; i < hubBackendEach; i++ {
				msg := fmt.Sprintf(`{"data_type":"backend","src":"redis","room":%q,"n":%d}`, room, i)
				if err := rdb.Publish(context.Background(), hubBridgePrefix+room, msg).Err(); err != nil {
					t.Errorf("PUBLISH %s%s: %v", hubBridgePrefix, room, err)
				}
			}
		})
		wg.Go(func() {
			for i := 0; i < hubBackendEach; i++ {
				body := fmt.Sprintf(`{"channel":%q,"data":{"data_type":"backend","src":"api","room":%q,"n":%d}}`, room, room, i)
				if _, err := nodetest.HubAPI(t, c.URL(), hubAPIKey, "/api/publish", body); err != nil {
					t.Errorf("through the balancer: %v", err)
				}
			}
		})
	}
	wg.Wait()
	published := time.Since(start)

	out := next("result")
	if err := cmd.Wait(); err != nil {
		t.Errorf("hub.js: %v", err)
	}
	var r struct {
		Error   string         `json:"error"`
		Backend *backendResult `json:"backend"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Backend == nil {
		t.Fatalf("hub.js output %q: %v %s", out, err, r.Error)
	}
	b := r.Backend
	t.Logf("%d sessions in %d ms; published %d per room in %v; all delivered %d ms after the sessions were in",
		len(b.Sessions), b.ReadyMs, 2*hubBackendEach, published.Round(time.Millisecond), b.Ms-b.ReadyMs)
	for _, e := range b.Errors {
		t.Error(e)
	}
	if want := len(hubBackendRooms) * len(transports); len(b.Sessions) != want {
		t.Fatalf("%d sessions, want %d", len(b.Sessions), want)
	}
	for _, s := range b.Sessions {
		if err := checkBackendRoom(s.Room, s.Got); err != nil {
			t.Errorf("%s session in %s: %v", s.Transport, s.Room, err)
		}
		if s.Closed != nil {
			t.Errorf("%s session in %s closed: %v", s.Transport, s.Room, s.Closed)
		}
	}
}

// checkBackendRoom: exactly the room's messages, each publisher's 0..9 in
// order, each once, offsets rising in the order they arrived.
func checkBackendRoom(room string, got []backendMessage) error {
	next := map[string]int{"redis": 0, "api": 0}
	var last int64
	for i, m := range got {
		if m.Channel != room || m.Room != room {
			return fmt.Errorf("message %d is another room's: %+v", i, m)
		}
		want, ok := next[m.Src]
		if !ok || m.N != want {
			return fmt.Errorf("message %d: %+v, want %s n=%d (all: %v)", i, m, m.Src, want, got)
		}
		next[m.Src]++
		if m.Offset <= last {
			return fmt.Errorf("message %d: offset %d after %d", i, m.Offset, last)
		}
		last = m.Offset
	}
	if next["redis"] != hubBackendEach || next["api"] != hubBackendEach {
		return fmt.Errorf("got %d by Redis and %d by the API, want %d of each", next["redis"], next["api"], hubBackendEach)
	}
	return nil
}
