package nodetest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// SockJSClient is a SockJS client of one session over xhr-polling or
// xhr-streaming, that keeps receiving (polling again, reopening streams)
// until stopped, as sockjs-client does, and records everything it gets.
type SockJSClient struct {
	base, sid string
	http      *http.Client

	mu       sync.Mutex // guards the fields below
	got      []string   // messages, in order
	opens    int        // "o" frames: more than one means a new session
	closes   []string   // "c" frames
	errs     []string   // failed requests
	receives int        // polls answered, streams opened
}

// NewSockJSClient returns a client of session sid at base (the endpoint's
// URL, e.g. http://host:port/echo).
func NewSockJSClient(base, sid string) *SockJSClient {
	return &SockJSClient{base: base, sid: sid, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
}

// ID is the session's id.
func (c *SockJSClient) ID() string { return c.sid }

// URL is the session's URL on transport (xhr, xhr_send, ...).
func (c *SockJSClient) URL(transport string) string {
	return c.base + "/000/" + c.sid + "/" + transport
}

func (c *SockJSClient) frame(f string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case f == "o":
		c.opens++
	case f == "h":
	case strings.HasPrefix(f, "a"):
		var msgs []string
		if err := json.Unmarshal([]byte(f[1:]), &msgs); err != nil {
			c.errs = append(c.errs, "bad frame "+f)
			return
		}
		c.got = append(c.got, msgs...)
	case strings.HasPrefix(f, "c"):
		c.closes = append(c.closes, f)
	default:
		c.errs = append(c.errs, "unknown frame "+f)
	}
}

func (c *SockJSClient) fail(err error) {
	c.mu.Lock()
	c.errs = append(c.errs, err.Error())
	c.mu.Unlock()
}

func (c *SockJSClient) post(ctx context.Context, transport, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL(transport), strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	return c.http.Do(req)
}

// Receive polls or streams until ctx ends. A failed request is recorded
// and retried after a pause.
func (c *SockJSClient) Receive(ctx context.Context, streaming bool) {
	for ctx.Err() == nil {
		var err error
		if streaming {
			err = c.StreamOnce(ctx)
		} else {
			err = c.PollOnce(ctx)
		}
		if err != nil && ctx.Err() == nil {
			c.fail(err)
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// PollOnce makes one poll and records what it answered.
func (c *SockJSClient) PollOnce(ctx context.Context) error {
	resp, err := c.post(ctx, "xhr", "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("poll: %s %q", resp.Status, body)
	}
	c.mu.Lock()
	c.receives++
	c.mu.Unlock()
	if f := strings.TrimSuffix(string(body), "\n"); f != "" {
		c.frame(f)
	}
	return nil
}

// StreamOnce reads one streaming response to its end.
func (c *SockJSClient) StreamOnce(ctx context.Context) error {
	resp, err := c.post(ctx, "xhr_streaming", "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("stream: %s", resp.Status)
	}
	c.mu.Lock()
	c.receives++
	c.mu.Unlock()
	br := bufio.NewReader(resp.Body)
	prelude := true
	for {
		line, err := br.ReadString('\n')
		if errors.Is(err, io.EOF) && line == "" {
			return nil // the stream ended cleanly: reopen it
		}
		if err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if prelude {
			prelude = false
			if strings.Trim(line, "h") == "" && len(line) == 2048 {
				continue
			}
		}
		c.frame(line)
	}
}

// Send sends one message with xhr_send.
func (c *SockJSClient) Send(ctx context.Context, msg string) error {
	b, _ := json.Marshal([]string{msg})
	resp, err := c.post(ctx, "xhr_send", string(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("xhr_send: %s", resp.Status)
	}
	return nil
}

// Snapshot is what the client recorded so far: the messages, the open
// frames (more than one means a new session), the close frames, the
// failed requests, and the receiving requests answered.
func (c *SockJSClient) Snapshot() (got []string, opens int, closes, errs []string, receives int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...), c.opens, append([]string(nil), c.closes...), append([]string(nil), c.errs...), c.receives
}

// ForgetCloses drops the close frames recorded so far (a 2010 a caller
// retries after, say).
func (c *SockJSClient) ForgetCloses() {
	c.mu.Lock()
	c.closes = nil
	c.mu.Unlock()
}
