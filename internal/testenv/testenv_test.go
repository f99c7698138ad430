package testenv_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
)

func TestCheckForPollsUntilNil(t *testing.T) {
	calls := 0
	testenv.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Fatalf("f ran %d times, want 3", calls)
	}
}

func TestPrefixesDiffer(t *testing.T) {
	if a, b := testenv.Prefix(t), testenv.Prefix(t); a == b {
		t.Fatalf("two prefixes are both %q", a)
	}
}

func TestRedisStopsAndStartsOnItsPort(t *testing.T) {
	r := testenv.Redis(t)
	if !strings.HasPrefix(r.URL(), "redis://127.0.0.1:") || r.Prefix == "" {
		t.Fatalf("URL %q, prefix %q", r.URL(), r.Prefix)
	}
	pid := r.Pid()
	r.Signal(syscall.SIGSTOP)
	r.Signal(syscall.SIGCONT)
	r.Kill()
	if _, err := net.DialTimeout("tcp", r.Addr, time.Second); err == nil {
		t.Fatal("redis-server still accepts connections after Kill")
	}
	if !r.Start() {
		t.Fatal("redis-server did not start again on its port")
	}
	if r.Pid() == pid {
		t.Fatal("Start did not start a new process")
	}
	testenv.WaitTCP(t, r.Addr)
}

func TestNATSStopsAndStartsOnItsPort(t *testing.T) {
	n := testenv.NATS(t)
	url := n.URL()
	if n.Port() <= 0 || n.Server() == nil {
		t.Fatalf("port %d, server %v", n.Port(), n.Server())
	}
	n.Stop()
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "nats://"), time.Second); err == nil {
		t.Fatal("NATS still accepts connections after Stop")
	}
	n.Start()
	if n.URL() != url {
		t.Fatalf("URL after restart %q, want %q", n.URL(), url)
	}
	testenv.WaitTCP(t, strings.TrimPrefix(url, "nats://"))
}

func TestFreePortsAreDistinct(t *testing.T) {
	seen := map[int]bool{}
	for _, p := range testenv.FreePorts(t, 20) {
		if seen[p] || p == 0 {
			t.Fatalf("port %d handed out twice (or zero)", p)
		}
		seen[p] = true
	}
}

// TestFreePortsBelowEphemeralRange: the ports handed out lie below the
// range outgoing connections take their local ports from, so none of them
// can take a port between FreePort and the caller's bind.
func TestFreePortsBelowEphemeralRange(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		t.Skipf("no ephemeral range to stay out of: %v", err)
	}
	var first, last int
	if _, err := fmt.Sscan(string(b), &first, &last); err != nil {
		t.Fatalf("ip_local_port_range %q: %v", b, err)
	}
	if first <= 11000 {
		t.Skipf("ephemeral range starts at %d: FreePort lets the kernel pick", first)
	}
	for _, p := range testenv.FreePorts(t, 50) {
		if p < 10000 || p >= first {
			t.Fatalf("port %d outside [10000, %d)", p, first)
		}
	}
}

// TestProxyCuts: a proxy to a real Redis forwards until cut; cut, it
// closes the connection it forwarded and every new one; healed, it
// forwards again.
func TestProxyCuts(t *testing.T) {
	p := testenv.NewProxy(t, testenv.Redis(t).Addr, nil)
	ping := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return err
		}
		b := make([]byte, 7)
		n, err := c.Read(b)
		if err == nil && string(b[:n]) != "+PONG\r\n" {
			err = errors.New("reply " + string(b[:n]))
		}
		return err
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := dial()
	if err := ping(c); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	p.Cut(true)
	if err := ping(c); err == nil {
		t.Fatal("a connection forwarded before the cut still answers")
	}
	if err := ping(dial()); err == nil {
		t.Fatal("a connection made while cut answers")
	}
	p.Cut(false)
	if err := ping(dial()); err != nil {
		t.Fatalf("after healing: %v", err)
	}
}
