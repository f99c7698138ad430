package conformance

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// testHandlingClose: what receivers see around a session's end.
func (s *suite) testHandlingClose(t *testing.T) {
	t.Run("closed session serves its close frame to every receiver", func(t *testing.T) {
		u := s.sessionURL("/close")
		r1 := s.openStream(t, "POST", u+"/xhr_streaming")
		defer r1.close()
		r1.next() // prelude
		r1.want("o\n")
		r1.want(frameGoAway + "\n")
		r2 := s.openStream(t, "POST", u+"/xhr_streaming")
		defer r2.close()
		r2.next()
		// The server unlinked the first receiver when it closed: no 2010 here.
		r2.want(frameGoAway + "\n")
		r1.wantEnd()
		r2.wantEnd()
	})
	t.Run("second streaming receiver gets 2010 and its response ends", func(t *testing.T) {
		u := s.sessionURL("/echo")
		r1 := s.openStream(t, "POST", u+"/xhr_streaming")
		defer r1.close()
		r1.next()
		r1.want("o\n")
		r2 := s.openStream(t, "POST", u+"/xhr_streaming")
		defer r2.close()
		r2.next()
		r2.want(frameAnotherConnection + "\n")
		r2.wantEnd()
	})
	t.Run("aborted streaming receiver interrupts the session with 1002", func(t *testing.T) {
		u := s.sessionURL("/echo")
		r1 := s.openStream(t, "POST", u+"/xhr_streaming")
		r1.next()
		r1.want("o\n")
		r2 := s.openStream(t, "POST", u+"/xhr_streaming")
		r2.next()
		r2.want(frameAnotherConnection + "\n")
		r2.wantEnd()
		r2.close()
		r1.close()
		r3 := s.openStream(t, "POST", u+"/xhr_streaming")
		defer r3.close()
		r3.next()
		wantAfterAbort(t, r3.next())
	})
	t.Run("aborted polling receiver interrupts the session with 1002", func(t *testing.T) {
		u := s.sessionURL("/echo")
		wantBody(t, "open", s.post(t, u+"/xhr", "").body, "o\n")
		s.raceReceivers(t, u+"/xhr").abort()
		r := s.post(t, u+"/xhr", "")
		wantStatus(t, "poll after abort", r.status, 200)
		wantAfterAbort(t, r.body)
	})
}

// testJSessionID: /cookie_needed_echo sets JSESSIONID on every session
// response, so that cookie-sticky load balancers work.
func (s *suite) testJSessionID(t *testing.T) {
	wantCookie := func(t *testing.T, what string, h headerGetter, value string) {
		t.Helper()
		parts := strings.Split(h.Get("Set-Cookie"), ";")
		if strings.TrimSpace(parts[0]) != "JSESSIONID="+value {
			t.Errorf("%s: Set-Cookie %q, want JSESSIONID=%s first", what, h.Get("Set-Cookie"), value)
			return
		}
		if len(parts) < 2 || strings.ToLower(strings.TrimSpace(parts[1])) != "path=/" {
			t.Errorf("%s: Set-Cookie %q, want path=/ second", what, h.Get("Set-Cookie"))
		}
	}
	t.Run("xhr sets a dummy cookie or echoes the client's", func(t *testing.T) {
		r := s.post(t, s.sessionURL("/cookie_needed_echo")+"/xhr", "")
		wantResponse(t, "xhr", r, 200, "o\n")
		wantCookie(t, "xhr", r.header, "dummy")
		r = s.post(t, s.sessionURL("/cookie_needed_echo")+"/xhr", "", "Cookie", "JSESSIONID=abcdef")
		wantResponse(t, "xhr with cookie", r, 200, "o\n")
		wantCookie(t, "xhr with cookie", r.header, "abcdef")
	})
	for _, c := range []struct{ name, method, path string }{
		{"xhr_streaming", "POST", "/xhr_streaming"},
		{"eventsource", "GET", "/eventsource"},
		{"htmlfile", "GET", "/htmlfile?c=%63allback"},
	} {
		t.Run(c.name+" sets the cookie", func(t *testing.T) {
			st := s.openStream(t, c.method, s.sessionURL("/cookie_needed_echo")+c.path)
			defer st.close()
			wantStatus(t, st.what, st.head.status, 200)
			wantCookie(t, st.what, st.head, "dummy")
		})
	}
	t.Run("jsonp and jsonp_send set the cookie", func(t *testing.T) {
		u := s.sessionURL("/cookie_needed_echo")
		r := s.get(t, u+"/jsonp?c=%63allback")
		wantStatus(t, "jsonp", r.status, 200)
		wantCookie(t, "jsonp", r.header, "dummy")
		wantBody(t, "jsonp", r.body, "/**/callback(\"o\");\r\n")
		r = s.post(t, u+"/jsonp_send", "d=%5B%22x%22%5D", "Content-Type", formURLEncoded)
		wantResponse(t, "jsonp_send", r, 200, "ok")
		wantCookie(t, "jsonp_send", r.header, "dummy")
	})
}

// greet sends GET /echo with Connection: Keep-Alive over HTTP/proto on c
// and checks it is answered 200; the body stays on the wire.
func (s *suite) greet(t *testing.T, c *rawConn, proto string) *rawResponse {
	t.Helper()
	r := c.request("GET", s.url("/echo"), proto, "", "Connection", "Keep-Alive")
	wantStatus(t, "GET /echo HTTP/"+proto, r.status, 200)
	return r
}

// wantSizedGreeting reads a greeting framed by its Content-Length (19).
func (c *rawConn) wantSizedGreeting(r *rawResponse, what string) {
	c.t.Helper()
	if n, _ := strconv.Atoi(r.Get("Content-Length")); n != 19 {
		c.t.Errorf("Content-Length %q, want 19", r.Get("Content-Length"))
	}
	body, err := c.readN(19)
	if err != nil {
		c.t.Fatalf("reading greeting: %v", err)
	}
	wantBody(c.t, what, body, "Welcome to SockJS!\n")
}

// testHTTP10: HTTP/1.0 clients get no chunking.
func (s *suite) testHTTP10(t *testing.T) {
	t.Run("greeting with keep-alive is framed by length or close", func(t *testing.T) {
		c := s.dialRaw(t)
		r := s.greet(t, c, "1.0")
		if r.proto != "1.0" && r.proto != "1.1" {
			t.Errorf("response version %q", r.proto)
		}
		wantNoHeader(t, "HTTP/1.0 response", r, "Transfer-Encoding")
		conn := r.connectionTokens()
		if r.Get("Content-Length") == "" {
			if !slices.Contains(conn, "close") {
				t.Fatalf("no Content-Length and no Connection: close (Connection %q)", r.Get("Connection"))
			}
			wantBody(t, "HTTP/1.0 greeting", c.readBody(r), "Welcome to SockJS!\n")
			c.wantClosed("HTTP/1.0 greeting")
			return
		}
		c.wantSizedGreeting(r, "HTTP/1.0 greeting")
		if len(conn) == 0 || slices.Contains(conn, "close") {
			c.wantClosed("HTTP/1.0 without keep-alive")
			return
		}
		if !slices.Contains(conn, "keep-alive") {
			t.Fatalf("Connection %q, want keep-alive, close or nothing", r.Get("Connection"))
		}
		s.greet(t, c, "1.0") // again on the kept-alive connection
	})
	t.Run("streaming is unchunked, unsized and closes after the close frame", func(t *testing.T) {
		c := s.dialRaw(t)
		u := s.sessionURL("/close")
		r := c.request("POST", u+"/xhr_streaming", "1.0", "", "Connection", "Keep-Alive")
		wantStatus(t, "xhr_streaming HTTP/1.0", r.status, 200)
		wantNoHeader(t, "xhr_streaming HTTP/1.0", r, "Transfer-Encoding")
		wantNoHeader(t, "xhr_streaming HTTP/1.0", r, "Content-Length")
		prelude, err := c.readN(2049)
		if err != nil || prelude[0] != 'h' {
			t.Fatalf("prelude: %q… %v", prelude[:min(len(prelude), 8)], err)
		}
		for _, want := range []string{"o\n", frameGoAway + "\n"} {
			got, err := c.readN(len(want))
			if err != nil || got != want {
				t.Fatalf("read %q (%v), want %q", got, err, want)
			}
		}
		c.wantClosed("HTTP/1.0 stream after close frame")
	})
}

// testHTTP11: HTTP/1.1 keeps connections alive and chunks streams.
func (s *suite) testHTTP11(t *testing.T) {
	t.Run("greeting keeps the connection alive", func(t *testing.T) {
		c := s.dialRaw(t)
		r := s.greet(t, c, "1.1")
		if conn := r.connectionTokens(); len(conn) > 0 && !slices.Contains(conn, "keep-alive") {
			t.Errorf("Connection %q, want keep-alive or nothing", r.Get("Connection"))
		}
		if r.Get("Content-Length") != "" {
			wantNoHeader(t, "sized response", r, "Transfer-Encoding")
			c.wantSizedGreeting(r, "greeting")
		} else {
			if !r.chunked() {
				t.Fatalf("neither Content-Length nor chunked (Transfer-Encoding %q)", r.Get("Transfer-Encoding"))
			}
			st := &stream{c: c, head: r, what: "greeting"}
			st.want("Welcome to SockJS!\n")
			st.wantEnd()
		}
		s.greet(t, c, "1.1") // again on the same connection
	})
	t.Run("streaming is chunked, one frame per chunk, and ends", func(t *testing.T) {
		st := s.openStream(t, "POST", s.sessionURL("/close")+"/xhr_streaming", "Connection", "Keep-Alive")
		defer st.close()
		wantStatus(t, st.what, st.head.status, 200)
		wantNoHeader(t, st.what, st.head, "Content-Length")
		if p := st.next(); !strings.HasPrefix(p, "h") {
			t.Errorf("prelude chunk %s, want 'h'…", clip(p))
		}
		st.want("o\n")
		st.want(frameGoAway + "\n")
		st.wantEnd()
	})
}
