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

// TestStreamCutEndsCleanly: a stream whose node dies mid-way (its kernel
// closes the connection) reaches the client through the shipped
// configuration as a response that ended, when the node answered it
// close-delimited, as Shoal does on the X-Shoal-Stream-End header that
// haproxy.cfg sets; sockjs-client then opens the stream again. A chunked
// stream cut mid-way is an error to the client, which ends the session.
func TestStreamCutEndsCleanly(t *testing.T) {
	cut := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			return
		}
		if strings.HasSuffix(r.URL.Path, "/close-delimited") {
			if r.Header.Get("X-Shoal-Stream-End") != "close" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.Header().Set("Transfer-Encoding", "identity")
		}
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("o\n"))
		rc := http.NewResponseController(w)
		rc.Flush()
		if conn, _, err := rc.Hijack(); err == nil {
			conn.Close() // the node dies: a FIN, no final chunk
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(cut)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	cfg, err := Derive([]Server{{Name: "node1", Addr: l.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	lb, _ := startHAProxy(t, cfg, "node1")
	for _, framing := range []string{"close-delimited", "chunked"} {
		resp, err := http.Post("http://"+lb+"/echo/000/s/"+framing, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case framing == "close-delimited" && (resp.StatusCode != http.StatusOK || err != nil || string(body) != "o\n"):
			t.Errorf("close-delimited stream cut by its node: %s %q, %v; want 200, o\\n and a clean end", resp.Status, body, err)
		case framing == "chunked" && err == nil:
			t.Errorf("chunked stream cut by its node ended cleanly (%q): the test no longer shows the difference", body)
		}
	}
}
