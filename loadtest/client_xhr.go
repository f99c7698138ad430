package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
)

// xhrSession is a session on the xhr-polling transport: a loop of long polls
// to .../xhr and sends to .../xhr_send.
type xhrSession struct {
	c      *Client
	path   string
	h      SessionHandler
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex // guards closing
	closing bool
}

var _ Session = (*xhrSession)(nil)

func openXHRPolling(ctx context.Context, c *Client, path string, h SessionHandler) (Session, error) {
	f, err := c.poll(ctx, path)
	if err == nil && f.kind != frameOpen {
		err = openFrameError(f)
	}
	if err != nil {
		return nil, fmt.Errorf("loadtest: xhr open: %w", err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &xhrSession{c: c, path: path, h: h, ctx: sctx, cancel: cancel, done: make(chan struct{})}
	go s.receive()
	return s, nil
}

// poll makes one xhr request and parses the frame it returns.
func (c *Client) poll(ctx context.Context, path string) (frame, error) {
	code, body, err := c.post(ctx, path+"/xhr", nil)
	if err != nil {
		return frame{}, err
	}
	if code != http.StatusOK {
		return frame{}, fmt.Errorf("loadtest: xhr: status %d: %q", code, truncate(body, 80))
	}
	return parseFrame(bytes.TrimRight(body, "\n"))
}

func (s *xhrSession) receive() {
	err := s.pollLoop()
	s.mu.Lock()
	if s.closing {
		err = nil
	}
	s.mu.Unlock()
	s.cancel()
	s.h.OnClose(err)
	close(s.done)
}

func (s *xhrSession) pollLoop() error {
	busy := 0
	for {
		f, err := s.c.poll(s.ctx, s.path)
		if err != nil {
			return err
		}
		if isBusy(f) {
			// This client never polls twice at once, so 2010 here is the
			// server still detaching the previous poll (sockjs-go does that
			// on another goroutine): back off briefly and poll again.
			busy++
			if err := s.c.busyBackoff(s.ctx, busy); err != nil {
				return err
			}
			continue
		}
		busy = 0
		switch f.kind {
		case frameArray, frameMessage:
			for _, m := range f.messages {
				s.h.OnMessage(m)
			}
		case frameClose:
			return &CloseError{Code: f.code, Reason: f.reason}
		}
	}
}

func (s *xhrSession) Send(ctx context.Context, msgs ...string) error {
	select {
	case <-s.done:
		return ErrSessionClosed
	default:
	}
	return s.c.send(ctx, s.path, msgs)
}

// Close stops polling; the server ends the session after its disconnect
// delay, as it would for a browser tab that went away.
func (s *xhrSession) Close() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.cancel()
	<-s.done
}

func (s *xhrSession) Done() <-chan struct{} { return s.done }
