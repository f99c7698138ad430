package hub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"
)

// Who may subscribe to a channel (Rule.Subscribe).
const (
	// SubscribeAnyone: every session (an anonymous one too, when the hub
	// runs without a verifier).
	SubscribeAnyone = "anyone"
	// SubscribeAuthenticated: every session whose auth succeeded.
	SubscribeAuthenticated = "authenticated"
	// SubscribeGranted: only sessions whose token (or backend connect
	// reply) granted the channel. Granted channels are always allowed,
	// whatever the rule says.
	SubscribeGranted = "granted"
	// SubscribeOwner: the session whose user fills the pattern's {user}.
	SubscribeOwner = "owner"
	// SubscribeBackend: the backend's subscribe webhook decides.
	SubscribeBackend = "backend"
)

// Who may publish from the client (Rule.Publish).
const (
	PublishNone          = "none"
	PublishSubscribers   = "subscribers"
	PublishAuthenticated = "authenticated"
	PublishBackend       = "backend" // the backend's publish webhook allows, denies or rewrites
)

// Rule says what a group of channels allows; the first rule whose Pattern
// matches a channel's name applies.
type Rule struct {
	// Pattern is a glob over the channel name: * matches any run of
	// characters, ? one, and {user} the session's own user id (rules
	// with Subscribe "owner"; the hub matches it as one or more
	// characters, then compares). Default "*".
	Pattern string `json:"pattern"`
	// Subscribe: anyone, authenticated, granted, owner or backend.
	// Default granted when a verifier or backend authenticates, anyone
	// otherwise.
	Subscribe string `json:"subscribe,omitempty"`
	// Publish: none, subscribers, authenticated or backend. Default none.
	Publish string `json:"publish,omitempty"`
	// HistorySize is how many messages the channel's log keeps for
	// recovery and history. Default 100; -1 keeps only what live delivery
	// needs (clients cannot recover nor read history).
	HistorySize int `json:"history_size,omitempty"`
	// HistoryTTL is how long a message stays in the log. Default 5m.
	HistoryTTL Duration `json:"history_ttl,omitempty"`
	// Presence lets subscribers ask who is in the channel. Default true
	// (nil); false refuses presence requests.
	Presence *bool `json:"presence,omitempty"`
	// JoinLeave publishes join / leave notices when a user's first session
	// joins and its last one leaves. Default false.
	JoinLeave bool `json:"join_leave,omitempty"`
}

// Limits bound what one session may do. Zero fields take the defaults;
// -1 turns a limit off.
type Limits struct {
	// MessageRate is how many messages per second a session may send, on
	// average (default 20); MessageBurst how many at once (default 50).
	MessageRate  float64 `json:"message_rate,omitempty"`
	MessageBurst int     `json:"message_burst,omitempty"`
	// MaxMessageSize is the largest client message in bytes (default
	// 65536).
	MaxMessageSize int `json:"max_message_size,omitempty"`
	// MaxSubscriptions bounds a session's channels (default 100).
	MaxSubscriptions int `json:"max_subscriptions,omitempty"`
	// MaxViolations is how many refused messages (rate or size) a session
	// may send before it is closed with 4008 (default 10).
	MaxViolations int `json:"max_violations,omitempty"`
}

// File is the hub's config file (--config), JSON. See docs/hub-config.md.
type File struct {
	// Channels are the channel rules, first match wins. Without any, one
	// rule "*" with the defaults applies.
	Channels []Rule `json:"channels"`
	Limits   Limits `json:"limits"`
	// AuthTimeout closes a session that has not authenticated in time
	// with 4001 (default 30s; only when auth is required).
	AuthTimeout Duration `json:"auth_timeout,omitempty"`
	// BackendTimeout bounds each backend (webhook) call (default 5s).
	BackendTimeout Duration `json:"backend_timeout,omitempty"`
}

// LoadFile reads and checks a config file.
func LoadFile(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("hub: config: %w", err)
	}
	return ParseFile(b)
}

// ParseFile decodes a config file; unknown fields are an error, so a typo
// does not silently fall back to a default.
func ParseFile(b []byte) (File, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return File{}, fmt.Errorf("hub: config: %w", err)
	}
	for i, r := range f.Channels {
		if _, err := compileRule(r); err != nil {
			return File{}, fmt.Errorf("hub: config: channels[%d]: %w", i, err)
		}
	}
	return f, nil
}

// Duration is a time.Duration that reads from JSON as "30s" or seconds.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case float64:
		*d = Duration(v * float64(time.Second))
	case string:
		p, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		*d = Duration(p)
	default:
		return fmt.Errorf("duration: want a string such as \"5m\" or seconds, got %s", b)
	}
	if *d < 0 {
		return fmt.Errorf("duration %s is negative", b)
	}
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Defaults.
const (
	DefaultHistorySize      = 100
	DefaultHistoryTTL       = 5 * time.Minute
	DefaultMessageRate      = 20
	DefaultMessageBurst     = 50
	DefaultMaxMessageSize   = 64 << 10
	DefaultMaxSubscriptions = 100
	DefaultMaxViolations    = 10
	DefaultAuthTimeout      = 30 * time.Second
	DefaultBackendTimeout   = 5 * time.Second
)

// withDefaults fills zero fields.
func (l Limits) withDefaults() Limits {
	if l.MessageRate == 0 {
		l.MessageRate = DefaultMessageRate
	}
	if l.MessageBurst == 0 {
		l.MessageBurst = DefaultMessageBurst
	}
	if l.MaxMessageSize == 0 {
		l.MaxMessageSize = DefaultMaxMessageSize
	}
	if l.MaxSubscriptions == 0 {
		l.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if l.MaxViolations == 0 {
		l.MaxViolations = DefaultMaxViolations
	}
	return l
}

// rule is a compiled Rule.
type rule struct {
	Rule
	re       *regexp.Regexp // whole name; group "user" for {user}
	regex    string         // re's source, for the sockjs route
	presence bool
}

// compileRule checks r, fills its defaults (but Subscribe's, which depends
// on the hub) and compiles its pattern.
func compileRule(r Rule) (*rule, error) {
	if r.Pattern == "" {
		r.Pattern = "*"
	}
	switch r.Subscribe {
	case "", SubscribeAnyone, SubscribeAuthenticated, SubscribeGranted, SubscribeOwner, SubscribeBackend:
	default:
		return nil, fmt.Errorf("subscribe %q: want anyone, authenticated, granted, owner or backend", r.Subscribe)
	}
	switch r.Publish {
	case "", PublishNone, PublishSubscribers, PublishAuthenticated, PublishBackend:
	default:
		return nil, fmt.Errorf("publish %q: want none, subscribers, authenticated or backend", r.Publish)
	}
	if r.HistorySize < -1 {
		return nil, fmt.Errorf("history_size %d: want -1 or more", r.HistorySize)
	}
	var src strings.Builder
	users := 0
	for p := r.Pattern; p != ""; {
		switch {
		case strings.HasPrefix(p, "{user}"):
			src.WriteString(`(?P<user>.+?)`)
			users++
			p = p[len("{user}"):]
		case p[0] == '*':
			src.WriteString(`.*`)
			p = p[1:]
		case p[0] == '?':
			src.WriteString(`.`)
			p = p[1:]
		default:
			src.WriteString(regexp.QuoteMeta(p[:1]))
			p = p[1:]
		}
	}
	if users > 1 {
		return nil, fmt.Errorf("pattern %q: {user} more than once", r.Pattern)
	}
	if r.Subscribe == SubscribeOwner && users == 0 {
		return nil, fmt.Errorf("pattern %q: subscribe owner needs {user} in the pattern", r.Pattern)
	}
	re, err := regexp.Compile(`^(?:` + src.String() + `)$`)
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", r.Pattern, err)
	}
	if r.Publish == "" {
		r.Publish = PublishNone
	}
	if r.HistorySize == 0 {
		r.HistorySize = DefaultHistorySize
	}
	if r.HistoryTTL == 0 {
		r.HistoryTTL = Duration(DefaultHistoryTTL)
	}
	return &rule{Rule: r, re: re, regex: src.String(), presence: r.Presence == nil || *r.Presence}, nil
}

// owner returns the {user} part of channel under r, if r has one.
func (r *rule) owner(channel string) (string, bool) {
	i := r.re.SubexpIndex("user")
	if i < 0 {
		return "", false
	}
	m := r.re.FindStringSubmatch(channel)
	if m == nil {
		return "", false
	}
	return m[i], true
}
