package apps

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/sockjs"
	"github.com/shoal-rt/shoal/store"
)

// serve mounts the apps names on a node with a memory store and bus of its
// own and returns the node's URL.
func serve(t *testing.T, names ...string) string {
	t.Helper()
	b := bus.NewMemory()
	t.Cleanup(func() { b.Close() })
	return serveOn(t, store.NewMemory(), b, Options{SockJSURL: "/sockjs.js"}, names...)
}

// serveOn mounts the apps names on a node over st and b (several nodes on
// one store and bus make a cluster) and returns the node's URL.
func serveOn(t *testing.T, st store.Store, b bus.Bus, opts Options, names ...string) string {
	t.Helper()
	node, err := sockjs.NewNode(sockjs.NodeConfig{Store: st, Bus: b})
	if err != nil {
		t.Fatal(err)
	}
	h, err := Mount(node, nil, names, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		node.Close(ctx)
		srv.Close()
	})
	return srv.URL
}

func post(t *testing.T, url, body string) string {
	t.Helper()
	resp, err := http.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestMountRejectsUnknownApp(t *testing.T) {
	b := bus.NewMemory()
	defer b.Close()
	node, _ := sockjs.NewNode(sockjs.NodeConfig{Store: store.NewMemory(), Bus: b})
	defer node.Close(context.Background())
	if _, err := Mount(node, nil, []string{"echo,nope"}, Options{}); err == nil {
		t.Fatal("unknown app accepted")
	}
}

func TestEchoAndDemoPage(t *testing.T) {
	base := serve(t, "echo,conformance")
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), `<script src="/sockjs.js"></script>`) {
		t.Fatalf("demo page: %s", page)
	}
	if got := post(t, base+"/echo/0/s/xhr", ""); got != "o\n" {
		t.Fatalf("open: %q", got)
	}
	post(t, base+"/echo/0/s/xhr_send", `["hi"]`)
	if got := post(t, base+"/echo/0/s/xhr", ""); got != "a[\"hi\"]\n" {
		t.Fatalf("echo: %q", got)
	}
}

func TestConformanceApps(t *testing.T) {
	base := serve(t, "conformance")
	// amplify: 2^n x's.
	post(t, base+"/amplify/0/s/xhr", "")
	post(t, base+"/amplify/0/s/xhr_send", `["3","0","x"]`)
	if got := post(t, base+"/amplify/0/s/xhr", ""); got != `a["xxxxxxxx","xx","xx"]`+"\n" {
		t.Fatalf("amplify: %q", got)
	}
	// close: o then c[3000,...].
	post(t, base+"/close/0/s/xhr", "")
	if got := post(t, base+"/close/0/s/xhr", ""); got != `c[3000,"Go away!"]`+"\n" {
		t.Fatalf("close: %q", got)
	}
	// broadcast: a message reaches every open session.
	post(t, base+"/broadcast/0/a/xhr", "")
	post(t, base+"/broadcast/0/b/xhr", "")
	post(t, base+"/broadcast/0/a/xhr_send", `["all"]`)
	for _, s := range []string{"a", "b"} {
		if got := post(t, base+"/broadcast/0/"+s+"/xhr", ""); got != `a["all"]`+"\n" {
			t.Fatalf("broadcast to %s: %q", s, got)
		}
	}
	// ticker: a tick within a couple of seconds.
	post(t, base+"/ticker/0/s/xhr", "")
	if got := post(t, base+"/ticker/0/s/xhr", ""); got != `a["tick!"]`+"\n" {
		t.Fatalf("ticker: %q", got)
	}
	// disabled websocket and cookie_needed flags.
	resp, _ := http.Get(base + "/disabled_websocket_echo/info")
	info, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(info), `"websocket":false`) {
		t.Fatalf("disabled websocket info: %s", info)
	}
	resp, _ = http.Get(base + "/cookie_needed_echo/info")
	info, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(info), `"cookie_needed":true`) {
		t.Fatalf("cookie_needed info: %s", info)
	}
}
