package loadtest

import (
	"context"
	"sync"
)

// sessionCore is what every transport's session shares: the handler, the
// context its receive goroutine runs under, and the closing flag that makes
// the end a client asked for reach OnClose as nil.
type sessionCore struct {
	h      SessionHandler
	ctx    context.Context // ends the receive loop
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex // guards closing
	closing bool
}

func newSessionCore(h SessionHandler) sessionCore {
	ctx, cancel := context.WithCancel(context.Background())
	return sessionCore{h: h, ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// deliver hands a frame's messages to OnMessage; a close frame comes back
// as a *CloseError that ends the receive loop.
func (s *sessionCore) deliver(f frame) error {
	switch f.kind {
	case frameArray, frameMessage:
		for _, m := range f.messages {
			s.h.OnMessage(m)
		}
	case frameClose:
		return &CloseError{Code: f.code, Reason: f.reason}
	}
	return nil
}

// finish ends the session once its receive loop returned err: nil when
// Close asked for the end.
func (s *sessionCore) finish(err error) {
	s.mu.Lock()
	if s.closing {
		err = nil
	}
	s.mu.Unlock()
	s.cancel()
	s.h.OnClose(err)
	close(s.done)
}

// markClosing records that the client ends the session.
func (s *sessionCore) markClosing() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
}

func (s *sessionCore) Done() <-chan struct{} { return s.done }

// httpSession is the half the HTTP transports share: messages go out as
// xhr_send requests, and Close cancels the request being read.
type httpSession struct {
	sessionCore
	c    *Client
	path string
}

func (s *httpSession) Send(ctx context.Context, msgs ...string) error {
	if closed(s.done) {
		return ErrSessionClosed
	}
	return s.c.send(ctx, s.path, msgs)
}

// Close stops receiving; the server ends the session after its disconnect
// delay, as it would for a browser tab that went away.
func (s *httpSession) Close() {
	s.markClosing()
	s.cancel()
	<-s.done
}
