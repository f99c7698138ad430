package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// streamKind tells the two streaming transports apart: both read frames from
// one long response and reopen it when the server ends it at response_limit.
type streamKind int

const (
	xhrStreamingKind streamKind = iota
	eventSourceKind
)

// maxEmptyStreams bounds reopening a stream that keeps ending without a
// single frame: something is wrong, not response_limit.
const maxEmptyStreams = 3

type streamSession struct {
	httpSession
	kind streamKind
}

var _ Session = (*streamSession)(nil)

func openStream(ctx context.Context, c *Client, path string, h SessionHandler, kind streamKind) (_ Session, err error) {
	s := &streamSession{httpSession: httpSession{sessionCore: newSessionCore(h), c: c, path: path}, kind: kind}
	defer func() {
		if err != nil {
			s.cancel()
			err = fmt.Errorf("loadtest: %s open: %w", kind, err)
		}
	}()
	// The stream outlives ctx, which only bounds the wait for 'o'.
	body, err := s.request()
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { body.Close() })
	r := newFrameReader(body, kind)
	f, err := r.next()
	for err == nil && f.kind == frameHeartbeat { // the xhr-streaming prelude
		f, err = r.next()
	}
	if !stop() {
		err = ctx.Err()
	}
	if err == nil && f.kind != frameOpen {
		err = openFrameError(f)
	}
	if err != nil {
		body.Close()
		return nil, err
	}
	go s.receive(body, r)
	return s, nil
}

func (k streamKind) String() string {
	if k == eventSourceKind {
		return "eventsource"
	}
	return "xhr_streaming"
}

// request opens one streaming response and returns its body.
func (s *streamSession) request() (io.ReadCloser, error) {
	method, suffix := http.MethodPost, "/xhr_streaming"
	if s.kind == eventSourceKind {
		method, suffix = http.MethodGet, "/eventsource"
	}
	req, err := http.NewRequestWithContext(s.ctx, method, s.c.base.String()+s.path+suffix, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		resp.Body.Close()
		return nil, fmt.Errorf("status %d: %q", resp.StatusCode, b)
	}
	return resp.Body, nil
}

func (s *streamSession) receive(body io.ReadCloser, r *frameReader) {
	// The watchdog cancels the session's context, which ends whichever
	// response is being read.
	dog := newWatchdog(s.c.idleTO, s.cancel)
	err := s.streamLoop(body, r, dog)
	s.finish(dog.stop(err))
}

func (s *streamSession) streamLoop(body io.ReadCloser, r *frameReader, dog *watchdog) error {
	empty, busy := 0, 0
	reopened := false
	for {
		frames, data := 0, 0 // all frames, and those not heartbeats
		for {
			f, err := r.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				body.Close()
				return err
			}
			frames++
			dog.feed()
			if reopened && data == 0 && isBusy(f) {
				// The previous stream is still being detached: see pollLoop.
				busy++
				if err := s.c.busyBackoff(s.ctx, busy); err != nil {
					body.Close()
					return err
				}
				break
			}
			if f.kind != frameHeartbeat {
				data++
				busy = 0
			}
			if err := s.deliver(f); err != nil {
				body.Close()
				return err
			}
		}
		body.Close()
		// The server ended the response at response_limit: reopen it.
		reopened = true
		if frames == 0 {
			empty++
			if empty >= maxEmptyStreams {
				return fmt.Errorf("loadtest: %s: %d streams in a row ended without a frame", s.kind, empty)
			}
		} else {
			empty = 0
		}
		var err error
		if body, err = s.request(); err != nil {
			return err
		}
		s.c.StreamReopens.Add(1)
		r = newFrameReader(body, s.kind)
	}
}

// frameReader splits a streaming body into SockJS frames: one per line for
// xhr-streaming, one per "data: " line for eventsource.
type frameReader struct {
	br   *bufio.Reader
	kind streamKind
	buf  []byte
}

func newFrameReader(r io.Reader, kind streamKind) *frameReader {
	return &frameReader{br: bufio.NewReaderSize(r, 16<<10), kind: kind}
}

// next returns the next frame, io.EOF at the end of the response.
func (r *frameReader) next() (frame, error) {
	for {
		line, err := r.line()
		if err != nil {
			return frame{}, err
		}
		line = bytes.TrimRight(line, "\r")
		if r.kind == eventSourceKind {
			data, ok := bytes.CutPrefix(line, []byte("data: "))
			if !ok {
				continue // the blank separator lines and the leading "\r\n"
			}
			line = data
		}
		if len(line) == 0 {
			continue
		}
		return parseFrame(line)
	}
}

// line reads one '\n'-terminated line, bounded by maxFrameBytes.
func (r *frameReader) line() ([]byte, error) {
	r.buf = r.buf[:0]
	for {
		part, err := r.br.ReadSlice('\n')
		switch {
		case err == nil:
			if len(r.buf) == 0 {
				return part[:len(part)-1], nil
			}
			r.buf = append(r.buf, part[:len(part)-1]...)
			if len(r.buf) > maxFrameBytes {
				return nil, fmt.Errorf("%w: line over %d bytes", errBadFrame, maxFrameBytes)
			}
			return r.buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			r.buf = append(r.buf, part...)
			if len(r.buf) > maxFrameBytes {
				return nil, fmt.Errorf("%w: line over %d bytes", errBadFrame, maxFrameBytes)
			}
		default:
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			return nil, err
		}
	}
}
