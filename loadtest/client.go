package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Transport names a SockJS transport the client speaks.
type Transport string

// The transports the load generator can open sessions with.
const (
	TransportWebsocket    Transport = "websocket"
	TransportXHRPolling   Transport = "xhr-polling"
	TransportXHRStreaming Transport = "xhr-streaming"
	TransportEventSource  Transport = "eventsource"
)

// Transports lists every transport, in the order flags document them.
var Transports = []Transport{TransportWebsocket, TransportXHRPolling, TransportXHRStreaming, TransportEventSource}

// maxFrameBytes bounds one frame (or one poll response) read from a server.
const maxFrameBytes = 4 << 20

// ErrReadIdle ends a websocket or streaming session whose server sent
// nothing, not even a heartbeat, within ClientConfig.ReadIdleTimeout.
var ErrReadIdle = errors.New("loadtest: no frame, not even a heartbeat, within the read timeout")

// watchdog calls expire once if it is not fed for d.
type watchdog struct {
	t       *time.Timer
	d       time.Duration
	expired atomic.Bool
}

func newWatchdog(d time.Duration, expire func()) *watchdog {
	w := &watchdog{d: d}
	w.t = time.AfterFunc(d, func() {
		w.expired.Store(true)
		expire()
	})
	return w
}

func (w *watchdog) feed() { w.t.Reset(w.d) }

// stop stops the watchdog once the read loop returned err, and says why the
// loop ended: ErrReadIdle when the watchdog cut it.
func (w *watchdog) stop(err error) error {
	w.t.Stop()
	if w.expired.Load() {
		return ErrReadIdle
	}
	return err
}

// ErrSessionClosed is returned by Send on a session that has ended.
var ErrSessionClosed = errors.New("loadtest: session closed")

// CloseError is the close frame a server ended a session with.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("loadtest: session closed by server: %d %q", e.Code, e.Reason)
}

// SessionHandler receives a session's events. Both callbacks run on the
// session's receive goroutine, so they must not block for long.
type SessionHandler struct {
	// OnMessage is called for every message, in the order the server sent them.
	OnMessage func(msg string)
	// OnClose is called once when the session ends: with a *CloseError for a
	// close frame, another error for a transport failure, nil when the
	// client closed it.
	OnClose func(err error)
}

// Session is one open SockJS session. Send may be called concurrently.
type Session interface {
	Send(ctx context.Context, msgs ...string) error
	// Close ends the session from the client side and waits for its
	// receive goroutine.
	Close()
	// Done is closed once the session has ended and OnClose has returned.
	Done() <-chan struct{}
}

// ClientConfig configures a Client. The zero value of every field but URL is
// a default.
type ClientConfig struct {
	// URL is the server's root, e.g. http://127.0.0.1:8080; sessions are
	// opened under an endpoint prefix below it.
	URL string
	// SourceIPs spreads outgoing connections over this many local addresses
	// 127.0.0.1, 127.0.0.2, … so that more connections than one ephemeral
	// port range holds can be opened; 0 or 1 lets the kernel choose.
	SourceIPs int
	// AllowRemote permits a target that is not a loopback address.
	AllowRemote bool
	// MaxIdleConns sizes the HTTP connection pool (default 1024).
	MaxIdleConns int
	// RequestTimeout bounds every HTTP request but long-lived streams
	// (default 40 s: longer than the 25 s heartbeat a parked poll may wait).
	RequestTimeout time.Duration
	// ReadIdleTimeout ends a websocket or stream that sent no frame for
	// this long (default 60 s: over twice the 25 s heartbeat).
	ReadIdleTimeout time.Duration
}

// Client opens SockJS sessions against one server. Safe for concurrent use.
type Client struct {
	base   *url.URL // http or https, path without trailing slash
	wsBase string
	http   *http.Client
	reqTO  time.Duration
	idleTO time.Duration
	dialer *sourceDialer

	// BusyRetries counts receiving requests answered with 2010 while this
	// client had no other receiver open on the session, and retried.
	BusyRetries atomic.Int64
	// StreamReopens counts streaming responses the server ended (at its
	// response_limit) and the client opened again.
	StreamReopens atomic.Int64
}

// NewClient checks the target (loopback unless AllowRemote) and builds the
// shared connection pool.
func NewClient(ctx context.Context, cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("loadtest: bad url: %w", err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "http"
	case "https", "wss":
		u.Scheme = "https"
	default:
		return nil, fmt.Errorf("loadtest: url scheme %q: want http, https, ws or wss", u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("loadtest: url %q has no host", cfg.URL)
	}
	if !cfg.AllowRemote {
		if err := checkLoopback(ctx, u.Hostname()); err != nil {
			return nil, err
		}
	}
	if cfg.SourceIPs > 1 && cfg.AllowRemote {
		// 127.x source addresses only reach loopback targets.
		if err := checkLoopback(ctx, u.Hostname()); err != nil {
			return nil, fmt.Errorf("loadtest: --source-ips needs a loopback target: %w", err)
		}
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	if cfg.MaxIdleConns <= 0 {
		cfg.MaxIdleConns = 1024
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 40 * time.Second
	}
	if cfg.ReadIdleTimeout <= 0 {
		cfg.ReadIdleTimeout = 60 * time.Second
	}
	d, err := newSourceDialer(cfg.SourceIPs)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConns:        cfg.MaxIdleConns,
		MaxIdleConnsPerHost: cfg.MaxIdleConns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	ws := *u
	ws.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	return &Client{
		base:   u,
		wsBase: ws.String(),
		http:   &http.Client{Transport: tr},
		reqTO:  cfg.RequestTimeout,
		idleTO: cfg.ReadIdleTimeout,
		dialer: d,
	}, nil
}

// CloseIdle releases pooled connections.
func (c *Client) CloseIdle() {
	c.http.CloseIdleConnections()
}

// Open opens a session of the endpoint under prefix (e.g. "/echo") on the
// given transport and returns once the server's open frame has arrived.
func (c *Client) Open(ctx context.Context, prefix string, t Transport, h SessionHandler) (Session, error) {
	if h.OnMessage == nil {
		h.OnMessage = func(string) {}
	}
	if h.OnClose == nil {
		h.OnClose = func(error) {}
	}
	path := cleanPrefix(prefix) + sessionPath()
	switch t {
	case TransportWebsocket:
		return openWebsocket(ctx, c, path, h)
	case TransportXHRPolling:
		return openXHRPolling(ctx, c, path, h)
	case TransportXHRStreaming:
		return openStream(ctx, c, path, h, xhrStreamingKind)
	case TransportEventSource:
		return openStream(ctx, c, path, h, eventSourceKind)
	}
	return nil, fmt.Errorf("loadtest: unknown transport %q", t)
}

// Info fetches the endpoint's /info, the cheapest way to see it is up.
func (c *Client) Info(ctx context.Context, prefix string) error {
	ctx, cancel := context.WithTimeout(ctx, c.reqTO)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+cleanPrefix(prefix)+"/info", nil)
	if err != nil {
		return fmt.Errorf("loadtest: info: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("loadtest: info: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("loadtest: info: status %d", resp.StatusCode)
	}
	return nil
}

// post sends one bounded request and returns the body, read whole. A body
// goes as text/plain, unless header (added to the request) says otherwise.
func (c *Client) post(ctx context.Context, path string, body []byte, header http.Header) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.reqTO)
	defer cancel()
	var r io.Reader
	if body != nil {
		r = strings.NewReader(string(body))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+path, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxFrameBytes+1))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if len(b) > maxFrameBytes {
		return resp.StatusCode, nil, fmt.Errorf("%w: response over %d bytes", errBadFrame, maxFrameBytes)
	}
	return resp.StatusCode, b, nil
}

// send posts messages to xhr_send, the sending half of every HTTP transport.
func (c *Client) send(ctx context.Context, path string, msgs []string) error {
	code, body, err := c.post(ctx, path+"/xhr_send", encodeMessages(msgs), nil)
	if err != nil {
		return fmt.Errorf("loadtest: xhr_send: %w", err)
	}
	switch code {
	case http.StatusNoContent, http.StatusOK:
		return nil
	case http.StatusNotFound:
		return ErrSessionClosed
	}
	return fmt.Errorf("loadtest: xhr_send: status %d: %q", code, truncate(body, 80))
}

// cleanPrefix returns prefix with one leading and no trailing slash.
func cleanPrefix(prefix string) string {
	p := strings.Trim(prefix, "/")
	if p == "" {
		return ""
	}
	return "/" + p
}

// maxBusyRetries bounds retries of a receiving request refused with 2010.
const maxBusyRetries = 50

// isBusy reports a close frame 2010 "Another connection still open".
func isBusy(f frame) bool { return f.kind == frameClose && f.code == 2010 }

// busyBackoff counts a busy retry and waits before it, longer each time.
func (c *Client) busyBackoff(ctx context.Context, attempt int) error {
	if attempt > maxBusyRetries {
		return &CloseError{Code: 2010, Reason: fmt.Sprintf("Another connection still open (%d retries)", maxBusyRetries)}
	}
	c.BusyRetries.Add(1)
	return sleepCtx(ctx, time.Duration(attempt)*200*time.Microsecond)
}

// sessionPath returns "/<server>/<session>" with a random server number and
// a random session id, as sockjs-client makes them.
func sessionPath() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(1000))
	var id [8]byte
	_, _ = rand.Read(id[:])
	return fmt.Sprintf("/%03d/%s", n.Int64(), hex.EncodeToString(id[:]))
}

// checkLoopback refuses a host that is not, or does not resolve only to,
// loopback addresses.
func checkLoopback(ctx context.Context, host string) error {
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("loadtest: target %s is not a loopback address (pass --allow-remote to load a remote server)", host)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("loadtest: resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("loadtest: %s resolves to nothing", host)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Errorf("loadtest: target %s resolves to %s, not loopback (pass --allow-remote to load a remote server)", host, a.IP)
		}
	}
	return nil
}
