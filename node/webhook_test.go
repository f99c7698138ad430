package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/node/nodetest"
)

// waitFor waits for a message that match accepts and returns it.
func (c *hubClient) waitFor(match func(m map[string]any) bool) map[string]any {
	c.t.Helper()
	var found map[string]any
	testenv.CheckFor(c.t, 15*time.Second, 10*time.Millisecond, func() error {
		for _, m := range c.messages() {
			if match(m) {
				found = m
				return nil
			}
		}
		return fmt.Errorf("not among %v", c.messages())
	})
	return found
}

func typed(typ string, id float64) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["data_type"] == typ && (id == 0 || m["id"] == id) }
}

func dataOf(m map[string]any) map[string]any {
	d, _ := m["data"].(map[string]any)
	return d
}

// TestWebhooksThroughNode: a node with --webhook-url calls a real backend
// process (the webhook package's Python test backend) for connect,
// subscribe, publish, events and disconnects; a slow backend and a dead
// one give clients "Backend unavailable", never a stalled session.
func TestWebhooksThroughNode(t *testing.T) {
	backendAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	_, port, _ := net.SplitHostPort(backendAddr)
	nodetest.Start(t, "python3", "apps/hub/webhook/testdata/backend.py", port, "hook-secret")
	testenv.WaitTCP(t, backendAddr)
	cfg := filepath.Join(t.TempDir(), "hub.json")
	os.WriteFile(cfg, []byte(`{"channels":[{"pattern":"room-*","subscribe":"backend","publish":"backend"},{"pattern":"private-*","subscribe":"backend"}],"backend_timeout":"1s"}`), 0o644)
	n := nodetest.StartNode(t, "hook1", "--apps", "hub", "--config", cfg,
		"--webhook-url", "http://"+backendAddr+"/hook", "--webhook-secret", "hook-secret", "--webhook-timeout", "1s")
	dead := nodetest.StartNode(t, "hook2", "--apps", "hub", "--config", cfg,
		"--webhook-url", fmt.Sprintf("http://127.0.0.1:%d/hook", testenv.FreePort(t)), "--webhook-secret", "x")

	auth := func(n *nodetest.Node, tok string) *hubClient {
		c := dialHub(t, n)
		c.waitFor(typed("request_auth", 0))
		c.send(fmt.Sprintf(`{"data_type":"auth","id":1,"data":{"token":%q}}`, tok))
		return c
	}
	a := auth(n, "good")
	if d := dataOf(a.waitFor(typed("auth", 1))); d["user"] != "42" {
		t.Fatalf("connect webhook: %v", d)
	}
	if d := dataOf(auth(n, "forged").waitFor(typed("auth_error", 1))); d["message"] != "Token refused" {
		t.Fatalf("connect refused: %v", d)
	}
	start := time.Now()
	if d := dataOf(auth(n, "slow").waitFor(typed("auth_error", 1))); d["message"] != "Backend unavailable" || time.Since(start) > 2500*time.Millisecond {
		t.Fatalf("slow backend: %v after %v", d, time.Since(start))
	}
	if d := dataOf(auth(dead, "good").waitFor(typed("auth_error", 1))); d["message"] != "Backend unavailable" {
		t.Fatalf("backend down: %v", d)
	}

	a.send(`{"data_type":"subscribe","id":2,"data":{"channel":"room-1"}}`)
	a.waitFor(typed("subscribe", 2))
	a.send(`{"data_type":"subscribe","id":3,"data":{"channel":"private-1"}}`)
	if d := dataOf(a.waitFor(typed("subscribe_error", 3))); d["message"] != "Private channel" {
		t.Fatalf("subscribe refused: %v", d)
	}
	a.send(`{"data_type":"publish","id":4,"data":{"channel":"room-1","data":{"data_type":"chat","text":"hi"}}}`)
	a.waitFor(typed("publish", 4))
	if m := a.waitFor(typed("chat", 0)); m["checked"] != true || m["text"] != "hi" {
		t.Fatalf("publish rewritten by the backend: %v", m)
	}
	a.send(`{"data_type":"publish","id":5,"data":{"channel":"room-1","data":"bad words"}}`)
	if d := dataOf(a.waitFor(typed("error", 5))); d["message"] != "Watch your language" {
		t.Fatalf("publish refused: %v", d)
	}
	a.send(`{"data_type":"event","id":6,"data":{"name":"typing","data":{"on":true}}}`)
	if d := dataOf(a.waitFor(typed("ack", 6))); fmt.Sprint(d) != "map[echo:map[on:true] user:42]" {
		t.Fatalf("event ack: %v", d)
	}
	a.send(`{"data_type":"event","id":7,"data":{"name":"crash"}}`)
	if d := dataOf(a.waitFor(typed("error", 7))); d["message"] != "Backend unavailable" {
		t.Fatalf("event on a failing backend: %v", d)
	}

	// The disconnect notification: the backend fails it twice, the node
	// retries, the third attempt lands.
	a.conn.CloseNow()
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		resp, err := http.Get("http://" + backendAddr + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var st struct {
			Disconnects []string `json:"disconnects"`
		}
		json.NewDecoder(resp.Body).Decode(&st)
		if len(st.Disconnects) == 0 {
			return fmt.Errorf("no disconnect yet: %+v", st)
		}
		return nil
	})
}
