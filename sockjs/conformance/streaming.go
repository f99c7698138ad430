package conformance

import (
	"strings"
	"testing"
)

// xhrPrelude: 2 KiB of 'h' so that old browsers start handing over data.
var xhrPrelude = strings.Repeat("h", 2048) + "\n"

// testXHRStreaming: /xhr_streaming.
func (s *suite) testXHRStreaming(t *testing.T) {
	t.Run("options preflight", func(t *testing.T) {
		s.checkOptions(t, s.url("/echo/abc/abc/xhr_streaming"), "OPTIONS", "POST")
	})
	t.Run("prelude, open frame, messages, headers", func(t *testing.T) {
		st, u := s.openEchoStream(t, "POST", "xhr_streaming", "application/javascript;charset=UTF-8", "Origin", "test")
		defer st.close()
		wantCORS(t, st.what, st.head, "test")
		st.want(xhrPrelude)
		st.want("o\n")
		r := s.post(t, u+"/xhr_send", `["x"]`)
		wantResponse(t, "xhr_send", r, 204, "")
		st.want("a[\"x\"]\n")
	})
	t.Run("response closes after response_limit bytes", func(t *testing.T) {
		msg := `"` + strings.Repeat("x", 128) + `"`
		s.wantEndAtResponseLimit(t, "POST", "xhr_streaming", "o\n", msg, "a["+msg+"]\n", 31)
	})
}

// openEchoStream opens a stream (method, transport) of a new /echo
// session, wants it a 200 of contentType that no cache may keep, and
// returns it with the session's URL. The caller closes it.
func (s *suite) openEchoStream(t *testing.T, method, transport, contentType string, headers ...string) (*stream, string) {
	t.Helper()
	u := s.sessionURL("/echo")
	st := s.openStream(t, method, u+"/"+transport, headers...)
	wantStatus(t, st.what, st.head.status, 200)
	wantContentType(t, st.what, st.head, contentType)
	wantNotCached(t, st.what, st.head)
	return st, u
}

// wantEndAtResponseLimit: /echo has response_limit 4096, so a stream ends
// once 4096 bytes of frames (prelude not counted) went out, and browsers
// can free memory. It opens the stream (method, transport), reads past its
// prelude and the open frame, sends msg through xhr_send sends times,
// reading echo back each time, and wants the stream to end then.
func (s *suite) wantEndAtResponseLimit(t *testing.T, method, transport, open, msg, echo string, sends int) {
	t.Helper()
	u := s.sessionURL("/echo")
	st := s.openStream(t, method, u+"/"+transport)
	defer st.close()
	wantStatus(t, st.what, st.head.status, 200)
	if st.next() == "" {
		t.Fatal("empty prelude")
	}
	st.want(open)
	for i := 0; i < sends; i++ {
		wantStatus(t, "xhr_send", s.post(t, u+"/xhr_send", "["+msg+"]").status, 204)
		st.want(echo)
	}
	st.wantEnd()
}

// testEventSource: /eventsource.
func (s *suite) testEventSource(t *testing.T) {
	t.Run("prelude, data frames, escaping, headers", func(t *testing.T) {
		st, u := s.openEchoStream(t, "GET", "eventsource", "text/event-stream")
		defer st.close()
		// Opera needs a new line before the first event.
		st.want("\r\n")
		st.want("data: o\r\n\r\n")
		r := s.post(t, u+"/xhr_send", `["x"]`)
		wantResponse(t, "xhr_send", r, 204, "")
		st.want("data: a[\"x\"]\r\n\r\n")
		// Leading spaces, NUL and new lines must not break the event framing.
		r = s.post(t, u+"/xhr_send", `["  \u0000\n\r "]`)
		wantStatus(t, "xhr_send", r.status, 204)
		st.want("data: a[\"  \\u0000\\n\\r \"]\r\n\r\n")
	})
	t.Run("response closes after response_limit bytes", func(t *testing.T) {
		msg := `"` + strings.Repeat("x", 4096) + `"`
		s.wantEndAtResponseLimit(t, "GET", "eventsource", "data: o\r\n\r\n", msg, "data: a["+msg+"]\r\n\r\n", 1)
	})
}

// htmlfileHead is the page start of the htmlfile transport; %s is the callback.
const htmlfileHead = `<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.CALLBACK;
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>`

func htmlfileFrame(jsString string) string {
	return "<script>\np(" + jsString + ");\n</script>\r\n"
}

// testHTMLFile: /htmlfile.
func (s *suite) testHTMLFile(t *testing.T) {
	t.Run("page head with padding, script frames, headers", func(t *testing.T) {
		st, u := s.openEchoStream(t, "GET", "htmlfile?c=%63allback", "text/html;charset=UTF-8")
		defer st.close()
		head := st.next()
		wantBody(t, "htmlfile head", strings.TrimSpace(head), strings.Replace(htmlfileHead, "CALLBACK", "callback", 1))
		// IE renders nothing before 1 KiB arrived.
		if len(head) <= 1024 {
			t.Errorf("htmlfile head is %d bytes, want more than 1024 (padding)", len(head))
		}
		st.want(htmlfileFrame(`"o"`))
		r := s.post(t, u+"/xhr_send", `["x"]`)
		wantResponse(t, "xhr_send", r, 204, "")
		st.want(htmlfileFrame(`"a[\"x\"]"`))
	})
	s.testCallbackParam(t, "htmlfile")
	t.Run("response closes after response_limit bytes", func(t *testing.T) {
		x := strings.Repeat("x", 4096)
		s.wantEndAtResponseLimit(t, "GET", "htmlfile?c=callback", htmlfileFrame(`"o"`), `"`+x+`"`, htmlfileFrame(`"a[\"`+x+`\"]"`), 1)
	})
}
