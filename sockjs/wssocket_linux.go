package sockjs

import "syscall"

// The socket calls behind wsSocket's writes that must not block and its
// wait for something to read (see rawSocket); Linux only, elsewhere a
// websocket takes its writer's path.

const nonblockingSupported = true

// writeNonblocking makes one write to fd, a non-blocking socket.
func writeNonblocking(fd uintptr, b []byte) (int, error) {
	for {
		n, err := syscall.Write(int(fd), b)
		if err != syscall.EINTR {
			return n, err
		}
	}
}

// peekWouldBlock reports whether fd, a non-blocking socket, has nothing
// to read yet (no byte, no end, no error); buf takes the byte peeked at.
func peekWouldBlock(fd uintptr, buf []byte) bool {
	_, _, err := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err == syscall.EAGAIN
}
