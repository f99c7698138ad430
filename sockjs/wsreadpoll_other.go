//go:build !linux

package sockjs

import (
	"errors"
	"sync/atomic"
	"syscall"
)

// See wsreadpoll_linux.go: elsewhere a websocket's reader keeps its
// goroutine.

const readPollSupported = false

type readPoller struct{}

type pollReader struct {
	raw     syscall.RawConn
	fd      int32
	wake    func()
	stopped atomic.Bool
}

func newReadPoller() (*readPoller, error) { return nil, errors.ErrUnsupported }

func (p *readPoller) run()                 {}
func (p *readPoller) arm(*pollReader) bool { return false }
func (p *readPoller) stop(*pollReader)     {}
func (p *readPoller) close()               {}
