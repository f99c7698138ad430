package token

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// DjangoDefaultSalt is the salt django.core.signing.dumps uses when it is
// given none.
const DjangoDefaultSalt = "django.core.signing"

// Bounds on what a Django token may cost to check. The signature is checked
// before anything is decoded, so only a token signed with the secret can
// reach zlib; the bound on its inflated size is a second fence.
const (
	maxTokenBytes    = 16 << 10
	maxPayloadBytes  = 64 << 10
	djangoSeparator  = ":"
	base62Alphabet   = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	djangoSignerSalt = "signer"
)

// DjangoConfig configures a Django verifier. A zero field means the default.
type DjangoConfig struct {
	// Secret is the Django project's SECRET_KEY. Required.
	Secret string
	// FallbackSecrets are older keys still accepted, like Django's
	// SECRET_KEY_FALLBACKS during a key rotation.
	FallbackSecrets []string
	// Salt is the salt the web app passes to signing.dumps; empty means
	// Django's default, "django.core.signing".
	Salt string
	// MaxAge rejects tokens signed longer ago than this with ErrExpired, like
	// signing.loads(max_age=…); zero accepts any age.
	MaxAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Django verifies tokens made by django.core.signing.dumps (a
// TimestampSigner): "<base64 JSON>:<base62 timestamp>:<base64 HMAC>", the
// JSON optionally zlib-compressed (a leading '.'). Signatures made with
// SHA-256 (Django ≥ 3.1) and with the legacy SHA-1 (older Django, or
// DEFAULT_HASHING_ALGORITHM = "sha1") are both accepted, as Django 3.x's own
// unsign does. The key is derived as Django's salted_hmac derives it:
// hash(salt + "signer" + secret).
type Django struct {
	sha256Keys [][]byte
	sha1Keys   [][]byte
	maxAge     time.Duration
	now        func() time.Time
}

var _ Verifier = (*Django)(nil)

// NewDjango returns a verifier for the given configuration.
func NewDjango(c DjangoConfig) (*Django, error) {
	if c.Secret == "" {
		return nil, errors.New("token: django: empty secret")
	}
	if c.MaxAge < 0 {
		return nil, fmt.Errorf("token: django: negative max age %v", c.MaxAge)
	}
	if c.Salt == "" {
		c.Salt = DjangoDefaultSalt
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	d := &Django{maxAge: c.MaxAge, now: c.Now}
	for _, secret := range append([]string{c.Secret}, c.FallbackSecrets...) {
		d.sha256Keys = append(d.sha256Keys, djangoKey(sha256.New, c.Salt, secret))
		d.sha1Keys = append(d.sha1Keys, djangoKey(sha1.New, c.Salt, secret))
	}
	return d, nil
}

// djangoKey is salted_hmac's derived key: hasher(key_salt + secret), where
// Signer passes key_salt = salt + "signer".
func djangoKey(h func() hash.Hash, salt, secret string) []byte {
	hh := h()
	hh.Write([]byte(salt + djangoSignerSalt + secret))
	return hh.Sum(nil)
}

// Verify checks a token made by signing.dumps(payload, key=SECRET_KEY,
// salt=SALT). The payload must be a string (one channel) or an object
// {"user": …, "channels": […]}.
func (d *Django) Verify(tok string) (Identity, error) {
	if len(tok) > maxTokenBytes {
		return Identity{}, fmt.Errorf("%w: django: %d bytes", ErrInvalid, len(tok))
	}
	signed, sig, ok := cutLast(tok, djangoSeparator)
	if !ok {
		return Identity{}, fmt.Errorf("%w: django: no signature", ErrInvalid)
	}
	if !d.signatureMatches(signed, sig) {
		return Identity{}, fmt.Errorf("%w: django: signature mismatch", ErrInvalid)
	}
	encoded, stamp, ok := cutLast(signed, djangoSeparator)
	if !ok {
		return Identity{}, fmt.Errorf("%w: django: no timestamp", ErrInvalid)
	}
	seconds, err := decodeBase62(stamp)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: django: timestamp: %w", ErrInvalid, err)
	}
	signedAt := time.Unix(seconds, 0)
	var expires time.Time
	if d.maxAge > 0 {
		expires = signedAt.Add(d.maxAge)
		// Django: age = time.time() - timestamp; expired when age > max_age.
		if d.now().Sub(signedAt) > d.maxAge {
			return Identity{}, fmt.Errorf("%w: django: signed at %s, max age %s", ErrExpired, signedAt.UTC().Format(time.RFC3339), d.maxAge)
		}
	}
	payload, err := decodeDjangoPayload(encoded)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: django: %w", ErrInvalid, err)
	}
	id, err := identityFromPayload(payload)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: django: %w", ErrInvalid, err)
	}
	id.Expires = expires
	return id, nil
}

// signatureMatches compares sig with the SHA-256 and the SHA-1 signature
// of value under every accepted secret, in constant time per comparison.
func (d *Django) signatureMatches(value, sig string) bool {
	matched := 0
	for _, key := range d.sha256Keys {
		matched |= subtle.ConstantTimeCompare([]byte(sig), djangoSignature(sha256.New, key, value))
	}
	for _, key := range d.sha1Keys {
		matched |= subtle.ConstantTimeCompare([]byte(sig), djangoSignature(sha1.New, key, value))
	}
	return matched == 1
}

func djangoSignature(h func() hash.Hash, key []byte, value string) []byte {
	mac := hmac.New(h, key)
	mac.Write([]byte(value))
	sum := mac.Sum(nil)
	out := make([]byte, base64.RawURLEncoding.EncodedLen(len(sum)))
	base64.RawURLEncoding.Encode(out, sum)
	return out
}

// decodeDjangoPayload undoes sign_object: an optional '.' marks zlib, then
// unpadded URL-safe base64 of JSON that Django decodes as Latin-1.
func decodeDjangoPayload(encoded string) ([]byte, error) {
	compressed := strings.HasPrefix(encoded, ".")
	if compressed {
		encoded = encoded[1:]
	}
	data, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(encoded, "="))
	if err != nil {
		return nil, fmt.Errorf("payload base64: %w", err)
	}
	if compressed {
		zr, err := zlib.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("payload zlib: %w", err)
		}
		inflated, err := io.ReadAll(io.LimitReader(zr, maxPayloadBytes+1))
		if err != nil {
			return nil, fmt.Errorf("payload zlib: %w", err)
		}
		if len(inflated) > maxPayloadBytes {
			return nil, fmt.Errorf("payload inflates past %d bytes", maxPayloadBytes)
		}
		data = inflated
	}
	return latin1ToUTF8(data), nil
}

// latin1ToUTF8 reads bytes the way Django's JSONSerializer does
// (data.decode("latin-1")). Django's own JSON is ASCII, so this only
// matters for hand-made payloads.
func latin1ToUTF8(b []byte) []byte {
	ascii := true
	for _, c := range b {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return b
	}
	out := make([]byte, 0, len(b)*2)
	for _, c := range b {
		out = utf8.AppendRune(out, rune(c))
	}
	return out
}

// decodeBase62 is Django's baseconv.base62.decode (a leading '-' is a
// negative number).
func decodeBase62(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	if s == "" {
		return 0, errors.New("empty base62 number")
	}
	var n int64
	for i := 0; i < len(s); i++ {
		digit := strings.IndexByte(base62Alphabet, s[i])
		if digit < 0 {
			return 0, fmt.Errorf("bad base62 digit %q", s[i])
		}
		if n > (math.MaxInt64-int64(digit))/62 {
			return 0, errors.New("base62 number overflows")
		}
		n = n*62 + int64(digit)
	}
	if neg {
		n = -n
	}
	return n, nil
}

func encodeBase62(n int64) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var buf [16]byte
	i := len(buf)
	for n > 0 {
		i--
		buf[i] = base62Alphabet[n%62]
		n /= 62
	}
	if neg {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}

// cutLast splits s around the last sep, like Python's rsplit(sep, 1).
func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// identityFromPayload reads a token payload: a JSON string names the one
// channel; an object carries "user" (string or number) and "channels".
func identityFromPayload(payload []byte) (Identity, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return Identity{}, fmt.Errorf("payload JSON: %w", err)
	}
	if dec.More() {
		return Identity{}, errors.New("payload JSON: trailing data")
	}
	switch p := v.(type) {
	case string:
		if p == "" {
			return Identity{}, errors.New("payload: empty channel")
		}
		return Identity{Channels: []string{p}}, nil
	case map[string]any:
		user, err := userString(p["user"])
		if err != nil {
			return Identity{}, err
		}
		channels, err := channelList(p["channels"])
		if err != nil {
			return Identity{}, err
		}
		return Identity{User: user, Channels: channels}, nil
	default:
		return Identity{}, fmt.Errorf("payload: a %T is neither a channel name nor {user, channels}", v)
	}
}

func userString(v any) (string, error) {
	switch u := v.(type) {
	case nil:
		return "", nil
	case string:
		return u, nil
	case json.Number:
		// Django apps often sign request.user.pk, an integer.
		return u.String(), nil
	default:
		return "", fmt.Errorf("payload: user is a %T, not a string or number", v)
	}
}

func channelList(v any) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("payload: channels is a %T, not a list", v)
	}
	channels := make([]string, 0, len(list))
	for _, c := range list {
		s, ok := c.(string)
		if !ok || s == "" {
			return nil, fmt.Errorf("payload: channel %v is not a non-empty string", c)
		}
		channels = append(channels, s)
	}
	return channels, nil
}

// SignDjango makes a token exactly as Django's signing.dumps(payload,
// key=secret, salt=salt, compress=compress) would at time now, with the
// SHA-256 signer. It is for development helpers and tests; production
// tokens come from the web application.
func SignDjango(payload any, secret, salt string, compress bool, now time.Time) (string, error) {
	if secret == "" {
		return "", errors.New("token: django: empty secret")
	}
	if salt == "" {
		salt = DjangoDefaultSalt
	}
	data, err := json.Marshal(payload)
	if err != nil {
		return "", fmt.Errorf("token: django: %w", err)
	}
	data = asciiJSON(data)
	prefix := ""
	if compress {
		var buf bytes.Buffer
		zw := zlib.NewWriter(&buf)
		zw.Write(data)
		zw.Close()
		if buf.Len() < len(data)-1 {
			data, prefix = buf.Bytes(), "."
		}
	}
	value := prefix + base64.RawURLEncoding.EncodeToString(data) + djangoSeparator + encodeBase62(now.Unix())
	sig := djangoSignature(sha256.New, djangoKey(sha256.New, salt, secret), value)
	return value + djangoSeparator + string(sig), nil
}

// asciiJSON escapes non-ASCII runes as \uXXXX, as Python's json.dumps does
// by default: Django reads the payload back as Latin-1, so UTF-8 bytes would
// not survive. Non-ASCII appears only inside JSON strings, so escaping
// byte-wise is safe.
func asciiJSON(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		if r < utf8.RuneSelf {
			out = append(out, byte(r))
			continue
		}
		if r > 0xFFFF {
			r1, r2 := utf16.EncodeRune(r)
			out = fmt.Appendf(out, "\\u%04x\\u%04x", r1, r2)
			continue
		}
		out = fmt.Appendf(out, "\\u%04x", r)
	}
	return out
}
