package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shoal-rt/shoal/internal/testenv"
)

func TestMount(t *testing.T) {
	mux := http.NewServeMux()
	Mount(mux, Options{SockJSURL: "/sockjs.min.js", HubPrefix: "/rt", Demo: true})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (int, string, string) {
		resp, err := testenv.HTTPClient(t).Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	code, ctype, body := get(ClientPath)
	if code != 200 || !strings.HasPrefix(ctype, "application/javascript") || !strings.Contains(body, "ShoalHub") {
		t.Errorf("GET %s: %d %s %.80q", ClientPath, code, ctype, body)
	}
	code, _, body = get(DemoPath)
	for _, want := range []string{`src="/sockjs.min.js"`, `src="/hub-client.js"`, `hubPrefix: "/rt"`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, no %s in\n%s", DemoPath, code, want, body)
		}
	}
	mux = http.NewServeMux()
	Mount(mux, Options{SockJSURL: "/s.js", HubPrefix: "/hub"})
	srv2 := httptest.NewServer(mux)
	defer srv2.Close()
	resp, err := testenv.HTTPClient(t).Get(srv2.URL + DemoPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("demo served without Demo: %d", resp.StatusCode)
	}
}
