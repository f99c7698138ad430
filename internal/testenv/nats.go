package testenv

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// NATSServer is a NATS server embedded in the test process, shut down when
// the test ends. Stop and Start play an outage: Start after Stop listens on
// the same port again, so clients reconnect to the URL they had.
type NATSServer struct {
	t    testing.TB
	mu   sync.Mutex // guards srv and port across Stop/Start and the cleanup
	port int        // -1 until the first Start picked a free one
	srv  *natsserver.Server
}

// NATS starts an embedded NATS server on a free loopback port (Port -1:
// the server picks it, so no other process can take it first).
func NATS(t testing.TB) *NATSServer {
	t.Helper()
	return NATSOn(t, -1)
}

// NATSOn starts an embedded NATS server on port (-1: any free port).
func NATSOn(t testing.TB, port int) *NATSServer {
	t.Helper()
	n := &NATSServer{t: t, port: port}
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

// Start starts the server (again) on its port and waits until it accepts
// clients.
func (n *NATSServer) Start() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		return
	}
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: n.port, NoLog: true, NoSigs: true})
	if err != nil {
		n.t.Fatalf("testenv: nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		n.t.Fatalf("testenv: nats server on port %d not ready after 10s", n.port)
	}
	if a, ok := s.Addr().(*net.TCPAddr); ok {
		n.port = a.Port
	}
	n.srv = s
}

// Stop shuts the server down and waits until it is gone; stopping a
// stopped server does nothing.
func (n *NATSServer) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}

// URL returns the server's nats:// URL, valid across Stop and Start.
func (n *NATSServer) URL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return "nats://127.0.0.1:" + strconv.Itoa(n.port)
}

// Port returns the server's port.
func (n *NATSServer) Port() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.port
}

// Server returns the running embedded server (nil while stopped), for
// tests that inspect it (connections, subscriptions).
func (n *NATSServer) Server() *natsserver.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}
