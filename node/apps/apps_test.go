package apps

import (
	"io"
	"strings"
	"testing"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/sockjs"
	"github.com/shoal-rt/shoal/store"

	"github.com/shoal-rt/shoal/node/nodetest"
)

// serve mounts the apps names on a node with a memory store and bus of its
// own and returns the node's URL.
func serve(t *testing.T, names ...string) string {
	t.Helper()
	return serveOn(t, nil, nil, Options{SockJSURL: "/sockjs.js"}, names...)
}

// serveOn mounts the apps names on a node over st and b (several nodes on
// one store and bus make a cluster; nil: its own in memory) and returns
// the node's URL.
func serveOn(t *testing.T, st store.Store, b bus.Bus, opts Options, names ...string) string {
	t.Helper()
	node := nodetest.SockJSNode(t, sockjs.NodeConfig{Store: st, Bus: b})
	h, err := Mount(node, nil, names, opts)
	if err != nil {
		t.Fatal(err)
	}
	return nodetest.Serve(t, node, h)
}

func TestMountRejectsUnknownApp(t *testing.T) {
	node := nodetest.SockJSNode(t, sockjs.NodeConfig{})
	if _, err := Mount(node, nil, []string{"echo,nope"}, Options{}); err == nil {
		t.Fatal("unknown app accepted")
	}
}

func TestEchoAndDemoPage(t *testing.T) {
	base := serve(t, "echo,conformance")
	resp, err := testenv.HTTPClient(t).Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), `<script src="/sockjs.js"></script>`) {
		t.Fatalf("demo page: %s", page)
	}
	if got := nodetest.Post(t, base+"/echo/0/s/xhr", ""); got != "o\n" {
		t.Fatalf("open: %q", got)
	}
	nodetest.Post(t, base+"/echo/0/s/xhr_send", `["hi"]`)
	if got := nodetest.Post(t, base+"/echo/0/s/xhr", ""); got != "a[\"hi\"]\n" {
		t.Fatalf("echo: %q", got)
	}
}

func TestConformanceApps(t *testing.T) {
	base := serve(t, "conformance")
	// amplify: 2^n x's.
	nodetest.Post(t, base+"/amplify/0/s/xhr", "")
	nodetest.Post(t, base+"/amplify/0/s/xhr_send", `["3","0","x"]`)
	if got := nodetest.Post(t, base+"/amplify/0/s/xhr", ""); got != `a["xxxxxxxx","xx","xx"]`+"\n" {
		t.Fatalf("amplify: %q", got)
	}
	// close: o then c[3000,...].
	nodetest.Post(t, base+"/close/0/s/xhr", "")
	if got := nodetest.Post(t, base+"/close/0/s/xhr", ""); got != `c[3000,"Go away!"]`+"\n" {
		t.Fatalf("close: %q", got)
	}
	// broadcast: a message reaches every open session.
	nodetest.Post(t, base+"/broadcast/0/a/xhr", "")
	nodetest.Post(t, base+"/broadcast/0/b/xhr", "")
	nodetest.Post(t, base+"/broadcast/0/a/xhr_send", `["all"]`)
	for _, s := range []string{"a", "b"} {
		if got := nodetest.Post(t, base+"/broadcast/0/"+s+"/xhr", ""); got != `a["all"]`+"\n" {
			t.Fatalf("broadcast to %s: %q", s, got)
		}
	}
	// ticker: a tick within a couple of seconds.
	nodetest.Post(t, base+"/ticker/0/s/xhr", "")
	if got := nodetest.Post(t, base+"/ticker/0/s/xhr", ""); got != `a["tick!"]`+"\n" {
		t.Fatalf("ticker: %q", got)
	}
	// disabled websocket and cookie_needed flags.
	resp, _ := testenv.HTTPClient(t).Get(base + "/disabled_websocket_echo/info")
	info, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(info), `"websocket":false`) {
		t.Fatalf("disabled websocket info: %s", info)
	}
	resp, _ = testenv.HTTPClient(t).Get(base + "/cookie_needed_echo/info")
	info, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(info), `"cookie_needed":true`) {
		t.Fatalf("cookie_needed info: %s", info)
	}
}
