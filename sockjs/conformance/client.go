package conformance

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// frame is one SockJS frame as a client sees it.
type frame struct {
	typ    byte // 'o' open, 'h' heartbeat, 'a' messages, 'c' close; 0 with err
	msgs   []string
	code   int
	reason string
	err    error // the transport failed; always the last frame
}

func parseFrame(s string) (frame, error) {
	if s == "" {
		return frame{}, errors.New("empty frame")
	}
	switch s[0] {
	case 'o':
		if s != "o" {
			return frame{}, fmt.Errorf("bad open frame %q", s)
		}
		return frame{typ: 'o'}, nil
	case 'h':
		// The xhr-streaming prelude is a run of 'h' too.
		if strings.Trim(s, "h") != "" {
			return frame{}, fmt.Errorf("bad heartbeat frame %q", s)
		}
		return frame{typ: 'h'}, nil
	case 'a':
		var msgs []string
		if err := json.Unmarshal([]byte(s[1:]), &msgs); err != nil {
			return frame{}, fmt.Errorf("bad message frame %s: %w", clip(s), err)
		}
		return frame{typ: 'a', msgs: msgs}, nil
	case 'c':
		var cr []any
		if err := json.Unmarshal([]byte(s[1:]), &cr); err != nil || len(cr) != 2 {
			return frame{}, fmt.Errorf("bad close frame %q", s)
		}
		code, ok1 := cr[0].(float64)
		reason, ok2 := cr[1].(string)
		if !ok1 || !ok2 {
			return frame{}, fmt.Errorf("bad close frame %q", s)
		}
		return frame{typ: 'c', code: int(code), reason: reason}, nil
	}
	return frame{}, fmt.Errorf("unknown frame %s", clip(s))
}

// emitFunc hands a frame to the client; false means the client is gone.
type emitFunc func(frame) bool

// transport is the client side of one SockJS transport. dial connects (or
// prepares to) and returns a sender plus a receive loop that emits frames
// until the session closes, the transport fails, or ctx ends.
type transport struct {
	name string
	dial func(ctx context.Context, s *suite, session, query string, emit emitFunc) (send func(context.Context, []string) error, loop func(), err error)
}

// transports are the ones a browser's sockjs-client may pick; the first four
// are the ones sockjs-client's own tests run in Node.js.
var transports = []transport{
	{"websocket", dialWebsocket},
	{"xhr-streaming", streamingDialer("POST", "/xhr_streaming", splitXHR)},
	{"eventsource", streamingDialer("GET", "/eventsource", splitEventSource)},
	{"xhr-polling", pollingDialer(pollXHR, sendXHR)},
	{"htmlfile", streamingDialer("GET", "/htmlfile?c=p", splitHTMLFile)},
	{"jsonp-polling", pollingDialer(pollJSONP, sendJSONP)},
}

// sjsClient is a minimal SockJS client session driven by a test.
type sjsClient struct {
	t      *testing.T
	what   string
	frames chan frame
	sendFn func(context.Context, []string) error
	cancel context.CancelFunc
	done   chan struct{}
	queue  []string // received messages not yet handed to the test
}

// connect opens a session on prefix (for example "/echo") over tr. query,
// if not empty, is appended to every URL, as sockjs-client does with the
// user's query string.
func (s *suite) connect(t *testing.T, tr transport, prefix, query string) *sjsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sessionTimeout)
	c := &sjsClient{t: t, what: tr.name + " " + prefix, frames: make(chan frame, 256), cancel: cancel, done: make(chan struct{})}
	emit := func(f frame) bool {
		select {
		case c.frames <- f:
			return true
		case <-ctx.Done():
			return false
		}
	}
	send, loop, err := tr.dial(ctx, s, s.sessionURL(prefix), query, emit)
	if err != nil {
		cancel()
		t.Fatalf("%s: %v", c.what, err)
	}
	c.sendFn = send
	go func() {
		defer close(c.done)
		loop()
	}()
	t.Cleanup(c.close)
	return c
}

func (c *sjsClient) close() {
	c.cancel()
	select {
	case <-c.done:
	case <-time.After(requestTimeout):
		c.t.Errorf("%s: receive loop did not stop", c.what)
	}
}

// next returns the next frame other than a heartbeat.
func (c *sjsClient) next() frame {
	c.t.Helper()
	timer := time.NewTimer(requestTimeout)
	defer timer.Stop()
	for {
		select {
		case f := <-c.frames:
			if f.typ == 'h' {
				continue
			}
			return f
		case <-timer.C:
			c.t.Fatalf("%s: no frame within %v", c.what, requestTimeout)
			return frame{}
		}
	}
}

func (c *sjsClient) wantOpen() {
	c.t.Helper()
	if f := c.next(); f.typ != 'o' {
		c.t.Fatalf("%s: first frame %s, want open", c.what, describe(f))
	}
}

// recv returns the next message.
func (c *sjsClient) recv() string {
	c.t.Helper()
	for len(c.queue) == 0 {
		f := c.next()
		if f.typ != 'a' {
			c.t.Fatalf("%s: got %s, want a message", c.what, describe(f))
		}
		c.queue = f.msgs
	}
	m := c.queue[0]
	c.queue = c.queue[1:]
	return m
}

func (c *sjsClient) send(msgs ...string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if err := c.sendFn(ctx, msgs); err != nil {
		c.t.Fatalf("%s: send: %v", c.what, err)
	}
}

func (c *sjsClient) wantClose(code int, reason string) {
	c.t.Helper()
	f := c.next()
	if f.typ != 'c' || f.code != code || f.reason != reason {
		c.t.Errorf("%s: got %s, want close %d %q", c.what, describe(f), code, reason)
	}
}

func describe(f frame) string {
	switch f.typ {
	case 'o':
		return "open frame"
	case 'a':
		return fmt.Sprintf("messages %q", f.msgs)
	case 'c':
		return fmt.Sprintf("close frame %d %q", f.code, f.reason)
	case 0:
		return fmt.Sprintf("transport error %v", f.err)
	}
	return fmt.Sprintf("frame %q", f.typ)
}

// withQuery appends query parameters to u, which may already have some.
func withQuery(u string, query string) string {
	if query == "" {
		return u
	}
	if strings.Contains(u, "?") {
		return u + "&" + query
	}
	return u + "?" + query
}

func dialWebsocket(ctx context.Context, s *suite, session, query string, emit emitFunc) (func(context.Context, []string) error, func(), error) {
	dctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, withQuery(wsURL(session)+"/websocket", query), nil)
	if err != nil {
		return nil, nil, err
	}
	conn.SetReadLimit(1 << 22)
	send := func(ctx context.Context, msgs []string) error {
		return conn.Write(ctx, websocket.MessageText, []byte(encodeLikeClient(msgs)))
	}
	loop := func() {
		defer conn.CloseNow()
		for {
			_, p, err := conn.Read(ctx)
			if err != nil {
				emit(frame{err: err})
				return
			}
			if !emitText(emit, string(p)) {
				return
			}
		}
	}
	return send, loop, nil
}

// streamClient has no overall timeout: a stream lives as long as its
// context, which every caller bounds.
func (s *suite) streamClient() *http.Client {
	c := *s.client
	c.Timeout = 0
	return &c
}

// splitter reads the next frame text off a streaming body; ok false with a
// nil error means "not a frame, keep reading".
type splitter func(br *bufio.Reader) (text string, ok bool, err error)

func splitXHR(br *bufio.Reader) (string, bool, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", false, err
	}
	return strings.TrimSuffix(line, "\n"), true, nil
}

func splitEventSource(br *bufio.Reader) (string, bool, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", false, err
	}
	line = strings.TrimRight(line, "\r\n")
	if data, ok := strings.CutPrefix(line, "data: "); ok {
		// sockjs-client runs decodeURI on every event, so the server must
		// percent-escape '%' (and may escape CR, LF, NUL) in the data.
		text, err := decodeURI(data)
		if err != nil {
			return "", false, fmt.Errorf("eventsource data %s: %w", clip(data), err)
		}
		return text, true, nil
	}
	return "", false, nil
}

// decodeURI does what JavaScript's decodeURI does: %XX sequences are decoded
// as UTF-8, except those standing for a URI reserved character or '#',
// which stay escaped; a malformed sequence is an error (a URIError in JS).
func decodeURI(s string) (string, error) {
	hexByte := func(i int) (byte, bool) {
		if i+3 > len(s) || s[i] != '%' {
			return 0, false
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		return byte(v), err == nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '%' {
			b.WriteByte(s[i])
			i++
			continue
		}
		start := i
		lead, ok := hexByte(i)
		if !ok {
			return "", fmt.Errorf("malformed escape at %d", i)
		}
		i += 3
		if lead < 0x80 {
			if strings.IndexByte(";/?:@&=+$,#", lead) >= 0 {
				b.WriteString(s[start:i])
			} else {
				b.WriteByte(lead)
			}
			continue
		}
		var n int
		switch {
		case lead&0xe0 == 0xc0:
			n = 2
		case lead&0xf0 == 0xe0:
			n = 3
		case lead&0xf8 == 0xf0:
			n = 4
		default:
			return "", fmt.Errorf("malformed UTF-8 escape at %d", start)
		}
		buf := []byte{lead}
		for k := 1; k < n; k++ {
			v, ok := hexByte(i)
			if !ok || v&0xc0 != 0x80 {
				return "", fmt.Errorf("malformed UTF-8 escape at %d", start)
			}
			buf = append(buf, v)
			i += 3
		}
		if r, size := utf8.DecodeRune(buf); r == utf8.RuneError || size != n {
			return "", fmt.Errorf("invalid UTF-8 escape at %d", start)
		}
		b.Write(buf)
	}
	return b.String(), nil
}

func splitHTMLFile(br *bufio.Reader) (string, bool, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", false, err
	}
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasPrefix(line, "p(") || !strings.HasSuffix(line, ");") {
		return "", false, nil
	}
	var text string
	if err := json.Unmarshal([]byte(line[2:len(line)-2]), &text); err != nil {
		return "", false, fmt.Errorf("htmlfile frame %s: %w", clip(line), err)
	}
	return text, true, nil
}

// streamingDialer builds a streaming transport. When the server ends a
// stream without a close frame (response_limit reached) the client opens a
// new one, as sockjs-client does.
func streamingDialer(method, path string, split splitter) func(context.Context, *suite, string, string, emitFunc) (func(context.Context, []string) error, func(), error) {
	return func(ctx context.Context, s *suite, session, query string, emit emitFunc) (func(context.Context, []string) error, func(), error) {
		hc := s.streamClient()
		once := func() (closed bool, err error) {
			req, err := http.NewRequestWithContext(ctx, method, withQuery(session+path, query), nil)
			if err != nil {
				return false, err
			}
			resp, err := hc.Do(req)
			if err != nil {
				return false, err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return false, fmt.Errorf("%s %s: status %d", method, path, resp.StatusCode)
			}
			br := bufio.NewReaderSize(resp.Body, 64<<10)
			for {
				text, ok, err := split(br)
				if errors.Is(err, io.EOF) {
					return false, nil
				}
				if err != nil {
					return false, err
				}
				if !ok {
					continue
				}
				f, err := parseFrame(text)
				if err != nil {
					return false, err
				}
				if !emit(f) {
					return true, nil
				}
				if f.typ == 'c' {
					return true, nil
				}
			}
		}
		loop := func() {
			// Bounded: a server that ends every stream at once must not spin forever.
			for range 1000 {
				closed, err := once()
				if err != nil {
					emit(frame{err: err})
					return
				}
				if closed || ctx.Err() != nil {
					return
				}
			}
			emit(frame{err: errors.New("too many stream reconnections")})
		}
		return sendXHR(s, session, query), loop, nil
	}
}

// emitText hands the frame in text to emit (a malformed one as an error)
// and reports whether the receiver should go on: not after an error, a
// close frame, or when emit declines.
func emitText(emit emitFunc, text string) bool {
	f, err := parseFrame(text)
	if err != nil {
		emit(frame{err: err})
		return false
	}
	return emit(f) && f.typ != 'c'
}

// poller performs one receiving request and returns the frame texts it got.
type poller func(ctx context.Context, s *suite, session, query string) ([]string, error)

// pollingDialer builds a polling transport: one receiving request at a time.
func pollingDialer(poll poller, send func(s *suite, session, query string) func(context.Context, []string) error) func(context.Context, *suite, string, string, emitFunc) (func(context.Context, []string) error, func(), error) {
	return func(ctx context.Context, s *suite, session, query string, emit emitFunc) (func(context.Context, []string) error, func(), error) {
		loop := func() {
			for ctx.Err() == nil {
				texts, err := poll(ctx, s, session, query)
				if err != nil {
					emit(frame{err: err})
					return
				}
				for _, text := range texts {
					if !emitText(emit, text) {
						return
					}
				}
			}
		}
		return send(s, session, query), loop, nil
	}
}

func doBody(ctx context.Context, hc *http.Client, method, u, contentType, body string) (int, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, "", err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(b), err
}

// pollBody makes one poll request and returns its body; a status other
// than 200 is an error.
func pollBody(ctx context.Context, s *suite, what, method, url string) (string, error) {
	status, body, err := doBody(ctx, s.streamClient(), method, url, "", "")
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("%s poll: status %d", what, status)
	}
	return body, nil
}

func pollXHR(ctx context.Context, s *suite, session, query string) ([]string, error) {
	body, err := pollBody(ctx, s, "xhr", "POST", withQuery(session+"/xhr", query))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(body, "\n"), "\n"), nil
}

func pollJSONP(ctx context.Context, s *suite, session, query string) ([]string, error) {
	body, err := pollBody(ctx, s, "jsonp", "GET", withQuery(session+"/jsonp?c=cb", query))
	if err != nil {
		return nil, err
	}
	// The "/**/" prefix is checked by the jsonp group; a browser runs the
	// script without it, so this client does too.
	inner, ok := strings.CutPrefix(strings.TrimPrefix(body, "/**/"), "cb(")
	inner, ok2 := strings.CutSuffix(inner, ");\r\n")
	var text string
	if !ok || !ok2 || json.Unmarshal([]byte(inner), &text) != nil {
		return nil, fmt.Errorf("jsonp poll: bad body %s", clip(body))
	}
	return []string{text}, nil
}

func sendXHR(s *suite, session, query string) func(context.Context, []string) error {
	return func(ctx context.Context, msgs []string) error {
		status, body, err := doBody(ctx, s.client, "POST", withQuery(session+"/xhr_send", query), "text/plain;charset=UTF-8", encodeLikeClient(msgs))
		if err != nil {
			return err
		}
		if status != http.StatusNoContent {
			return fmt.Errorf("xhr_send: status %d %s", status, clip(body))
		}
		return nil
	}
}

func sendJSONP(s *suite, session, query string) func(context.Context, []string) error {
	return func(ctx context.Context, msgs []string) error {
		form := "d=" + url.QueryEscape(encodeLikeClient(msgs))
		status, body, err := doBody(ctx, s.client, "POST", withQuery(session+"/jsonp_send", query), formURLEncoded, form)
		if err != nil {
			return err
		}
		if status != http.StatusOK || body != "ok" {
			return fmt.Errorf("jsonp_send: status %d %s", status, clip(body))
		}
		return nil
	}
}
