package sockjs

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"html"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/shoal-rt/shoal/store"
)

// Endpoint serves one SockJS service under Settings.Prefix. It is an
// http.Handler for every path under the prefix and the prefix itself; mount
// it for both (with http.ServeMux: mux.Handle(prefix, e) and
// mux.Handle(prefix+"/", e)), since the protocol wants the greeting at both.
type Endpoint struct {
	node     *Node
	handler  Handler
	settings Settings
	disabled map[string]bool

	iframe     []byte
	iframeETag string

	chanMu     sync.Mutex                      // serialises HandleChannels
	chanRoutes atomic.Pointer[[]*channelRoute] // see channels.go

	takeOptsOnce          sync.Once // see takeOptions
	takeOpts, handOffOpts []store.DrainOption

	clientSessions [1024]atomic.Pointer[clientSessionIDs] // see clientSession
}

// NewEndpoint mounts handler on the node with settings (zero fields take
// their defaults). The prefix must be unique on the node, and the same on
// every node of a cluster.
func (n *Node) NewEndpoint(handler Handler, settings Settings) (*Endpoint, error) {
	if handler == nil {
		return nil, errors.New("sockjs: nil Handler")
	}
	if err := settings.fillDefaults(); err != nil {
		return nil, err
	}
	if len(settings.AllowedOrigins) == 0 {
		settings.AllowedOrigins = n.cfg.AllowedOrigins
	}
	e := &Endpoint{node: n, handler: handler, settings: settings, disabled: make(map[string]bool)}
	for _, t := range settings.DisabledTransports {
		e.disabled[t] = true
	}
	if settings.DisableWebsocket {
		e.disabled[TransportWebsocket] = true
	}
	if e.disabled[TransportWebsocket] {
		e.settings.RawWebsocket = false
	}
	e.iframe = []byte(strings.Replace(iframeTemplate, "{{sockjs_url}}", html.EscapeString(settings.SockJSURL), 1))
	sum := md5.Sum(e.iframe)
	e.iframeETag = `"` + hex.EncodeToString(sum[:]) + `"`
	if err := n.addEndpoint(e); err != nil {
		return nil, err
	}
	return e, nil
}

// Prefix returns the URL prefix the endpoint serves.
func (e *Endpoint) Prefix() string { return e.settings.Prefix }

// Settings returns the endpoint's settings, defaults filled in.
func (e *Endpoint) Settings() Settings { return e.settings }

// Session returns a handle on the session with the given ID (as returned
// by Session.ID), from any node. The session need not exist: methods then
// report ErrSessionClosed.
func (e *Endpoint) Session(id string) *Session {
	return e.sessionFor(id, e.keyOf(id), nil)
}

func (e *Endpoint) sessionFor(id, key string, info []byte) *Session {
	return &Session{ep: e, id: id, key: key, infoRaw: info}
}

func (e *Endpoint) keyOf(id string) string { return e.settings.Prefix + "/" + id }

// idFromClientSession derives the session ID from the id the client chose,
// so the client's id (which lets anyone who knows it read the session)
// never reaches the application. 22 base64url characters; websocket
// sessions get 26-character ULIDs, so the two never collide.
func idFromClientSession(sid string) string {
	sum := sha256.Sum256([]byte(sid))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// clientSession returns the session ID (idFromClientSession) and store key
// of the client's session id sid. Recent ones are remembered, one per slot
// of a hash of sid: each message of a polling session costs two (its send
// and its poll), a SHA-256, an encoding and a concatenation each.
func (e *Endpoint) clientSession(sid string) (id, key string) {
	slot := &e.clientSessions[maphash.String(clientSessionSeed, sid)%uint64(len(e.clientSessions))]
	if p := slot.Load(); p != nil && p.sid == sid {
		return p.id, p.key
	}
	id = idFromClientSession(sid)
	key = e.keyOf(id)
	slot.Store(&clientSessionIDs{sid: sid, id: id, key: key})
	return id, key
}

var clientSessionSeed = maphash.MakeSeed()

// clientSessionIDs is a remembered clientSession; never changed, only
// replaced.
type clientSessionIDs struct{ sid, id, key string }

// isWebsocketID tells websocket session IDs (ULIDs) from the others.
func isWebsocketID(id string) bool { return len(id) == ulid.EncodedSize }

// runOnOpen runs OnOpen for a session this node created; an error (or a
// panic) closes the session without OnClose (closeRejected).
func (e *Endpoint) runOnOpen(s *Session) {
	e.node.stats.opened.Add(1)
	opened := make(chan struct{})
	e.node.opening.Store(s.key, opened)
	defer func() {
		e.node.opening.Delete(s.key)
		close(opened)
	}()
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				e.node.log.Error("sockjs: OnOpen panicked", "prefix", e.settings.Prefix, "panic", p)
				err = fmt.Errorf("sockjs: OnOpen panicked: %v", p)
			}
		}()
		return e.handler.OnOpen(s)
	}()
	if err == nil {
		return
	}
	code, reason := CodeOpenRejected, ReasonOpenRejected
	var ce *CloseError
	if errors.As(err, &ce) {
		code, reason = ce.Code, ce.Reason
	}
	e.closeRejected(s, code, reason)
}

// closeRejected closes a session whose OnOpen failed. OnClose is for
// sessions OnOpen accepted, so it does not run (as a constructor that
// fails has nothing to clean up); the session only leaves the channels
// OnOpen may have joined. Should something else close the session while
// OnOpen ran (Session.Close from another node), that close won and ran
// OnClose.
func (e *Endpoint) closeRejected(s *Session, code int, reason string) {
	ctx, cancel := e.node.opContext()
	defer cancel()
	won, err := e.node.store.Close(ctx, s.key, code, reason)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return
	case err != nil:
		e.node.log.Warn("sockjs: close after OnOpen error", "err", err)
		return
	case won:
		e.node.stats.closed.Add(1)
		e.leaveChannels(s)
	}
	e.node.wakeReceiver(ctx, s.key)
}

// runOnMessage delivers one message, containing a handler panic.
func (e *Endpoint) runOnMessage(s *Session, msg string) {
	e.node.stats.recv.Add(1)
	defer func() {
		if p := recover(); p != nil {
			e.node.log.Error("sockjs: OnMessage panicked", "prefix", e.settings.Prefix, "panic", p)
		}
	}()
	e.handler.OnMessage(s, msg)
}

// runOnClose runs OnClose on its own goroutine, after OnOpen of the same
// session has returned if it is still running on this node.
func (e *Endpoint) runOnClose(s *Session) {
	e.node.stats.closed.Add(1)
	started := e.node.goFunc(func() {
		if ch, ok := e.node.opening.Load(s.key); ok {
			<-ch.(chan struct{})
		}
		// Its channels are left after OnClose (which may still list
		// them), even if OnClose panics.
		defer e.leaveChannels(s)
		defer func() {
			if p := recover(); p != nil {
				e.node.log.Error("sockjs: OnClose panicked", "prefix", e.settings.Prefix, "panic", p)
			}
		}()
		e.handler.OnClose(s)
	})
	if !started {
		// Shutting down: run it here rather than lose it.
		e.handler.OnClose(s)
		e.leaveChannels(s)
	}
}

// Routing. Paths under the prefix:
//
//	""  "/"                          greeting
//	"/info" "/iframe*.html" "/websocket"
//	"/<server>/<session>/<transport>"
//
// Each may end with one extra slash, as sockjs-node's routes allow.
func (e *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !e.originAllowed(r) {
		httpError(w, http.StatusForbidden, "Origin not allowed.")
		return
	}
	r = e.node.withClientIP(r)
	path := r.URL.EscapedPath()
	rest, ok := strings.CutPrefix(path, e.settings.Prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		notFound(w)
		return
	}
	if rest == "" || rest == "/" {
		if allowMethods(w, r, "GET") {
			e.serveGreeting(w)
		}
		return
	}
	rest = strings.TrimSuffix(rest[1:], "/")
	switch strings.Count(rest, "/") {
	case 0:
		e.serveTopLevel(w, r, rest)
	case 2:
		server, rest, _ := strings.Cut(rest, "/")
		session, transport, _ := strings.Cut(rest, "/")
		if !validSessionPart(server) || !validSessionPart(session) {
			notFound(w)
			return
		}
		e.serveSession(w, r, session, transport)
	default:
		notFound(w)
	}
}

// maxSessionPartLen bounds the server and session parts of a session URL
// (sockjs-client sends 3 and 8 characters); a longer one is a 404, like
// any other invalid part, so it never reaches the store.
const maxSessionPartLen = 64

func validSessionPart(s string) bool {
	return s != "" && len(s) <= maxSessionPartLen && !strings.Contains(s, ".")
}

func (e *Endpoint) serveTopLevel(w http.ResponseWriter, r *http.Request, name string) {
	switch {
	case name == "info":
		if allowMethods(w, r, "OPTIONS, GET") {
			e.serveInfo(w, r)
		}
	case isIframeName(name):
		if allowMethods(w, r, "GET") {
			e.serveIframe(w, r)
		}
	case name == "websocket" && e.settings.RawWebsocket:
		if allowMethods(w, r, "GET") {
			e.serveWebsocket(w, r, true)
		}
	default:
		notFound(w)
	}
}

// sessionRoute serves one transport URL under a session.
type sessionRoute struct {
	transport string // the DisabledTransports name that turns it off; "" never
	methods   string // allowed methods, for the Allow header and OPTIONS
	serve     func(e *Endpoint, w http.ResponseWriter, r *http.Request, sid string)
}

var sessionRoutes = map[string]sessionRoute{
	"xhr":           {TransportXHR, "OPTIONS, POST", (*Endpoint).serveXHRPolling},
	"xhr_send":      {"", "OPTIONS, POST", (*Endpoint).serveXHRSend},
	"xhr_streaming": {TransportXHRStreaming, "OPTIONS, POST", (*Endpoint).serveXHRStreaming},
	"eventsource":   {TransportEventSource, "GET", (*Endpoint).serveEventSource},
	"htmlfile":      {TransportHTMLFile, "GET", (*Endpoint).serveHTMLFile},
	"jsonp":         {TransportJSONP, "GET", (*Endpoint).serveJSONP},
	"jsonp_send":    {TransportJSONP, "POST", (*Endpoint).serveJSONPSend},
	"websocket": {TransportWebsocket, "GET", func(e *Endpoint, w http.ResponseWriter, r *http.Request, _ string) {
		e.serveWebsocket(w, r, false)
	}},
}

func (e *Endpoint) serveSession(w http.ResponseWriter, r *http.Request, sid, transport string) {
	route, ok := sessionRoutes[transport]
	if !ok || (route.transport != "" && e.disabled[route.transport]) {
		notFound(w)
		return
	}
	if allowMethods(w, r, route.methods) {
		route.serve(e, w, r, sid)
	}
}

// allowMethods answers 405 with an Allow header (and no body) unless
// r.Method is in allowed, a ", " separated list.
func allowMethods(w http.ResponseWriter, r *http.Request, allowed string) bool {
	for rest := allowed; rest != ""; {
		var m string
		m, rest, _ = strings.Cut(rest, ", ")
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", allowed)
	w.WriteHeader(http.StatusMethodNotAllowed)
	return false
}

func isIframeName(name string) bool {
	mid, ok := strings.CutPrefix(name, "iframe")
	if !ok {
		return false
	}
	mid, ok = strings.CutSuffix(mid, ".html")
	if !ok {
		return false
	}
	for i := 0; i < len(mid); i++ {
		c := mid[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// Header helpers.

const (
	contentTypePlain = "text/plain; charset=UTF-8"
	contentTypeJS    = "application/javascript; charset=UTF-8"
	contentTypeJSON  = "application/json; charset=UTF-8"
	contentTypeHTML  = "text/html; charset=UTF-8"
	noCacheValue     = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
	oneYear          = 365 * 24 * time.Hour
)

var oneYearSeconds = strconv.Itoa(int(oneYear / time.Second))

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", contentTypePlain)
	w.WriteHeader(http.StatusNotFound)
	w.Write([]byte("404 Error: Page not found\n"))
}

// httpError answers with status and a plain-text message (the protocol
// checks the texts of 500s such as "Payload expected.").
func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", contentTypePlain)
	w.WriteHeader(status)
	w.Write([]byte(msg))
}

// Header values every response of a kind sets, made once: assigned
// straight into the header map (under canonical keys), they cost no slice
// and no key canonicalisation per response. net/http copies them as it
// writes the header; nothing changes them in place, and an Add after them
// appends to a copy (each has no room to grow).
var (
	noCacheHeader          = []string{noCacheValue}
	contentTypeJSHeader    = []string{contentTypeJS}
	contentTypePlainHeader = []string{contentTypePlain}
	anyOriginHeader        = []string{"*"}
	credentialsHeader      = []string{"true"}
	varyOriginHeader       = []string{"Origin"}
)

func noCache(h http.Header) { h["Cache-Control"] = noCacheHeader }

func cacheForAYear(h http.Header) {
	h.Set("Cache-Control", "public, max-age="+oneYearSeconds)
	h.Set("Expires", time.Now().Add(oneYear).UTC().Format(http.TimeFormat))
}

// cors answers every origin, as the SockJS protocol requires: the Origin
// echoed with credentials allowed (cookies such as JSESSIONID must fly), or
// * without credentials when the request has no Origin; requested headers
// are allowed.
func cors(h http.Header, r *http.Request) {
	// Request header keys are canonical (net/http reads them so): indexed
	// directly, without Header.Get's canonicalisation.
	if origin := firstValue(r.Header["Origin"]); origin != "" {
		h["Access-Control-Allow-Origin"] = []string{origin}
		h["Access-Control-Allow-Credentials"] = credentialsHeader
	} else {
		h["Access-Control-Allow-Origin"] = anyOriginHeader
	}
	if vary, ok := h["Vary"]; ok {
		h["Vary"] = append(vary, "Origin")
	} else {
		h["Vary"] = varyOriginHeader
	}
	if rh := firstValue(r.Header["Access-Control-Request-Headers"]); rh != "" {
		h.Set("Access-Control-Allow-Headers", rh)
	}
}

// firstValue is the first of a header's values, "" without any.
func firstValue(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

func (e *Endpoint) jsessionid(w http.ResponseWriter, r *http.Request) {
	if e.settings.JSessionID != nil {
		e.settings.JSessionID(w, r)
	}
}

// serveOptions answers a CORS preflight: cacheable for a year.
func (e *Endpoint) serveOptions(w http.ResponseWriter, r *http.Request, methods string) {
	h := w.Header()
	e.jsessionid(w, r)
	cors(h, r)
	cacheForAYear(h)
	h.Set("Access-Control-Allow-Methods", methods)
	h.Set("Access-Control-Max-Age", oneYearSeconds)
	w.WriteHeader(http.StatusNoContent)
}

func (e *Endpoint) serveGreeting(w http.ResponseWriter) {
	w.Header().Set("Content-Type", contentTypePlain)
	w.Write([]byte("Welcome to SockJS!\n"))
}

func (e *Endpoint) serveInfo(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodOptions {
		e.serveOptions(w, r, "OPTIONS, GET")
		return
	}
	h := w.Header()
	cors(h, r)
	noCache(h)
	h.Set("Content-Type", contentTypeJSON)
	b := make([]byte, 0, 96)
	b = append(b, `{"websocket":`...)
	b = strconv.AppendBool(b, !e.disabled[TransportWebsocket])
	b = append(b, `,"origins":["*:*"],"cookie_needed":`...)
	b = strconv.AppendBool(b, e.settings.JSessionID != nil)
	b = append(b, `,"entropy":`...)
	b = strconv.AppendUint(b, uint64(rand.Uint32()), 10)
	b = append(b, '}')
	w.Write(b)
}

// The iframe page: it loads sockjs-client from SockJSURL and hands over to
// it (cross-domain transports run inside it).
const iframeTemplate = `<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{{sockjs_url}}"></script>
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

func (e *Endpoint) serveIframe(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if csp := e.frameAncestors(); csp != "" {
		h.Set("Content-Security-Policy", csp)
	}
	if r.Header.Get("If-None-Match") == e.iframeETag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", contentTypeHTML)
	h.Set("ETag", e.iframeETag)
	cacheForAYear(h)
	w.Write(e.iframe)
}
