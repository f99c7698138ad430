package apps

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/sockjs"
	"github.com/shoal-rt/shoal/store"
)

func serveWith(t *testing.T, opts Options) string {
	t.Helper()
	b := bus.NewMemory()
	t.Cleanup(func() { b.Close() })
	node, err := sockjs.NewNode(sockjs.NodeConfig{Store: store.NewMemory(), Bus: b})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close(context.Background()) })
	h, err := Mount(node, nil, []string{"echo"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
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
			code, body := get(t, base+SockJSClientPath)
			if code != http.StatusOK || !strings.Contains(body, "sockjs-client") {
				t.Fatalf("GET %s: %d %q", SockJSClientPath, code, body)
			}
			if _, page := get(t, base+"/"); !strings.Contains(page, `src="/sockjs.min.js"`) {
				t.Errorf("demo page does not load the node's copy:\n%s", page)
			}
			if _, iframe := get(t, base+"/echo/iframe.html"); !strings.Contains(iframe, `src="/sockjs.min.js"`) {
				t.Errorf("iframe page does not load the node's copy:\n%s", iframe)
			}
		})
	}
	t.Run("an explicit --sockjs-url wins", func(t *testing.T) {
		base := serveWith(t, Options{SockJSClientFile: file, SockJSURL: "https://example.test/s.js"})
		if _, page := get(t, base+"/"); !strings.Contains(page, `src="https://example.test/s.js"`) {
			t.Errorf("demo page ignores --sockjs-url:\n%s", page)
		}
		if code, _ := get(t, base+SockJSClientPath); code != http.StatusOK {
			t.Errorf("the copy is not served beside an explicit URL: %d", code)
		}
	})
}

func TestSockJSClientMissing(t *testing.T) {
	b := bus.NewMemory()
	defer b.Close()
	node, _ := sockjs.NewNode(sockjs.NodeConfig{Store: store.NewMemory(), Bus: b})
	defer node.Close(context.Background())
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
	if _, page := get(t, base+"/"); !strings.Contains(page, `src="`+want+`"`) {
		t.Errorf("demo page does not load %s:\n%s", want, page)
	}
}
