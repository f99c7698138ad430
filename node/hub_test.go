package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/shoal-rt/shoal/node/nodetest"
)

// djangoTokens mints tokens with real Django (Debian's python3-django):
// one per payload (JSON), signed with secret and salt, aged seconds old.
func djangoTokens(t *testing.T, secret, salt string, age int, payloads ...string) []string {
	t.Helper()
	py := "/usr/bin/python3"
	if exec.Command(py, "-c", "import django").Run() != nil {
		t.Fatal("no /usr/bin/python3 with django: apt-get install python3-django (scripts/test does)")
	}
	script := `
import json, sys, time
from django.conf import settings
settings.configure(SECRET_KEY=sys.argv[1])
from django.core import signing
real = time.time
time.time = lambda: real() - int(sys.argv[3])
for p in sys.argv[4:]:
    print(signing.dumps(json.loads(p), salt=sys.argv[2]))
`
	args := append([]string{"-c", script, secret, salt, fmt.Sprint(age)}, payloads...)
	out, err := exec.Command(py, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("django: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

// hubSession is a websocket hub session on a node process.
type hubSession struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialHubSession(t *testing.T, url string) *hubSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/0/x/websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return &hubSession{t: t, conn: conn}
}

// next returns the next hub message (heartbeats and the open frame
// skipped), or the close frame.
func (s *hubSession) next() string {
	s.t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, b, err := s.conn.Read(ctx)
		cancel()
		if err != nil {
			s.t.Fatal(err)
		}
		f := string(b)
		switch f[0] {
		case 'o', 'h':
			continue
		case 'c':
			return f
		}
		var msgs []string
		if err := json.Unmarshal(b[1:], &msgs); err != nil || len(msgs) != 1 {
			s.t.Fatalf("frame %q", f)
		}
		return msgs[0]
	}
}

func (s *hubSession) send(msg string) {
	s.t.Helper()
	b, _ := json.Marshal([]string{msg})
	if err := s.conn.Write(context.Background(), websocket.MessageText, b); err != nil {
		s.t.Fatal(err)
	}
}

// TestHubWithDjangoTokens: a node started with the hub's flags and their
// SHOAL_* variables verifies tokens real Django signed: ok, bad, expired,
// a string payload joining its channel, and the config file's rules.
func TestHubWithDjangoTokens(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "hub.json")
	if err := os.WriteFile(cfgFile, []byte(`{"channels":[{"pattern":"user-{user}","subscribe":"owner"},{"pattern":"*"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SHOAL_DJANGO_SALT", "shoal")
	t.Setenv("SHOAL_CONFIG", cfgFile)
	n := nodetest.StartNode(t, "hub1", "--apps", "hub", "--hub-prefix", "/rt", "--django-secret-key", "s3cret", "--django-max-age", "5m")
	base := n.URL() + "/rt"
	fresh := djangoTokens(t, "s3cret", "shoal", 0, `{"user":"42","channels":["room-1"]}`, `"news"`)
	old := djangoTokens(t, "s3cret", "shoal", 3600, `{"user":"42"}`)
	wrongSalt := djangoTokens(t, "s3cret", "other", 0, `{"user":"42"}`)

	s := dialHubSession(t, base)
	if got := s.next(); got != `{"data_type":"request_auth","data":{}}` {
		t.Fatalf("first message %s", got)
	}
	for tok, want := range map[string]string{old[0]: "Token expired", wrongSalt[0]: "Token invalid"} {
		s.send(fmt.Sprintf(`{"data_type":"auth","data":{"token":%q,"salt":"other"}}`, tok))
		if got := s.next(); got != `{"data_type":"auth_error","data":{"message":"`+want+`"}}` {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	s.send(fmt.Sprintf(`{"data_type":"auth","data":{"token":%q}}`, fresh[0]))
	if got := s.next(); !strings.HasPrefix(got, `{"data_type":"auth","data":{"message":"success","user":"42","channels":["room-1"],"session":"`) {
		t.Fatalf("auth reply %s", got)
	}
	s.send(`{"data_type":"subscribe","id":1,"data":{"channel":"user-42"}}`)
	if got := s.next(); !strings.HasPrefix(got, `{"data_type":"subscribe","id":1,"data":{"channel":"user-42"`) {
		t.Fatalf("own channel: %s", got)
	}
	s.send(`{"data_type":"subscribe","id":2,"data":{"channel":"user-7"}}`)
	if got := s.next(); got != `{"data_type":"subscribe_error","id":2,"data":{"channel":"user-7","message":"Permission denied"}}` {
		t.Fatalf("another user's channel: %s", got)
	}

	str := dialHubSession(t, base)
	str.next()
	str.send(fmt.Sprintf(`{"data_type":"auth","data":{"token":%q}}`, fresh[1]))
	if got := str.next(); !strings.Contains(got, `"user":"","channels":["news"]`) {
		t.Fatalf("string payload: %s", got)
	}
}
