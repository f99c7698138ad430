package hub

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shoal-rt/shoal/node/apps/hub/token"
	"github.com/shoal-rt/shoal/sockjs"
)

// DefaultPrefix is the hub endpoint's URL prefix (--hub-prefix).
const DefaultPrefix = "/hub"

// Close codes the hub uses (docs/hub-protocol.md).
const (
	CodeNotAuthenticated   = 4001
	ReasonNotAuthenticated = "Not authenticated"
	CodeDisconnected       = 4003
	ReasonDisconnected     = "Disconnected by server"
	CodePolicyViolation    = 4008
	ReasonPolicyViolation  = "Policy violation"
)

// Errors of the Go API.
var (
	// ErrUnknownChannel: the name matches no channel rule.
	ErrUnknownChannel = errors.New("hub: unknown channel")
	// ErrInvalidChannel: the name is empty, too long, outside the channel
	// charset (A-Z a-z 0-9 _ - . : @ / = +) or reserved (starts "_hub/").
	ErrInvalidChannel = errors.New("hub: invalid channel")
	// ErrNoSession: no open session has that id.
	ErrNoSession = errors.New("hub: no such session")
)

// Config configures a Hub. The zero value is a hub that runs open (no
// auth), with one rule "*" and the default limits.
type Config struct {
	// Prefix is the endpoint's URL prefix; default DefaultPrefix.
	Prefix string
	// Settings are the SockJS endpoint's settings (SockJSURL, delays,
	// ...); Prefix and MaxChannels are set by the hub.
	Settings sockjs.Settings
	// Verifier checks the tokens of auth messages; nil: none. With a
	// Verifier or a Backend, sessions must authenticate.
	Verifier token.Verifier
	// Backend is consulted on connect (when there is no Verifier),
	// subscribe, publish and events where the rules say "backend"; nil:
	// the hub decides alone.
	Backend Backend
	// File is the config file's content (channel rules, limits,
	// timeouts); its zero value means the defaults.
	File File
	// Logger; nil: slog.Default().
	Logger *slog.Logger
}

// Hub is the hub of one node: the SockJS endpoint that speaks the hub
// protocol and the Go API backends reach it through (HTTP API, bridges).
// All its state is in the node's store; every node of a cluster builds its
// own Hub with the same Config. Its methods are safe for concurrent use.
type Hub struct {
	node   *sockjs.Node
	ep     *sockjs.Endpoint
	rules  []*rule
	limits Limits
	verify token.Verifier
	back   Backend
	log    *slog.Logger

	authRequired   bool
	authTimeout    time.Duration
	backendTimeout time.Duration

	idents identityCache
	rates  rateLimiter

	mu     sync.Mutex // guards timers and closed
	timers map[string]*time.Timer
	closed bool
}

// New mounts the hub's endpoint on node and returns it.
func New(node *sockjs.Node, cfg Config) (*Hub, error) {
	h := &Hub{
		node:           node,
		verify:         cfg.Verifier,
		back:           cfg.Backend,
		log:            cfg.Logger,
		limits:         cfg.File.Limits.withDefaults(),
		authTimeout:    time.Duration(cfg.File.AuthTimeout),
		backendTimeout: time.Duration(cfg.File.BackendTimeout),
		timers:         make(map[string]*time.Timer),
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.authTimeout == 0 {
		h.authTimeout = DefaultAuthTimeout
	}
	if h.backendTimeout == 0 {
		h.backendTimeout = DefaultBackendTimeout
	}
	h.authRequired = h.verify != nil || h.back != nil
	h.idents.init()
	h.rates.init(h.limits)
	rules := cfg.File.Channels
	if len(rules) == 0 {
		rules = []Rule{{Pattern: "*"}}
	}
	for i, r := range rules {
		cr, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("hub: channels[%d]: %w", i, err)
		}
		if cr.Subscribe == "" {
			cr.Subscribe = SubscribeAnyone
			if h.authRequired {
				cr.Subscribe = SubscribeGranted
			}
		}
		if h.back == nil && (cr.Subscribe == SubscribeBackend || cr.Publish == PublishBackend) {
			return nil, fmt.Errorf("hub: channels[%d] %q: %q needs a backend (webhook)", i, cr.Pattern, SubscribeBackend)
		}
		h.rules = append(h.rules, cr)
	}
	s := cfg.Settings
	s.Prefix = cfg.Prefix
	if s.Prefix == "" {
		s.Prefix = DefaultPrefix
	}
	s.MaxChannels = 0
	if h.limits.MaxSubscriptions > 0 {
		s.MaxChannels = h.limits.MaxSubscriptions + 1 // + the user's own channel
	}
	ep, err := node.NewEndpoint(h, s)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	h.ep = ep
	// The user channels (sessions per user) first: their prefix is
	// reserved, so no rule may catch them.
	if err := ep.HandleChannels(sockjs.ChannelConfig{Pattern: userChannelPrefix + `.+`, MembersOnly: true}); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	for _, r := range h.rules {
		cc := sockjs.ChannelConfig{
			Pattern:   r.regex,
			AllowLoss: true, // clients see offsets and recover with since
			Render:    renderDelivery,
			Keep:      time.Duration(r.HistoryTTL),
			MaxLen:    r.HistorySize,
		}
		if r.HistorySize < 0 {
			cc.MaxLen = 1
		}
		if r.JoinLeave {
			cc.Handler = sockjs.ChannelHandlerFuncs{Unsubscribe: h.onLeave}
		}
		if err := ep.HandleChannels(cc); err != nil {
			return nil, fmt.Errorf("hub: %w", err)
		}
	}
	return h, nil
}

// Endpoint returns the hub's SockJS endpoint.
func (h *Hub) Endpoint() *sockjs.Endpoint { return h.ep }

// Close stops the hub's timers (auth timeouts). Sessions live on in the
// store; the node's Close ends its receivers.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for id, t := range h.timers {
		t.Stop()
		delete(h.timers, id)
	}
}

// userChannelPrefix starts the reserved channels whose members are one
// user's sessions, cluster-wide: "_hub/u/" + base64url(user id).
const userChannelPrefix = "_hub/u/"

func userChannel(user string) string {
	return userChannelPrefix + base64.RawURLEncoding.EncodeToString([]byte(user))
}

func userOfChannel(ch string) (string, bool) {
	enc, ok := strings.CutPrefix(ch, userChannelPrefix)
	if !ok {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(enc)
	return string(b), err == nil
}

// ruleOf returns the rule of a client-visible channel name.
func (h *Hub) ruleOf(channel string) (*rule, error) {
	if channel == "" || len(channel) > sockjs.MaxChannelNameLen || strings.HasPrefix(channel, "_hub/") || !validChannel(channel) {
		return nil, ErrInvalidChannel
	}
	for _, r := range h.rules {
		if r.re.MatchString(channel) {
			return r, nil
		}
	}
	return nil, ErrUnknownChannel
}

func validChannel(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("_-.:@/=+", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Publish sends payload to every session subscribed to channel, on every
// node, and returns its offset in the channel's log. payload is a JSON
// value, or raw bytes that are not JSON and then arrive as a JSON string.
// A JSON object arrives with "channel" and "offset" added; anything else
// as {"data_type":"data","channel":…,"offset":…,"data":payload}.
func (h *Hub) Publish(ctx context.Context, channel string, payload []byte) (offset uint64, err error) {
	if _, err := h.ruleOf(channel); err != nil {
		return 0, fmt.Errorf("%w: %q", err, channel)
	}
	off, err := h.ep.PublishOffset(ctx, channel, normalizePayload(payload))
	if err != nil {
		return 0, fmt.Errorf("hub: publish: %w", err)
	}
	return off, nil
}

// normalizePayload makes payload one compact JSON value: as it is when it
// is JSON, else a JSON string of its bytes (invalid UTF-8 replaced).
func normalizePayload(payload []byte) string {
	var buf bytes.Buffer
	if json.Valid(payload) {
		if err := json.Compact(&buf, payload); err == nil {
			return buf.String()
		}
	}
	b, _ := json.Marshal(string(payload))
	return string(b)
}

// renderDelivery turns a logged payload into what a subscriber gets: an
// object with "channel" and "offset" added at the end, else the "data"
// envelope. The channel charset needs no JSON escaping.
func renderDelivery(channel string, offset uint64, payload string) string {
	var b strings.Builder
	b.Grow(len(payload) + len(channel) + 64)
	if strings.HasPrefix(payload, "{") && strings.HasSuffix(payload, "}") {
		body := strings.TrimSpace(payload[1 : len(payload)-1])
		b.WriteString("{")
		if body != "" {
			b.WriteString(body)
			b.WriteString(",")
		}
		b.WriteString(`"channel":"`)
		b.WriteString(channel)
		b.WriteString(`","offset":`)
		b.WriteString(fmtUint(offset))
		b.WriteString("}")
		return b.String()
	}
	b.WriteString(`{"data_type":"data","channel":"`)
	b.WriteString(channel)
	b.WriteString(`","offset":`)
	b.WriteString(fmtUint(offset))
	b.WriteString(`,"data":`)
	b.WriteString(payload)
	b.WriteString("}")
	return b.String()
}

// PresenceInfo is who is in a channel.
type PresenceInfo struct {
	Channel string `json:"channel"`
	// Count is len(Users): distinct users, whatever their sessions and
	// nodes.
	Count int      `json:"count"`
	Users []string `json:"users"`
	// Sessions counts the subscribed sessions, anonymous ones included.
	Sessions int `json:"sessions"`
}

// Presence lists the users subscribed to channel, cluster-wide, sorted.
func (h *Hub) Presence(ctx context.Context, channel string) (PresenceInfo, error) {
	if _, err := h.ruleOf(channel); err != nil {
		return PresenceInfo{}, fmt.Errorf("%w: %q", err, channel)
	}
	members, err := h.ep.Members(ctx, channel)
	if err != nil {
		return PresenceInfo{}, fmt.Errorf("hub: presence: %w", err)
	}
	p := PresenceInfo{Channel: channel, Users: []string{}, Sessions: len(members)}
	seen := make(map[string]bool)
	for _, s := range members {
		id, err := h.identity(ctx, s)
		if err != nil {
			if errors.Is(err, sockjs.ErrSessionClosed) {
				p.Sessions--
				continue
			}
			return PresenceInfo{}, fmt.Errorf("hub: presence: %w", err)
		}
		if id.User != "" && !seen[id.User] {
			seen[id.User] = true
			p.Users = append(p.Users, id.User)
		}
	}
	sort.Strings(p.Users)
	p.Count = len(p.Users)
	return p, nil
}

// HistoryInfo is a page of a channel's log.
type HistoryInfo struct {
	Channel string `json:"channel"`
	// Offset is the channel's newest offset.
	Offset uint64 `json:"offset"`
	// Recovered: the log still held every message after the starting
	// point (since; with since 0, the newest limit).
	Recovered bool `json:"recovered"`
	// Messages in delivery form, oldest first.
	Messages []json.RawMessage `json:"messages"`
}

// History reads up to limit (<= 0 or over 1000: 1000) messages of
// channel's log after offset since, or with since 0 the newest limit.
func (h *Hub) History(ctx context.Context, channel string, since uint64, limit int) (HistoryInfo, error) {
	if _, err := h.ruleOf(channel); err != nil {
		return HistoryInfo{}, fmt.Errorf("%w: %q", err, channel)
	}
	hist, err := h.ep.History(ctx, channel, since, limit)
	if err != nil {
		return HistoryInfo{}, fmt.Errorf("hub: history: %w", err)
	}
	out := HistoryInfo{Channel: channel, Offset: hist.Head, Recovered: hist.Complete, Messages: make([]json.RawMessage, 0, len(hist.Messages))}
	for _, m := range hist.Messages {
		out.Messages = append(out.Messages, json.RawMessage(m.Msg))
	}
	return out, nil
}

// Channels lists the channels that have subscribers, cluster-wide, sorted
// (the hub's own per-user channels left out).
func (h *Hub) Channels(ctx context.Context) ([]string, error) {
	all, err := h.ep.ActiveChannels(ctx)
	if err != nil {
		return nil, fmt.Errorf("hub: channels: %w", err)
	}
	out := all[:0]
	for _, ch := range all {
		if !strings.HasPrefix(ch, "_hub/") {
			out = append(out, ch)
		}
	}
	return out, nil
}

// UserSessions lists the ids of user's open sessions, cluster-wide.
func (h *Hub) UserSessions(ctx context.Context, user string) ([]string, error) {
	if user == "" {
		return nil, nil
	}
	members, err := h.ep.Members(ctx, userChannel(user))
	if err != nil {
		return nil, fmt.Errorf("hub: user sessions: %w", err)
	}
	ids := make([]string, 0, len(members))
	for _, s := range members {
		ids = append(ids, s.ID())
	}
	sort.Strings(ids)
	return ids, nil
}

// DisconnectUser closes every session of user with 4003 "Disconnected by
// server" and returns how many it closed.
func (h *Hub) DisconnectUser(ctx context.Context, user string) (int, error) {
	ids, err := h.UserSessions(ctx, user)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, id := range ids {
		switch err := h.DisconnectSession(ctx, id); {
		case err == nil:
			n++
		case !errors.Is(err, ErrNoSession):
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// DisconnectSession closes session id with 4003 "Disconnected by server";
// ErrNoSession when no open session has that id.
func (h *Hub) DisconnectSession(ctx context.Context, id string) error {
	s := h.ep.Session(id)
	if s.IsClosed(ctx) {
		return fmt.Errorf("%w: %q", ErrNoSession, id)
	}
	if err := s.Close(CodeDisconnected, ReasonDisconnected); err != nil {
		return fmt.Errorf("hub: disconnect: %w", err)
	}
	return nil
}
