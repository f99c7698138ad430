package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWTConfig configures a JWT verifier. Secret, PublicKeyPEM or both must be
// set; a zero field otherwise means the default.
type JWTConfig struct {
	// Secret verifies HS256 / HS384 / HS512 tokens.
	Secret string
	// PublicKeyPEM verifies RS256/384/512 and PS256/384/512 (an RSA key),
	// ES256/384/512 (an ECDSA key of the matching curve) or EdDSA (Ed25519):
	// a PEM "PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE" block.
	PublicKeyPEM []byte
	// Leeway tolerates clock skew on exp and nbf.
	Leeway time.Duration
	// Audience and Issuer, when set, must match the aud and iss claims.
	Audience string
	Issuer   string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// JWT verifies JSON Web Tokens: sub is the user, the claim "channels" the
// channels granted; exp and nbf are checked when present. Only the
// algorithms the configured keys can verify are accepted ("none" never), and
// a key is only ever used with its own kind of algorithm, so an HMAC token
// cannot be checked against the public key.
type JWT struct {
	parser    *jwt.Parser
	secret    []byte
	publicKey crypto.PublicKey
}

var _ Verifier = (*JWT)(nil)

type jwtClaims struct {
	jwt.RegisteredClaims
	Channels []string `json:"channels,omitempty"`
}

// NewJWT returns a verifier for the given configuration.
func NewJWT(c JWTConfig) (*JWT, error) {
	if c.Secret == "" && len(c.PublicKeyPEM) == 0 {
		return nil, errors.New("token: jwt: neither a secret nor a public key")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	v := &JWT{}
	var methods []string
	if c.Secret != "" {
		v.secret = []byte(c.Secret)
		methods = append(methods, "HS256", "HS384", "HS512")
	}
	if len(c.PublicKeyPEM) > 0 {
		key, algs, err := parsePublicKeyPEM(c.PublicKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("token: jwt: %w", err)
		}
		v.publicKey = key
		methods = append(methods, algs...)
	}
	// Strict base64: a token whose last character differs only in unused bits
	// is a different token, not an accepted variant of a good one.
	opts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithTimeFunc(c.Now), jwt.WithLeeway(c.Leeway), jwt.WithStrictDecoding()}
	if c.Audience != "" {
		opts = append(opts, jwt.WithAudience(c.Audience))
	}
	if c.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// parsePublicKeyPEM reads the first PEM block and says which algorithms
// the key verifies.
func parsePublicKeyPEM(data []byte) (crypto.PublicKey, []string, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, nil, errors.New("public key: no PEM block")
	}
	var key crypto.PublicKey
	var err error
	switch block.Type {
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("public key: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		return k, []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return k, []string{"ES256"}, nil
		case elliptic.P384():
			return k, []string{"ES384"}, nil
		case elliptic.P521():
			return k, []string{"ES512"}, nil
		}
		return nil, nil, fmt.Errorf("public key: unsupported curve %s", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return k, []string{"EdDSA"}, nil
	}
	return nil, nil, fmt.Errorf("public key: unsupported type %T", key)
}

// keyFor hands the parser the key of the token's algorithm family only.
func (v *JWT) keyFor(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if v.secret != nil {
			return v.secret, nil
		}
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS, *jwt.SigningMethodECDSA, *jwt.SigningMethodEd25519:
		if v.publicKey != nil {
			return v.publicKey, nil
		}
	}
	return nil, fmt.Errorf("no key for algorithm %v", t.Header["alg"])
}

// Verify checks the token's signature, exp and nbf (and aud / iss when
// configured).
func (v *JWT) Verify(tok string) (Identity, error) {
	if len(tok) > maxTokenBytes {
		return Identity{}, fmt.Errorf("%w: jwt: %d bytes", ErrInvalid, len(tok))
	}
	var claims jwtClaims
	_, err := v.parser.ParseWithClaims(tok, &claims, v.keyFor)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) || errors.Is(err, jwt.ErrTokenNotValidYet) {
			return Identity{}, fmt.Errorf("%w: jwt: %w", ErrExpired, err)
		}
		return Identity{}, fmt.Errorf("%w: jwt: %w", ErrInvalid, err)
	}
	for _, c := range claims.Channels {
		if c == "" {
			return Identity{}, fmt.Errorf("%w: jwt: empty channel name", ErrInvalid)
		}
	}
	id := Identity{User: claims.Subject, Channels: claims.Channels}
	if claims.ExpiresAt != nil {
		id.Expires = claims.ExpiresAt.Time
	}
	return id, nil
}

// Any tries each verifier in order and returns the first identity one
// grants. When none does, the error is ErrExpired if some verifier found a
// good signature on an expired token, else ErrInvalid. Nil verifiers are
// skipped, so optional ones can be passed as they are.
func Any(verifiers ...Verifier) Verifier {
	var vs anyOf
	for _, v := range verifiers {
		if v != nil && !isNilPointer(v) {
			vs = append(vs, v)
		}
	}
	return vs
}

type anyOf []Verifier

func (vs anyOf) Verify(tok string) (Identity, error) {
	if len(vs) == 0 {
		return Identity{}, fmt.Errorf("%w: no verifier configured", ErrInvalid)
	}
	var errs []error
	for _, v := range vs {
		id, err := v.Verify(tok)
		if err == nil {
			return id, nil
		}
		if errors.Is(err, ErrExpired) {
			return Identity{}, err
		}
		errs = append(errs, err)
	}
	// Every error wraps ErrInvalid; joined, they say why each refused.
	return Identity{}, errors.Join(errs...)
}

// isNilPointer catches a typed nil (*Django)(nil) passed as a Verifier.
func isNilPointer(v Verifier) bool {
	switch p := v.(type) {
	case *Django:
		return p == nil
	case *JWT:
		return p == nil
	}
	return false
}
