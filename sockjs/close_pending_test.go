package sockjs

import (
	"strings"
	"testing"
)

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
	c := newCluster(t)
	_, _, base := c.node(t, &closer{}, Settings{})
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
		u := base + "/000/s1"
		_, body := do(t, "POST", u+"/xhr", "")
		want(t, "open", body, "o\n")
		do(t, "POST", u+"/xhr_send", `["bye"]`)
		resp, br := stream(t, "POST", u+"/xhr_streaming")
		defer resp.Body.Close()
		readLine(t, br) // the prelude
		want(t, "pending", readLine(t, br), `a["pong","error"]`+"\n")
		want(t, "then the close", readLine(t, br), closeFrame+"\n")
	})
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
	c := newCluster(t)
	_, _, base := c.node(t, &bigCloser{}, Settings{ResponseLimit: 4096})
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
