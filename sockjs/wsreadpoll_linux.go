package sockjs

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// readPoller watches the sockets of quiet websockets for the node, so that
// a websocket whose client sends nothing parks no goroutine (its stack and
// its g are most of what an idle websocket costs otherwise). It is one
// epoll instance, itself waited on through the runtime's poller: one
// goroutine per node, parked there, and not one per socket. A socket is
// watched once (EPOLLONESHOT): when it becomes readable its reader starts
// on a goroutine of its own, reads what came and, once the socket has
// been quiet for a while again, arms the watch again and exits (see
// wsReader).
type readPoller struct {
	file *os.File // the epoll descriptor
	rc   syscall.RawConn

	mu sync.Mutex // guards watched
	// watched maps a socket's descriptor to the reader armed or
	// registered on it. A descriptor is unique among open sockets; an
	// event for one closed and reused since only starts a reader that
	// finds nothing to read and arms again.
	watched map[int32]*pollReader
}

// pollReader is a websocket reader as the poller sees it.
type pollReader struct {
	raw   syscall.RawConn // the socket
	fd    int32           // its descriptor once registered; -1 before
	wake  func()          // started on a goroutine of its own when readable, or when stopped while armed
	armed bool            // the poller will start wake; guarded by the poller's mu
	// stopped: the socket is done with and must not be armed again. Set
	// before the poller is looked for (wsReader.stop): a reader that made
	// the poller after that look finds it set.
	stopped atomic.Bool
}

const readPollSupported = true

// newReadPoller makes a poller; run must then run until close.
func newReadPoller() (*readPoller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("sockjs: epoll: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sockjs: epoll: %w", err)
	}
	// Non-blocking, so the runtime's poller takes it (os.NewFile).
	f := os.NewFile(uintptr(fd), "sockjs-read-poller")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sockjs: epoll: %w", err)
	}
	return &readPoller{file: f, rc: rc, watched: make(map[int32]*pollReader)}, nil
}

// run hands readable sockets to their readers until close.
func (p *readPoller) run() {
	events := make([]unix.EpollEvent, 128)
	var n int
	wait := func(fd uintptr) bool {
		var err error
		n, err = unix.EpollWait(int(fd), events, 0)
		if err != nil {
			n = 0
			return err != unix.EINTR && err != unix.EAGAIN
		}
		return n > 0 // none: park until the epoll descriptor is readable
	}
	for {
		if err := p.rc.Read(wait); err != nil {
			return // closed
		}
		p.mu.Lock()
		var start []*pollReader
		for _, ev := range events[:n] {
			if r := p.watched[ev.Fd]; r != nil && r.armed {
				r.armed = false
				start = append(start, r)
			}
		}
		p.mu.Unlock()
		for _, r := range start {
			go r.wake()
		}
	}
}

// arm watches r's socket once. false: it is not watched (stopped, closed,
// or refused), and the caller reads the blocking way instead.
func (p *readPoller) arm(r *pollReader) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.stopped.Load() {
		return false
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	var pollErr, ctlErr error
	err := r.raw.Control(func(fd uintptr) {
		ev.Fd = int32(fd)
		op := unix.EPOLL_CTL_MOD
		if r.fd != ev.Fd {
			op = unix.EPOLL_CTL_ADD
		}
		pollErr = p.rc.Control(func(epfd uintptr) {
			ctlErr = unix.EpollCtl(int(epfd), op, int(fd), &ev)
			if errors.Is(ctlErr, unix.EEXIST) {
				ctlErr = unix.EpollCtl(int(epfd), unix.EPOLL_CTL_MOD, int(fd), &ev)
			}
		})
	})
	if err != nil || pollErr != nil || ctlErr != nil {
		return false
	}
	r.fd = ev.Fd
	r.armed = true
	p.watched[r.fd] = r
	return true
}

// stop ends the watch of r (stopped already), and starts r's wake if it
// was armed (its socket may close: nothing else would).
func (p *readPoller) stop(r *pollReader) {
	p.mu.Lock()
	wasArmed := r.armed
	r.armed = false
	if r.fd >= 0 && p.watched[r.fd] == r {
		delete(p.watched, r.fd)
		// A socket still open leaves the set; a closed one already has.
		r.raw.Control(func(fd uintptr) {
			p.rc.Control(func(epfd uintptr) { unix.EpollCtl(int(epfd), unix.EPOLL_CTL_DEL, int(fd), nil) })
		})
	}
	p.mu.Unlock()
	if wasArmed {
		go r.wake()
	}
}

// close ends run; readers armed then are started by their stop.
func (p *readPoller) close() { p.file.Close() }
