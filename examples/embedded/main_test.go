package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/node/nodetest"
)

// Two instances of the example on one Redis and one NATS: a message sent
// by a polling session on one reaches a websocket session on the other;
// each has /readyz and /metrics, and drains when its context ends.
func TestEmbeddedServesAndDrains(t *testing.T) {
	r, n := testenv.Redis(t), testenv.NATS(t)
	type instance struct {
		addr   string
		cancel context.CancelFunc
		done   chan error
	}
	start := func(id string) instance {
		ctx, cancel := context.WithCancel(context.Background())
		listening := make(chan string, 1)
		done := make(chan error, 1)
		cfg := config{Listen: "127.0.0.1:0", Redis: r.URL(), NATS: n.URL(), NodeID: id, Prefix: r.Prefix, DrainDelay: 300 * time.Millisecond}
		go func() { done <- run(ctx, cfg, slog.New(slog.DiscardHandler), listening) }()
		select {
		case addr := <-listening:
			t.Cleanup(func() {
				cancel()
				<-done
			})
			return instance{addr, cancel, done}
		case err := <-done:
			t.Fatalf("%s: %v", id, err)
		case <-time.After(20 * time.Second):
			t.Fatalf("%s did not start", id)
		}
		return instance{}
	}
	a, b := start("a"), start("b")

	ws := nodetest.DialWS(t, "ws://"+a.addr+"/chat/000/wsess/websocket")
	if got := ws.Next(t); got != "o" {
		t.Fatalf("websocket opened with %q", got)
	}
	post := func(path, body string) string {
		return nodetest.Post(t, "http://"+b.addr+"/chat/000/poller"+path, body)
	}
	if got := post("/xhr", ""); got != "o\n" {
		t.Fatalf("poller opened with %q", got)
	}
	post("/xhr_send", `["hello"]`)
	if got := ws.Next(t); !strings.HasPrefix(got, `a["`) || !strings.HasSuffix(got, `: hello"]`) {
		t.Fatalf("websocket on a got %q", got)
	}

	for _, inst := range []instance{a, b} {
		for path, want := range map[string]string{"/readyz": "ready\n", "/metrics": "shoal_sessions_opened_total 1"} {
			if code, body := nodetest.Get(t, "http://"+inst.addr+path); code != 200 || !strings.Contains(body, want) {
				t.Fatalf("GET %s on %s = %d, want %q in:\n%s", path, inst.addr, code, want, body)
			}
		}
	}

	// The drain: /readyz says so during the delay, the websocket gets
	// "Going away", run returns.
	a.cancel()
	nodetest.WaitGet(t, 5*time.Second, "http://"+a.addr+"/readyz", 503, "not ready: draining\n")
	if got := ws.Next(t); got != `c[1001,"Going away"]` {
		t.Fatalf("websocket on a draining node got %q", got)
	}
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatal(err)
		}
		a.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its drain")
	}
}
