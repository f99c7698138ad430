package sockjs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/store"
)

// BenchmarkIdleWebsocketMemory holds idleSessions websockets open on a
// node with nothing to send and reports what the process's heap and
// stacks grew by, per session, once the sockets are quiet (their readers
// gave their goroutines up, WebsocketQuietAfter, here shortened). The
// clients are raw TCP connections that did the handshake and read "o": a
// few hundred bytes each of the figure, the rest is the server's. Each
// round starts once the last round's sessions are gone from the store
// (a short DisconnectDelay), so that their reaping does not count.
func BenchmarkIdleWebsocketMemory(b *testing.B) {
	const idleSessions = 1000
	var mu sync.Mutex
	var keys []string
	h := HandlerFuncs{Open: func(s *Session) error {
		mu.Lock()
		keys = append(keys, s.key)
		mu.Unlock()
		return nil
	}}
	c := newCluster(b)
	_, _, base := c.node(b, h, Settings{DisconnectDelay: 10 * time.Millisecond}, func(cfg *NodeConfig) {
		cfg.WebsocketQuietAfter = 50 * time.Millisecond
	})
	addr := strings.TrimPrefix(strings.TrimSuffix(base, "/t"), "http://")
	for b.Loop() {
		heap0, stacks0 := heapAndStacks()
		conns := make([]net.Conn, 0, idleSessions)
		for i := range idleSessions {
			conns = append(conns, dialIdleWebsocket(b, addr, fmt.Sprintf("/t/0/s%d/websocket", i)))
		}
		if readPollSupported {
			waitNoReaders(b)
		}
		heap1, stacks1 := heapAndStacks()
		b.ReportMetric(float64(heap1-heap0+stacks1-stacks0)/idleSessions, "B/session")
		b.ReportMetric(float64(stacks1-stacks0)/idleSessions, "stack-B/session")
		// The stacks' figure moves by hundreds of bytes from round to
		// round (goroutines that ended may keep their stacks cached):
		// the heap's alone is the steady one.
		b.ReportMetric(float64(heap1-heap0)/idleSessions, "heap-B/session")
		for _, c := range conns {
			c.Close()
		}
		waitNoReaders(b)
		mu.Lock()
		gone, ks := keys, keys
		keys = nil
		mu.Unlock()
		testenv.CheckFor(b, 10*time.Second, 10*time.Millisecond, func() error {
			for len(gone) > 0 {
				if _, err := c.store.Get(context.Background(), gone[0]); !errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("%d of %d sessions still in the store (%v)", len(gone), len(ks), err)
				}
				gone = gone[1:]
			}
			return nil
		})
	}
}

// waitNoReaders waits until no websocket reader holds a goroutine.
func waitNoReaders(b *testing.B) {
	testenv.CheckFor(b, 10*time.Second, 10*time.Millisecond, func() error {
		if n := readerGoroutines(); n > 0 {
			return fmt.Errorf("%d websocket readers still hold a goroutine", n)
		}
		return nil
	})
}

// readerGoroutines counts the goroutines running a websocket's reads.
func readerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "(*wsReader).run(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// heapAndStacks returns the bytes of heap objects in use and of
// goroutine stacks, after a collection (two: the second shrinks stacks
// the first found oversized).
func heapAndStacks() (heap, stacks int64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc), int64(ms.StackInuse)
}

// dialIdleWebsocket opens a SockJS websocket at path and reads its open
// frame.
func dialIdleWebsocket(b *testing.B, addr, path string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	buf := make([]byte, 512)
	for !bytes.Contains(got, []byte("\x81\x01o")) {
		n, err := c.Read(buf)
		if err != nil {
			b.Fatalf("websocket %s: %v after %q", path, err, got)
		}
		got = append(got, buf[:n]...)
	}
	return c
}
