package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/shoal-rt/shoal/node/apps/hub"
	"github.com/shoal-rt/shoal/node/nodetest"
)

func newWebhook(t *testing.T, c Config) *Webhook {
	t.Helper()
	w, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

func TestWebhookAgainstBackend(t *testing.T) {
	backend := nodetest.StartWebhookBackend(t, "s3cret")
	url := "http://" + backend.Addr + "/shoal/webhook"
	w := newWebhook(t, Config{URL: url, Secret: "s3cret", Timeout: time.Second, RetryBase: 20 * time.Millisecond})
	ctx := context.Background()
	client := hub.Client{Session: "sess-1", User: "42", IP: "10.0.0.1"}

	rep, err := w.Connect(ctx, hub.ConnectRequest{Client: hub.Client{Session: "sess-1"}, Token: "good"})
	if err != nil || rep.User != "42" || len(rep.Channels) != 1 || rep.Channels[0] != "room-1" {
		t.Fatalf("connect good: %+v %v", rep, err)
	}
	rep, err = w.Connect(ctx, hub.ConnectRequest{Client: hub.Client{Session: "s", Headers: map[string]string{"Cookie": "sessionid=ok"}}})
	if err != nil || rep.User != "42" {
		t.Fatalf("connect by cookie: %+v %v", rep, err)
	}
	if _, err := w.Connect(ctx, hub.ConnectRequest{Token: "forged"}); !errors.Is(err, hub.ErrDenied) || err.Error() != "hub: denied by backend: Token refused" {
		t.Fatalf("connect denied: %v", err)
	}
	if err := w.Subscribe(ctx, hub.SubscribeRequest{Client: client, Channel: "room-1"}); err != nil {
		t.Fatalf("subscribe allowed: %v", err)
	}
	if err := w.Subscribe(ctx, hub.SubscribeRequest{Client: client, Channel: "private-7"}); !errors.Is(err, hub.ErrDenied) {
		t.Fatalf("subscribe denied (403): %v", err)
	}
	data, err := w.Publish(ctx, hub.PublishRequest{Client: client, Channel: "room-1", Data: json.RawMessage(`{"text":"hi"}`)})
	if err != nil || string(data) != `{"checked": true, "text": "hi"}` && string(data) != `{"text": "hi", "checked": true}` {
		t.Fatalf("publish rewritten: %s %v", data, err)
	}
	data, err = w.Publish(ctx, hub.PublishRequest{Client: client, Channel: "room-1", Data: json.RawMessage(`"as is"`)})
	if err != nil || data != nil {
		t.Fatalf("publish as sent: %s %v", data, err)
	}
	if _, err := w.Publish(ctx, hub.PublishRequest{Client: client, Channel: "room-1", Data: json.RawMessage(`"bad word"`)}); !errors.Is(err, hub.ErrDenied) {
		t.Fatalf("publish denied: %v", err)
	}
	ack, err := w.Event(ctx, hub.EventRequest{Client: client, Name: "typing", Data: json.RawMessage(`{"on":true}`)})
	if err != nil || string(ack) != `{"echo": {"on": true}, "user": "42"}` {
		t.Fatalf("event: %s %v", ack, err)
	}
	if _, err := w.Event(ctx, hub.EventRequest{Client: client, Name: "crash"}); !errors.Is(err, ErrBackend) || errors.Is(err, hub.ErrDenied) {
		t.Fatalf("event on a failing backend: %v", err)
	}

	// Timeout: the backend sleeps 3 s, the webhook gives up after 1 s.
	start := time.Now()
	_, err = w.Connect(ctx, hub.ConnectRequest{Token: "slow"})
	if err == nil || errors.Is(err, hub.ErrDenied) || time.Since(start) > 2500*time.Millisecond {
		t.Fatalf("slow backend: %v after %v", err, time.Since(start))
	}

	// Disconnect: the backend fails the first two attempts; the third
	// one, after backoff, is accepted.
	w.Disconnect(hub.DisconnectRequest{Client: client, Code: 3000, Reason: "Go away!"})
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		st, err := backend.Seen()
		if err != nil {
			return err
		}
		if len(st.Disconnects) != 1 || st.Disconnects[0] != "sess-1" || st.Attempts["sess-1"] != 3 {
			return fmt.Errorf("backend saw %+v", st)
		}
		return nil
	})

	// A wrong secret: the backend refuses the signature with 401, which
	// is a backend error, not a refusal of the client.
	bad := newWebhook(t, Config{URL: url, Secret: "wrong"})
	if err := bad.Subscribe(ctx, hub.SubscribeRequest{Client: client, Channel: "room-1"}); !errors.Is(err, ErrBackend) {
		t.Fatalf("bad signature: %v", err)
	}
}

func TestWebhookBackendDown(t *testing.T) {
	url := "http://" + testenv.FreeAddr(t) + "/hook"
	w := newWebhook(t, Config{URL: url, Secret: "x", Retries: 2, RetryBase: 10 * time.Millisecond})
	if _, err := w.Connect(context.Background(), hub.ConnectRequest{Token: "t"}); err == nil || errors.Is(err, hub.ErrDenied) {
		t.Fatalf("connect to nothing: %v", err)
	}
	w.Disconnect(hub.DisconnectRequest{Client: hub.Client{Session: "s"}})
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if w.Dropped.Load() != 1 {
			return fmt.Errorf("dropped %d", w.Dropped.Load())
		}
		return nil
	})
}

func TestWebhookBoundsInFlight(t *testing.T) {
	url := "http://" + nodetest.StartWebhookBackend(t, "k").Addr + "/shoal/webhook"
	w := newWebhook(t, Config{URL: url, Secret: "k", MaxInFlight: 1, Timeout: 5 * time.Second})
	slow := make(chan error)
	go func() {
		_, err := w.Connect(context.Background(), hub.ConnectRequest{Token: "slow"})
		slow <- err
	}()
	testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if len(w.inflight) != 1 {
			return errors.New("slow call not in flight yet")
		}
		return nil
	})
	if _, err := w.Connect(context.Background(), hub.ConnectRequest{Token: "good"}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second call while the first waits: %v", err)
	}
	if err := <-slow; !errors.Is(err, hub.ErrDenied) {
		t.Fatalf("slow call: %v", err)
	}
}

func TestSignAndEncode(t *testing.T) {
	// The same HMAC as Python's hmac.new(b"k", b"1700000000." + body, sha256).
	if got := Sign("k", "1700000000", []byte(`{"type":"event"}`)); got != "sha256=c35797580b9b80f0fa5e96ea489becdbe1fdb3d3c288ba91691e3bdbdb11611c" {
		t.Fatalf("signature %q", got)
	}
	b, err := encode("subscribe", hub.SubscribeRequest{Client: hub.Client{Session: "s"}, Channel: "c"})
	if err != nil || string(b) != `{"type":"subscribe","session":"s","channel":"c"}` {
		t.Fatalf("encode: %s %v", b, err)
	}
}
