package conformance_test

import (
	"context"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/node/apps"
	"github.com/shoal-rt/shoal/sockjs"
	"github.com/shoal-rt/shoal/sockjs/conformance"
	"github.com/shoal-rt/shoal/store"
)

// TestConformance runs the suite against SHOAL_CONFORMANCE_URL when it is
// set (for example the sockjs-node reference server, or a running Shoal
// cluster behind HAProxy), and otherwise against a Shoal node started
// in-process with the conformance app on an in-memory store and bus.
func TestConformance(t *testing.T) {
	u := os.Getenv("SHOAL_CONFORMANCE_URL")
	if u == "" {
		u = startShoal(t)
	}
	conformance.Run(t, u)
}

// startShoal serves the conformance app from one in-process node on a
// loopback listener and returns its base URL.
func startShoal(t *testing.T) string {
	t.Helper()
	b := bus.NewMemory()
	t.Cleanup(func() { b.Close() })
	node, err := sockjs.NewNode(sockjs.NodeConfig{Store: store.NewMemory(), Bus: b})
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Close(ctx); err != nil {
			t.Errorf("node close: %v", err)
		}
	})
	h, err := apps.Mount(node, nil, []string{"conformance"}, apps.Options{})
	if err != nil {
		t.Fatalf("mount conformance app: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
