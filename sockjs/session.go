package sockjs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/shoal-rt/shoal/store"
)

// Errors returned by Session methods.
var (
	// ErrSessionClosed: the session is closed or gone; nothing was sent.
	ErrSessionClosed = errors.New("sockjs: session closed")
	// ErrQueueOverflow: the session had MaxQueuedMessages waiting; it has
	// been closed with CodeQueueOverflow.
	ErrQueueOverflow = errors.New("sockjs: session queue overflow")
)

// Handler is an application's side of an endpoint.
//
// Calls are made on whichever node received the event, so a Handler must
// not keep per-session state in memory: Session.SetAttr and Session.Attr
// keep it in the store, where every node sees it. OnOpen runs exactly once
// per session cluster-wide, before any OnMessage of that session on the
// same node; OnMessage calls for one session arrive in the order the client
// sent them when they come over one connection; OnClose runs exactly once,
// on its own goroutine, after OnOpen has returned if both run on one node,
// for every session OnOpen accepted (not for one it rejected).
// A Handler is called concurrently for different sessions.
type Handler interface {
	// OnOpen is called when a client opens a session. An error closes the
	// session: a *CloseError chooses the code and reason the client
	// gets, any other error gives CodeOpenRejected. OnClose does not run
	// for a session OnOpen rejected.
	OnOpen(s *Session) error
	// OnMessage is called for each message the client sends.
	OnMessage(s *Session, msg string)
	// OnClose is called once the session is closed or expired. After a
	// Close the session's attributes and Info are still readable; a
	// session that expired (no receiver for DisconnectDelay) is already
	// deleted from the store, so they read as missing.
	OnClose(s *Session)
}

// HandlerFuncs adapts functions to a Handler; nil fields do nothing.
type HandlerFuncs struct {
	Open    func(s *Session) error
	Message func(s *Session, msg string)
	Close   func(s *Session)
}

var _ Handler = HandlerFuncs{}

// OnOpen implements Handler.
func (h HandlerFuncs) OnOpen(s *Session) error {
	if h.Open == nil {
		return nil
	}
	return h.Open(s)
}

// OnMessage implements Handler.
func (h HandlerFuncs) OnMessage(s *Session, msg string) {
	if h.Message != nil {
		h.Message(s, msg)
	}
}

// OnClose implements Handler.
func (h HandlerFuncs) OnClose(s *Session) {
	if h.Close != nil {
		h.Close(s)
	}
}

// ConnectionInfo describes the request that opened a session. It is
// captured once and kept in the store, so it reads the same on every node.
type ConnectionInfo struct {
	RemoteAddr string            `json:"remote_addr,omitempty"`
	IP         string            `json:"ip,omitempty"`
	Transport  string            `json:"transport,omitempty"`
	Path       string            `json:"path,omitempty"`
	Query      url.Values        `json:"query,omitempty"`
	Headers    http.Header       `json:"headers,omitempty"`
	Cookies    map[string]string `json:"cookies,omitempty"`
}

// infoHeaders are the request headers kept in ConnectionInfo (those
// sockjs-node exposes, plus Origin); Settings.InfoHeaders adds to them.
var infoHeaders = []string{
	"Referer", "X-Client-Ip", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Port",
	"X-Cluster-Client-Ip", "Via", "X-Real-Ip", "X-Forwarded-Proto", "X-Ssl", "Dnt",
	"Host", "User-Agent", "Accept-Language", "Origin",
}

func newConnectionInfo(r *http.Request, transport string, extra []string) ConnectionInfo {
	ci := ConnectionInfo{
		RemoteAddr: r.RemoteAddr,
		Transport:  transport,
		Path:       r.URL.Path,
		Query:      r.URL.Query(),
		Headers:    make(http.Header),
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ci.IP = host
	}
	if ip, ok := r.Context().Value(clientIPKey{}).(string); ok {
		ci.IP = ip // the client's, named by a trusted proxy
	}
	for _, list := range [][]string{infoHeaders, extra} {
		for _, h := range list {
			if v := r.Header.Values(h); len(v) > 0 {
				ci.Headers[http.CanonicalHeaderKey(h)] = v
			}
		}
	}
	if r.Host != "" {
		ci.Headers.Set("Host", r.Host)
	}
	if cs := r.Cookies(); len(cs) > 0 {
		ci.Cookies = make(map[string]string, len(cs))
		for _, c := range cs {
			ci.Cookies[c.Name] = c.Value
		}
	}
	return ci
}

// Session is a handle on one SockJS session. It holds no state of its own:
// every method goes to the store (or, for a websocket that lives in this
// process, straight to the socket). Handles are cheap; Endpoint.Session
// makes one from an ID on any node.
type Session struct {
	ep  *Endpoint
	id  string
	key string // store key: endpoint prefix + "/" + id

	infoOnce sync.Once
	infoRaw  []byte
	info     *ConnectionInfo // decoded by Info; a pointer keeps handles small

	// send tags the appends made through this handle while the messages
	// of a send carrying HeaderSendID are handled; nil otherwise.
	send atomic.Pointer[sendTag]

	// ws is the websocket of the handle its transport made (the one
	// its handler gets), set before the handler sees it: its sends skip
	// the node's receiver lookup. nil for other handles.
	ws *wsWriter
}

// localWebsocket returns the writer of the session's websocket if it
// runs on this node, or nil. Only websocket sessions have one: the
// registry is not searched for the others (polling and streaming
// sessions, whose ids are no ULIDs).
func (s *Session) localWebsocket() *wsWriter {
	if s.ws != nil {
		return s.ws // once ended, closed: sends get ErrSessionClosed as the store would answer
	}
	if !isWebsocketID(s.id) {
		return nil
	}
	return s.ep.node.websocketReceiver(s.key)
}

// sendTag numbers the appends one send's handlers make, so that a repeat
// of the send numbers them alike (store.AppendTag).
type sendTag struct {
	id   string
	next atomic.Int64
}

// ID identifies the session within its endpoint. It is not the id the
// client put in its URLs (the protocol forbids exposing that): it is
// derived from it, or random for websocket sessions.
func (s *Session) ID() string { return s.id }

// Endpoint returns the endpoint the session belongs to.
func (s *Session) Endpoint() *Endpoint { return s.ep }

// Info returns what the opening request looked like. On a node other than
// the one that created the session it may cost a store read.
func (s *Session) Info() ConnectionInfo {
	s.infoOnce.Do(func() {
		s.info = new(ConnectionInfo)
		raw := s.infoRaw
		if raw == nil {
			ctx, cancel := s.ep.node.opContext()
			defer cancel()
			sess, err := s.ep.node.store.Get(ctx, s.key)
			if err != nil {
				return
			}
			raw = sess.Info
		}
		if err := json.Unmarshal(raw, s.info); err != nil {
			s.ep.node.log.Warn("sockjs: bad connection info in store", "key", s.key, "err", err)
		}
	})
	return *s.info
}

// Send is SendContext bounded by the node's OpTimeout.
func (s *Session) Send(msgs ...string) error {
	if len(msgs) == 0 {
		return nil
	}
	// A websocket here needs no context (one with a timeout costs a
	// timer per send).
	if ws := s.localWebsocket(); ws != nil {
		return ws.enqueue(wsItem{msgs: msgs})
	}
	ctx, cancel := s.ep.node.opContext()
	defer cancel()
	return s.sendAway(ctx, msgs)
}

// SendContext queues messages for the client, in order; ctx bounds the
// store and bus calls it makes. It never blocks on a slow client: if
// MaxQueuedMessages (or MaxQueuedBytes) are already waiting the session is
// closed with CodeQueueOverflow and ErrQueueOverflow returned.
// ErrSessionClosed means the session is closed or gone.
func (s *Session) SendContext(ctx context.Context, msgs ...string) error {
	if len(msgs) == 0 {
		return nil
	}
	if ws := s.localWebsocket(); ws != nil {
		return ws.enqueue(wsItem{msgs: msgs})
	}
	return s.sendAway(ctx, msgs)
}

// sendAway sends msgs to a session that has no websocket on this node.
func (s *Session) sendAway(ctx context.Context, msgs []string) error {
	if isWebsocketID(s.id) && s.ep.node.sendToRemoteWebsocket(ctx, s.key, msgs) {
		return nil
	}
	return s.appendAndWake(ctx, msgs)
}

// appendAndWake queues msgs in the store and wakes the receiver.
func (s *Session) appendAndWake(ctx context.Context, msgs []string) error {
	n := s.ep.node
	res, err := s.append(ctx, msgs)
	switch {
	case err == nil && res.HandOff.Token != "":
		n.handOff(ctx, s.key, res.ReceiverNode, res.HandOff, msgs)
		return nil
	case err == nil:
		n.wake(ctx, s.key, res.ReceiverNode)
		return nil
	case errors.Is(err, store.ErrQueueFull):
		s.closeWith(ctx, CodeQueueOverflow, ReasonQueueOverflow)
		return ErrQueueOverflow
	case errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrNotFound):
		return ErrSessionClosed
	default:
		return fmt.Errorf("sockjs: send: %w", err)
	}
}

// append queues msgs in the store, tagged when a send is being handled
// through this handle and the store can skip a repeat.
func (s *Session) append(ctx context.Context, msgs []string) (store.AppendResult, error) {
	st, limits := s.ep.node.store, s.ep.settings.queueLimits()
	if tag := s.send.Load(); tag != nil {
		if a, ok := st.(store.OnceAppender); ok {
			seq := int(tag.next.Add(1) - 1)
			return a.AppendOnce(ctx, s.key, msgs, limits, store.AppendTag{ID: tag.id, Seq: seq})
		}
	}
	return st.Append(ctx, s.key, msgs, limits)
}

// Close is CloseContext bounded by the node's OpTimeout.
func (s *Session) Close(code int, reason string) error {
	ctx, cancel := s.ep.node.opContext()
	defer cancel()
	return s.CloseContext(ctx, code, reason)
}

// CloseContext closes the session: the client gets what was already sent
// to it, then c[code,"reason"], and OnClose runs. Code 0 means CodeNormal. Closing a closed session does
// nothing. ctx bounds the store and bus calls it makes.
func (s *Session) CloseContext(ctx context.Context, code int, reason string) error {
	if code == 0 {
		code, reason = CodeNormal, ReasonNormal
	}
	return s.closeWith(ctx, code, reason)
}

func (s *Session) closeWith(ctx context.Context, code int, reason string) error {
	n := s.ep.node
	won, err := n.store.Close(ctx, s.key, code, reason)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sockjs: close: %w", err)
	}
	if won {
		s.ep.runOnClose(s)
	}
	n.wakeReceiver(ctx, s.key)
	return nil
}

// IsClosed reports whether the session is closed or gone.
func (s *Session) IsClosed(ctx context.Context) bool {
	if ws := s.localWebsocket(); ws != nil && !ws.isClosed() {
		return false
	}
	sess, err := s.ep.node.store.Get(ctx, s.key)
	return err != nil || sess.State == store.StateClosed
}

// SetAttr stores a session attribute, visible from every node.
func (s *Session) SetAttr(ctx context.Context, key, value string) error {
	if err := s.ep.node.store.SetAttr(ctx, s.key, key, value); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return ErrSessionClosed
		}
		return fmt.Errorf("sockjs: set attribute: %w", err)
	}
	return nil
}

// Attr reads a session attribute; ok is false when it is not set.
func (s *Session) Attr(ctx context.Context, key string) (value string, ok bool, err error) {
	value, ok, err = s.ep.node.store.Attr(ctx, s.key, key)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, ErrSessionClosed
	}
	if err != nil {
		return "", false, fmt.Errorf("sockjs: attribute: %w", err)
	}
	return value, ok, nil
}

// Broadcast sends msg to every session, encoding the SockJS frame once for
// all the websockets that live in this process. Sessions that are closed
// are skipped; other failures are joined in the returned error.
func Broadcast(sessions []*Session, msg string) error {
	if len(sessions) == 0 {
		return nil
	}
	msgs := []string{msg}
	frame := messageFrame(msg)
	var errs []error
	var ctx context.Context
	for _, s := range sessions {
		var err error
		if ws := s.localWebsocket(); ws != nil {
			err = ws.enqueue(wsItem{msgs: msgs, frame: frame})
		} else {
			if ctx == nil {
				var cancel context.CancelFunc
				ctx, cancel = s.ep.node.opContext()
				defer cancel()
			}
			err = s.appendAndWake(ctx, msgs)
		}
		if err != nil && !errors.Is(err, ErrSessionClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
