package token

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	testSecret = "django-insecure-test-secret-!@#$%^&*()"
	testSalt   = "shoal.hub"
)

func newDjango(t testing.TB, c DjangoConfig) *Django {
	t.Helper()
	if c.Secret == "" {
		c.Secret = testSecret
	}
	if c.Salt == "" {
		c.Salt = testSalt
	}
	d, err := NewDjango(c)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDjangoRealTokens verifies tokens minted by real Django: SHA-256 and
// legacy SHA-1 signers, compressed and plain, string and object payloads.
func TestDjangoRealTokens(t *testing.T) {
	manyChannels := make([]string, 40)
	for i := range manyChannels {
		manyChannels[i] = "room-" + strings.Repeat("x", 10)
	}
	cases := []struct {
		name    string
		request map[string]any
		want    Identity
	}{
		{"string payload", map[string]any{"django": "room-1"}, Identity{Channels: []string{"room-1"}}},
		{"object payload", map[string]any{"django": map[string]any{"user": "42", "channels": []string{"a", "b"}}},
			Identity{User: "42", Channels: []string{"a", "b"}}},
		{"integer user", map[string]any{"django": map[string]any{"user": 42}}, Identity{User: "42"}},
		{"non-ASCII user", map[string]any{"django": map[string]any{"user": "Zoë 🐟", "channels": []string{"été"}}},
			Identity{User: "Zoë 🐟", Channels: []string{"été"}}},
		{"compressed", map[string]any{"django": map[string]any{"user": "7", "channels": manyChannels}, "compress": true},
			Identity{User: "7", Channels: manyChannels}},
		{"legacy sha1", map[string]any{"django": map[string]any{"user": "1", "channels": []string{"c"}}, "algorithm": "sha1"},
			Identity{User: "1", Channels: []string{"c"}}},
		{"legacy sha1 compressed", map[string]any{"django": map[string]any{"user": "1", "channels": manyChannels}, "algorithm": "sha1", "compress": true},
			Identity{User: "1", Channels: manyChannels}},
		{"100 s old within max age", map[string]any{"django": "room-2", "age": 100}, Identity{Channels: []string{"room-2"}}},
	}
	var requests []map[string]any
	for _, c := range cases {
		c.request["secret"], c.request["salt"] = testSecret, testSalt
		requests = append(requests, c.request)
	}
	tokens := python(t, requests)
	d := newDjango(t, DjangoConfig{MaxAge: 300 * time.Second})
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := str(t, tokens[i])
			if c.request["compress"] == true && !strings.HasPrefix(tok, ".") {
				t.Fatalf("Django did not compress %q", tok)
			}
			got, err := d.Verify(tok)
			if err != nil {
				t.Fatalf("Verify(%q): %v", tok, err)
			}
			if got.Expires.IsZero() || time.Until(got.Expires) > 300*time.Second || time.Until(got.Expires) < 100*time.Second {
				t.Errorf("Expires %v, want about signing time + 300 s", got.Expires)
			}
			got.Expires = time.Time{}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("Verify(%q) = %+v, want %+v", tok, got, c.want)
			}
		})
	}
}

// TestDjangoRefuses checks what must not pass: expired, wrong salt, wrong
// secret, tampered, and payloads that are neither a channel nor an object.
func TestDjangoRefuses(t *testing.T) {
	obj := map[string]any{"user": "42", "channels": []string{"a"}}
	requests := []map[string]any{
		{"django": obj, "secret": testSecret, "salt": testSalt, "age": 600},                      // 0 expired
		{"django": obj, "secret": testSecret, "salt": "other"},                                   // 1 wrong salt
		{"django": obj, "secret": "another-secret", "salt": testSalt},                            // 2 wrong secret
		{"django": obj, "secret": testSecret, "salt": testSalt},                                  // 3 good, to tamper with
		{"django": 17, "secret": testSecret, "salt": testSalt},                                   // 4 a number
		{"django": []string{"a"}, "secret": testSecret, "salt": testSalt},                        // 5 a list
		{"django": map[string]any{"user": []int{1}}, "secret": testSecret, "salt": testSalt},     // 6 bad user
		{"django": map[string]any{"channels": "a"}, "secret": testSecret, "salt": testSalt},      // 7 bad channels
		{"django": "", "secret": testSecret, "salt": testSalt},                                   // 8 empty channel
		{"django": obj, "secret": testSecret, "salt": testSalt, "age": 600, "algorithm": "sha1"}, // 9 expired sha1
		{"django": obj, "secret": testSecret, "salt": testSalt, "compress": true},                // 10 not compressible: plain
	}
	tokens := python(t, requests)
	d := newDjango(t, DjangoConfig{MaxAge: 300 * time.Second})
	expect := func(t *testing.T, tok string, want error) {
		t.Helper()
		_, err := d.Verify(tok)
		if !errors.Is(err, want) {
			t.Errorf("Verify(%q) = %v, want %v", tok, err, want)
		}
	}
	t.Run("expired", func(t *testing.T) { expect(t, str(t, tokens[0]), ErrExpired) })
	t.Run("expired sha1", func(t *testing.T) { expect(t, str(t, tokens[9]), ErrExpired) })
	t.Run("expired is fine without max age", func(t *testing.T) {
		if _, err := newDjango(t, DjangoConfig{}).Verify(str(t, tokens[0])); err != nil {
			t.Error(err)
		}
	})
	t.Run("wrong salt", func(t *testing.T) { expect(t, str(t, tokens[1]), ErrInvalid) })
	t.Run("wrong secret", func(t *testing.T) { expect(t, str(t, tokens[2]), ErrInvalid) })
	t.Run("fallback secret", func(t *testing.T) {
		d := newDjango(t, DjangoConfig{FallbackSecrets: []string{"another-secret"}})
		if _, err := d.Verify(str(t, tokens[2])); err != nil {
			t.Error(err)
		}
	})
	t.Run("tampered", func(t *testing.T) {
		good := str(t, tokens[3])
		if _, err := d.Verify(good); err != nil {
			t.Fatal(err)
		}
		for i := range good {
			for _, c := range []byte{'A', '0', ':', '.', '_'} {
				if good[i] == c {
					continue
				}
				bad := good[:i] + string(c) + good[i+1:]
				expect(t, bad, ErrInvalid)
			}
		}
		expect(t, good+"x", ErrInvalid)
		expect(t, good[:len(good)-1], ErrInvalid)
		expect(t, "."+good, ErrInvalid)
		expect(t, "", ErrInvalid)
	})
	for i, name := range map[int]string{4: "number payload", 5: "list payload", 6: "bad user", 7: "bad channels", 8: "empty channel"} {
		t.Run(name, func(t *testing.T) { expect(t, str(t, tokens[i]), ErrInvalid) })
	}
	t.Run("uncompressible payload left plain", func(t *testing.T) {
		if tok := str(t, tokens[10]); strings.HasPrefix(tok, ".") {
			t.Errorf("Django compressed a short payload: %q", tok)
		} else if _, err := d.Verify(tok); err != nil {
			t.Error(err)
		}
	})
}

// TestDjangoMaxAgeBoundary uses the clock: a token is good up to max age
// and expired one second past it.
func TestDjangoMaxAgeBoundary(t *testing.T) {
	signedAt := time.Unix(1_800_000_000, 0)
	tok, err := SignDjango("room", testSecret, testSalt, false, signedAt)
	if err != nil {
		t.Fatal(err)
	}
	at := func(now time.Time) error {
		_, err := newDjango(t, DjangoConfig{MaxAge: time.Minute, Now: func() time.Time { return now }}).Verify(tok)
		return err
	}
	if err := at(signedAt.Add(time.Minute)); err != nil {
		t.Errorf("at max age: %v", err)
	}
	if err := at(signedAt.Add(time.Minute + time.Second)); !errors.Is(err, ErrExpired) {
		t.Errorf("past max age: %v, want ErrExpired", err)
	}
}

// TestSignDjangoMatchesDjango has real Django load tokens SignDjango made,
// so the dev helper and the tests' own tokens are what Django would make.
func TestSignDjangoMatchesDjango(t *testing.T) {
	payloads := []any{
		"room-1",
		map[string]any{"user": "Zoë 🐟", "channels": []string{"a<b>&c"}},
		map[string]any{"user": "9", "channels": strings.Split(strings.Repeat("room,", 50), ",")[:50]},
	}
	var requests []map[string]any
	var tokens []string
	for i, p := range payloads {
		tok, err := SignDjango(p, testSecret, testSalt, i == 2, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 && !strings.HasPrefix(tok, ".") {
			t.Errorf("SignDjango did not compress %q", tok)
		}
		tokens = append(tokens, tok)
		requests = append(requests, map[string]any{"django_loads": tok, "secret": testSecret, "salt": testSalt, "max_age": 60})
	}
	requests = append(requests, map[string]any{"django_loads": tokens[0], "secret": testSecret, "salt": "other"})
	results := python(t, requests)
	for i, p := range payloads {
		want, _ := json.Marshal(p)
		var got, wantV any
		json.Unmarshal(results[i], &got)
		json.Unmarshal(want, &wantV)
		if !reflect.DeepEqual(got, wantV) {
			t.Errorf("Django loaded %s, want %s", results[i], want)
		}
		if _, err := newDjango(t, DjangoConfig{}).Verify(tokens[i]); err != nil {
			t.Errorf("Verify(SignDjango(%v)): %v", p, err)
		}
	}
	if got := string(results[len(payloads)]); !strings.Contains(got, "BadSignature") {
		t.Errorf("Django loaded a token with the wrong salt: %s", got)
	}
}

func TestDjangoConfig(t *testing.T) {
	if _, err := NewDjango(DjangoConfig{}); err == nil {
		t.Error("NewDjango accepted an empty secret")
	}
	if _, err := NewDjango(DjangoConfig{Secret: "x", MaxAge: -time.Second}); err == nil {
		t.Error("NewDjango accepted a negative max age")
	}
	// Django's own default salt when the config names none.
	tok, _ := SignDjango("room", "x", "", false, time.Now())
	if _, err := newDjango(t, DjangoConfig{Secret: "x", Salt: DjangoDefaultSalt}).Verify(tok); err != nil {
		t.Error(err)
	}
}

func TestBase62(t *testing.T) {
	for _, n := range []int64{0, 1, 61, 62, 1_700_000_000, -5, 1<<62 + 12345} {
		got, err := decodeBase62(encodeBase62(n))
		if err != nil || got != n {
			t.Errorf("base62 round trip of %d: %d, %v", n, got, err)
		}
	}
	for _, bad := range []string{"", "-", "a!", "zzzzzzzzzzzzzzzz"} {
		if _, err := decodeBase62(bad); err == nil {
			t.Errorf("decodeBase62(%q) accepted", bad)
		}
	}
}
