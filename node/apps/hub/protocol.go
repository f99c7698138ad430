package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-rt/shoal/node/apps/hub/token"
	"github.com/shoal-rt/shoal/sockjs"
)

// The client protocol (docs/hub-protocol.md). Hub is the endpoint's
// sockjs.Handler: OnMessage runs on whichever node got the message and
// reads what it needs (the identity) from the store.

var _ sockjs.Handler = (*Hub)(nil)

// Error messages clients get (docs/hub-protocol.md).
const (
	msgNotAuthenticated  = "Not authenticated"
	msgInvalidJSON       = "Invalid JSON"
	msgTokenInvalid      = "Token invalid"
	msgTokenExpired      = "Token expired"
	msgAlready           = "Already authenticated"
	msgPermissionDenied  = "Permission denied"
	msgUnknownChannel    = "Unknown channel"
	msgInvalidChannel    = "Invalid channel"
	msgTooManySubs       = "Too many subscriptions"
	msgBackendDown       = "Backend unavailable"
	msgRateLimit         = "Rate limit exceeded"
	msgTooBig            = "Message too big"
	msgNotSubscribed     = "Not subscribed"
	msgInternal          = "Internal error"
	msgInvalidData       = "Invalid data"
	maxIDLen             = 64
	maxClientHistory     = 100
	defaultClientHistory = 100
)

// envelope is a client message.
type envelope struct {
	Type string          `json:"data_type"`
	ID   json.RawMessage `json:"id,omitempty"`
	Data json.RawMessage `json:"data"`
}

// errInvalidJSON: not a JSON object with a string data_type.
var errInvalidJSON = errors.New("hub: invalid JSON")

// decodeEnvelope reads a client message. An id must be a number or a
// string of at most maxIDLen bytes; it is echoed as sent.
func decodeEnvelope(msg string) (envelope, error) {
	var env envelope
	dec := json.NewDecoder(strings.NewReader(msg))
	if err := dec.Decode(&env); err != nil {
		return envelope{}, errInvalidJSON
	}
	if dec.More() {
		return envelope{}, errInvalidJSON
	}
	if len(env.ID) > 0 {
		switch c := env.ID[0]; {
		case c == '"':
			var s string
			if json.Unmarshal(env.ID, &s) != nil || len(s) > maxIDLen {
				return envelope{}, errInvalidJSON
			}
		case c == '-' || (c >= '0' && c <= '9'):
			if len(env.ID) > maxIDLen {
				return envelope{}, errInvalidJSON
			}
		case bytes.Equal(env.ID, []byte("null")):
			env.ID = nil
		default:
			return envelope{}, errInvalidJSON
		}
	}
	return env, nil
}

// reply builds a server message; id nil leaves "id" out.
func reply(typ string, id json.RawMessage, data any) string {
	var b strings.Builder
	b.WriteString(`{"data_type":`)
	writeJSON(&b, typ)
	if len(id) > 0 {
		b.WriteString(`,"id":`)
		b.Write(id)
	}
	b.WriteString(`,"data":`)
	if raw, ok := data.(json.RawMessage); ok && len(raw) > 0 {
		b.Write(raw)
	} else {
		writeJSON(&b, data)
	}
	b.WriteString("}")
	return b.String()
}

func writeJSON(b *strings.Builder, v any) {
	enc, err := json.Marshal(v)
	if err != nil {
		enc = []byte("null")
	}
	b.Write(enc)
}

func fmtUint(v uint64) string { return strconv.FormatUint(v, 10) }

type message struct {
	Message string `json:"message"`
}

// OnOpen implements sockjs.Handler: asks for auth and arms its timeout.
func (h *Hub) OnOpen(s *sockjs.Session) error {
	if !h.authRequired {
		return nil
	}
	if err := s.Send(reply("request_auth", nil, struct{}{})); err != nil {
		return err
	}
	// The deadline in the store too: the timer below lives on this node
	// only; a message reaching any node after it closes the session.
	authBy := time.Now().Add(h.authTimeout).UnixMilli()
	if err := s.SetAttr(context.Background(), authByAttr, strconv.FormatInt(authBy, 10)); err != nil {
		h.log.Warn("hub: storing the auth deadline failed", "session", s.ID(), "err", err)
	}
	id := s.ID()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.timers[id] = time.AfterFunc(h.authTimeout, func() {
		h.mu.Lock()
		delete(h.timers, id)
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if v, err := h.identity(ctx, s); err == nil && !v.Authenticated {
			s.Close(CodeNotAuthenticated, ReasonNotAuthenticated)
		}
	})
	return nil
}

// OnClose implements sockjs.Handler: tells the backend. It runs once in
// the cluster, on the node that closed or reaped the session; the
// session's attributes may be gone then, so its user comes from the
// user channel it is still subscribed to (leaving channels follows
// OnClose), and is kept for the leave notices that follow.
func (h *Hub) OnClose(s *sockjs.Session) {
	id := s.ID()
	h.mu.Lock()
	if t := h.timers[id]; t != nil {
		t.Stop()
		delete(h.timers, id)
	}
	h.mu.Unlock()
	h.rates.forget(id)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := h.identity(ctx, s)
	if err != nil || !v.Authenticated {
		if chans, err := s.Channels(ctx); err == nil {
			for _, ch := range chans {
				if user, ok := userOfChannel(ch); ok {
					v = identity{Authenticated: true, User: user}
					h.idents.put(id, v)
				}
			}
		}
	}
	if h.back != nil {
		h.back.Disconnect(DisconnectRequest{Client: h.client(s, v)})
	}
	// The leave notices (onLeave) run right after this, on this node,
	// and find the identity in the cache (which forgets it in time).
}

// client describes s for a backend call.
func (h *Hub) client(s *sockjs.Session, v identity) Client {
	info := s.Info()
	c := Client{Session: s.ID(), User: v.User, IP: info.IP}
	if len(info.Headers) > 0 {
		c.Headers = make(map[string]string, len(info.Headers))
		for k, vs := range info.Headers {
			if len(vs) > 0 {
				c.Headers[k] = vs[0]
			}
		}
	}
	return c
}

// OnMessage implements sockjs.Handler.
func (h *Hub) OnMessage(s *sockjs.Session, msg string) {
	now := time.Now()
	if lim := h.limits.MaxMessageSize; lim > 0 && len(msg) > lim {
		h.violate(s, now, msgTooBig, nil) // unread: too big to parse
		return
	}
	if !h.rates.allow(s.ID(), now) {
		// Refused, but its reply carries its id (the message is within
		// the size limit, cheap to read): a client waiting on that id
		// learns now, not at its timeout.
		env, _ := decodeEnvelope(msg)
		h.violate(s, now, msgRateLimit, env.ID)
		return
	}
	env, err := decodeEnvelope(msg)
	if err != nil {
		s.Send(reply("error", nil, message{msgInvalidJSON}))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.backendTimeout+5*time.Second)
	defer cancel()
	c := &call{h: h, s: s, env: env, ctx: ctx}
	c.handle()
}

// violate refuses a message over a limit; repeated abuse closes the
// session.
func (h *Hub) violate(s *sockjs.Session, now time.Time, why string, id json.RawMessage) {
	if n := h.rates.violation(s.ID(), now); h.limits.MaxViolations > 0 && n >= h.limits.MaxViolations {
		s.Close(CodePolicyViolation, ReasonPolicyViolation)
		return
	}
	s.Send(reply("error", id, message{why}))
}

// call is one client message being handled; it sends exactly one reply
// when the message has an id (and the success reply without one).
type call struct {
	h   *Hub
	s   *sockjs.Session
	env envelope
	ctx context.Context
	id  identity
}

func (c *call) send(typ string, data any) { c.s.Send(reply(typ, c.env.ID, data)) }

func (c *call) fail(msg string) { c.send("error", message{msg}) }

func (c *call) handle() {
	h := c.h
	var err error
	c.id, err = h.identity(c.ctx, c.s)
	if err != nil {
		if !errors.Is(err, sockjs.ErrSessionClosed) {
			h.log.Warn("hub: reading identity failed", "session", c.s.ID(), "err", err)
			c.fail(msgInternal)
		}
		return
	}
	if h.authRequired && !c.id.Authenticated && c.authOverdue() {
		c.s.Close(CodeNotAuthenticated, ReasonNotAuthenticated)
		return
	}
	if c.env.Type == "auth" {
		c.auth()
		return
	}
	if h.authRequired && !c.id.Authenticated {
		c.fail(msgNotAuthenticated)
		return
	}
	switch c.env.Type {
	case "subscribe":
		c.subscribe()
	case "unsubscribe":
		c.unsubscribe()
	case "publish":
		c.publish()
	case "event":
		c.event()
	case "presence":
		c.presence()
	case "history":
		c.history()
	case "ping":
		c.send("pong", struct{}{})
	default:
		c.fail("Invalid data type " + c.env.Type)
	}
}

// authByAttr is the session attribute that holds when an unauthenticated
// session must have authenticated (Unix ms): the node that opened it
// closes it then with a timer, and if that node died, whichever node gets
// the session's next message does.
const authByAttr = "hub.auth_by"

// authOverdue reports whether the call's unauthenticated session is past
// its auth deadline. A deadline that cannot be read counts as not passed.
func (c *call) authOverdue() bool {
	raw, ok, err := c.s.Attr(c.ctx, authByAttr)
	if err != nil || !ok {
		return false
	}
	by, err := strconv.ParseInt(raw, 10, 64)
	return err == nil && time.Now().UnixMilli() > by
}

// decode reads the message's data into v; false (and an error reply) when
// it does not fit.
func (c *call) decode(v any) bool {
	if len(c.env.Data) == 0 || json.Unmarshal(c.env.Data, v) != nil {
		c.fail(msgInvalidData)
		return false
	}
	return true
}

// backendContext bounds one backend call.
func (c *call) backendContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, c.h.backendTimeout)
}

// backendRefusal turns the error of the backend's what webhook into the
// client's message; a failure (not the backend's answer, ErrDenied) is
// logged with attrs.
func (h *Hub) backendRefusal(err error, what string, attrs ...any) string {
	if !errors.Is(err, ErrDenied) {
		h.log.Warn("hub: "+what+" webhook failed", append(attrs, "err", err)...)
		return msgBackendDown
	}
	reason := strings.TrimPrefix(err.Error(), ErrDenied.Error())
	reason = strings.TrimSpace(strings.TrimPrefix(reason, ":"))
	if reason == "" {
		return msgPermissionDenied
	}
	return reason
}

func (c *call) auth() {
	h := c.h
	var data struct {
		Token string `json:"token"`
		// Since holds, per channel, the last offset a previous session
		// saw: the granted channels the auth joins recover from there.
		Since map[string]uint64 `json:"since"`
	}
	if len(c.env.Data) > 0 && json.Unmarshal(c.env.Data, &data) != nil {
		c.send("auth_error", message{msgTokenInvalid})
		return
	}
	if c.id.Authenticated {
		c.send("auth_error", message{msgAlready})
		return
	}
	var v identity
	switch {
	case h.verify != nil && (data.Token != "" || h.back == nil):
		got, err := h.verify.Verify(data.Token)
		if err != nil {
			msg := msgTokenInvalid
			if errors.Is(err, token.ErrExpired) {
				msg = msgTokenExpired
			}
			c.send("auth_error", message{msg})
			return
		}
		v = identity{Authenticated: true, User: got.User, Channels: got.Channels}
	case h.back != nil:
		// No verifier, or no token for it: a cookie-authenticated site
		// lets its backend decide from the request's headers.
		ctx, cancel := c.backendContext()
		rep, err := h.back.Connect(ctx, ConnectRequest{Client: h.client(c.s, identity{}), Token: data.Token})
		cancel()
		if err != nil {
			c.send("auth_error", message{h.backendRefusal(err, "connect")})
			return
		}
		v = identity{Authenticated: true, User: rep.User, Channels: rep.Channels}
	default:
		// An open hub has nothing to check a token with.
		c.send("auth_error", message{msgTokenInvalid})
		return
	}
	if err := h.setIdentity(c.ctx, c.s, v); err != nil {
		if !errors.Is(err, sockjs.ErrSessionClosed) {
			h.log.Warn("hub: storing identity failed", "err", err)
			c.send("auth_error", message{msgInternal})
		}
		return
	}
	h.mu.Lock()
	if t := h.timers[c.s.ID()]; t != nil {
		t.Stop()
		delete(h.timers, c.s.ID())
	}
	h.mu.Unlock()
	if v.User != "" {
		if err := c.s.Subscribe(c.ctx, userChannel(v.User)); err != nil {
			h.log.Warn("hub: joining the user's channel failed", "err", err)
		}
	}
	joined := make([]string, 0, len(v.Channels))
	var recovered map[string]bool
	for _, ch := range v.Channels {
		r, err := h.ruleOf(ch)
		if err != nil {
			h.log.Warn("hub: a granted channel matches no rule", "channel", ch, "err", err)
			continue
		}
		since := data.Since[ch]
		res, err := c.s.SubscribeWith(c.ctx, ch, sockjs.SubscribeOptions{Since: since})
		if err != nil {
			h.log.Warn("hub: joining a granted channel failed", "channel", ch, "err", err)
			continue
		}
		joined = append(joined, ch)
		if since > 0 {
			if recovered == nil {
				recovered = make(map[string]bool)
			}
			recovered[ch] = res.Recovered
		}
		if r.JoinLeave {
			h.joined(c.ctx, c.s, v, ch)
		}
	}
	// The reply last: once the client has it, its channels are joined,
	// so what the backend publishes from then on reaches it.
	c.send("auth", struct {
		Message   string          `json:"message"`
		User      string          `json:"user"`
		Channels  []string        `json:"channels"`
		Session   string          `json:"session"`
		Recovered map[string]bool `json:"recovered,omitempty"`
	}{"success", v.User, joined, c.s.ID(), recovered})
}

type subscribeData struct {
	Channel string `json:"channel"`
	Since   uint64 `json:"since"`
}

type subscribeError struct {
	Channel string `json:"channel"`
	Message string `json:"message"`
}

// mayAccess checks a rule's subscribe permission for the call's session.
// The reply is "" when allowed, else the refusal.
func (c *call) mayAccess(r *rule, channel string) string {
	if c.id.granted(channel) {
		return ""
	}
	switch r.Subscribe {
	case SubscribeAnyone:
		return ""
	case SubscribeAuthenticated:
		if c.id.Authenticated {
			return ""
		}
	case SubscribeOwner:
		if owner, ok := r.owner(channel); ok && c.id.User != "" && owner == c.id.User {
			return ""
		}
	case SubscribeBackend:
		ctx, cancel := c.backendContext()
		defer cancel()
		err := c.h.back.Subscribe(ctx, SubscribeRequest{Client: c.h.client(c.s, c.id), Channel: channel})
		if err == nil {
			return ""
		}
		return c.h.backendRefusal(err, "subscribe", "channel", channel)
	}
	return msgPermissionDenied
}

func channelError(err error) string {
	switch {
	case errors.Is(err, ErrInvalidChannel), errors.Is(err, sockjs.ErrInvalidChannel):
		return msgInvalidChannel
	case errors.Is(err, ErrUnknownChannel), errors.Is(err, sockjs.ErrChannelNotAllowed):
		return msgUnknownChannel
	case errors.Is(err, sockjs.ErrTooManyChannels):
		return msgTooManySubs
	}
	return msgInternal
}

func (c *call) subscribe() {
	h := c.h
	var d subscribeData
	if !c.decode(&d) {
		return
	}
	r, err := h.ruleOf(d.Channel)
	if err != nil {
		c.send("subscribe_error", subscribeError{d.Channel, channelError(err)})
		return
	}
	if why := c.mayAccess(r, d.Channel); why != "" {
		c.send("subscribe_error", subscribeError{d.Channel, why})
		return
	}
	if why := c.subscriptionRoom(d.Channel); why != "" {
		c.send("subscribe_error", subscribeError{d.Channel, why})
		return
	}
	// The reply goes out from Registered: before the channel's messages.
	res, err := c.s.SubscribeWith(c.ctx, d.Channel, sockjs.SubscribeOptions{
		Since: d.Since,
		Registered: func(res sockjs.SubscribeResult) {
			c.send("subscribe", struct {
				Channel   string `json:"channel"`
				Offset    uint64 `json:"offset"`
				Recovered bool   `json:"recovered"`
			}{d.Channel, res.Head, d.Since == 0 || res.Recovered})
		},
	})
	if err != nil {
		if errors.Is(err, sockjs.ErrSessionClosed) {
			return
		}
		// Registered runs last in SubscribeWith: an error means no
		// reply went out.
		msg := channelError(err)
		if msg == msgInternal {
			h.log.Warn("hub: subscribe failed", "channel", d.Channel, "err", err)
		}
		c.send("subscribe_error", subscribeError{d.Channel, msg})
		return
	}
	if res.Created && r.JoinLeave {
		h.joined(c.ctx, c.s, c.id, d.Channel)
	}
}

// subscriptionRoom checks the session's subscription limit (the hub's own
// user channel not counted); "" when channel fits. Two subscribes racing
// on two nodes may both fit; the store's bound (the limit + 1) holds.
func (c *call) subscriptionRoom(channel string) string {
	max := c.h.limits.MaxSubscriptions
	if max <= 0 {
		return ""
	}
	chans, err := c.s.Channels(c.ctx)
	if err != nil {
		return msgInternal
	}
	n := 0
	for _, ch := range chans {
		if ch == channel {
			return "" // subscribed already
		}
		if !strings.HasPrefix(ch, "_hub/") {
			n++
		}
	}
	if n >= max {
		return msgTooManySubs
	}
	return ""
}

func (c *call) unsubscribe() {
	var d subscribeData
	if !c.decode(&d) {
		return
	}
	if _, err := c.h.ruleOf(d.Channel); err != nil {
		c.fail(channelError(err))
		return
	}
	if err := c.s.Unsubscribe(c.ctx, d.Channel); err != nil {
		if !errors.Is(err, sockjs.ErrSessionClosed) {
			c.fail(channelError(err))
		}
		return
	}
	c.send("unsubscribe", struct {
		Channel string `json:"channel"`
	}{d.Channel})
}

// subscribed reports whether the call's session is in channel.
func (c *call) subscribed(channel string) (bool, error) { return inChannel(c.ctx, c.s, channel) }

// inChannel reports whether s is subscribed to channel.
func inChannel(ctx context.Context, s *sockjs.Session, channel string) (bool, error) {
	chans, err := s.Channels(ctx)
	return err == nil && slices.Contains(chans, channel), err
}

func (c *call) publish() {
	h := c.h
	var d struct {
		Channel string          `json:"channel"`
		Data    json.RawMessage `json:"data"`
	}
	if !c.decode(&d) {
		return
	}
	if len(d.Data) == 0 {
		c.fail(msgInvalidData)
		return
	}
	r, err := h.ruleOf(d.Channel)
	if err != nil {
		c.fail(channelError(err))
		return
	}
	data := d.Data
	switch r.Publish {
	case PublishSubscribers:
		ok, err := c.subscribed(d.Channel)
		if err != nil {
			c.fail(msgInternal)
			return
		}
		if !ok {
			c.fail(msgPermissionDenied)
			return
		}
	case PublishAuthenticated:
		if !c.id.Authenticated {
			c.fail(msgPermissionDenied)
			return
		}
	case PublishBackend:
		ctx, cancel := c.backendContext()
		rewritten, err := h.back.Publish(ctx, PublishRequest{Client: h.client(c.s, c.id), Channel: d.Channel, Data: data})
		cancel()
		if err != nil {
			c.fail(h.backendRefusal(err, "publish", "channel", d.Channel))
			return
		}
		if len(rewritten) > 0 {
			data = rewritten
		}
	default:
		c.fail(msgPermissionDenied)
		return
	}
	data, err = stampFrom(data, c.id.User, c.s.ID())
	if err != nil {
		c.fail(msgInvalidData)
		return
	}
	off, err := h.Publish(c.ctx, d.Channel, data)
	if err != nil {
		h.log.Warn("hub: client publish failed", "channel", d.Channel, "err", err)
		c.fail(channelError(err))
		return
	}
	c.send("publish", struct {
		Channel string `json:"channel"`
		Offset  uint64 `json:"offset"`
	}{d.Channel, off})
}

func (c *call) event() {
	h := c.h
	var d struct {
		Name string          `json:"name"`
		Data json.RawMessage `json:"data"`
	}
	if !c.decode(&d) {
		return
	}
	if h.back == nil {
		c.send("ack", json.RawMessage(`{"received":true}`))
		return
	}
	ctx, cancel := c.backendContext()
	rep, err := h.back.Event(ctx, EventRequest{Client: h.client(c.s, c.id), Name: d.Name, Data: d.Data})
	cancel()
	if err != nil {
		c.fail(h.backendRefusal(err, "event", "event", d.Name))
		return
	}
	if len(rep) == 0 || !json.Valid(rep) {
		rep = json.RawMessage("null")
	}
	c.send("ack", rep)
}

// readable checks that the session may read channel's presence or history:
// it must be subscribed, and the rule must allow it.
func (c *call) readable(channel string, allowed func(*rule) bool) bool {
	r, err := c.h.ruleOf(channel)
	if err != nil {
		c.fail(channelError(err))
		return false
	}
	if !allowed(r) {
		c.fail(msgPermissionDenied)
		return false
	}
	ok, err := c.subscribed(channel)
	if err != nil {
		c.fail(msgInternal)
		return false
	}
	if !ok {
		c.fail(msgNotSubscribed)
		return false
	}
	return true
}

func (c *call) presence() {
	var d subscribeData
	if !c.decode(&d) || !c.readable(d.Channel, func(r *rule) bool { return r.presence }) {
		return
	}
	p, err := c.h.Presence(c.ctx, d.Channel)
	c.answer("presence", d.Channel, p, err)
}

// answer sends v as the reply typ about channel, or, when reading it
// failed with err, logs it and replies with the internal error.
func (c *call) answer(typ, channel string, v any, err error) {
	if err != nil {
		c.h.log.Warn("hub: "+typ+" failed", "channel", channel, "err", err)
		c.fail(msgInternal)
		return
	}
	c.send(typ, v)
}

func (c *call) history() {
	var d struct {
		Channel string `json:"channel"`
		Since   uint64 `json:"since"`
		Limit   int    `json:"limit"`
	}
	if !c.decode(&d) || !c.readable(d.Channel, func(r *rule) bool { return r.HistorySize > 0 }) {
		return
	}
	if d.Limit <= 0 || d.Limit > maxClientHistory {
		d.Limit = defaultClientHistory
	}
	hist, err := c.h.History(c.ctx, d.Channel, d.Since, d.Limit)
	c.answer("history", d.Channel, hist, err)
}

// joined publishes a join notice when s is v's first session in channel.
func (h *Hub) joined(ctx context.Context, s *sockjs.Session, v identity, channel string) {
	h.noticeIfOnly(ctx, "join", s, v.User, channel)
}

// onLeave is the ChannelHandler of join_leave channels: a leave notice when
// the session was its user's last one in the channel.
func (h *Hub) onLeave(s *sockjs.Session, channel string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if v, err := h.identity(ctx, s); err == nil {
		h.noticeIfOnly(ctx, "leave", s, v.User, channel)
	}
}

// otherSessionsIn reports whether user has a session other than self in
// channel: it reads the channels of the user's sessions (few), not the
// channel's members (maybe many).
func (h *Hub) otherSessionsIn(ctx context.Context, user, self, channel string) (bool, error) {
	ids, err := h.UserSessions(ctx, user)
	if err != nil {
		return false, err
	}
	for _, id := range ids {
		if id == self {
			continue
		}
		if in, err := inChannel(ctx, h.ep.Session(id), channel); err != nil || in {
			return in, err
		}
	}
	return false, nil
}

// noticeIfOnly publishes a join or leave notice of user in channel when s
// is the user's only session there.
func (h *Hub) noticeIfOnly(ctx context.Context, typ string, s *sockjs.Session, user, channel string) {
	if user == "" {
		return
	}
	if others, err := h.otherSessionsIn(ctx, user, s.ID(), channel); err != nil || others {
		return
	}
	payload, _ := json.Marshal(map[string]any{"data_type": typ, "data": map[string]string{"channel": channel, "user": user}})
	if _, err := h.Publish(ctx, channel, payload); err != nil {
		h.log.Warn("hub: "+typ+" notice failed", "channel", channel, "err", err)
	}
}

// stampFrom adds the publisher's identity to what a client publishes, as a
// top-level "from":{"user":…,"session":…}, so subscribers know who sent
// it: an object gets it as its last field, any "from" it had dropped (a
// client must not speak for someone else); any other value is wrapped as
// {"data_type":"data","data":<value>,"from":…}.
func stampFrom(data json.RawMessage, user, session string) (json.RawMessage, error) {
	from, err := json.Marshal(struct {
		User    string `json:"user"`
		Session string `json:"session"`
	}{user, session})
	if err != nil {
		return nil, err
	}
	data = bytes.TrimSpace(data)
	var b bytes.Buffer
	b.Grow(len(data) + len(from) + 32)
	if len(data) == 0 || data[0] != '{' {
		if !json.Valid(data) {
			return nil, errInvalidJSON
		}
		b.WriteString(`{"data_type":"data","data":`)
		b.Write(data)
	} else {
		dec := json.NewDecoder(bytes.NewReader(data))
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		b.WriteByte('{')
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key, _ := tok.(string)
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return nil, err
			}
			if key == "from" {
				continue
			}
			if b.Len() > 1 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(key)
			b.Write(k)
			b.WriteByte(':')
			b.Write(v)
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.WriteString(`"from":`)
		b.Write(from)
		b.WriteByte('}')
		return b.Bytes(), nil
	}
	b.WriteString(`,"from":`)
	b.Write(from)
	b.WriteByte('}')
	return b.Bytes(), nil
}
