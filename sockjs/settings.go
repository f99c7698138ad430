package sockjs

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/shoal-rt/shoal/store"
)

// Defaults for zero Settings fields.
const (
	DefaultResponseLimit     = 128 * 1024
	DefaultHeartbeatDelay    = 25 * time.Second
	DefaultDisconnectDelay   = 5 * time.Second
	DefaultSockJSURL         = "https://cdn.jsdelivr.net/npm/sockjs-client@1.6.1/dist/sockjs.min.js"
	DefaultMaxMessageSize    = 1 << 20
	DefaultMaxQueuedMessages = 1024
	DefaultMaxQueuedBytes    = 4 << 20
	DefaultMaxChannels       = 64
	DefaultWriteTimeout      = 10 * time.Second
)

// Transport names, as they appear at the end of session URLs; used in
// Settings.DisabledTransports and ConnectionInfo.Transport.
const (
	TransportWebsocket    = "websocket"
	TransportRawWebsocket = "websocket-raw"
	TransportXHR          = "xhr"
	TransportXHRStreaming = "xhr_streaming"
	TransportEventSource  = "eventsource"
	TransportHTMLFile     = "htmlfile"
	TransportJSONP        = "jsonp"
)

// Settings configure one endpoint. A zero field means its default, filled
// in by Node.NewEndpoint.
type Settings struct {
	// Prefix is the URL path the endpoint serves, e.g. "/echo"; no
	// trailing slash. It also namespaces the endpoint's sessions in the
	// store, so two endpoints may see the same client session id.
	Prefix string
	// ResponseLimit is how many bytes a streaming response carries before
	// it is closed so the browser can free it (SockJS response_limit). It
	// also bounds the messages one poll or one stream write takes from the
	// queue (their lengths summed; one message bigger than it still goes,
	// alone): the rest stays queued for the next.
	ResponseLimit int
	// HeartbeatDelay is how long a receiver stays silent before an 'h'
	// frame is sent; a poll with nothing to deliver returns 'h' then.
	HeartbeatDelay time.Duration
	// DisconnectDelay is how long a session lives without a receiver.
	DisconnectDelay time.Duration
	// DisabledTransports lists transports (Transport* names) that answer
	// 404. Disabling TransportJSONP disables jsonp_send as well.
	DisabledTransports []string
	// DisableWebsocket turns off the SockJS websocket transport (and the
	// raw one); /info then reports websocket: false.
	DisableWebsocket bool
	// InfoHeaders names request headers to keep in Session.Info besides
	// the default ones (sockjs-node's list plus Origin), e.g.
	// "Authorization" for a handler that authenticates in OnOpen. They are
	// stored with the session, in the store, for its whole life.
	InfoHeaders []string
	// RawWebsocket serves a plain websocket without SockJS framing at
	// <prefix>/websocket, for non-browser clients.
	RawWebsocket bool
	// SockJSURL is the sockjs-client script the iframe page loads.
	SockJSURL string
	// JSessionID, when set, is called on every session request that may
	// set cookies, so a load balancer that needs a JSESSIONID cookie for
	// stickiness sees one; /info then reports cookie_needed: true.
	// DefaultJSessionID does what sockjs-node does.
	JSessionID func(w http.ResponseWriter, r *http.Request)
	// AllowedOrigins, when set, lists the origins whose pages may use the
	// endpoint: a request with any other Origin header gets 403 (no CORS
	// answer, no websocket). Entries are "*", "scheme://host[:port]", or
	// a host without scheme; "*." before the host allows its subdomains.
	// Requests without Origin and same-origin requests always pass. Empty:
	// any origin, the SockJS default (see origin.go).
	AllowedOrigins []string
	// CheckOrigin, when set, must return true for a websocket upgrade to
	// be accepted; otherwise any origin may connect (SockJS serves every
	// origin, like its CORS answers).
	CheckOrigin func(r *http.Request) bool
	// MaxMessageSize bounds one incoming HTTP body or websocket frame, in
	// bytes. Default 1 MiB: sockjs-client joins every message queued while
	// a send is in flight into one xhr_send body, so a burst of small
	// messages makes one big body. A bigger send body gets 413 and a bigger frame closes the
	// websocket; either closes the session with CodeMessageTooBig.
	MaxMessageSize int64
	// MaxQueuedMessages bounds the messages waiting for one session (in
	// the store, or in a live websocket's write queue). Overflow closes the
	// session with CodeQueueOverflow rather than stall senders.
	MaxQueuedMessages int
	// MaxQueuedBytes bounds the bytes of messages (their lengths summed)
	// waiting for one session (in the store, or in a live websocket's
	// write queue); overflow closes the session with CodeQueueOverflow, as
	// MaxQueuedMessages does, so it must exceed the largest message sent.
	// Default 4 MiB.
	MaxQueuedBytes int
	// MaxChannels bounds the channels one session may be subscribed to
	// (Session.Subscribe returns ErrTooManyChannels beyond it).
	MaxChannels int
	// WriteTimeout bounds one write to a websocket; a client that does
	// not take a frame in time is disconnected.
	WriteTimeout time.Duration
}

// queueLimits is what Append is given for a session of the endpoint.
func (s *Settings) queueLimits() store.QueueLimits {
	return store.QueueLimits{Messages: s.MaxQueuedMessages, Bytes: s.MaxQueuedBytes}
}

// drainLimit bounds what one poll or stream write takes from the queue.
func (s *Settings) drainLimit() store.DrainOption { return store.MaxBytes(s.ResponseLimit) }

// DefaultJSessionID sets JSESSIONID to the value the client sent, or to
// "dummy", with path=/ (sockjs-node's behaviour).
func DefaultJSessionID(w http.ResponseWriter, r *http.Request) {
	v := "dummy"
	if c, err := r.Cookie("JSESSIONID"); err == nil && c.Value != "" {
		v = c.Value
	}
	w.Header().Set("Set-Cookie", "JSESSIONID="+v+"; path=/")
}

// orDefault sets *v to def when it is zero (or negative): a zero field of
// Settings or NodeConfig means the default.
func orDefault[T ~int | ~int64](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

func (s *Settings) fillDefaults() error {
	if s.Prefix != "" && (!strings.HasPrefix(s.Prefix, "/") || strings.HasSuffix(s.Prefix, "/")) {
		return fmt.Errorf("sockjs: prefix %q must start with / and not end with /", s.Prefix)
	}
	orDefault(&s.ResponseLimit, DefaultResponseLimit)
	orDefault(&s.HeartbeatDelay, DefaultHeartbeatDelay)
	orDefault(&s.DisconnectDelay, DefaultDisconnectDelay)
	if s.SockJSURL == "" {
		s.SockJSURL = DefaultSockJSURL
	}
	orDefault(&s.MaxMessageSize, DefaultMaxMessageSize)
	orDefault(&s.MaxQueuedMessages, DefaultMaxQueuedMessages)
	orDefault(&s.MaxQueuedBytes, DefaultMaxQueuedBytes)
	orDefault(&s.MaxChannels, DefaultMaxChannels)
	orDefault(&s.WriteTimeout, DefaultWriteTimeout)
	return nil
}
