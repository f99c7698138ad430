package haproxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// sendBackend is a stand-in node for TestSendRetrySameID: it answers
// health checks, and records the X-Shoal-Send-Id of each send it gets;
// a dying one then drops the connection without a word (as a node killed
// mid-request), a healthy one answers 204.
type sendBackend struct {
	dying bool
	mu    sync.Mutex
	ids   []string
}

func (b *sendBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/readyz" {
		return
	}
	io.Copy(io.Discard, r.Body)
	b.mu.Lock()
	b.ids = append(b.ids, r.Header.Get("X-Shoal-Send-Id"))
	b.mu.Unlock()
	if !b.dying {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

func (b *sendBackend) seen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.ids...)
}

// TestSendRetrySameID: behind the shipped configuration, a send whose node
// drops it is sent again to another node with the same X-Shoal-Send-Id
// (set once per request, before the retries), which is what lets a node
// recognise the repeat; the client only sees the 204. A client's own
// X-Shoal-Send-Id is replaced.
func TestSendRetrySameID(t *testing.T) {
	backends := []*sendBackend{{dying: true}, {dying: true}, {}}
	var servers []Server
	for i, b := range backends {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: b}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		servers = append(servers, Server{Name: fmt.Sprintf("node%d", i+1), Addr: l.Addr().String()})
	}
	cfg, err := Derive(servers)
	if err != nil {
		t.Fatal(err)
	}
	// The dying stand-ins must stay in the rotation: live-traffic
	// observation would take them out after three drops.
	cfg = strings.Replace(cfg, " observe layer4 error-limit 3 on-error mark-down", "", 1)
	lb, _ := startHAProxy(t, cfg, "node1", "node2", "node3")

	client := &http.Client{Timeout: 10 * time.Second}
	for i := range 6 {
		suffix := []string{"/xhr_send", "/jsonp_send"}[i%2]
		req, _ := http.NewRequest("POST", "http://"+lb+"/echo/000/s"+fmt.Sprint(i)+suffix, strings.NewReader(`["m"]`))
		req.Header.Set("X-Shoal-Send-Id", "chosen-by-the-client")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("send %d: %s, want the healthy node's 204 after retries", i, resp.Status)
		}
	}
	good := backends[2].seen()
	if len(good) != 6 {
		t.Fatalf("the healthy node got %d sends, want 6: %q", len(good), good)
	}
	seen := map[string]bool{}
	for _, id := range good {
		if id == "" || id == "chosen-by-the-client" || seen[id] {
			t.Fatalf("send ids at the healthy node %q: want 6 distinct ids set by HAProxy", good)
		}
		seen[id] = true
	}
	dropped := 0
	for _, b := range backends[:2] {
		for _, id := range b.seen() {
			dropped++
			if !seen[id] {
				t.Errorf("a dropped send had id %q, its retry at the healthy node another (%q)", id, good)
			}
		}
	}
	if dropped == 0 {
		t.Fatal("no send went to a dying node first: the retry was not exercised")
	}
	t.Logf("%d drops, each retried with its id (e.g. %q)", dropped, good[0])
}
