package nodetest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/sockjs"
	"github.com/shoal-rt/shoal/store"
)

// SockJSNode returns a sockjs.Node in this process on cfg, with an
// in-memory store and bus where cfg has none and a silent logger where it
// has no Logger; it is closed when the test ends.
func SockJSNode(t testing.TB, cfg sockjs.NodeConfig) *sockjs.Node {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = store.NewMemory()
	}
	if cfg.Bus == nil {
		b := bus.NewMemory()
		t.Cleanup(func() { b.Close() })
		cfg.Bus = b
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n, err := sockjs.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeNode(n) })
	return n
}

func closeNode(n *sockjs.Node) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.Close(ctx)
}

// Serve serves h, node's handler, on a test server and returns its URL.
// When the test ends the client connections are cut, the node closes
// (which ends its receivers), then the server.
func Serve(t testing.TB, node *sockjs.Node, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		closeNode(node)
		srv.Close()
	})
	return srv.URL
}

// Get returns the status and body of a GET of url.
func Get(t testing.TB, url string) (int, string) {
	t.Helper()
	code, body, err := reply(testenv.HTTPClient(t).Get(url))
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

// Post posts body (text/plain, as SockJS's HTTP transports do) to url and
// returns the reply's body.
func Post(t testing.TB, url, body string) string {
	t.Helper()
	_, got, err := TryPost(t, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// PostAsync posts body to url in the background (a poll that parks, say);
// the channel gets the reply's body, or the error's text.
func PostAsync(t testing.TB, url, body string) <-chan string {
	replied := make(chan string, 1)
	go func() {
		_, got, err := TryPost(t, url, body)
		if err != nil {
			got = err.Error()
		}
		replied <- got
	}()
	return replied
}

// TryPost posts body to url on t's client, from any goroutine, and
// returns the reply's status and body.
func TryPost(t testing.TB, url, body string) (int, string, error) {
	return reply(testenv.HTTPClient(t).Post(url, "text/plain", strings.NewReader(body)))
}

// TryGet returns the status and body of a GET of url, which must answer
// within 5 s (a node's operations endpoints, say).
func TryGet(url string) (int, string, error) {
	return reply(opsClient.Get(url))
}

// reply reads a whole response.
func reply(resp *http.Response, err error) (int, string, error) {
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
