package conformance

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawConn is a hand-driven HTTP connection. The protocol suite looks at
// things a normal client hides: the exact response headers, chunk
// boundaries (one frame per chunk on streaming transports), HTTP/1.0
// framing, and upgrade handshakes.
type rawConn struct {
	t    *testing.T
	host string
	conn net.Conn
	br   *bufio.Reader
}

// rawResponse is a response head read off a rawConn; the body stays on the wire.
type rawResponse struct {
	proto  string // "1.0" or "1.1"
	status int
	header textproto.MIMEHeader
}

func (r *rawResponse) Get(name string) string { return r.header.Get(name) }

// chunked reports whether the body uses chunked transfer coding.
func (r *rawResponse) chunked() bool {
	return strings.EqualFold(strings.TrimSpace(r.header.Get("Transfer-Encoding")), "chunked")
}

// connectionTokens returns the lower-cased tokens of the Connection header.
func (r *rawResponse) connectionTokens() []string {
	var out []string
	for _, v := range r.header.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			out = append(out, strings.ToLower(strings.TrimSpace(tok)))
		}
	}
	return out
}

func (s *suite) dialRaw(t *testing.T) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.host, requestTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", s.host, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawConn{t: t, host: s.host, conn: conn, br: bufio.NewReader(conn)}
}

// request writes a request for rawURL with the given HTTP version ("1.0" or
// "1.1") and reads the response head. A POST always carries Content-Length.
func (c *rawConn) request(method, rawURL, proto string, body string, headers ...string) *rawResponse {
	c.t.Helper()
	r, err := c.tryRequest(method, rawURL, proto, body, headers...)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	return r
}

// tryRequest is request returning its error; safe off the test goroutine.
func (c *rawConn) tryRequest(method, rawURL, proto string, body string, headers ...string) (*rawResponse, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/%s\r\nHost: %s\r\n", method, u.RequestURI(), proto, c.host)
	for i := 0; i+1 < len(headers); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", headers[i], headers[i+1])
	}
	if body != "" || method == "POST" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	_ = c.conn.SetWriteDeadline(time.Now().Add(requestTimeout))
	if _, err := c.conn.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	return c.tryReadHead()
}

func (c *rawConn) write(p []byte) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(requestTimeout))
	if _, err := c.conn.Write(p); err != nil {
		c.t.Fatalf("raw write: %v", err)
	}
}

func (c *rawConn) tryReadHead() (*rawResponse, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(requestTimeout))
	tp := textproto.NewReader(c.br)
	line, err := tp.ReadLine()
	if err != nil {
		return nil, fmt.Errorf("reading status line: %w", err)
	}
	proto, rest, ok := strings.Cut(line, " ")
	code, _, _ := strings.Cut(rest, " ")
	status, err := strconv.Atoi(code)
	if !ok || !strings.HasPrefix(proto, "HTTP/") || err != nil {
		return nil, fmt.Errorf("bad status line %q", line)
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("reading headers: %w", err)
	}
	return &rawResponse{proto: strings.TrimPrefix(proto, "HTTP/"), status: status, header: h}, nil
}

// readChunk returns the payload of the next chunk; "" is the last chunk.
func (c *rawConn) readChunk() (string, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(requestTimeout))
	line, err := c.br.ReadString('\n')
	if err != nil {
		return "", err
	}
	sizeStr, _, _ := strings.Cut(strings.TrimRight(line, "\r\n"), ";")
	size, err := strconv.ParseInt(strings.TrimSpace(sizeStr), 16, 32)
	if err != nil || size < 0 || size > 16<<20 {
		return "", fmt.Errorf("bad chunk size line %q", line)
	}
	if size == 0 {
		// Skip trailers up to the blank line.
		for {
			l, err := c.br.ReadString('\n')
			if err != nil {
				return "", err
			}
			if l == "\r\n" || l == "\n" {
				return "", nil
			}
		}
	}
	buf := make([]byte, size+2)
	if _, err := io.ReadFull(c.br, buf); err != nil {
		return "", err
	}
	if string(buf[size:]) != "\r\n" {
		return "", errors.New("chunk not terminated by CRLF")
	}
	return string(buf[:size]), nil
}

// readN reads exactly n body bytes.
func (c *rawConn) readN(n int) (string, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(requestTimeout))
	buf := make([]byte, n)
	_, err := io.ReadFull(c.br, buf)
	return string(buf), err
}

// readBody reads a whole body framed by chunks, Content-Length, or EOF.
func (c *rawConn) readBody(r *rawResponse) string {
	c.t.Helper()
	body, err := c.tryReadBody(r)
	if err != nil {
		c.t.Fatalf("reading body: %v", err)
	}
	return body
}

// tryReadBody is readBody returning its error; safe off the test goroutine.
func (c *rawConn) tryReadBody(r *rawResponse) (string, error) {
	switch {
	case r.chunked():
		var b strings.Builder
		for {
			ch, err := c.readChunk()
			if err != nil {
				return "", err
			}
			if ch == "" {
				return b.String(), nil
			}
			b.WriteString(ch)
		}
	case r.Get("Content-Length") != "":
		n, err := strconv.Atoi(r.Get("Content-Length"))
		if err != nil || n < 0 || n > 16<<20 {
			return "", fmt.Errorf("bad Content-Length %q", r.Get("Content-Length"))
		}
		return c.readN(n)
	default:
		_ = c.conn.SetReadDeadline(time.Now().Add(requestTimeout))
		b, err := io.ReadAll(io.LimitReader(c.br, 16<<20))
		return string(b), err
	}
}

// wantClosed checks that the server closes the connection promptly.
func (c *rawConn) wantClosed(what string) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, err := c.br.ReadByte()
	switch {
	case err == nil:
		c.t.Errorf("%s: connection still open, read %q", what, b)
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Errorf("%s: connection not closed by the server", what)
		}
		// A reset also means closed.
	}
}

// stream is a streaming response read one chunk at a time, as the protocol
// suite reads it: every frame must arrive flushed in its own chunk.
type stream struct {
	c    *rawConn
	head *rawResponse
	what string
	// units, when set, rebuilds the server's chunks (prelude, then one
	// frame each) from the body, which an HTTP proxy may have split or
	// merged into other chunks (Options.HTTPProxy).
	units *unitSplitter
}

// unitSplitter cuts a streaming body into its prelude and frames by their
// terminators.
type unitSplitter struct {
	first, rest string // terminator of the prelude, of every frame
	started     bool   // the prelude has been returned
	pending     string // read but not yet returned
}

// unitsFor returns the splitter for a streaming transport's URL, or nil.
func unitsFor(rawURL string) *unitSplitter {
	path, _, _ := strings.Cut(rawURL, "?")
	switch {
	case strings.HasSuffix(path, "/xhr_streaming"):
		return &unitSplitter{first: "\n", rest: "\n"}
	case strings.HasSuffix(path, "/eventsource"):
		return &unitSplitter{first: "\r\n", rest: "\r\n\r\n"}
	case strings.HasSuffix(path, "/htmlfile"):
		return &unitSplitter{first: "\r\n\r\n", rest: "</script>\r\n"}
	}
	return nil
}

// openStream sends a streaming request (HTTP/1.1) and checks it is chunked.
func (s *suite) openStream(t *testing.T, method, rawURL string, headers ...string) *stream {
	t.Helper()
	c := s.dialRaw(t)
	r := c.request(method, rawURL, "1.1", "", headers...)
	st := &stream{c: c, head: r, what: method + " " + rawURL}
	if s.opts.HTTPProxy {
		st.units = unitsFor(rawURL)
	}
	if r.status == 200 && !r.chunked() {
		t.Fatalf("%s: streaming response is not chunked (Transfer-Encoding %q)", st.what, r.Get("Transfer-Encoding"))
	}
	return st
}

// next returns the next chunk, failing the test on a read error.
func (st *stream) next() string {
	st.c.t.Helper()
	u := st.units
	for {
		if u != nil {
			term := u.rest
			if !u.started {
				term = u.first
			}
			if i := strings.Index(u.pending, term); i >= 0 {
				unit := u.pending[:i+len(term)]
				u.pending, u.started = u.pending[i+len(term):], true
				return unit
			}
		}
		ch, err := st.c.readChunk()
		if err != nil {
			st.c.t.Fatalf("%s: reading chunk: %v", st.what, err)
		}
		if u == nil {
			return ch
		}
		if ch == "" { // the end: whatever is left, then ""
			rest := u.pending
			u.pending = ""
			return rest
		}
		u.pending += ch
	}
}

// want reads the next chunk and compares it.
func (st *stream) want(want string) {
	st.c.t.Helper()
	got := st.next()
	if got != want {
		st.c.t.Errorf("%s: chunk %s, want %s", st.what, clip(got), clip(want))
	}
}

// wantEnd checks the response ends here (last chunk).
func (st *stream) wantEnd() {
	st.c.t.Helper()
	if st.units != nil && st.units.pending != "" {
		st.c.t.Errorf("%s: want end of response, got %s", st.what, clip(st.units.pending))
		return
	}
	ch, err := st.c.readChunk()
	if err != nil {
		st.c.t.Errorf("%s: want the last chunk, got error %v", st.what, err)
		return
	}
	if ch != "" {
		st.c.t.Errorf("%s: want end of response, got chunk %s", st.what, clip(ch))
	}
}

func (st *stream) close() { st.c.conn.Close() }
