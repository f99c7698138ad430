package testenv

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards loopback TCP connections to a server, so that a test can
// break the way to it: cut every connection at once (Cut), or tamper with
// what passes (NewProxy's pipe).
type Proxy struct {
	// Addr is where the proxy listens (127.0.0.1:port).
	Addr string

	mu   sync.Mutex        // guards down and open
	down bool              // cut: connections are closed as they come
	open map[net.Conn]bool // both ends of every connection since the last cut
}

// NewProxy forwards every connection to target until the test ends. pipe,
// if not nil, runs between a client's connection (in) and its connection to
// target (out) in place of copying both ways; both are closed when it
// returns.
func NewProxy(t testing.TB, target string, pipe func(in, out net.Conn)) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: proxy: %v", err)
	}
	if pipe == nil {
		pipe = copyBoth
	}
	p := &Proxy{Addr: l.Addr().String(), open: map[net.Conn]bool{}}
	t.Cleanup(func() { l.Close(); p.Cut(true) })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go p.forward(in, target, pipe)
		}
	}()
	return p
}

// forward runs pipe between in and a new connection to target, unless the
// proxy is cut.
func (p *Proxy) forward(in net.Conn, target string, pipe func(in, out net.Conn)) {
	defer in.Close()
	if !p.track(in) {
		return
	}
	out, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer out.Close()
	if p.track(out) {
		pipe(in, out)
	}
}

// copyBoth copies each way until either side ends.
func copyBoth(in, out net.Conn) {
	go func() { io.Copy(out, in); out.Close() }()
	io.Copy(in, out)
}

// track notes c as open, unless the proxy is cut (then it says false).
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.down {
		p.open[c] = true
	}
	return !p.down
}

// Cut closes every forwarded connection and refuses new ones (closes them
// as they come) while down; Cut(false) forwards again.
func (p *Proxy) Cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.open {
			c.Close()
		}
		clear(p.open)
	}
}
