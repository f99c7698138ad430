package hub

import (
	"context"
	"encoding/json"
	"errors"
)

// Backend is the application's server side, which the hub consults at the
// points a Django or Rails app wants a say: package hub/webhook implements
// it by calling a backend URL. A nil Backend means the hub decides alone
// (tokens and the config file's rules). Methods are called concurrently,
// for many sessions, on every node; each call carries a deadline, and an
// error the hub cannot attribute to a refusal (a timeout, a backend down)
// gives the client a clear error, never a stalled session.
type Backend interface {
	// Connect authenticates a session that sent no token (or sent one no
	// verifier accepts, when the hub has none): the reply grants a user
	// and channels, or an error wrapping ErrDenied refuses.
	Connect(ctx context.Context, req ConnectRequest) (ConnectReply, error)
	// Subscribe allows (nil) or refuses (an error wrapping ErrDenied) a
	// subscription the config file's rules leave to the backend.
	Subscribe(ctx context.Context, req SubscribeRequest) error
	// Publish allows a client publish (nil data: as sent; non-nil: the
	// rewritten payload), or refuses it with an error wrapping ErrDenied.
	Publish(ctx context.Context, req PublishRequest) (data json.RawMessage, err error)
	// Event answers a client event; the reply becomes the ack's data.
	Event(ctx context.Context, req EventRequest) (reply json.RawMessage, err error)
	// Disconnect tells the backend a session ended. It returns at once;
	// delivery (with retries) is the implementation's.
	Disconnect(req DisconnectRequest)
}

// ErrDenied is the refusal a Backend returns (wrapped, with the reason the
// client gets as its message: fmt.Errorf("%w: %s", ErrDenied, reason)).
var ErrDenied = errors.New("hub: denied by backend")

// Client describes the session a Backend call is about.
type Client struct {
	Session string            `json:"session"`
	User    string            `json:"user,omitempty"`
	IP      string            `json:"ip,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

// ConnectRequest carries what the client sent in its auth message (the
// token may be empty: cookie-authenticated sites rely on Headers).
type ConnectRequest struct {
	Client
	Token string `json:"token,omitempty"`
}

// ConnectReply grants an identity.
type ConnectReply struct {
	User     string   `json:"user"`
	Channels []string `json:"channels,omitempty"`
}

// SubscribeRequest asks whether Client may join Channel.
type SubscribeRequest struct {
	Client
	Channel string `json:"channel"`
}

// PublishRequest carries a client publish.
type PublishRequest struct {
	Client
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// EventRequest carries a client event.
type EventRequest struct {
	Client
	Name string          `json:"name"`
	Data json.RawMessage `json:"data"`
}

// DisconnectRequest says a session ended, with the close code and reason.
type DisconnectRequest struct {
	Client
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}
