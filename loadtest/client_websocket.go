package loadtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// wsSession is a session on the SockJS websocket transport.
type wsSession struct {
	sessionCore
	conn      *websocket.Conn
	idleTO    time.Duration
	closeOnce sync.Once
}

var _ Session = (*wsSession)(nil)

func openWebsocket(ctx context.Context, c *Client, path string, h SessionHandler) (_ Session, err error) {
	conn, _, err := websocket.Dial(ctx, c.wsBase+path+"/websocket", &websocket.DialOptions{
		HTTPClient:      c.http,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return nil, fmt.Errorf("loadtest: websocket dial: %w", err)
	}
	conn.SetReadLimit(maxFrameBytes)
	_, b, err := conn.Read(ctx)
	if err == nil {
		var f frame
		if f, err = parseFrame(b); err == nil && f.kind != frameOpen {
			err = openFrameError(f)
		}
	}
	if err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("loadtest: websocket open: %w", err)
	}
	s := &wsSession{sessionCore: newSessionCore(h), conn: conn, idleTO: c.idleTO}
	go s.receive()
	return s, nil
}

// openFrameError explains a first frame that is not 'o'.
func openFrameError(f frame) error {
	if f.kind == frameClose {
		return &CloseError{Code: f.code, Reason: f.reason}
	}
	return fmt.Errorf("%w: first frame %q, want 'o'", errBadFrame, f.kind)
}

func (s *wsSession) receive() {
	dog := newWatchdog(s.idleTO, func() { s.conn.CloseNow() })
	err := s.readLoop(dog)
	err = dog.stop(err)
	s.conn.CloseNow()
	s.finish(err)
}

func (s *wsSession) readLoop(dog *watchdog) error {
	for {
		_, b, err := s.conn.Read(s.ctx)
		if err != nil {
			return err
		}
		dog.feed()
		f, err := parseFrame(b)
		if err != nil {
			return err
		}
		if err := s.deliver(f); err != nil {
			return err
		}
	}
}

func (s *wsSession) Send(ctx context.Context, msgs ...string) error {
	err := s.conn.Write(ctx, websocket.MessageText, encodeMessages(msgs))
	if err != nil {
		if closed(s.done) {
			return ErrSessionClosed
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return fmt.Errorf("loadtest: websocket send: %w", err)
	}
	return nil
}

func (s *wsSession) Close() {
	s.closeOnce.Do(func() {
		s.markClosing()
		// A normal close handshake; it is bounded by the library (5 s).
		_ = s.conn.Close(websocket.StatusNormalClosure, "")
		s.cancel()
	})
	<-s.done
}
