package loadtest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// silentServer opens every session and then sends nothing, not even a
// heartbeat, until the test ends.
func silentServer(t *testing.T) string {
	t.Helper()
	quit := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/websocket"):
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			_ = c.Write(r.Context(), websocket.MessageText, []byte("o"))
		case strings.HasSuffix(r.URL.Path, "/xhr_streaming"):
			_, _ = w.Write([]byte(strings.Repeat("h", 2048) + "\no\n"))
			w.(http.Flusher).Flush()
		default:
			http.NotFound(w, r)
			return
		}
		select {
		case <-quit:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() {
		close(quit)
		srv.Close()
	})
	return srv.URL
}

// TestSilentServerTimesOut checks that a websocket or stream whose server
// goes quiet ends with ErrReadIdle instead of hanging.
func TestSilentServerTimesOut(t *testing.T) {
	t.Parallel()
	url := silentServer(t)
	c, err := NewClient(context.Background(), ClientConfig{URL: url, ReadIdleTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []Transport{TransportWebsocket, TransportXHRStreaming} {
		closed := make(chan error, 1)
		s, err := c.Open(context.Background(), "/echo", tr, SessionHandler{OnClose: func(err error) { closed <- err }})
		if err != nil {
			t.Fatalf("%s: open: %v", tr, err)
		}
		select {
		case err := <-closed:
			if !errors.Is(err, ErrReadIdle) {
				t.Errorf("%s: ended with %v, want ErrReadIdle", tr, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s: a silent session did not time out", tr)
			s.Close()
		}
	}
}
