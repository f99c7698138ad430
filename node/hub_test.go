package main

// The hub app through the node program: its flags and SHOAL_* variables
// with tokens real Django signed, and its webhooks to a real backend.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/sockjstest"
	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/node/nodetest"
)

// djangoTokens mints tokens with real Django (Debian's python3-django):
// one per payload (JSON), signed with secret and salt, aged seconds old.
func djangoTokens(t *testing.T, secret, salt string, age int, payloads ...string) []string {
	t.Helper()
	py := nodetest.Python(t, "django")
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
	return strings.Fields(testenv.Run(t, py, args...))
}

// hubSession is a websocket hub session on a node process, read message
// by message.
type hubSession struct {
	t  *testing.T
	ws *nodetest.WS
}

func dialHubSession(t *testing.T, url string) *hubSession {
	t.Helper()
	return &hubSession{t: t, ws: nodetest.DialWS(t, url+"/0/x/websocket")}
}

// next returns the next hub message (heartbeats and the open frame
// skipped), or the close frame.
func (s *hubSession) next() string {
	s.t.Helper()
	for {
		f := s.ws.Next(s.t)
		switch fr := sockjstest.ParseFrame(s.t, f); {
		case fr.Close != "":
			return fr.Close
		case len(fr.Msgs) == 1:
			return fr.Msgs[0]
		case len(fr.Msgs) > 1:
			s.t.Fatalf("frame %q: want one message", f)
		}
	}
}

func (s *hubSession) send(msg string) { s.ws.Send(s.t, msg) }

// TestHubWithDjangoTokens: a node started with the hub's flags and their
// SHOAL_* variables verifies tokens real Django signed: ok, bad, expired,
// a string payload joining its channel, and the config file's rules.
func TestHubWithDjangoTokens(t *testing.T) {
	cfgFile := testenv.TempFile(t, "hub.json", `{"channels":[{"pattern":"user-{user}","subscribe":"owner"},{"pattern":"*"}]}`)
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

func dataOf(m map[string]any) map[string]any {
	d, _ := m["data"].(map[string]any)
	return d
}

// TestWebhooksThroughNode: a node with --webhook-url calls a real backend
// process (the webhook package's Python test backend) for connect,
// subscribe, publish, events and disconnects; a slow backend and a dead
// one give clients "Backend unavailable", never a stalled session.
func TestWebhooksThroughNode(t *testing.T) {
	// timeout bounds the backend calls (the hub's and the webhook's own);
	// slowBackend is how long backend.py sleeps on the token "slow", and
	// the default --webhook-timeout: an answer to it sooner comes from
	// timeout.
	const timeout, slowBackend = time.Second, 3 * time.Second
	backend := nodetest.StartWebhookBackend(t, "hook-secret")
	cfg := testenv.TempFile(t, "hub.json", fmt.Sprintf(`{"channels":[{"pattern":"room-*","subscribe":"backend","publish":"backend"},{"pattern":"private-*","subscribe":"backend"}],"backend_timeout":%q}`, timeout))
	n := nodetest.StartNode(t, "hook1", "--apps", "hub", "--config", cfg,
		"--webhook-url", "http://"+backend.Addr+"/hook", "--webhook-secret", "hook-secret", "--webhook-timeout", timeout.String())
	dead := nodetest.StartNode(t, "hook2", "--apps", "hub", "--config", cfg,
		"--webhook-url", "http://"+testenv.FreeAddr(t)+"/hook", "--webhook-secret", "x")

	var authSent time.Time // when auth last sent a token
	auth := func(n *nodetest.Node, tok string) *nodetest.HubClient {
		c := nodetest.DialHub(t, n.Addr)
		c.WaitFor(t, nodetest.Typed("request_auth", 0))
		authSent = time.Now()
		c.Send(t, fmt.Sprintf(`{"data_type":"auth","id":1,"data":{"token":%q}}`, tok))
		return c
	}
	a := auth(n, "good")
	if d := dataOf(a.WaitFor(t, nodetest.Typed("auth", 1))); d["user"] != "42" {
		t.Fatalf("connect webhook: %v", d)
	}
	if d := dataOf(auth(n, "forged").WaitFor(t, nodetest.Typed("auth_error", 1))); d["message"] != "Token refused" {
		t.Fatalf("connect refused: %v", d)
	}
	// Timed from the token's send, not the dial (a loaded machine once
	// took 2.5 s from before the dial): the node waits for timeout, then
	// answers before the backend (its answer would be "Token refused")
	// or the default timeout could.
	d := dataOf(auth(n, "slow").WaitFor(t, nodetest.Typed("auth_error", 1)))
	if took := time.Since(authSent); d["message"] != "Backend unavailable" || took < timeout || took >= slowBackend {
		t.Fatalf("slow backend: %v after %v; want Backend unavailable after %v to %v", d, took, timeout, slowBackend)
	}
	if d := dataOf(auth(dead, "good").WaitFor(t, nodetest.Typed("auth_error", 1))); d["message"] != "Backend unavailable" {
		t.Fatalf("backend down: %v", d)
	}

	a.Send(t, `{"data_type":"subscribe","id":2,"data":{"channel":"room-1"}}`)
	a.WaitFor(t, nodetest.Typed("subscribe", 2))
	a.Send(t, `{"data_type":"subscribe","id":3,"data":{"channel":"private-1"}}`)
	if d := dataOf(a.WaitFor(t, nodetest.Typed("subscribe_error", 3))); d["message"] != "Private channel" {
		t.Fatalf("subscribe refused: %v", d)
	}
	a.Send(t, `{"data_type":"publish","id":4,"data":{"channel":"room-1","data":{"data_type":"chat","text":"hi"}}}`)
	a.WaitFor(t, nodetest.Typed("publish", 4))
	if m := a.WaitFor(t, nodetest.Typed("chat", 0)); m["checked"] != true || m["text"] != "hi" {
		t.Fatalf("publish rewritten by the backend: %v", m)
	}
	a.Send(t, `{"data_type":"publish","id":5,"data":{"channel":"room-1","data":"bad words"}}`)
	if d := dataOf(a.WaitFor(t, nodetest.Typed("error", 5))); d["message"] != "Watch your language" {
		t.Fatalf("publish refused: %v", d)
	}
	a.Send(t, `{"data_type":"event","id":6,"data":{"name":"typing","data":{"on":true}}}`)
	if d := dataOf(a.WaitFor(t, nodetest.Typed("ack", 6))); fmt.Sprint(d) != "map[echo:map[on:true] user:42]" {
		t.Fatalf("event ack: %v", d)
	}
	a.Send(t, `{"data_type":"event","id":7,"data":{"name":"crash"}}`)
	if d := dataOf(a.WaitFor(t, nodetest.Typed("error", 7))); d["message"] != "Backend unavailable" {
		t.Fatalf("event on a failing backend: %v", d)
	}

	// The disconnect notification: the backend fails it twice, the node
	// retries, the third attempt lands.
	a.Close()
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		st, err := backend.Seen()
		if err != nil {
			return err
		}
		if len(st.Disconnects) == 0 {
			return fmt.Errorf("no disconnect yet: %+v", st)
		}
		return nil
	})
}
