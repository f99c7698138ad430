package testenv

import (
	"net/http"
	"sync"
	"testing"
)

// clients holds each running test's HTTPClient.
var clients sync.Map // testing.TB -> *http.Client

// HTTPClient returns t's own HTTP client, the same on every call: a
// transport of its own, whose idle connections close when t ends. Tests
// use it instead of http.DefaultClient because closing an httptest.Server
// closes http.DefaultTransport's idle connections too, and a parallel
// test's request taking one of them at that moment fails ("http:
// CloseIdleConnections called"). No other test's server reaches this one.
func HTTPClient(t testing.TB) *http.Client {
	if c, ok := clients.Load(t); ok {
		return c.(*http.Client)
	}
	c := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	if got, loaded := clients.LoadOrStore(t, c); loaded {
		return got.(*http.Client)
	}
	t.Cleanup(func() {
		clients.Delete(t)
		c.CloseIdleConnections()
	})
	return c
}
