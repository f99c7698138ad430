package conformance

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	frameAnotherConnection = "c[2010,\"Another connection still open\"]"
	frameInterrupted       = "c[1002,\"Connection interrupted\"]"
	frameGoAway            = "c[3000,\"Go away!\"]"
)

// rawPoll is a receiving request on its own TCP connection, so that the
// test can abort it by closing the socket at once, as a closed browser tab
// does.
type rawPoll struct {
	c    *rawConn
	done chan pollResult // buffered, receives exactly once
}

type pollResult struct {
	status int
	body   string
	err    error
}

func (s *suite) startPoll(t *testing.T, u string) *rawPoll {
	t.Helper()
	p := &rawPoll{c: s.dialRaw(t), done: make(chan pollResult, 1)}
	go func() {
		r, err := p.c.tryRequest("POST", u, "1.1", "")
		if err != nil {
			p.done <- pollResult{err: err}
			return
		}
		body, err := p.c.tryReadBody(r)
		p.done <- pollResult{status: r.status, body: body, err: err}
	}()
	return p
}

// abort closes the connection; the server sees the client go away.
func (p *rawPoll) abort() { p.c.conn.Close() }

// raceReceivers starts two polls on one session at once. Exactly one of them
// must be refused with 2010 right away; the other must stay parked and is
// returned (the caller aborts it). No sleeping: whichever the server saw
// first is the one that parks.
func (s *suite) raceReceivers(t *testing.T, u string) *rawPoll {
	t.Helper()
	a, b := s.startPoll(t, u), s.startPoll(t, u)
	var first pollResult
	var parked *rawPoll
	select {
	case first = <-a.done:
		parked = b
	case first = <-b.done:
		parked = a
	case <-time.After(requestTimeout):
		t.Fatalf("%s: two concurrent polls, neither answered", u)
	}
	if first.err != nil {
		t.Fatalf("%s: second receiver: %v", u, first.err)
	}
	wantStatus(t, u+" second receiver", first.status, 200)
	wantBody(t, u+" second receiver", first.body, frameAnotherConnection+"\n")
	select {
	case r := <-parked.done:
		t.Errorf("%s: first receiver did not stay parked: %d %s %v", u, r.status, clip(r.body), r.err)
	default:
	}
	return parked
}

// wantAfterAbort checks the rule for a receiver that went away mid-request:
// the next receiver either finds the session closed with 1002 or (if the
// server forgot it) opens a new one. Like the sockjs-protocol suite, it
// gives the server no grace: the aborted socket was closed before the next
// request's connection was opened, so a server that still answers 2010 has
// not yet taken notice of a close that already happened.
func wantAfterAbort(t *testing.T, got string) {
	t.Helper()
	if got != "o\n" && got != frameInterrupted+"\n" {
		t.Errorf("receiver after an aborted one: got %s, want %q or %q", clip(got), "o\n", frameInterrupted+"\n")
	}
}

// testProtocol: the session life cycle as seen through xhr-polling.
func (s *suite) testProtocol(t *testing.T) {
	t.Run("new session opens, messages echo, unknown session send is 404", func(t *testing.T) {
		u := s.sessionURL("/echo")
		r := s.post(t, u+"/xhr", "")
		wantResponse(t, "open", r, 200, "o\n")
		r = s.post(t, u+"/xhr_send", `["a"]`)
		wantResponse(t, "xhr_send", r, 204, "")
		r = s.post(t, u+"/xhr", "")
		wantResponse(t, "poll", r, 200, "a[\"a\"]\n")
		r = s.post(t, s.url("/echo/000/bad_session_"+newID()+"/xhr_send"), `["a"]`)
		wantStatus(t, "xhr_send to unknown session", r.status, 404)
	})
	t.Run("second receiver gets 2010 another connection still open", func(t *testing.T) {
		u := s.sessionURL("/echo")
		wantBody(t, "open", s.post(t, u+"/xhr", "").body, "o\n")
		s.raceReceivers(t, u+"/xhr").abort()
	})
	t.Run("server close gives 3000 go away and repeats it", func(t *testing.T) {
		u := s.sessionURL("/close")
		r := s.post(t, u+"/xhr", "")
		wantResponse(t, "open", r, 200, "o\n")
		for i := 0; i < 2; i++ {
			r = s.post(t, u+"/xhr", "")
			wantResponse(t, "poll closed session", r, 200, frameGoAway+"\n")
		}
	})
}

// testXHRPolling: /xhr and /xhr_send.
func (s *suite) testXHRPolling(t *testing.T) {
	t.Run("options preflight on xhr and xhr_send", func(t *testing.T) {
		for _, sfx := range []string{"/xhr", "/xhr_send"} {
			s.checkOptions(t, s.url("/echo/abc/abc"+sfx), "OPTIONS", "POST")
		}
	})
	t.Run("content types, cors, no cache, 204 on send", func(t *testing.T) {
		u := s.sessionURL("/echo")
		r := s.post(t, u+"/xhr", "", "Origin", "test")
		wantResponse(t, "xhr", r, 200, "o\n")
		wantContentType(t, "xhr", r.header, "application/javascript;charset=UTF-8")
		wantCORS(t, "xhr", r.header, "test")
		wantNotCached(t, "xhr", r.header)

		r = s.post(t, u+"/xhr_send", `["x"]`, "Origin", "test")
		wantResponse(t, "xhr_send", r, 204, "")
		// text/plain even on a 204: Firefox otherwise parses it as XML.
		wantContentType(t, "xhr_send", r.header, "text/plain;charset=UTF-8")
		wantCORS(t, "xhr_send", r.header, "test")
		wantNotCached(t, "xhr_send", r.header)

		r = s.post(t, u+"/xhr", "")
		wantResponse(t, "xhr", r, 200, "a[\"x\"]\n")
	})
	t.Run("send to unknown session is 404", func(t *testing.T) {
		wantStatus(t, "xhr_send", s.post(t, s.sessionURL("/echo")+"/xhr_send", `["x"]`).status, 404)
	})
	t.Run("broken json and empty payload are 500", func(t *testing.T) {
		u := s.sessionURL("/echo")
		wantBody(t, "open", s.post(t, u+"/xhr", "").body, "o\n")
		r := s.post(t, u+"/xhr_send", `["x`)
		wantStatus(t, "broken json", r.status, 500)
		wantContains(t, "broken json", r.body, "Broken JSON encoding.")
		r = s.post(t, u+"/xhr_send", "")
		wantStatus(t, "empty payload", r.status, 500)
		wantContains(t, "empty payload", r.body, "Payload expected.")
		r = s.post(t, u+"/xhr_send", `["a"]`)
		wantResponse(t, "good send after bad ones", r, 204, "")
		r = s.post(t, u+"/xhr", "")
		wantResponse(t, "poll", r, 200, "a[\"a\"]\n")
	})
	t.Run("any request content type is accepted", func(t *testing.T) {
		u := s.sessionURL("/echo")
		wantBody(t, "open", s.post(t, u+"/xhr", "").body, "o\n")
		cts := []string{"text/plain", "T", "application/json", "application/xml", "",
			"application/json; charset=utf-8", "text/xml; charset=utf-8", "text/xml"}
		for _, ct := range cts {
			r := s.post(t, u+"/xhr_send", `["a"]`, "Content-Type", ct)
			wantStatus(t, "xhr_send with Content-Type "+ct, r.status, 204)
			wantBody(t, "xhr_send with Content-Type "+ct, r.body, "")
		}
		r := s.post(t, u+"/xhr", "")
		wantResponse(t, "poll", r, 200, "a["+strings.TrimSuffix(strings.Repeat(`"a",`, len(cts)), ",")+"]\n")
	})
	t.Run("access-control-request-headers is echoed", func(t *testing.T) {
		cases := []struct {
			request []string
			want    string
		}{
			{[]string{"Access-Control-Request-Headers", "a, b, c"}, "a, b, c"},
			{[]string{"Access-Control-Request-Headers", ""}, ""},
			{nil, ""},
		}
		for _, c := range cases {
			u := s.sessionURL("/echo") + "/xhr"
			h := append([]string{"Origin", "test", "Access-Control-Request-Method", "POST"}, c.request...)
			r := s.do(t, http.MethodOptions, u, "", h...)
			if r.status != 200 && r.status != 204 {
				t.Errorf("OPTIONS %v: status %d, want 200 or 204", c.request, r.status)
			}
			wantCORS(t, "OPTIONS", r.header, "test")
			if got := r.header.Get("Access-Control-Allow-Headers"); got != c.want {
				t.Errorf("OPTIONS with %q: Access-Control-Allow-Headers %q, want %q", c.request, got, c.want)
			}
		}
	})
	t.Run("empty frame is accepted", func(t *testing.T) {
		u := s.sessionURL("/echo")
		wantBody(t, "open", s.post(t, u+"/xhr", "").body, "o\n")
		wantStatus(t, "send []", s.post(t, u+"/xhr_send", `[]`).status, 204)
		wantStatus(t, "send [\"a\"]", s.post(t, u+"/xhr_send", `["a"]`).status, 204)
		r := s.post(t, u+"/xhr", "")
		wantResponse(t, "poll", r, 200, "a[\"a\"]\n")
	})
	t.Run("query string on session urls is ignored", func(t *testing.T) {
		u := s.sessionURL("/echo")
		wantBody(t, "open", s.post(t, u+"/xhr?testqs=1", "").body, "o\n")
		wantStatus(t, "send", s.post(t, u+"/xhr_send?testqs=1", `["q"]`).status, 204)
		wantBody(t, "poll", s.post(t, u+"/xhr?testqs=1", "").body, "a[\"q\"]\n")
	})
}

const formURLEncoded = "application/x-www-form-urlencoded"

// testJSONP: /jsonp and /jsonp_send.
func (s *suite) testJSONP(t *testing.T) {
	send := func(t *testing.T, u, body, ct string) response {
		t.Helper()
		return s.post(t, u+"/jsonp_send", body, "Content-Type", ct)
	}
	t.Run("transport, content types, no cache, ok on send", func(t *testing.T) {
		u := s.sessionURL("/echo")
		r := s.get(t, u+"/jsonp?c=%63allback")
		wantStatus(t, "jsonp", r.status, 200)
		wantContentType(t, "jsonp", r.header, "application/javascript;charset=UTF-8")
		wantNotCached(t, "jsonp", r.header)
		wantBody(t, "jsonp", r.body, "/**/callback(\"o\");\r\n")

		r = send(t, u, "d=%5B%22x%22%5D", formURLEncoded)
		// Konqueror mishandles 204, hence 200 "ok".
		wantResponse(t, "jsonp_send", r, 200, "ok")
		wantContentType(t, "jsonp_send", r.header, "text/plain;charset=UTF-8")
		wantNotCached(t, "jsonp_send", r.header)

		r = s.get(t, u+"/jsonp?c=%63allback")
		wantResponse(t, "jsonp", r, 200, "/**/callback(\"a[\\\"x\\\"]\");\r\n")
	})
	s.testCallbackParam(t, "jsonp")
	t.Run("broken json and missing payload are 500", func(t *testing.T) {
		u := s.sessionURL("/echo")
		wantBody(t, "open", s.get(t, u+"/jsonp?c=x").body, "/**/x(\"o\");\r\n")
		r := send(t, u, "d=%5B%22x", formURLEncoded)
		wantStatus(t, "broken json", r.status, 500)
		wantContains(t, "broken json", r.body, "Broken JSON encoding.")
		for _, data := range []string{"", "d=", "p=p"} {
			r = send(t, u, data, formURLEncoded)
			wantStatus(t, "payload "+strconv.Quote(data), r.status, 500)
			wantContains(t, "payload "+strconv.Quote(data), r.body, "Payload expected.")
		}
		wantBody(t, "good send", send(t, u, "d=%5B%22b%22%5D", formURLEncoded).body, "ok")
		r = s.get(t, u+"/jsonp?c=x")
		wantResponse(t, "poll", r, 200, "/**/x(\"a[\\\"b\\\"]\");\r\n")
	})
	t.Run("form and raw text payloads are accepted", func(t *testing.T) {
		u := s.sessionURL("/echo")
		wantBody(t, "open", s.get(t, u+"/jsonp?c=x").body, "/**/x(\"o\");\r\n")
		wantBody(t, "form send", send(t, u, "d=%5B%22abc%22%5D", formURLEncoded).body, "ok")
		wantBody(t, "raw send", send(t, u, `["%61bc"]`, "text/plain").body, "ok")
		r := s.get(t, u+"/jsonp?c=x")
		wantResponse(t, "poll", r, 200, "/**/x(\"a[\\\"abc\\\",\\\"%61bc\\\"]\");\r\n")
	})
	t.Run("server close repeats the close frame", func(t *testing.T) {
		u := s.sessionURL("/close")
		wantBody(t, "open", s.get(t, u+"/jsonp?c=x").body, "/**/x(\"o\");\r\n")
		for i := 0; i < 2; i++ {
			wantBody(t, "poll closed session", s.get(t, u+"/jsonp?c=x").body, "/**/x(\"c[3000,\\\"Go away!\\\"]\");\r\n")
		}
	})
	t.Run("empty frame is accepted", func(t *testing.T) {
		u := s.sessionURL("/echo")
		wantBody(t, "open", s.get(t, u+"/jsonp?c=x").body, "/**/x(\"o\");\r\n")
		wantBody(t, "send []", send(t, u, "d=%5B%5D", formURLEncoded).body, "ok")
		wantBody(t, "send [\"x\"]", send(t, u, "d=%5B%22x%22%5D", formURLEncoded).body, "ok")
		r := s.get(t, u+"/jsonp?c=x")
		wantResponse(t, "poll", r, 200, "/**/x(\"a[\\\"x\\\"]\");\r\n")
	})
}

// testCallbackParam: a jsonp or htmlfile (transport) request without its
// callback parameter, or with an invalid one, is a 500 that says which.
func (s *suite) testCallbackParam(t *testing.T, transport string) {
	t.Run("missing callback is 500", func(t *testing.T) {
		r := s.get(t, s.url("/echo/a/a/"+transport))
		wantStatus(t, transport+" without c", r.status, 500)
		wantContains(t, transport+" without c", r.body, `"callback" parameter required`)
	})
	t.Run("invalid callback is 500", func(t *testing.T) {
		for _, cb := range []string{"%20", "*", "abc(", "abc%28"} {
			r := s.get(t, s.url("/echo/a/a/"+transport+"?c="+cb))
			wantStatus(t, transport+" c="+cb, r.status, 500)
			wantContains(t, transport+" c="+cb, r.body, `invalid "callback" parameter`)
		}
	})
}
