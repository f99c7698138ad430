package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const jwtSecret = "jwt-test-secret-of-some-length-0123456789"

type testKeys struct {
	rsa      *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
	ed       ed25519.PrivateKey
	rsaPEM   []byte // public
	ecPEM    []byte
	edPEM    []byte
	rsaPriv  []byte // PKCS#8, for PyJWT
	ecPriv   []byte
	otherRSA *rsa.PrivateKey
	rsaPKCS1 []byte
}

// keys are fixed test keys (testdata/*_test_key.pem, made for these tests
// with openssl genpkey), so fuzzing worker processes all share them.
var keys = func() *testKeys {
	k := &testKeys{}
	load := func(name string) crypto.PrivateKey {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			panic(err)
		}
		block, _ := pem.Decode(data)
		if block == nil {
			panic("no PEM block in " + name)
		}
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			panic(err)
		}
		return key
	}
	k.rsa = load("rsa_test_key.pem").(*rsa.PrivateKey)
	k.otherRSA = load("rsa_other_test_key.pem").(*rsa.PrivateKey)
	k.ec = load("ec_test_key.pem").(*ecdsa.PrivateKey)
	k.ed = ed25519.NewKeyFromSeed([]byte("0123456789abcdef0123456789abcdef"))
	pub := func(key crypto.PublicKey) []byte {
		der, err := x509.MarshalPKIXPublicKey(key)
		if err != nil {
			panic(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	priv := func(key crypto.PrivateKey) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			panic(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	k.rsaPEM, k.ecPEM, k.edPEM = pub(&k.rsa.PublicKey), pub(&k.ec.PublicKey), pub(k.ed.Public())
	k.rsaPriv, k.ecPriv = priv(k.rsa), priv(k.ec)
	k.rsaPKCS1 = pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	return k
}()

func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func newJWT(t testing.TB, c JWTConfig) *JWT {
	t.Helper()
	v, err := NewJWT(c)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestJWTGood(t *testing.T) {
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	claims := jwt.MapClaims{"sub": "42", "channels": []string{"a", "b"}, "exp": exp.Unix(), "nbf": time.Now().Add(-time.Minute).Unix()}
	want := Identity{User: "42", Channels: []string{"a", "b"}, Expires: exp}
	cases := []struct {
		name string
		cfg  JWTConfig
		tok  string
	}{
		{"HS256", JWTConfig{Secret: jwtSecret}, sign(t, jwt.SigningMethodHS256, []byte(jwtSecret), claims)},
		{"HS512", JWTConfig{Secret: jwtSecret}, sign(t, jwt.SigningMethodHS512, []byte(jwtSecret), claims)},
		{"RS256", JWTConfig{PublicKeyPEM: keys.rsaPEM}, sign(t, jwt.SigningMethodRS256, keys.rsa, claims)},
		{"RS256 PKCS1 key", JWTConfig{PublicKeyPEM: keys.rsaPKCS1}, sign(t, jwt.SigningMethodRS256, keys.rsa, claims)},
		{"PS256", JWTConfig{PublicKeyPEM: keys.rsaPEM}, sign(t, jwt.SigningMethodPS256, keys.rsa, claims)},
		{"ES256", JWTConfig{PublicKeyPEM: keys.ecPEM}, sign(t, jwt.SigningMethodES256, keys.ec, claims)},
		{"EdDSA", JWTConfig{PublicKeyPEM: keys.edPEM}, sign(t, jwt.SigningMethodEdDSA, keys.ed, claims)},
		{"RS256 beside a secret", JWTConfig{Secret: jwtSecret, PublicKeyPEM: keys.rsaPEM}, sign(t, jwt.SigningMethodRS256, keys.rsa, claims)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := newJWT(t, c.cfg).Verify(c.tok)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
	t.Run("no exp, no channels", func(t *testing.T) {
		got, err := newJWT(t, JWTConfig{Secret: jwtSecret}).Verify(sign(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"sub": "u"}))
		if err != nil || !reflect.DeepEqual(got, Identity{User: "u"}) {
			t.Errorf("got %+v, %v", got, err)
		}
	})
}

func TestJWTRefuses(t *testing.T) {
	hs := newJWT(t, JWTConfig{Secret: jwtSecret})
	rs := newJWT(t, JWTConfig{PublicKeyPEM: keys.rsaPEM})
	good := jwt.MapClaims{"sub": "42", "exp": time.Now().Add(time.Hour).Unix()}
	cases := []struct {
		name string
		v    *JWT
		tok  string
		want error
	}{
		{"expired", hs, sign(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"sub": "1", "exp": time.Now().Add(-time.Minute).Unix()}), ErrExpired},
		{"not yet valid", hs, sign(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"sub": "1", "nbf": time.Now().Add(time.Hour).Unix()}), ErrExpired},
		{"wrong secret", hs, sign(t, jwt.SigningMethodHS256, []byte("other"), good), ErrInvalid},
		{"wrong RSA key", rs, sign(t, jwt.SigningMethodRS256, keys.otherRSA, good), ErrInvalid},
		{"RS256 without a public key", hs, sign(t, jwt.SigningMethodRS256, keys.rsa, good), ErrInvalid},
		{"HS256 without a secret", rs, sign(t, jwt.SigningMethodHS256, []byte(jwtSecret), good), ErrInvalid},
		// The classic confusion: HMAC keyed with the public key's PEM.
		{"HS256 keyed with the public key", rs, sign(t, jwt.SigningMethodHS256, keys.rsaPEM, good), ErrInvalid},
		{"alg none", hs, sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good), ErrInvalid},
		{"channels not a list", hs, sign(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"sub": "1", "channels": "a"}), ErrInvalid},
		{"empty channel", hs, sign(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"sub": "1", "channels": []string{""}}), ErrInvalid},
		{"numeric sub", hs, sign(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"sub": 1}), ErrInvalid},
		{"garbage", hs, "not.a.jwt", ErrInvalid},
		{"empty", hs, "", ErrInvalid},
		{"huge", hs, strings.Repeat("a", maxTokenBytes+1), ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.v.Verify(c.tok); !errors.Is(err, c.want) {
				t.Errorf("Verify = %v, want %v", err, c.want)
			}
		})
	}
	t.Run("tampered", func(t *testing.T) {
		tok := sign(t, jwt.SigningMethodHS256, []byte(jwtSecret), good)
		for i := range tok {
			for _, c := range []byte{'A', 'x', '.', '-', '_'} {
				if tok[i] == c {
					continue
				}
				if _, err := hs.Verify(tok[:i] + string(c) + tok[i+1:]); err == nil {
					t.Fatalf("accepted %q tampered at %d", tok, i)
				}
			}
		}
	})
	t.Run("leeway", func(t *testing.T) {
		tok := sign(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"sub": "1", "exp": time.Now().Add(-10 * time.Second).Unix()})
		if _, err := newJWT(t, JWTConfig{Secret: jwtSecret, Leeway: time.Minute}).Verify(tok); err != nil {
			t.Error(err)
		}
	})
	t.Run("audience and issuer", func(t *testing.T) {
		v := newJWT(t, JWTConfig{Secret: jwtSecret, Audience: "shoal", Issuer: "web"})
		ok := sign(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"sub": "1", "aud": "shoal", "iss": "web"})
		if _, err := v.Verify(ok); err != nil {
			t.Error(err)
		}
		bad := sign(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"sub": "1", "aud": "other", "iss": "web"})
		if _, err := v.Verify(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("wrong audience: %v", err)
		}
	})
}

// TestJWTFromPyJWT verifies tokens PyJWT (Debian's python3-jwt) made: what a
// Django app using PyJWT sends.
func TestJWTFromPyJWT(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	claims := map[string]any{"sub": "ann", "channels": []string{"room-1"}, "exp": exp}
	results := python(t, []map[string]any{
		{"jwt": claims, "key": jwtSecret, "algorithm": "HS256"},
		{"jwt": claims, "key": string(keys.rsaPriv), "algorithm": "RS256"},
		{"jwt": claims, "key": string(keys.ecPriv), "algorithm": "ES256"},
		{"jwt": map[string]any{"sub": "ann", "exp": time.Now().Add(-time.Hour).Unix()}, "key": jwtSecret, "algorithm": "HS256"},
	})
	v := newJWT(t, JWTConfig{Secret: jwtSecret, PublicKeyPEM: keys.rsaPEM})
	ec := newJWT(t, JWTConfig{PublicKeyPEM: keys.ecPEM})
	want := Identity{User: "ann", Channels: []string{"room-1"}, Expires: time.Unix(exp, 0)}
	for i, verifier := range []*JWT{v, v, ec} {
		got, err := verifier.Verify(str(t, results[i]))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("PyJWT token %d: %+v, %v", i, got, err)
		}
	}
	if _, err := v.Verify(str(t, results[3])); !errors.Is(err, ErrExpired) {
		t.Errorf("PyJWT expired token: %v", err)
	}
}

func TestJWTConfig(t *testing.T) {
	if _, err := NewJWT(JWTConfig{}); err == nil {
		t.Error("NewJWT accepted no key at all")
	}
	if _, err := NewJWT(JWTConfig{PublicKeyPEM: []byte("not pem")}); err == nil {
		t.Error("NewJWT accepted a PEM without a block")
	}
	if _, err := NewJWT(JWTConfig{PublicKeyPEM: keys.rsaPriv}); err == nil {
		t.Error("NewJWT accepted a private key as the public key")
	}
}

func TestAny(t *testing.T) {
	d := newDjango(t, DjangoConfig{MaxAge: time.Minute})
	j := newJWT(t, JWTConfig{Secret: jwtSecret})
	v := Any(d, j, (*JWT)(nil), nil)
	djangoTok, _ := SignDjango(map[string]any{"user": "d"}, testSecret, testSalt, false, time.Now())
	jwtTok := sign(t, jwt.SigningMethodHS256, []byte(jwtSecret), jwt.MapClaims{"sub": "j"})
	if id, err := v.Verify(djangoTok); err != nil || id.User != "d" {
		t.Errorf("Django token: %+v, %v", id, err)
	}
	if id, err := v.Verify(jwtTok); err != nil || id.User != "j" {
		t.Errorf("JWT: %+v, %v", id, err)
	}
	oldDjango, _ := SignDjango("room", testSecret, testSalt, false, time.Now().Add(-time.Hour))
	if _, err := v.Verify(oldDjango); !errors.Is(err, ErrExpired) || errors.Is(err, ErrInvalid) {
		t.Errorf("expired Django token: %v, want ErrExpired only", err)
	}
	if _, err := v.Verify("junk"); !errors.Is(err, ErrInvalid) || errors.Is(err, ErrExpired) {
		t.Errorf("junk: %v, want ErrInvalid only", err)
	}
	if _, err := Any().Verify(jwtTok); !errors.Is(err, ErrInvalid) {
		t.Errorf("no verifiers: %v", err)
	}
}
