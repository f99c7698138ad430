package main

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/shoal-rt/shoal/sockjs"
)

// A node opens its listeners before it connects to Redis and NATS, so that
// while it waits for them /readyz can say why it is not ready (and /healthz
// that it is alive), instead of the connection being refused.

// startup is what a starting node reports: the step it waits on.
type startup struct {
	status atomic.Pointer[string]
}

func (s *startup) set(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.status.Store(&msg)
}

func (s *startup) String() string {
	if p := s.status.Load(); p != nil {
		return *p
	}
	return "starting"
}

// handler answers while the node starts: /healthz 200, /readyz 503 with
// the step it waits on; every other request 503 with Retry-After, so a
// balancer retries elsewhere.
func (s *startup) handler(opsToo bool) http.Handler {
	mux := http.NewServeMux()
	if opsToo {
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("ok\n"))
		})
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %s\n", s)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "shoal: node starting: "+s.String(), http.StatusServiceUnavailable)
	})
	return mux
}

// swapHandler serves the handler last set; set swaps it for the requests
// that follow.
type swapHandler struct {
	h atomic.Pointer[http.Handler]
}

func newSwapHandler(h http.Handler) *swapHandler {
	s := &swapHandler{}
	s.set(h)
	return s
}

func (s *swapHandler) set(h http.Handler) { s.h.Store(&h) }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

// connStates forwards the public server's connection states to the node
// once it exists (sockjs.Node.ConnState counts connections); connections
// opened before that are left out of the count for their whole life, so
// that the count never goes below zero.
type connStates struct {
	node  atomic.Pointer[sockjs.Node]
	early sync.Map // net.Conn → struct{}: opened before the node existed
}

func (c *connStates) track(conn net.Conn, state http.ConnState) {
	if _, early := c.early.Load(conn); early {
		if state == http.StateClosed || state == http.StateHijacked {
			c.early.Delete(conn)
		}
		return
	}
	n := c.node.Load()
	if n == nil {
		if state == http.StateNew {
			c.early.Store(conn, struct{}{})
		}
		return
	}
	n.ConnState(conn, state)
}
