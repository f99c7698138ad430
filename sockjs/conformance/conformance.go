// Package conformance checks a running SockJS 0.3.3 server from the outside,
// over real sockets, against the rules that the sockjs-protocol test suite and
// sockjs-client's end-to-end tests enforce. Run it against sockjs-node to see
// that the suite is right, and against Shoal to see that Shoal is.
//
// The server must expose the SockJS test-server endpoints: /echo
// (response_limit 4096, raw websocket on), /close, /disabled_websocket_echo,
// /cookie_needed_echo, /amplify, /broadcast and /ticker.
package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// requestTimeout bounds every single HTTP exchange and socket read.
	requestTimeout = 5 * time.Second
	// sessionTimeout bounds a whole multi-message conversation.
	sessionTimeout = 30 * time.Second
)

// Run checks the server whose test endpoints live under baseURL, for example
// "http://127.0.0.1:8081". Subtests are named after the rule they check.
func Run(t *testing.T, baseURL string) {
	t.Helper()
	RunWith(t, baseURL, Options{})
}

// Options adapt Run to what stands between the suite and the server.
type Options struct {
	// HTTPProxy says an HTTP proxy (HAProxy in mode http, say) forwards
	// the suite's requests. Such a proxy re-chunks streaming responses as
	// data reaches it (two frames written a moment apart may arrive in one
	// chunk, a big frame in two), so streams are checked frame by frame
	// instead of chunk by chunk. HAProxy 2.x refuses websocket upgrades
	// without Sec-WebSocket-Key before the server sees them, so the
	// hixie-76 handshake and the POST with upgrade headers are skipped,
	// saying why. A TCP balancer, or none, lets the suite check all that.
	HTTPProxy bool
}

// RunWith is Run with options.
func RunWith(t *testing.T, baseURL string, opts Options) {
	t.Helper()
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || u.Scheme != "http" || u.Host == "" {
		t.Fatalf("conformance: base URL %q must be http://host:port", baseURL)
	}
	s := &suite{
		base: u.Scheme + "://" + u.Host + u.Path,
		host: u.Host,
		opts: opts,
		client: &http.Client{
			Timeout: requestTimeout,
			// The suite looks at raw responses: redirects and transparent
			// decompression would hide what the server really sent.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport:     &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16},
		},
	}
	t.Cleanup(s.client.CloseIdleConnections)

	groups := []struct {
		name string
		run  func(*testing.T)
	}{
		{"greeting", s.testGreeting},
		{"iframe", s.testIframe},
		{"info", s.testInfo},
		{"session urls", s.testSessionURLs},
		{"protocol", s.testProtocol},
		{"xhr polling", s.testXHRPolling},
		{"xhr streaming", s.testXHRStreaming},
		{"eventsource", s.testEventSource},
		{"htmlfile", s.testHTMLFile},
		{"jsonp polling", s.testJSONP},
		{"jsessionid cookie", s.testJSessionID},
		{"websocket http errors", s.testWebsocketHTTPErrors},
		{"websocket", s.testWebsocket},
		{"websocket hixie-76", s.testHixie76},
		{"raw websocket", s.testRawWebsocket},
		{"json unicode encoding", s.testJSONEncoding},
		{"handling close", s.testHandlingClose},
		{"http 1.0", s.testHTTP10},
		{"http 1.1", s.testHTTP11},
		{"transports", s.testTransports},
		{"apps", s.testApps},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.run(t)
		})
	}
}

// suite holds what every check needs: where the server is and an HTTP client
// whose every call is bounded by requestTimeout.
type suite struct {
	base   string // scheme://host[:port][/path], no trailing slash
	host   string // host[:port], for raw connections and Host headers
	client *http.Client
	opts   Options
}

// url joins the base URL and a path.
func (s *suite) url(path string) string { return s.base + path }

// sessionURL returns a fresh session URL under prefix: base/prefix/000/<id>.
func (s *suite) sessionURL(prefix string) string {
	return s.base + prefix + "/000/" + newID()
}

// newID returns a random session id, so runs never collide on the server.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// response is a fully read HTTP response.
type response struct {
	status int
	header http.Header
	body   string
}

// do performs one HTTP request; headers come as name, value pairs.
func (s *suite) do(t *testing.T, method, rawURL, body string, headers ...string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, rawURL, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (s *suite) get(t *testing.T, u string, headers ...string) response {
	t.Helper()
	return s.do(t, http.MethodGet, u, "", headers...)
}

func (s *suite) post(t *testing.T, u, body string, headers ...string) response {
	t.Helper()
	return s.do(t, http.MethodPost, u, body, headers...)
}

// header reads a header from either a parsed or a raw response.
type headerGetter interface{ Get(string) string }

func wantStatus(t *testing.T, what string, got, want int) {
	t.Helper()
	if got != want {
		t.Errorf("%s: status %d, want %d", what, got, want)
	}
}

func wantBody(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s: body %s, want %s", what, clip(got), clip(want))
	}
}

// wantResponse checks r's status, then its body.
func wantResponse(t *testing.T, what string, r response, status int, body string) {
	t.Helper()
	wantStatus(t, what, r.status, status)
	wantBody(t, what, r.body, body)
}

func wantContains(t *testing.T, what, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Errorf("%s: body %s does not contain %q", what, clip(got), want)
	}
}

// clip quotes s, shortened for failure messages.
func clip(s string) string {
	const max = 200
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…(" + strconv.Itoa(len(s)) + " bytes)"
	}
	return strconv.Quote(s)
}

// wantContentType compares Content-Type ignoring spaces, as the protocol suite does.
func wantContentType(t *testing.T, what string, h headerGetter, want string) {
	t.Helper()
	if got := strings.ReplaceAll(h.Get("Content-Type"), " ", ""); got != want {
		t.Errorf("%s: Content-Type %q, want %q", what, h.Get("Content-Type"), want)
	}
}

func wantNoHeader(t *testing.T, what string, h headerGetter, name string) {
	t.Helper()
	if v := h.Get(name); v != "" {
		t.Errorf("%s: unexpected %s: %q", what, name, v)
	}
}

func wantNoCookie(t *testing.T, what string, h headerGetter) {
	t.Helper()
	wantNoHeader(t, what, h, "Set-Cookie")
}

// wantNotCached: private data fetched with GET or POST must never be cached.
func wantNotCached(t *testing.T, what string, h headerGetter) {
	t.Helper()
	if got, want := h.Get("Cache-Control"), "no-store, no-cache, no-transform, must-revalidate, max-age=0"; got != want {
		t.Errorf("%s: Cache-Control %q, want %q", what, got, want)
	}
	wantNoHeader(t, what, h, "Expires")
	wantNoHeader(t, what, h, "Last-Modified")
}

var longMaxAge = regexp.MustCompile(`max-age=[1-9][0-9]{6}`)

// wantCacheable: static answers must be publicly cacheable for a long time.
func wantCacheable(t *testing.T, what string, h headerGetter) {
	t.Helper()
	cc := h.Get("Cache-Control")
	if !strings.Contains(cc, "public") || !longMaxAge.MatchString(cc) {
		t.Errorf("%s: Cache-Control %q, want public with a max-age of at least 7 digits (one year is best)", what, cc)
	}
	if h.Get("Expires") == "" {
		t.Errorf("%s: no Expires header", what)
	}
}

// wantCORS: with an Origin the server echoes it and allows credentials, so
// JSESSIONID cookies can fly.
func wantCORS(t *testing.T, what string, h headerGetter, origin string) {
	t.Helper()
	if got := h.Get("Access-Control-Allow-Origin"); got != origin {
		t.Errorf("%s: Access-Control-Allow-Origin %q, want %q", what, got, origin)
	}
	if got := h.Get("Access-Control-Allow-Credentials"); got != "true" {
		t.Errorf("%s: Access-Control-Allow-Credentials %q, want \"true\"", what, got)
	}
}

// checkOptions checks a CORS preflight on u for both a normal and a "null"
// origin (pages loaded from file://).
func (s *suite) checkOptions(t *testing.T, u string, methods ...string) {
	t.Helper()
	for _, origin := range []string{"test", "null"} {
		r := s.do(t, http.MethodOptions, u, "", "Origin", origin,
			"Access-Control-Request-Method", strings.Join(methods, ", "))
		what := "OPTIONS " + u + " with Origin " + origin
		if r.status != http.StatusOK && r.status != http.StatusNoContent {
			t.Errorf("%s: status %d, want 200 or 204", what, r.status)
		}
		wantCacheable(t, what, r.header)
		if n, err := strconv.Atoi(r.header.Get("Access-Control-Max-Age")); err != nil || n <= 1000000 {
			t.Errorf("%s: Access-Control-Max-Age %q, want more than 1000000", what, r.header.Get("Access-Control-Max-Age"))
		}
		allowed := r.header.Get("Access-Control-Allow-Methods")
		for _, m := range methods {
			if !strings.Contains(allowed, m) {
				t.Errorf("%s: Access-Control-Allow-Methods %q lacks %s", what, allowed, m)
			}
		}
		wantBody(t, what, r.body, "")
		wantCORS(t, what, r.header, origin)
	}
}
