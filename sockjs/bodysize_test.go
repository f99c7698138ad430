package sockjs

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// TestOversizedBodyClosesSession: a send body over MaxMessageSize gets 413
// and closes the session with 1009, as an oversized websocket frame does.
// A jsonp-polling client cannot read the 413 (it posts a form into a
// hidden iframe): before this, its batch was dropped and the session went
// on, so messages were lost without a trace. The parked poll, held by
// another node, now gets the close frame.
func TestOversizedBodyClosesSession(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 200)
	for _, tc := range []struct {
		name, method, poll, send, ctype, body, open, closed string
	}{
		{"xhr", "POST", "/xhr", "/xhr_send", "text/plain", `["` + big + `"]`,
			"o\n", `c[1009,"Message too big"]` + "\n"},
		{"jsonp", "GET", "/jsonp?c=cb", "/jsonp_send", "application/x-www-form-urlencoded", "d=" + url.QueryEscape(`["`+big+`"]`),
			"/**/cb(\"o\");\r\n", `/**/cb("c[1009,\"Message too big\"]");` + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t)
			rec := &recorder{}
			_, _, a := c.node(t, rec, Settings{MaxMessageSize: 100})
			_, _, b := c.node(t, rec, Settings{MaxMessageSize: 100})
			s := "/0/" + tc.name
			_, body := do(t, tc.method, a+s+tc.poll, "")
			want(t, "open", body, tc.open)

			parked := make(chan string, 1)
			go func() {
				req, _ := http.NewRequest(tc.method, a+s+tc.poll, nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					parked <- err.Error()
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				parked <- string(b)
			}()
			resp, _ := do(t, "POST", b+s+tc.send, tc.body, "Content-Type", tc.ctype)
			want(t, "oversized send", resp.StatusCode, 413)
			select {
			case body := <-parked:
				want(t, "parked poll", body, tc.closed)
			case <-time.After(5 * time.Second):
				t.Fatal("the parked poll got nothing within 5s")
			}
			_, body = do(t, tc.method, b+s+tc.poll, "")
			want(t, "next poll", body, tc.closed)
			testenv.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
				if opened, closed := rec.counts(); opened != 1 || closed != 1 {
					return fmt.Errorf("OnOpen %d times, OnClose %d times, want 1 and 1", opened, closed)
				}
				return nil
			})

			// An oversized body for an unknown session creates nothing.
			resp, _ = do(t, "POST", b+"/0/unknown"+tc.send, tc.body, "Content-Type", tc.ctype)
			want(t, "oversized send to unknown session", resp.StatusCode, 413)
			if opened, _ := rec.counts(); opened != 1 {
				t.Errorf("OnOpen ran %d times, want 1", opened)
			}
		})
	}
}
