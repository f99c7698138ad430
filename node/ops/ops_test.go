package ops_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/node/ops"
	"github.com/shoal-rt/shoal/sockjs"

	"github.com/shoal-rt/shoal/node/nodetest"
)

func newNode(t *testing.T) *sockjs.Node {
	t.Helper()
	return nodetest.SockJSNode(t, sockjs.NodeConfig{ID: "n1"})
}

// A lone node whose backend fails stays ready, degraded (no other member
// could serve its requests better), names the backend, and reports it in
// the metrics; Handler serves the operations endpoints and nothing else.
// (node/ops_test.go's TestReadiness: a node alone in losing a backend
// among members that reach it answers 503.)
func TestReadinessFollowsChecks(t *testing.T) {
	var down atomic.Bool
	o, err := ops.New(ops.Config{
		Node: newNode(t), Logger: slog.New(slog.DiscardHandler), CheckInterval: 10 * time.Millisecond,
		Checks: []ops.Check{{Name: "redis", Ping: func(context.Context) error {
			if down.Load() {
				return errors.New("connection refused")
			}
			return nil
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	srv := httptest.NewServer(o.Handler())
	t.Cleanup(srv.Close)

	if code, body := nodetest.Get(t, srv.URL+"/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz = %d %q", code, body)
	}
	down.Store(true)
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if code, body := nodetest.Get(t, srv.URL+"/readyz"); code != 200 || body != "ready, degraded: redis unreachable from every member\n" {
			return errors.New(body)
		}
		return nil
	})
	if _, body := nodetest.Get(t, srv.URL+"/metrics"); !strings.Contains(body, `shoal_backend_up{backend="redis"} 0`) {
		t.Fatalf("/metrics while redis is down:\n%s", body)
	}
	down.Store(false)
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if code, body := nodetest.Get(t, srv.URL+"/readyz"); code != 200 || body != "ready\n" {
			return errors.New(body)
		}
		return nil
	})
	for _, path := range []string{"/healthz", "/_shoal/stats", "/_shoal/cluster", "/metrics"} {
		if code, _ := nodetest.Get(t, srv.URL+path); code != 200 {
			t.Errorf("GET %s = %d", path, code)
		}
	}
	if code, _ := nodetest.Get(t, srv.URL+"/echo/info"); code != 404 {
		t.Errorf("the operations handler served /echo/info: %d", code)
	}
}

// Drain reports "draining" at once, waits DrainDelay (cut short by skip),
// ends the node's receivers and shuts the server down.
func TestDrain(t *testing.T) {
	node := newNode(t)
	if _, err := node.NewEndpoint(sockjs.HandlerFuncs{}, sockjs.Settings{Prefix: "/echo"}); err != nil {
		t.Fatal(err)
	}
	o, err := ops.New(ops.Config{Node: node, Logger: slog.New(slog.DiscardHandler), DrainDelay: time.Hour, DrainTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	o.Mount(mux)
	public := httptest.NewServer(node.Handler(mux))
	t.Cleanup(public.Close)
	admin := httptest.NewServer(o.Handler())
	t.Cleanup(admin.Close)

	// A parked poll ends with a heartbeat when the node drains.
	if got := nodetest.Post(t, public.URL+"/echo/000/s1/xhr", ""); got != "o\n" {
		t.Fatalf("open: %q", got)
	}
	active := func(want int64) func() error {
		return func() error {
			if got := node.Stats().SessionsActive; got != want {
				return fmt.Errorf("%d receivers hold a session, want %d", got, want)
			}
			return nil
		}
	}
	// The open poll holds its lease until it has committed, after its
	// response: the parked poll is the next one.
	testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, active(0))
	parked := nodetest.PostAsync(t, public.URL+"/echo/000/s1/xhr", "")
	testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, active(1))

	skip := make(chan struct{})
	done := make(chan time.Duration)
	go func() { done <- o.Drain(skip, public.Config) }()
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if code, body := nodetest.Get(t, admin.URL+"/readyz"); code != 503 || body != "not ready: draining\n" {
			return errors.New(body)
		}
		return nil
	})
	if !o.Draining() {
		t.Fatal("Draining() is false during the drain")
	}
	close(skip) // a second signal: no need to wait an hour
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return")
	}
	if got := <-parked; got != "h\n" {
		t.Fatalf("parked poll got %q, want a heartbeat", got)
	}
}
