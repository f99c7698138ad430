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
		u := s.sessionURL("/echo")
		st := s.openStream(t, "POST", u+"/xhr_streaming", "Origin", "test")
		defer st.close()
		wantStatus(t, st.what, st.head.status, 200)
		wantContentType(t, st.what, st.head, "application/javascript;charset=UTF-8")
		wantCORS(t, st.what, st.head, "test")
		wantNotCached(t, st.what, st.head)
		st.want(xhrPrelude)
		st.want("o\n")
		r := s.post(t, u+"/xhr_send", `["x"]`)
		wantStatus(t, "xhr_send", r.status, 204)
		wantBody(t, "xhr_send", r.body, "")
		st.want("a[\"x\"]\n")
	})
	t.Run("response closes after response_limit bytes", func(t *testing.T) {
		// /echo has response_limit 4096: the stream ends once 4096 bytes of
		// frames (prelude not counted) went out, so browsers can free memory.
		u := s.sessionURL("/echo")
		st := s.openStream(t, "POST", u+"/xhr_streaming")
		defer st.close()
		wantStatus(t, st.what, st.head.status, 200)
		if st.next() == "" {
			t.Fatal("empty prelude")
		}
		st.want("o\n")
		msg := `"` + strings.Repeat("x", 128) + `"`
		for i := 0; i < 31; i++ {
			r := s.post(t, u+"/xhr_send", "["+msg+"]")
			wantStatus(t, "xhr_send", r.status, 204)
			st.want("a[" + msg + "]\n")
		}
		st.wantEnd()
	})
}

// testEventSource: /eventsource.
func (s *suite) testEventSource(t *testing.T) {
	t.Run("prelude, data frames, escaping, headers", func(t *testing.T) {
		u := s.sessionURL("/echo")
		st := s.openStream(t, "GET", u+"/eventsource")
		defer st.close()
		wantStatus(t, st.what, st.head.status, 200)
		wantContentType(t, st.what, st.head, "text/event-stream")
		wantNotCached(t, st.what, st.head)
		// Opera needs a new line before the first event.
		st.want("\r\n")
		st.want("data: o\r\n\r\n")
		r := s.post(t, u+"/xhr_send", `["x"]`)
		wantStatus(t, "xhr_send", r.status, 204)
		wantBody(t, "xhr_send", r.body, "")
		st.want("data: a[\"x\"]\r\n\r\n")
		// Leading spaces, NUL and new lines must not break the event framing.
		r = s.post(t, u+"/xhr_send", `["  \u0000\n\r "]`)
		wantStatus(t, "xhr_send", r.status, 204)
		st.want("data: a[\"  \\u0000\\n\\r \"]\r\n\r\n")
	})
	t.Run("response closes after response_limit bytes", func(t *testing.T) {
		u := s.sessionURL("/echo")
		st := s.openStream(t, "GET", u+"/eventsource")
		defer st.close()
		wantStatus(t, st.what, st.head.status, 200)
		if st.next() == "" {
			t.Fatal("empty prelude")
		}
		st.want("data: o\r\n\r\n")
		msg := `"` + strings.Repeat("x", 4096) + `"`
		wantStatus(t, "xhr_send", s.post(t, u+"/xhr_send", "["+msg+"]").status, 204)
		st.want("data: a[" + msg + "]\r\n\r\n")
		st.wantEnd()
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
		u := s.sessionURL("/echo")
		st := s.openStream(t, "GET", u+"/htmlfile?c=%63allback")
		defer st.close()
		wantStatus(t, st.what, st.head.status, 200)
		wantContentType(t, st.what, st.head, "text/html;charset=UTF-8")
		wantNotCached(t, st.what, st.head)
		head := st.next()
		wantBody(t, "htmlfile head", strings.TrimSpace(head), strings.Replace(htmlfileHead, "CALLBACK", "callback", 1))
		// IE renders nothing before 1 KiB arrived.
		if len(head) <= 1024 {
			t.Errorf("htmlfile head is %d bytes, want more than 1024 (padding)", len(head))
		}
		st.want(htmlfileFrame(`"o"`))
		r := s.post(t, u+"/xhr_send", `["x"]`)
		wantStatus(t, "xhr_send", r.status, 204)
		wantBody(t, "xhr_send", r.body, "")
		st.want(htmlfileFrame(`"a[\"x\"]"`))
	})
	t.Run("missing callback is 500", func(t *testing.T) {
		r := s.get(t, s.url("/echo/a/a/htmlfile"))
		wantStatus(t, "htmlfile without c", r.status, 500)
		wantContains(t, "htmlfile without c", r.body, `"callback" parameter required`)
	})
	t.Run("invalid callback is 500", func(t *testing.T) {
		for _, cb := range []string{"%20", "*", "abc(", "abc%28"} {
			r := s.get(t, s.url("/echo/a/a/htmlfile?c="+cb))
			wantStatus(t, "htmlfile c="+cb, r.status, 500)
			wantContains(t, "htmlfile c="+cb, r.body, `invalid "callback" parameter`)
		}
	})
	t.Run("response closes after response_limit bytes", func(t *testing.T) {
		u := s.sessionURL("/echo")
		st := s.openStream(t, "GET", u+"/htmlfile?c=callback")
		defer st.close()
		wantStatus(t, st.what, st.head.status, 200)
		if st.next() == "" {
			t.Fatal("empty head")
		}
		st.want(htmlfileFrame(`"o"`))
		msg := strings.Repeat("x", 4096)
		wantStatus(t, "xhr_send", s.post(t, u+"/xhr_send", `["`+msg+`"]`).status, 204)
		st.want(htmlfileFrame(`"a[\"` + msg + `\"]"`))
		st.wantEnd()
	})
}
