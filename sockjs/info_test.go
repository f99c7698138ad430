package sockjs

import (
	"context"
	"errors"
	"testing"
)

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
	c := newCluster(t)
	ids := make(chan string, 1)
	_, ep, base := c.node(t, HandlerFuncs{Open: func(s *Session) error { ids <- s.ID(); return nil }}, Settings{})
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
