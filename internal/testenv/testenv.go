// Package testenv is the test support every Shoal package shares: polling
// for a condition, free loopback ports, unique key prefixes, and real
// backends per test (a redis-server process, an embedded NATS server), each
// stopped when the test ends.
//
// It sits at the lowest floor: it imports no Shoal package, so any test may
// use it.
package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// CheckFor calls f every step until it returns nil or total passes, then
// fails the test with f's last error. Tests poll a condition this way
// instead of sleeping and hoping.
func CheckFor(t testing.TB, total, step time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: condition not met after %v: %v", total, err)
		}
		time.Sleep(step)
	}
}

// FreePort returns a loopback TCP port that was free a moment ago. It picks
// it below the kernel's ephemeral range (freePortRange), where no outgoing
// connection of any process can take it before the caller binds it; only
// another test's explicit bind can, which starters that bind a port they did
// not choose themselves retry (see Redis). It never returns a port
// it returned before in this process: a server a test killed may still be
// looked for at its port (by Sentinels, by a node's reconnects), and must
// not find another test's server there.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePorts(t, 1)[0]
}

// handedOut are the ports FreePort and FreePorts returned in this process.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// FreePorts returns n distinct loopback TCP ports that were free a moment
// ago: all are held at once while chosen, so none is handed out twice, as
// FreePort never hands out a port again either.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			t.Fatalf("testenv: no free port not handed out before")
		}
		l, err := listenFree()
		if err != nil {
			continue // taken: draw again
		}
		defer l.Close()
		p := l.Addr().(*net.TCPAddr).Port
		if handedOut.ports[p] {
			continue
		}
		handedOut.ports[p] = true
		ports = append(ports, p)
	}
	return ports
}

// listenFree listens on a loopback port drawn from freePortRange, or on one
// the kernel picks when there is no such range.
func listenFree() (net.Listener, error) {
	lo, hi := portRange()
	if hi <= lo {
		return net.Listen("tcp", "127.0.0.1:0")
	}
	return net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(lo+rand.IntN(hi-lo)))
}

// freePortRange is where FreePort draws ports: from 10000 up to the start
// of the kernel's ephemeral range (ip_local_port_range, 32768 by default),
// from which every outgoing connection takes its local port. A port the
// kernel picked for a listener (port 0) comes from that range too, and in
// CI a node once lost its chosen port to another package's connection
// before it bound it. Empty (hi <= lo) when the range starts too low.
// Read once: portRange.
func freePortRange() (lo, hi int) {
	lo, hi = 10000, 0
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var first, last int
		if _, err := fmt.Sscan(string(b), &first, &last); err == nil && first > lo+1000 {
			hi = first
		}
	}
	return lo, hi
}

var portRange = sync.OnceValues(freePortRange)

// FreeAddr returns 127.0.0.1:<a free port>, for a server to listen on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(FreePort(t))
}

// ClusterPort returns a free loopback port whose Redis Cluster bus port
// (+10000) is free too.
func ClusterPort(t testing.TB) int {
	t.Helper()
	return PortWithOffsets(t, 10000)
}

// PortWithOffsets returns a free loopback port p such that p plus each of
// offsets was free a moment ago too (for servers that open more ports at
// fixed distances from the first).
func PortWithOffsets(t testing.TB, offsets ...int) int {
	t.Helper()
	for range 100 {
		p, ok := FreePort(t), true
		for _, d := range offsets {
			if p+d > 65535 {
				ok = false
				break
			}
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+d))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatalf("testenv: no free port with free ports at offsets %v", offsets)
	return 0
}

var prefixSeq atomic.Int64

// Prefix returns a key prefix no other test of any process uses, so tests
// can share one Redis or NATS server. It contains only letters, digits and
// dots, valid in Redis keys and NATS subjects alike.
func Prefix(t testing.TB) string {
	return fmt.Sprintf("t%d.%d", time.Now().UnixNano(), prefixSeq.Add(1))
}

// WaitTCP waits until addr accepts connections.
func WaitTCP(t testing.TB, addr string) {
	t.Helper()
	CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// TempFile writes content to a file called name in a directory of the
// test's own, removed when the test ends, and returns its path: a
// configuration file for a process the test starts.
func TempFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return path
}

// EnvInt is the positive whole number in environment variable name, or
// def when it is unset or not one: how a measuring test takes its sizes.
func EnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
