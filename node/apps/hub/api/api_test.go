package api

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/shoal-rt/shoal/internal/sockjstest"
	"github.com/shoal-rt/shoal/node/apps/hub"
)

// recordingHub answers as a hub with one channel log per channel; the
// cluster tests in package node drive the API against the real hub.
type recordingHub struct {
	mu      sync.Mutex
	logs    map[string][]string
	dropped []string
}

func (h *recordingHub) Publish(ctx context.Context, channel string, payload []byte) (uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs[channel] = append(h.logs[channel], string(payload))
	return uint64(len(h.logs[channel])), nil
}
func (h *recordingHub) Presence(ctx context.Context, channel string) (hub.PresenceInfo, error) {
	return hub.PresenceInfo{Channel: channel, Users: []string{}}, nil
}
func (h *recordingHub) History(ctx context.Context, channel string, since uint64, limit int) (hub.HistoryInfo, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if channel == "bad" {
		return hub.HistoryInfo{}, hub.ErrUnknownChannel
	}
	out := hub.HistoryInfo{Channel: channel, Offset: uint64(len(h.logs[channel])), Recovered: true, Messages: []json.RawMessage{}}
	for i, m := range h.logs[channel] {
		if uint64(i+1) > since && (limit <= 0 || len(out.Messages) < limit) {
			out.Messages = append(out.Messages, json.RawMessage(m))
		}
	}
	return out, nil
}
func (h *recordingHub) Channels(ctx context.Context) ([]string, error) { return nil, nil }
func (h *recordingHub) UserSessions(ctx context.Context, user string) ([]string, error) {
	return []string{"s1", "s2"}, nil
}
func (h *recordingHub) DisconnectUser(ctx context.Context, user string) (int, error) {
	h.dropped = append(h.dropped, "user:"+user)
	return 2, nil
}
func (h *recordingHub) DisconnectSession(ctx context.Context, session string) error {
	if session == "missing" {
		return hub.ErrNoSession
	}
	h.dropped = append(h.dropped, "session:"+session)
	return nil
}

func TestAPI(t *testing.T) {
	rec := &recordingHub{logs: map[string][]string{}}
	a := New(rec, Config{Key: "s3cret", MaxBody: 256})
	srv := httptest.NewServer(a)
	defer srv.Close()
	call := func(method, path, key, body string) (int, string) {
		resp, b := sockjstest.Do(t, method, srv.URL+path, body, "Authorization", key)
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: content type %q", method, path, ct)
		}
		if !json.Valid([]byte(b)) {
			t.Errorf("%s %s: reply not JSON: %s", method, path, b)
		}
		return resp.StatusCode, strings.TrimSpace(b)
	}
	const key = "apikey s3cret"
	for _, c := range []struct {
		method, path, key, body string
		status                  int
		reply                   string
	}{
		{"POST", "/api/publish", "", `{"channel":"a","data":1}`, 401, `{"error":"invalid API key"}`},
		{"POST", "/api/publish", "apikey wrong", `{"channel":"a","data":1}`, 401, `{"error":"invalid API key"}`},
		{"POST", "/api/publish", "Bearer s3cret", `{"channel":"a","data":1}`, 401, `{"error":"invalid API key"}`},
		{"POST", "/api/publish", key, `{"channel":"room-1","data":{"text":"hi"}}`, 200, `{"channel":"room-1","offset":1}`},
		{"POST", "/api/publish", key, `{"channel":"room-1","data":"hello"}`, 200, `{"channel":"room-1","offset":2}`},
		{"POST", "/api/publish", key, `{"channel":"room-1"}`, 400, `{"error":"data missing"}`},
		{"POST", "/api/publish", key, `{"data":1}`, 400, `{"error":"channel missing"}`},
		{"POST", "/api/publish", key, `{"channel":`, 400, ``},
		{"POST", "/api/publish", key, `{"channel":"a","data":"` + strings.Repeat("x", 300) + `"}`, 413, `{"error":"body larger than 256 bytes"}`},
		{"GET", "/api/publish", key, ``, 405, `{"error":"method not allowed"}`},
		{"POST", "/api/nothing", key, `{}`, 404, `{"error":"no such call"}`},
		{"POST", "/api/broadcast", key, `{"channels":["a","b"],"data":[1]}`, 200, `{"results":[{"channel":"a","offset":1},{"channel":"b","offset":1}]}`},
		{"POST", "/api/disconnect", key, `{"session":"s9"}`, 200, `{"disconnected":1}`},
		{"POST", "/api/disconnect", key, `{"session":"missing"}`, 404, `{"error":"hub: no such session"}`},
		{"POST", "/api/disconnect", key, `{"user":"42"}`, 200, `{"disconnected":2}`},
		{"POST", "/api/disconnect", key, `{}`, 400, `{"error":"session or user missing"}`},
		{"GET", "/api/history?channel=room-1&since=1&limit=5", key, ``, 200, `{"channel":"room-1","offset":2,"recovered":true,"messages":["hello"]}`},
		{"POST", "/api/history", key, `{"channel":"room-1","limit":1}`, 200, `{"channel":"room-1","offset":2,"recovered":true,"messages":[{"text":"hi"}]}`},
		{"GET", "/api/history?channel=bad", key, ``, 400, `{"error":"hub: unknown channel"}`},
		{"GET", "/api/history?channel=room-1&since=x", key, ``, 400, `{"error":"since: not an offset"}`},
		{"GET", "/api/presence?channel=room-1", key, ``, 200, `{"channel":"room-1","count":0,"users":[],"sessions":0}`},
		{"GET", "/api/channels", key, ``, 200, `{"channels":[]}`},
		{"GET", "/api/sessions?user=42", key, ``, 200, `{"sessions":["s1","s2"],"user":"42"}`},
		{"GET", "/api/info", key, ``, 200, `{}`},
	} {
		status, reply := call(c.method, c.path, c.key, c.body)
		if status != c.status || c.reply != "" && reply != c.reply {
			t.Errorf("%s %s %s: %d %s, want %d %s", c.method, c.path, c.body, status, reply, c.status, c.reply)
		}
	}
	if got := rec.logs["room-1"]; len(got) != 2 || got[0] != `{"text":"hi"}` || got[1] != `"hello"` {
		t.Errorf("room-1 log %q", got)
	}
}

func TestNoKeyRefusesAll(t *testing.T) {
	a := New(&recordingHub{logs: map[string][]string{}}, Config{})
	req := httptest.NewRequest("POST", "/api/publish", strings.NewReader(`{"channel":"a","data":1}`))
	req.Header.Set("Authorization", "apikey ")
	w := httptest.NewRecorder()
	a.ServeHTTP(w, req)
	if w.Code != 401 {
		t.Fatalf("status %d", w.Code)
	}
}
