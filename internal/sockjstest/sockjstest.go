// Package sockjstest is the client side of the sockjs tests: HTTP and
// websocket requests that fail the test on error, and subscribers that
// read a session's messages on any transport. It is shared by package
// sockjs's own tests (memory store and bus) and by the tests on the real
// backends (sockjs/clustertest), so it imports no Shoal package but
// testenv.
package sockjstest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// Do sends a request with header pairs hdr (name, value, ...) and
// returns the response and its body.
func Do(t testing.TB, method, url, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := testenv.HTTPClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// Want fails the test unless got == exp.
func Want(t testing.TB, what string, got, exp any) {
	t.Helper()
	if got != exp {
		t.Fatalf("%s: got %q, want %q", what, got, exp)
	}
}

// Serve serves a node's handler h on a new HTTP server, set up further by
// configure, and returns its URL. When the test ends it cuts the clients
// off, closes the node with closeNode (given 5 s) and then the server.
func Serve(t testing.TB, h http.Handler, closeNode func(context.Context), configure ...func(*http.Server)) string {
	srv := httptest.NewUnstartedServer(h)
	for _, f := range configure {
		f(srv.Config)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		closeNode(ctx)
		srv.Close()
	})
	return srv.URL
}
