package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/node/apps/hub"
	"github.com/shoal-rt/shoal/node/nodetest"
	"github.com/shoal-rt/shoal/node/ops"
	"github.com/shoal-rt/shoal/sockjs"
)

// BenchmarkPublish is one backend publish (POST /api/publish) into a real
// hub with no subscribers, on one node with the memory store and a memory
// bus timed as the node program times it (ops.Latency): what the API, the
// hub and the channel publish cost per call, the store and the bus aside.
//
//	go test -run XXX -bench Publish -benchmem ./node/apps/hub/api/
func BenchmarkPublish(b *testing.B) {
	mb := bus.NewMemory()
	b.Cleanup(func() { mb.Close() })
	node := nodetest.SockJSNode(b, sockjs.NodeConfig{Bus: ops.NewLatency().Bus(mb)})
	h, err := hub.New(node, hub.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Close)
	a := New(h, Config{Key: "k"})
	body := `{"channel":"room","data":{"text":"hello, world"}}`
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/api/publish", strings.NewReader(body))
		r.Header.Set("Authorization", "apikey k")
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
