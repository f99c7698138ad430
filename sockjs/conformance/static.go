package conformance

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// wantNotFound checks that a GET of base+suffix is 404, for each suffix.
func (s *suite) wantNotFound(t *testing.T, base string, suffixes ...string) {
	t.Helper()
	for _, sfx := range suffixes {
		u := s.url(base + sfx)
		wantStatus(t, u, s.get(t, u).status, 404)
	}
}

// testGreeting: the base URL greets, anything else non-protocol is 404.
func (s *suite) testGreeting(t *testing.T) {
	t.Run("base url greets with text/plain", func(t *testing.T) {
		for _, u := range []string{s.url("/echo"), s.url("/echo/")} {
			r := s.get(t, u)
			wantStatus(t, u, r.status, 200)
			wantContentType(t, u, r.header, "text/plain;charset=UTF-8")
			wantBody(t, u, r.body, "Welcome to SockJS!\n")
			wantNoCookie(t, u, r.header)
		}
	})
	t.Run("unknown paths are 404", func(t *testing.T) {
		s.wantNotFound(t, "/echo", "/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/")
	})
	t.Run("unknown prefix is 404", func(t *testing.T) {
		// sockjs-client reports "Cannot connect to server" when info is 404.
		s.wantNotFound(t, "/invalid_url", "/info")
	})
}

// iframeBody is the page the iframe-based transports load; only the script
// URL may vary.
const iframeBody = `<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="SOCKJS_URL"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>`

var iframeScriptSrc = regexp.MustCompile(`<script src="([^"]*)"></script>`)

// testIframe: /iframe*.html is a strongly cacheable static page.
func (s *suite) testIframe(t *testing.T) {
	check := func(t *testing.T, u string) {
		t.Helper()
		r := s.get(t, u)
		wantStatus(t, u, r.status, 200)
		wantContentType(t, u, r.header, "text/html;charset=UTF-8")
		wantCacheable(t, u, r.header)
		if r.header.Get("ETag") == "" {
			t.Errorf("%s: no ETag", u)
		}
		wantNoHeader(t, u, r.header, "Last-Modified")
		wantNoCookie(t, u, r.header)
		body := strings.TrimSpace(r.body)
		m := iframeScriptSrc.FindStringSubmatch(body)
		if m == nil {
			t.Errorf("%s: no sockjs script tag in %s", u, clip(body))
			return
		}
		if src := m[1]; !strings.HasPrefix(src, "/") && !strings.HasPrefix(src, "http") {
			t.Errorf("%s: sockjs_url %q is neither absolute nor rooted", u, src)
		}
		wantBody(t, u, body, strings.Replace(iframeBody, "SOCKJS_URL", m[1], 1))
	}
	t.Run("iframe.html is served cacheable with the exact page", func(t *testing.T) {
		check(t, s.url("/echo/iframe.html"))
	})
	t.Run("versioned iframe urls are served", func(t *testing.T) {
		for _, sfx := range []string{"/iframe-a.html", "/iframe-.html", "/iframe-0.1.2.html", "/iframe-0.1.2abc-dirty.2144.html"} {
			check(t, s.url("/echo"+sfx))
		}
	})
	t.Run("iframe urls with a query are served", func(t *testing.T) {
		for _, sfx := range []string{"/iframe-a.html?t=1234", "/iframe-0.1.2.html?t=123414", "/iframe-0.1.2abc-dirty.2144.html?t=qweqweq123"} {
			check(t, s.url("/echo"+sfx))
		}
	})
	t.Run("malformed iframe urls are 404", func(t *testing.T) {
		s.wantNotFound(t, "/echo", "/iframe.htm", "/iframe", "/IFRAME.HTML", "/IFRAME", "/iframe.HTML", "/iframe.xml", "/iframe-/.html")
	})
	t.Run("etag is stable and if-none-match gives 304", func(t *testing.T) {
		u := s.url("/echo/iframe.html")
		r1, r2 := s.get(t, u), s.get(t, u)
		etag := r1.header.Get("ETag")
		if etag == "" || etag != r2.header.Get("ETag") {
			t.Fatalf("ETag not stable: %q then %q", etag, r2.header.Get("ETag"))
		}
		r := s.get(t, u, "If-None-Match", etag)
		wantStatus(t, u+" If-None-Match", r.status, 304)
		wantNoHeader(t, u+" 304", r.header, "Content-Type")
		wantBody(t, u+" 304", r.body, "")
	})
}

// info is the /info document.
type info struct {
	Websocket    *bool        `json:"websocket"`
	CookieNeeded *bool        `json:"cookie_needed"`
	Origins      []string     `json:"origins"`
	Entropy      *json.Number `json:"entropy"`
}

func decodeInfo(t *testing.T, what, body string) info {
	t.Helper()
	var in info
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		t.Fatalf("%s: info is not JSON: %v: %s", what, err, clip(body))
	}
	return in
}

// entropyOf checks entropy is an integer in [0, 2^32-1] and returns it.
func entropyOf(t *testing.T, what string, in info) uint64 {
	t.Helper()
	if in.Entropy == nil {
		t.Fatalf("%s: no entropy", what)
	}
	var n uint64
	if err := json.Unmarshal([]byte(in.Entropy.String()), &n); err != nil || n > 1<<32-1 {
		t.Fatalf("%s: entropy %s is not an integer in [0, 2^32-1]", what, in.Entropy)
	}
	return n
}

// testInfo: /info tells the client what the server can do.
func (s *suite) testInfo(t *testing.T) {
	t.Run("fields, content type, no cache, cors", func(t *testing.T) {
		u := s.url("/echo/info")
		r := s.get(t, u, "Origin", "test")
		wantStatus(t, u, r.status, 200)
		wantContentType(t, u, r.header, "application/json;charset=UTF-8")
		wantNoCookie(t, u, r.header)
		wantNotCached(t, u, r.header)
		wantCORS(t, u, r.header, "test")
		in := decodeInfo(t, u, r.body)
		if in.Websocket == nil || !*in.Websocket {
			t.Errorf("%s: websocket %v, want true", u, in.Websocket)
		}
		if in.CookieNeeded == nil {
			t.Errorf("%s: cookie_needed missing or not a boolean", u)
		}
		if len(in.Origins) != 1 || in.Origins[0] != "*:*" {
			t.Errorf("%s: origins %q, want [\"*:*\"]", u, in.Origins)
		}
		entropyOf(t, u, in)
	})
	t.Run("entropy varies", func(t *testing.T) {
		u := s.url("/echo/info")
		a := entropyOf(t, u, decodeInfo(t, u, s.get(t, u).body))
		b := entropyOf(t, u, decodeInfo(t, u, s.get(t, u).body))
		if a == b {
			t.Errorf("%s: entropy %d twice in a row", u, a)
		}
	})
	t.Run("query string is ignored", func(t *testing.T) {
		// sockjs-client keeps the user's query string on every URL.
		u := s.url("/echo/info?testqs=1&t=123")
		r := s.get(t, u)
		wantStatus(t, u, r.status, 200)
		decodeInfo(t, u, r.body)
	})
	t.Run("options preflight", func(t *testing.T) {
		s.checkOptions(t, s.url("/echo/info"), "OPTIONS", "GET")
	})
	t.Run("options with null origin echoes null", func(t *testing.T) {
		u := s.url("/echo/info")
		r := s.do(t, http.MethodOptions, u, "", "Origin", "null", "Access-Control-Request-Method", "POST")
		if r.status != 200 && r.status != 204 {
			t.Errorf("%s: status %d, want 200 or 204", u, r.status)
		}
		wantBody(t, u, r.body, "")
		if got := r.header.Get("Access-Control-Allow-Origin"); got != "null" {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want \"null\"", u, got)
		}
	})
	t.Run("disabled_websocket_echo says websocket false", func(t *testing.T) {
		u := s.url("/disabled_websocket_echo/info")
		r := s.get(t, u)
		wantStatus(t, u, r.status, 200)
		if in := decodeInfo(t, u, r.body); in.Websocket == nil || *in.Websocket {
			t.Errorf("%s: websocket %v, want false", u, in.Websocket)
		}
	})
	t.Run("cookie_needed_echo says cookie_needed true and sets no cookie", func(t *testing.T) {
		u := s.url("/cookie_needed_echo/info")
		r := s.get(t, u)
		wantStatus(t, u, r.status, 200)
		wantNoCookie(t, u, r.header)
		if in := decodeInfo(t, u, r.body); in.CookieNeeded == nil || !*in.CookieNeeded {
			t.Errorf("%s: cookie_needed %v, want true", u, in.CookieNeeded)
		}
	})
}

// testSessionURLs: /<server>/<session>/<transport> accepts any server and
// session value without dots, and the server id plays no part.
func (s *suite) testSessionURLs(t *testing.T) {
	open := func(t *testing.T, u string) {
		t.Helper()
		r := s.post(t, u, "")
		wantResponse(t, u, r, 200, "o\n")
	}
	t.Run("any server and session value opens", func(t *testing.T) {
		id := newID()
		for _, part := range []string{"/a/a" + id, "/_/_" + id, "/1/" + id, "/abcdefgh_i-j%20/abcdefg_i-j%20" + id} {
			open(t, s.url("/echo"+part+"/xhr"))
		}
	})
	t.Run("empty, dotted or wrongly nested parts are 404", func(t *testing.T) {
		for _, part := range []string{"//", "/a./a", "/a/a.", "/./.", "/", "///"} {
			u := s.url("/echo" + part + "/xhr")
			wantStatus(t, "GET "+u, s.get(t, u).status, 404)
			wantStatus(t, "POST "+u, s.post(t, u, "").status, 404)
		}
	})
	t.Run("server id is ignored", func(t *testing.T) {
		id := newID()
		open(t, s.url("/echo/000/"+id+"/xhr"))
		u := s.url("/echo/000/" + id + "/xhr_send")
		r := s.post(t, u, `["a"]`)
		wantResponse(t, u, r, 204, "")
		u = s.url("/echo/999/" + id + "/xhr")
		r = s.post(t, u, "")
		wantResponse(t, u, r, 200, "a[\"a\"]\n")
	})
}
