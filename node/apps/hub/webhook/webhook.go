// Package webhook is the hub's Backend that calls the application over
// HTTP (`--webhook-url`): connect, subscribe, publish, event and
// disconnect become signed POST requests to one URL, answered with JSON.
// docs/backends.md gives the format and a Django view that serves it.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-rt/shoal/node/apps/hub"
)

// Headers of every request.
const (
	// HeaderTimestamp is the request's Unix time in seconds; the backend
	// refuses requests older than a few minutes (replays).
	HeaderTimestamp = "X-Shoal-Timestamp"
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256, keyed by the
	// shared secret, of the timestamp, a ".", and the body.
	HeaderSignature = "X-Shoal-Signature"
	// HeaderType repeats the body's "type".
	HeaderType = "X-Shoal-Type"
)

// Errors.
var (
	// ErrBusy: MaxInFlight requests are waiting on the backend already;
	// the call fails at once instead of piling up.
	ErrBusy = errors.New("webhook: too many requests in flight")
	// ErrBackend: the backend answered with a status that is neither
	// success nor refusal, or a body that is not a JSON object.
	ErrBackend = errors.New("webhook: backend error")
)

// Config configures the webhook backend. Zero fields take defaults.
type Config struct {
	URL    string
	Secret string
	// Timeout bounds one request (default 3 s); the hub's own deadline
	// (backend_timeout in the config file) applies too.
	Timeout time.Duration
	// MaxInFlight bounds concurrent requests (default 256).
	MaxInFlight int
	// Disconnect notifications wait in a queue of QueueSize (default
	// 10,000; when full a new one is dropped and counted)
	// and are tried Retries times in all (default 5) with a backoff doubling
	// from RetryBase (default 200 ms).
	QueueSize int
	Retries   int
	RetryBase time.Duration
	// Client sends the requests; nil: a client with Timeout.
	Client *http.Client
	Log    *slog.Logger
}

// Webhook implements hub.Backend over HTTP.
type Webhook struct {
	cfg      Config
	client   *http.Client
	log      *slog.Logger
	inflight chan struct{}
	queue    chan hub.DisconnectRequest
	stop     chan struct{}
	wg       sync.WaitGroup
	closed   sync.Once

	// Dropped counts disconnect notifications given up: queue full or
	// every retry failed.
	Dropped atomic.Uint64
}

var _ hub.Backend = (*Webhook)(nil)

// New returns a Webhook and starts its disconnect senders; Close stops them.
func New(c Config) (*Webhook, error) {
	if c.URL == "" {
		return nil, errors.New("webhook: no URL")
	}
	if c.Timeout <= 0 {
		c.Timeout = 3 * time.Second
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 256
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 10000
	}
	if c.Retries <= 0 {
		c.Retries = 5
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 200 * time.Millisecond
	}
	w := &Webhook{cfg: c, client: c.Client, log: c.Log,
		inflight: make(chan struct{}, c.MaxInFlight),
		queue:    make(chan hub.DisconnectRequest, c.QueueSize),
		stop:     make(chan struct{})}
	if w.client == nil {
		w.client = &http.Client{Timeout: c.Timeout}
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	for range 4 {
		w.wg.Add(1)
		go w.sendDisconnects()
	}
	return w, nil
}

// Close stops the disconnect senders; notifications still queued are
// dropped (a node that stops cannot keep them).
func (w *Webhook) Close() {
	w.closed.Do(func() { close(w.stop) })
	w.wg.Wait()
}

// reply is the body of every answer; fields unused by a type are ignored.
type reply struct {
	// Deny refuses with this reason (the client's error message).
	Deny string `json:"deny"`
	// Connect grants.
	User     string   `json:"user"`
	Channels []string `json:"channels"`
	// Data: publish's rewritten payload, event's ack data.
	Data json.RawMessage `json:"data"`
}

// maxReply bounds a reply body.
const maxReply = 1 << 20

// call POSTs {"type": typ, ...req} and decodes the reply. A refusal
// (reply "deny", or status 403) is an error wrapping hub.ErrDenied.
func (w *Webhook) call(ctx context.Context, typ string, req any) (reply, error) {
	var rep reply
	select {
	case w.inflight <- struct{}{}:
		defer func() { <-w.inflight }()
	default:
		return rep, ErrBusy
	}
	body, err := encode(typ, req)
	if err != nil {
		return rep, err
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return rep, fmt.Errorf("webhook: %w", err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set(HeaderType, typ)
	hr.Header.Set(HeaderTimestamp, ts)
	hr.Header.Set(HeaderSignature, Sign(w.cfg.Secret, ts, body))
	resp, err := w.client.Do(hr)
	if err != nil {
		return rep, fmt.Errorf("webhook: %s: %w", typ, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return rep, fmt.Errorf("webhook: %s: reading reply: %w", typ, err)
	}
	if len(raw) > maxReply {
		return rep, fmt.Errorf("%w: %s: reply over %d bytes", ErrBackend, typ, maxReply)
	}
	switch {
	case resp.StatusCode == http.StatusForbidden:
		json.Unmarshal(raw, &rep)
		return rep, fmt.Errorf("%w: %s", hub.ErrDenied, rep.Deny)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return rep, fmt.Errorf("%w: %s: status %d", ErrBackend, typ, resp.StatusCode)
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &rep); err != nil {
			return rep, fmt.Errorf("%w: %s: reply not a JSON object: %v", ErrBackend, typ, err)
		}
	}
	if rep.Deny != "" {
		return rep, fmt.Errorf("%w: %s", hub.ErrDenied, rep.Deny)
	}
	return rep, nil
}

// encode puts "type" first, then the request's fields.
func encode(typ string, req any) ([]byte, error) {
	fields, err := json.Marshal(req)
	if err != nil || len(fields) < 2 || fields[0] != '{' {
		return nil, fmt.Errorf("webhook: encode %s: %v", typ, err)
	}
	b := append([]byte(`{"type":`), strconv.Quote(typ)...)
	if len(fields) > 2 {
		b = append(b, ',')
	}
	return append(b, fields[1:]...), nil
}

// Sign returns the signature header of a request: "sha256=" and the hex
// HMAC-SHA256 of timestamp + "." + body.
func Sign(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Connect implements hub.Backend: the reply's "user" and "channels"
// grant the session; a reply without a user refuses it.
func (w *Webhook) Connect(ctx context.Context, req hub.ConnectRequest) (hub.ConnectReply, error) {
	rep, err := w.call(ctx, "connect", req)
	if err != nil {
		return hub.ConnectReply{}, err
	}
	if rep.User == "" {
		return hub.ConnectReply{}, fmt.Errorf("%w: Not authenticated", hub.ErrDenied)
	}
	return hub.ConnectReply{User: rep.User, Channels: rep.Channels}, nil
}

// Subscribe implements hub.Backend.
func (w *Webhook) Subscribe(ctx context.Context, req hub.SubscribeRequest) error {
	_, err := w.call(ctx, "subscribe", req)
	return err
}

// Publish implements hub.Backend: a reply "data" replaces the payload.
func (w *Webhook) Publish(ctx context.Context, req hub.PublishRequest) (json.RawMessage, error) {
	rep, err := w.call(ctx, "publish", req)
	if err != nil || len(rep.Data) == 0 || string(rep.Data) == "null" {
		return nil, err
	}
	return rep.Data, nil
}

// Event implements hub.Backend: the reply's "data" is the ack's data.
func (w *Webhook) Event(ctx context.Context, req hub.EventRequest) (json.RawMessage, error) {
	rep, err := w.call(ctx, "event", req)
	if err != nil {
		return nil, err
	}
	if len(rep.Data) == 0 {
		return json.RawMessage("null"), nil
	}
	return rep.Data, nil
}

// Disconnect implements hub.Backend: it queues the notification and
// returns; a full queue drops it (counted in Dropped).
func (w *Webhook) Disconnect(req hub.DisconnectRequest) {
	select {
	case w.queue <- req:
	default:
		w.Dropped.Add(1)
		w.log.Warn("webhook: disconnect queue full, notification dropped", "session", req.Session)
	}
}

func (w *Webhook) sendDisconnects() {
	defer w.wg.Done()
	for {
		select {
		case <-w.stop:
			return
		case req := <-w.queue:
			w.deliverDisconnect(req)
		}
	}
}

// deliverDisconnect retries with a doubling backoff; a refusal counts as
// delivered (the backend heard it).
func (w *Webhook) deliverDisconnect(req hub.DisconnectRequest) {
	wait := w.cfg.RetryBase
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Timeout)
		_, err := w.call(ctx, "disconnect", req)
		cancel()
		if err == nil || errors.Is(err, hub.ErrDenied) {
			return
		}
		if attempt >= w.cfg.Retries {
			w.Dropped.Add(1)
			w.log.Warn("webhook: disconnect notification given up", "session", req.Session, "attempts", attempt, "err", err)
			return
		}
		select {
		case <-w.stop:
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
}
