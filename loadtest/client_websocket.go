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
	conn   *websocket.Conn
	idleTO time.Duration
	h      SessionHandler
	ctx    context.Context // ends the receive loop
	cancel context.CancelFunc
	done   chan struct{}

	closeOnce sync.Once
	mu        sync.Mutex // guards closing
	closing   bool
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
	sctx, cancel := context.WithCancel(context.Background())
	s := &wsSession{conn: conn, idleTO: c.idleTO, h: h, ctx: sctx, cancel: cancel, done: make(chan struct{})}
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
	dog.stop()
	if dog.expired.Load() {
		err = ErrReadIdle
	}
	s.mu.Lock()
	if s.closing {
		err = nil
	}
	s.mu.Unlock()
	s.conn.CloseNow()
	s.cancel()
	s.h.OnClose(err)
	close(s.done)
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

func (s *wsSession) Send(ctx context.Context, msgs ...string) error {
	err := s.conn.Write(ctx, websocket.MessageText, encodeMessages(msgs))
	if err != nil {
		select {
		case <-s.done:
			return ErrSessionClosed
		default:
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
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		// A normal close handshake; it is bounded by the library (5 s).
		_ = s.conn.Close(websocket.StatusNormalClosure, "")
		s.cancel()
	})
	<-s.done
}

func (s *wsSession) Done() <-chan struct{} { return s.done }
