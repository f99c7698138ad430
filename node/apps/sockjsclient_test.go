package apps

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-rt/shoal/sockjs"

	"github.com/shoal-rt/shoal/node/nodetest"
)

func serveWith(t *testing.T, opts Options) string {
	t.Helper()
	return serveOn(t, nil, nil, opts, "echo")
}

// fakeNodeModules lays out node_modules/sockjs-client/dist/sockjs.min.js
// the way npm install does (the content does not matter to the server).
func fakeNodeModules(t *testing.T) (dir, file string) {
	dir = t.TempDir()
	file = filepath.Join(dir, "node_modules", "sockjs-client", "dist", "sockjs.min.js")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("/* sockjs-client */ window.SockJS = function() {};"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, file
}

func TestServesSockJSClient(t *testing.T) {
	dir, file := fakeNodeModules(t)
	for _, given := range []string{file, dir, filepath.Join(dir, "node_modules"), filepath.Join(dir, "node_modules", "sockjs-client")} {
		t.Run(strings.TrimPrefix(given, dir), func(t *testing.T) {
			base := serveWith(t, Options{SockJSClientFile: given})
			code, body := nodetest.Get(t, base+SockJSClientPath)
			if code != http.StatusOK || !strings.Contains(body, "sockjs-client") {
				t.Fatalf("GET %s: %d %q", SockJSClientPath, code, body)
			}
			if _, page := nodetest.Get(t, base+"/"); !strings.Contains(page, `src="/sockjs.min.js"`) {
				t.Errorf("demo page does not load the node's copy:\n%s", page)
			}
			if _, iframe := nodetest.Get(t, base+"/echo/iframe.html"); !strings.Contains(iframe, `src="/sockjs.min.js"`) {
				t.Errorf("iframe page does not load the node's copy:\n%s", iframe)
			}
		})
	}
	t.Run("an explicit --sockjs-url wins", func(t *testing.T) {
		base := serveWith(t, Options{SockJSClientFile: file, SockJSURL: "https://example.test/s.js"})
		if _, page := nodetest.Get(t, base+"/"); !strings.Contains(page, `src="https://example.test/s.js"`) {
			t.Errorf("demo page ignores --sockjs-url:\n%s", page)
		}
		if code, _ := nodetest.Get(t, base+SockJSClientPath); code != http.StatusOK {
			t.Errorf("the copy is not served beside an explicit URL: %d", code)
		}
	})
}

func TestSockJSClientMissing(t *testing.T) {
	node := nodetest.SockJSNode(t, sockjs.NodeConfig{})
	if _, err := Mount(node, nil, []string{"echo"}, Options{SockJSClientFile: t.TempDir()}); err == nil {
		t.Error("a folder without sockjs-client was accepted")
	}
	// Nothing given: the search decides, and the page follows it.
	found, err := FindSockJSClient("")
	if err != nil {
		t.Fatal(err)
	}
	want := sockjs.DefaultSockJSURL
	if found != "" {
		want = SockJSClientPath
	}
	base := serveWith(t, Options{})
	if _, page := nodetest.Get(t, base+"/"); !strings.Contains(page, `src="`+want+`"`) {
		t.Errorf("demo page does not load %s:\n%s", want, page)
	}
}
