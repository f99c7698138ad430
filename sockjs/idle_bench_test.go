package sockjs

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkIdleWebsocketMemory holds idleSessions websockets open on a
// node with nothing to send and reports what the process's heap and
// stacks grew by, per session. The clients are raw TCP connections that
// did the handshake and read "o": a few hundred bytes each of the
// figure, the rest is the server's.
func BenchmarkIdleWebsocketMemory(b *testing.B) {
	const idleSessions = 1000
	_, _, base := newCluster(b).node(b, HandlerFuncs{}, Settings{})
	addr := strings.TrimPrefix(strings.TrimSuffix(base, "/t"), "http://")
	for b.Loop() {
		heap0, stacks0 := heapAndStacks()
		conns := make([]net.Conn, 0, idleSessions)
		for i := range idleSessions {
			conns = append(conns, dialIdleWebsocket(b, addr, fmt.Sprintf("/t/0/s%d/websocket", i)))
		}
		heap1, stacks1 := heapAndStacks()
		b.ReportMetric(float64(heap1-heap0+stacks1-stacks0)/idleSessions, "B/session")
		b.ReportMetric(float64(stacks1-stacks0)/idleSessions, "stack-B/session")
		for _, c := range conns {
			c.Close()
		}
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
