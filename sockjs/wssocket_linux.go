package sockjs

import (
	"syscall"
	"unsafe"
)

// The socket calls behind wsSocket's reads (its wait for something to
// read reads it too) and its writes that must not block (see rawSocket);
// Linux only, elsewhere a websocket takes its writer's path and
// net.Conn's reads.
//
// Each is one system call on a non-blocking socket, which never sleeps in
// the kernel, made raw: without the runtime's entersyscall, which wakes
// the runtime's monitor thread (sysmon) whenever the process was idle
// before: a futex wake and context switches per message on a server that
// is not saturated (ws-echo at 4k msg/s: sysmon was 11-13% of the
// server's CPU, runtime.reentersyscall 3%). sendto and recvfrom, not
// write and read: they skip the file layer (vfs_write, fdget_pos: 7% of
// a broadcast's CPU); MSG_NOSIGNAL spares a SIGPIPE to a client gone.

const nonblockingSupported = true

// writeNonblocking makes one write to fd, a non-blocking socket.
func writeNonblocking(fd uintptr, b []byte) (int, error) {
	return socketCall(syscall.SYS_SENDTO, fd, b, syscall.MSG_NOSIGNAL|syscall.MSG_DONTWAIT)
}

// readNonblocking makes one read of fd, a non-blocking socket: 0 and no
// error at the socket's end.
func readNonblocking(fd uintptr, b []byte) (int, error) {
	return socketCall(syscall.SYS_RECVFROM, fd, b, syscall.MSG_DONTWAIT)
}

// socketCall makes sendto or recvfrom (trap) of b, not empty, on fd
// with flags and no address, raw.
func socketCall(trap, fd uintptr, b []byte, flags uintptr) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		n, _, errno := syscall.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), flags, 0, 0)
		switch errno {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			continue
		}
		return 0, errno
	}
}
