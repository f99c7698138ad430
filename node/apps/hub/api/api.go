// Package api is the HTTP API backends call to drive the hub (`--api-key`):
// publish, broadcast, disconnect, presence, history, channel and session
// lists, node and cluster info. JSON in and out; docs/api.md documents
// every call with curl examples.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-rt/shoal/node/apps/hub"
)

var _ Hub = (*hub.Hub)(nil)

// Hub is what the API drives: the hub's Go API (*hub.Hub). Methods are
// called concurrently.
type Hub interface {
	Publish(ctx context.Context, channel string, payload []byte) (offset uint64, err error)
	Presence(ctx context.Context, channel string) (hub.PresenceInfo, error)
	History(ctx context.Context, channel string, since uint64, limit int) (hub.HistoryInfo, error)
	Channels(ctx context.Context) ([]string, error)
	UserSessions(ctx context.Context, user string) ([]string, error)
	DisconnectUser(ctx context.Context, user string) (sessions int, err error)
	DisconnectSession(ctx context.Context, session string) error
}

// Config configures the API. Zero fields take defaults.
type Config struct {
	// Key is the API key; an empty key refuses every request.
	Key string
	// MaxBody bounds a request body (default 1 MiB).
	MaxBody int64
	// MaxChannels bounds one broadcast (default 1000).
	MaxChannels int
	// Timeout bounds one call (default 10 s).
	Timeout time.Duration
	// Info answers /api/info: this node and the cluster; nil: empty.
	Info func(ctx context.Context) any
	Log  *slog.Logger
}

// API serves /api/...
type API struct {
	hub     Hub
	cfg     Config
	keyHash [sha256.Size]byte
	mux     *http.ServeMux
	log     *slog.Logger
}

// New returns the API over hub. Mount it with mux.Handle("/api/", a).
func New(hub Hub, c Config) *API {
	if c.MaxBody <= 0 {
		c.MaxBody = 1 << 20
	}
	if c.MaxChannels <= 0 {
		c.MaxChannels = 1000
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	a := &API{hub: hub, cfg: c, keyHash: sha256.Sum256([]byte(c.Key)), mux: http.NewServeMux(), log: c.Log}
	a.handle("POST /api/publish", a.publish)
	a.handle("POST /api/broadcast", a.broadcast)
	a.handle("POST /api/disconnect", a.disconnect)
	for _, m := range []string{"GET", "POST"} {
		a.handle(m+" /api/presence", a.presence)
		a.handle(m+" /api/history", a.history)
		a.handle(m+" /api/channels", a.channels)
		a.handle(m+" /api/sessions", a.sessions)
		a.handle(m+" /api/info", a.info)
	}
	return a
}

// Error is the body of every error reply.
type Error struct {
	Error string `json:"error"`
}

// httpError carries a status to the reply.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func (a *API) handle(pattern string, f func(r *http.Request, in params) (any, error)) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		in, err := a.read(r)
		var out any
		if err == nil {
			ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
			out, err = f(r.WithContext(ctx), in)
			cancel()
		}
		if err != nil {
			status := a.status(err)
			if status >= 500 {
				a.log.Warn("api: call failed", "path", r.URL.Path, "err", err)
			}
			writeJSON(w, status, Error{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
}

func (a *API) status(err error) int {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.Is(err, hub.ErrInvalidChannel), errors.Is(err, hub.ErrUnknownChannel):
		return http.StatusBadRequest
	case errors.Is(err, hub.ErrNoSession):
		return http.StatusNotFound
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// ServeHTTP checks the key, then serves the call.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(r) {
		w.Header().Set("WWW-Authenticate", "apikey")
		writeJSON(w, http.StatusUnauthorized, Error{"invalid API key"})
		return
	}
	h, pattern := a.mux.Handler(r)
	if pattern == "" {
		if _, p := a.mux.Handler(withMethod(r, "POST")); p != "" {
			writeJSON(w, http.StatusMethodNotAllowed, Error{"method not allowed"})
			return
		}
		writeJSON(w, http.StatusNotFound, Error{"no such call"})
		return
	}
	h.ServeHTTP(w, r)
}

func withMethod(r *http.Request, m string) *http.Request {
	r2 := r.Clone(r.Context())
	r2.Method = m
	return r2
}

// authorized compares hashes, so neither the key's bytes nor its length
// show in the time taken.
func (a *API) authorized(r *http.Request) bool {
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "apikey") || a.cfg.Key == "" {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(key)))
	return subtle.ConstantTimeCompare(got[:], a.keyHash[:]) == 1
}

// params is a request's input: the JSON body, or for GET the query.
type params struct {
	Channel  string          `json:"channel"`
	Channels []string        `json:"channels"`
	Data     json.RawMessage `json:"data"`
	Session  string          `json:"session"`
	User     string          `json:"user"`
	Since    uint64          `json:"since"`
	Limit    int             `json:"limit"`
}

func (a *API) read(r *http.Request) (params, error) {
	var in params
	if r.Method == http.MethodGet {
		q := r.URL.Query()
		in.Channel, in.Session, in.User = q.Get("channel"), q.Get("session"), q.Get("user")
		var err error
		if s := q.Get("since"); s != "" {
			if in.Since, err = strconv.ParseUint(s, 10, 64); err != nil {
				return in, badRequest("since: not an offset")
			}
		}
		if s := q.Get("limit"); s != "" {
			if in.Limit, err = strconv.Atoi(s); err != nil {
				return in, badRequest("limit: not a number")
			}
		}
		return in, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, a.cfg.MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return in, &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", a.cfg.MaxBody)}
	case err != nil:
		return in, badRequest("reading body: %v", err)
	case len(body) == 0:
		return in, nil
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return in, badRequest("invalid JSON: %v", err)
	}
	return in, nil
}

// maxChannelLen matches the hub's bound on channel names.
const maxChannelLen = 200

func checkChannel(c string) error {
	if c == "" {
		return badRequest("channel missing")
	}
	if len(c) > maxChannelLen {
		return badRequest("channel longer than %d bytes", maxChannelLen)
	}
	return nil
}

// PublishReply answers publish.
type PublishReply struct {
	Channel string `json:"channel"`
	Offset  uint64 `json:"offset"`
}

func (a *API) publish(r *http.Request, in params) (any, error) {
	if err := checkChannel(in.Channel); err != nil {
		return nil, err
	}
	if len(in.Data) == 0 {
		return nil, badRequest("data missing")
	}
	off, err := a.hub.Publish(r.Context(), in.Channel, in.Data)
	if err != nil {
		return nil, err
	}
	return PublishReply{in.Channel, off}, nil
}

// BroadcastResult is one channel's outcome in a broadcast.
type BroadcastResult struct {
	Channel string `json:"channel"`
	Offset  uint64 `json:"offset,omitempty"`
	Error   string `json:"error,omitempty"`
}

func (a *API) broadcast(r *http.Request, in params) (any, error) {
	if len(in.Channels) == 0 {
		return nil, badRequest("channels missing")
	}
	if len(in.Channels) > a.cfg.MaxChannels {
		return nil, badRequest("more than %d channels", a.cfg.MaxChannels)
	}
	if len(in.Data) == 0 {
		return nil, badRequest("data missing")
	}
	for _, c := range in.Channels {
		if err := checkChannel(c); err != nil {
			return nil, err
		}
	}
	out := make([]BroadcastResult, len(in.Channels))
	for i, c := range in.Channels {
		out[i].Channel = c
		if off, err := a.hub.Publish(r.Context(), c, in.Data); err != nil {
			out[i].Error = err.Error()
		} else {
			out[i].Offset = off
		}
	}
	return map[string]any{"results": out}, nil
}

func (a *API) disconnect(r *http.Request, in params) (any, error) {
	switch {
	case in.Session != "" && in.User != "":
		return nil, badRequest("give session or user, not both")
	case in.Session != "":
		if err := a.hub.DisconnectSession(r.Context(), in.Session); err != nil {
			return nil, err
		}
		return map[string]int{"disconnected": 1}, nil
	case in.User != "":
		n, err := a.hub.DisconnectUser(r.Context(), in.User)
		if err != nil {
			return nil, err
		}
		return map[string]int{"disconnected": n}, nil
	}
	return nil, badRequest("session or user missing")
}

func (a *API) presence(r *http.Request, in params) (any, error) {
	if err := checkChannel(in.Channel); err != nil {
		return nil, err
	}
	return a.hub.Presence(r.Context(), in.Channel)
}

func (a *API) history(r *http.Request, in params) (any, error) {
	if err := checkChannel(in.Channel); err != nil {
		return nil, err
	}
	if in.Limit < 0 {
		return nil, badRequest("limit must not be negative")
	}
	return a.hub.History(r.Context(), in.Channel, in.Since, in.Limit)
}

func (a *API) channels(r *http.Request, _ params) (any, error) {
	cs, err := a.hub.Channels(r.Context())
	if err != nil {
		return nil, err
	}
	if cs == nil {
		cs = []string{}
	}
	return map[string][]string{"channels": cs}, nil
}

func (a *API) sessions(r *http.Request, in params) (any, error) {
	if in.User == "" {
		return nil, badRequest("user missing")
	}
	ss, err := a.hub.UserSessions(r.Context(), in.User)
	if err != nil {
		return nil, err
	}
	if ss == nil {
		ss = []string{}
	}
	return map[string]any{"user": in.User, "sessions": ss}, nil
}

func (a *API) info(r *http.Request, _ params) (any, error) {
	if a.cfg.Info == nil {
		return map[string]any{}, nil
	}
	return a.cfg.Info(r.Context()), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding reply"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
