package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
)

// xhrSession is a session on the xhr-polling transport: a loop of long polls
// to .../xhr and sends to .../xhr_send.
type xhrSession struct {
	httpSession
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
	s := &xhrSession{httpSession{sessionCore: newSessionCore(h), c: c, path: path}}
	go func() { s.finish(s.pollLoop()) }()
	return s, nil
}

// poll makes one xhr request and parses the frame it returns.
func (c *Client) poll(ctx context.Context, path string) (frame, error) {
	code, body, err := c.post(ctx, path+"/xhr", nil, nil)
	if err != nil {
		return frame{}, err
	}
	if code != http.StatusOK {
		return frame{}, fmt.Errorf("loadtest: xhr: status %d: %q", code, truncate(body, 80))
	}
	return parseFrame(bytes.TrimRight(body, "\n"))
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
		if err := s.deliver(f); err != nil {
			return err
		}
	}
}
