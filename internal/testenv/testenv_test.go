package testenv_test

import (
	"errors"
	"net"
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
