package sockjs

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// The Session API: what Info keeps, the context of SendContext and
// CloseContext, and what a closing session still sends.

// Session.Info keeps the default headers, and those Settings.InfoHeaders
// names (Authorization is not kept unless asked for).
func TestInfoHeaders(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	got := make(chan ConnectionInfo, 2)
	h := HandlerFuncs{Open: func(s *Session) error { got <- s.Info(); return nil }}
	_, _, plain := c.node(t, h, Settings{Prefix: "/plain"})
	_, _, auth := c.node(t, h, Settings{Prefix: "/auth", InfoHeaders: []string{"authorization"}})
	for _, tc := range []struct {
		base, want string
	}{{plain, ""}, {auth, "Bearer t0ken"}} {
		_, body := do(t, "POST", tc.base+"/0/s/xhr", "", "Authorization", "Bearer t0ken", "User-Agent", "test-agent")
		want(t, "open", body, "o\n")
		info := <-got
		want(t, "Authorization in Info", info.Headers.Get("Authorization"), tc.want)
		want(t, "User-Agent in Info", info.Headers.Get("User-Agent"), "test-agent")
	}
}

// SendContext and CloseContext honour their context: a cancelled one fails
// a send that must reach the store, and a live one works as Send does.
func TestSessionContext(t *testing.T) {
	t.Parallel()
	ids := make(chan string, 1)
	_, ep, base := newCluster(t).node(t, HandlerFuncs{Open: func(s *Session) error { ids <- s.ID(); return nil }}, Settings{})
	_, body := do(t, "POST", base+"/0/s/xhr", "")
	want(t, "open", body, "o\n")
	s := ep.Session(<-ids)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.SendContext(cancelled, "lost"); !errors.Is(err, context.Canceled) {
		t.Fatalf("SendContext with a cancelled context: %v, want context.Canceled", err)
	}
	if err := s.SendContext(context.Background(), "kept"); err != nil {
		t.Fatal(err)
	}
	_, body = do(t, "POST", base+"/0/s/xhr", "")
	want(t, "poll", body, `a["kept"]`+"\n")
	if err := s.CloseContext(context.Background(), 3000, "bye"); err != nil {
		t.Fatal(err)
	}
	_, body = do(t, "POST", base+"/0/s/xhr", "")
	want(t, "close frame", body, `c[3000,"bye"]`+"\n")
}

// closer echoes, and closes its session with 4008 on "bye" after sending
// two messages: what a hub does to a client over its limits.
type closer struct{ recorder }

func (c *closer) OnMessage(s *Session, msg string) {
	if msg != "bye" {
		c.recorder.OnMessage(s, msg)
		return
	}
	s.Send("pong")
	s.Send("error")
	s.Close(4008, "Policy violation")
}

// TestClosedSessionSendsPendingFirst: messages queued before Session.Close
// reach the client before the close frame, on every receiving transport
// (sockjs-node does the same); only once.
func TestClosedSessionSendsPendingFirst(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &closer{}, Settings{})
	const closeFrame = `c[4008,"Policy violation"]`

	t.Run("xhr", func(t *testing.T) {
		u := base + "/000/x1"
		_, body := do(t, "POST", u+"/xhr", "")
		want(t, "open", body, "o\n")
		do(t, "POST", u+"/xhr_send", `["bye"]`)
		_, body = do(t, "POST", u+"/xhr", "")
		want(t, "first poll after the close", body, `a["pong","error"]`+"\n")
		for range 2 {
			_, body = do(t, "POST", u+"/xhr", "")
			want(t, "later poll", body, closeFrame+"\n")
		}
	})
	t.Run("jsonp", func(t *testing.T) {
		u := base + "/000/j1"
		_, body := do(t, "GET", u+"/jsonp?c=cb", "")
		want(t, "open", body, "/**/cb(\"o\");\r\n")
		do(t, "POST", u+"/jsonp_send", `["bye"]`, "Content-Type", "text/plain")
		_, body = do(t, "GET", u+"/jsonp?c=cb", "")
		want(t, "first poll after the close", body, `/**/cb("a[\"pong\",\"error\"]");`+"\r\n")
		_, body = do(t, "GET", u+"/jsonp?c=cb", "")
		want(t, "later poll", body, `/**/cb("c[4008,\"Policy violation\"]");`+"\r\n")
	})
	t.Run("xhr_streaming", func(t *testing.T) {
		br := sendThenStream(t, base+"/000/s1", `["bye"]`)
		want(t, "pending", readLine(t, br), `a["pong","error"]`+"\n")
		want(t, "then the close", readLine(t, br), closeFrame+"\n")
	})
}

// sendThenStream opens session u by a poll, sends msgs to it (the
// handler's replies, then its close) and opens an xhr_streaming receiver
// on it; it returns the stream, past its prelude.
func sendThenStream(t *testing.T, u, msgs string) *bufio.Reader {
	t.Helper()
	_, body := do(t, "POST", u+"/xhr", "")
	want(t, "open", body, "o\n")
	do(t, "POST", u+"/xhr_send", msgs)
	resp, br := stream(t, "POST", u+"/xhr_streaming")
	t.Cleanup(func() { resp.Body.Close() })
	readLine(t, br) // the prelude
	return br
}

// bigCloser sends a small and a big message, then closes: more than one
// response-limited drain's worth.
type bigCloser struct{ recorder }

func (c *bigCloser) OnMessage(s *Session, msg string) {
	s.Send(strings.Repeat("a", 1500))
	s.Send(strings.Repeat("b", 3000))
	s.Close(4008, "Policy violation")
}

// TestClosedStreamSendsAllPending: a live stream whose session closes with
// more queued than one drain takes gets all of it before the close frame
// (on this stream, or on the next request once the stream hit its limit).
func TestClosedStreamSendsAllPending(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &bigCloser{}, Settings{ResponseLimit: 4096})
	u := base + "/000/big"
	_, body := do(t, "POST", u+"/xhr", "")
	want(t, "open", body, "o\n")
	resp, br := stream(t, "POST", u+"/xhr_streaming")
	defer resp.Body.Close()
	readLine(t, br) // the prelude
	do(t, "POST", u+"/xhr_send", `["go"]`)
	var frames []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			break
		}
		frames = append(frames, line)
		if strings.HasPrefix(line, "c") {
			break
		}
	}
	if len(frames) == 0 || !strings.HasPrefix(frames[len(frames)-1], "c") {
		_, body := do(t, "POST", u+"/xhr", "")
		frames = append(frames, body)
	}
	all := strings.Join(frames, "")
	if !strings.Contains(all, strings.Repeat("a", 1500)) || !strings.Contains(all, strings.Repeat("b", 3000)) ||
		!strings.HasSuffix(all, `c[4008,"Policy violation"]`+"\n") {
		t.Fatalf("frames %.200q, want both messages then the close", frames)
	}
}

// TestClosedSessionStreamTakesOnce: a stream opened on a closed session
// with more queued than one take (the response limit) gets each message
// once: a take holds what it took until written and committed, and the
// stream commits before it takes again (else the store gives it the
// first again). Its limit reached, the next request gets the close.
func TestClosedSessionStreamTakesOnce(t *testing.T) {
	t.Parallel()
	_, _, base := newCluster(t).node(t, &bigCloser{}, Settings{ResponseLimit: 4096})
	u := base + "/000/big"
	br := sendThenStream(t, u, `["go"]`)
	want(t, "first take", readLine(t, br), `a["`+strings.Repeat("a", 1500)+`"]`+"\n")
	want(t, "second take", readLine(t, br), `a["`+strings.Repeat("b", 3000)+`"]`+"\n")
	wantStreamEnd(t, "stream past its limit", br)
	_, body := do(t, "POST", u+"/xhr", "")
	want(t, "next poll", body, `c[4008,"Policy violation"]`+"\n")
}

// TestClientSessionRemembered: the remembered derivations answer as the
// derivation itself, for ids that share a slot too.
func TestClientSessionRemembered(t *testing.T) {
	t.Parallel()
	e := &Endpoint{settings: Settings{Prefix: "/p"}}
	derive := func(sid string) string {
		sum := sha256.Sum256([]byte(sid))
		return base64.RawURLEncoding.EncodeToString(sum[:16])
	}
	for round := 0; round < 2; round++ {
		for i := range 3 * len(e.clientSessions) {
			sid := strconv.Itoa(i)
			id, key := e.clientSession(sid)
			if want := derive(sid); id != want || key != "/p/"+want {
				t.Fatalf("round %d: %q: id %q key %q, want %q", round, sid, id, key, want)
			}
		}
	}
}
