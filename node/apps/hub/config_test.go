package hub

import (
	"strings"
	"testing"
	"time"
)

func TestParseFile(t *testing.T) {
	t.Parallel()
	f, err := ParseFile([]byte(`{
		"channels": [
			{"pattern": "user-{user}", "subscribe": "owner"},
			{"pattern": "room-*", "subscribe": "authenticated", "publish": "subscribers", "history_size": 200, "history_ttl": "10m", "join_leave": true},
			{"pattern": "*", "presence": false, "history_ttl": 30}
		],
		"limits": {"message_rate": 10, "max_subscriptions": -1},
		"auth_timeout": "20s"
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Channels) != 3 || f.Limits.MessageRate != 10 || time.Duration(f.AuthTimeout) != 20*time.Second ||
		time.Duration(f.Channels[2].HistoryTTL) != 30*time.Second {
		t.Fatalf("parsed %+v", f)
	}
	r, err := compileRule(f.Channels[0])
	if err != nil {
		t.Fatal(err)
	}
	if owner, ok := r.owner("user-42"); !ok || owner != "42" || r.re.MatchString("user-") {
		t.Fatalf("owner(user-42) = %q, %v", owner, ok)
	}
	r, _ = compileRule(f.Channels[2])
	if r.presence || r.HistorySize != DefaultHistorySize || r.Publish != PublishNone {
		t.Fatalf("defaults of the catch-all: %+v", r)
	}
	for _, bad := range []string{
		`{"channel": []}`,
		`{"channels": [{"pattern": "x", "subscribe": "everyone"}]}`,
		`{"channels": [{"pattern": "x", "publish": "all"}]}`,
		`{"channels": [{"pattern": "x", "subscribe": "owner"}]}`,
		`{"channels": [{"pattern": "{user}-{user}"}]}`,
		`{"channels": [{"pattern": "x", "history_ttl": "soon"}]}`,
		`{"channels": [{"pattern": "x", "history_size": -2}]}`,
	} {
		if _, err := ParseFile([]byte(bad)); err == nil || !strings.HasPrefix(err.Error(), "hub: config") {
			t.Errorf("ParseFile(%s) = %v, want an error", bad, err)
		}
	}
}

func TestRuleGlobs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, name string
		match         bool
	}{
		{"*", "anything/at:all", true},
		{"room-*", "room-", true},
		{"room-*", "room", false},
		{"room-?", "room-1", true},
		{"room-?", "room-12", false},
		{"a.b", "a.b", true},
		{"a.b", "axb", false},
		{"feed/{user}/inbox", "feed/ann/inbox", true},
	} {
		r, err := compileRule(Rule{Pattern: tc.pattern})
		if err != nil {
			t.Fatal(err)
		}
		if got := r.re.MatchString(tc.name); got != tc.match {
			t.Errorf("%q matches %q: %v, want %v", tc.pattern, tc.name, got, tc.match)
		}
	}
}
