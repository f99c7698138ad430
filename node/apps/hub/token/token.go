// Package token verifies the tokens a web application signs for its
// browsers: Django's django.core.signing (TimestampSigner) and JWTs. The hub
// (package hub) calls a Verifier with the token a client sends in its auth
// message.
package token

import (
	"errors"
	"time"
)

// Errors a Verifier returns, wrapped with %w and a detail for logs; the
// client only learns which of the two it was.
var (
	// ErrInvalid: the token is malformed, its signature does not match, or
	// its payload is not a string nor {"user":…,"channels":[…]}.
	ErrInvalid = errors.New("token: invalid")
	// ErrExpired: the signature is good but the token is older than the
	// maximum age (Django) or past exp / before nbf (JWT).
	ErrExpired = errors.New("token: expired")
)

// Identity is what a valid token grants.
type Identity struct {
	// User is the user id: the payload's "user" (Django) or "sub" (JWT);
	// empty for a string payload.
	User string
	// Channels are the channels the session joins at once and may always
	// subscribe to: the payload's "channels", or the one channel a string
	// payload names.
	Channels []string
	// Expires is when the token stops being accepted; zero for never.
	Expires time.Time
}

// Verifier checks a token. Implementations are safe for concurrent use.
type Verifier interface {
	Verify(token string) (Identity, error)
}
