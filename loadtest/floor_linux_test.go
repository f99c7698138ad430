package loadtest

import (
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"unsafe"
)

// BenchmarkLoopbackWriteFloor is the kernel's own price of a broadcast
// delivery on this machine: one write of a small websocket frame to each
// of 1,000 connected loopback TCP sockets in turn, nothing else (no
// encoding, no locks, no bookkeeping). The readers drain on their own
// goroutines. On loopback the write also runs the receiving side's TCP
// processing, as a server's writes to local clients (or to HAProxy) do.
// cpu-ns/op, the writing thread's own CPU time (wall time per op also
// counts the readers when they share its CPU), is the floor a server's
// CPU per delivered message cannot go under; BENCHMARKS.md sets the
// broadcast rows against it.
func BenchmarkLoopbackWriteFloor(b *testing.B) {
	const conns = 1000
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	writers := make([]net.Conn, 0, conns)
	for range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		go io.Copy(io.Discard, c) // ends when s closes
		writers = append(writers, s)
	}
	defer func() {
		for _, s := range writers {
			s.Close()
		}
	}()
	// A server frame: 2-byte header, a["<32-byte message>"].
	frame := append([]byte{0x81, 38}, `a["12345678901 xxxxxxxxxxxxxxxxxxxx"]`...)
	b.SetBytes(int64(len(frame)))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	start := threadCPU(b)
	i := 0
	for b.Loop() {
		if _, err := writers[i].Write(frame); err != nil {
			b.Fatal(err)
		}
		if i++; i == conns {
			i = 0
		}
	}
	b.ReportMetric(float64(threadCPU(b)-start)/float64(b.N), "cpu-ns/op")
}

// threadCPU is the calling thread's CPU time in nanoseconds.
func threadCPU(b *testing.B) int64 {
	const clockThreadCPUTime = 3 // CLOCK_THREAD_CPUTIME_ID
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		b.Fatal(errno)
	}
	return ts.Nano()
}
