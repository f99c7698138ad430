package token

import (
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The fuzzers hold two properties: Verify never panics, and it accepts only
// what was signed (the seeds): any other input, however close, is refused
// with ErrInvalid or ErrExpired. Seeds are signed with fixed keys and a fixed
// clock, so every fuzzing worker process rebuilds the same set.

// fuzzNow is the fuzzers' clock: seeds must not differ between processes.
var fuzzNow = time.Unix(1_800_000_000, 0)

func FuzzDjango(f *testing.F) {
	now := fuzzNow
	signed := map[string]bool{}
	for i, p := range []any{"room-1", map[string]any{"user": "42", "channels": []string{"a", "b"}}, map[string]any{"user": 7}} {
		tok, err := SignDjango(p, testSecret, testSalt, i == 1, now)
		if err != nil {
			f.Fatal(err)
		}
		signed[tok] = true
		f.Add(tok)
	}
	big := make([]string, 60)
	for i := range big {
		big[i] = "channel"
	}
	tok, _ := SignDjango(map[string]any{"channels": big}, testSecret, testSalt, true, now)
	signed[tok] = true
	f.Add(tok)
	f.Add("")
	f.Add(":::")
	f.Add(".eJw:1:x")
	d := newDjango(f, DjangoConfig{MaxAge: time.Hour, Now: func() time.Time { return now }})
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := d.Verify(tok)
		if err == nil {
			if !signed[tok] {
				t.Fatalf("accepted a token nobody signed: %q → %+v", tok, id)
			}
			return
		}
		if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrExpired) {
			t.Fatalf("error %v is neither ErrInvalid nor ErrExpired", err)
		}
	})
}

func FuzzJWT(f *testing.F) {
	// ECDSA signatures are randomized, so what must match a seed is the
	// signed content (header.claims), not the whole token.
	signed := map[string]bool{}
	add := func(tok string) {
		signed[signedContent(tok)] = true
		f.Add(tok)
	}
	claims := jwt.MapClaims{"sub": "42", "channels": []string{"a"}, "exp": fuzzNow.Add(time.Hour).Unix()}
	add(sign(f, jwt.SigningMethodHS256, []byte(jwtSecret), claims))
	add(sign(f, jwt.SigningMethodRS256, keys.rsa, claims))
	add(sign(f, jwt.SigningMethodES256, keys.ec, claims))
	f.Add(sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims))
	f.Add(sign(f, jwt.SigningMethodHS256, keys.rsaPEM, claims))
	f.Add("a.b.c")
	f.Add("")
	clock := func() time.Time { return fuzzNow }
	hs := newJWT(f, JWTConfig{Secret: jwtSecret, Now: clock})
	rs := newJWT(f, JWTConfig{PublicKeyPEM: keys.rsaPEM, Now: clock})
	es := newJWT(f, JWTConfig{PublicKeyPEM: keys.ecPEM, Now: clock})
	f.Fuzz(func(t *testing.T, tok string) {
		for _, v := range []*JWT{hs, rs, es} {
			id, err := v.Verify(tok)
			if err == nil {
				if !signed[signedContent(tok)] {
					t.Fatalf("accepted a token nobody signed: %q → %+v", tok, id)
				}
				continue
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrExpired) {
				t.Fatalf("error %v is neither ErrInvalid nor ErrExpired", err)
			}
		}
	})
}

// signedContent is what a JWT's signature covers: everything before the
// last dot.
func signedContent(tok string) string {
	content, _, _ := cutLast(tok, ".")
	return content
}
