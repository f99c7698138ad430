package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/shoal-rt/shoal/node/apps/hub"
	"github.com/shoal-rt/shoal/node/apps/hub/token"
)

// hubFlags are the flags of the "hub" app (docs/hub-config.md). They live
// in their own file so other flag groups do not collide with them.
type hubFlags struct {
	Prefix       string
	Demo         bool
	ConfigFile   string
	DjangoSecret string
	DjangoSalt   string
	DjangoMaxAge string
	JWTSecret    string
	JWTPublicKey string
}

// register adds the hub flags to fs (parseFlags gives each its SHOAL_*
// variable).
func (f *hubFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.Prefix, "hub-prefix", hub.DefaultPrefix, "URL prefix of the hub endpoint (--apps hub)")
	fs.BoolVar(&f.Demo, "hub-demo", false, "serve the hub's chat demo page at /chat/ (--apps hub)")
	fs.StringVar(&f.ConfigFile, "config", "", "hub config file (JSON: channel rules, limits; docs/hub-config.md); empty: the defaults")
	fs.StringVar(&f.DjangoSecret, "django-secret-key", "", "verify hub auth tokens made by django.core.signing with this SECRET_KEY")
	fs.StringVar(&f.DjangoSalt, "django-salt", "", "salt the web app passes to signing.dumps (default Django's \"django.core.signing\")")
	fs.StringVar(&f.DjangoMaxAge, "django-max-age", "", "refuse Django tokens older than this: seconds like Django's max_age (300) or a Go duration (5m); empty: any age")
	fs.StringVar(&f.JWTSecret, "jwt-secret", "", "verify hub auth JWTs signed with this HS256 secret")
	fs.StringVar(&f.JWTPublicKey, "jwt-public-key", "", "PEM file of the public key that verifies hub auth JWTs (RS256, ES256, ...)")
}

// hubConfig builds the hub's configuration: the verifiers the flags
// enable and the config file.
func (f hubFlags) hubConfig() (hub.Config, error) {
	cfg := hub.Config{Prefix: f.Prefix}
	var verifiers []token.Verifier
	if f.DjangoSecret != "" {
		maxAge, err := parseMaxAge(f.DjangoMaxAge)
		if err != nil {
			return cfg, err
		}
		d, err := token.NewDjango(token.DjangoConfig{Secret: f.DjangoSecret, Salt: f.DjangoSalt, MaxAge: maxAge})
		if err != nil {
			return cfg, fmt.Errorf("--django-secret-key: %w", err)
		}
		verifiers = append(verifiers, d)
	} else if f.DjangoSalt != "" || f.DjangoMaxAge != "" {
		return cfg, fmt.Errorf("--django-salt and --django-max-age need --django-secret-key")
	}
	if f.JWTSecret != "" || f.JWTPublicKey != "" {
		jc := token.JWTConfig{Secret: f.JWTSecret}
		if f.JWTPublicKey != "" {
			pem, err := os.ReadFile(f.JWTPublicKey)
			if err != nil {
				return cfg, fmt.Errorf("--jwt-public-key: %w", err)
			}
			jc.PublicKeyPEM = pem
		}
		j, err := token.NewJWT(jc)
		if err != nil {
			return cfg, fmt.Errorf("--jwt-secret / --jwt-public-key: %w", err)
		}
		verifiers = append(verifiers, j)
	}
	switch len(verifiers) {
	case 0:
	case 1:
		cfg.Verifier = verifiers[0]
	default:
		cfg.Verifier = token.Any(verifiers...)
	}
	if f.ConfigFile != "" {
		file, err := hub.LoadFile(f.ConfigFile)
		if err != nil {
			return cfg, fmt.Errorf("--config: %w", err)
		}
		cfg.File = file
	}
	return cfg, nil
}

// parseMaxAge reads --django-max-age: seconds (as Django's max_age), or a
// Go duration.
func parseMaxAge(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if secs < 0 {
			return 0, fmt.Errorf("--django-max-age %q: negative", s)
		}
		return time.Duration(secs * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("--django-max-age %q: want seconds (300) or a duration (5m)", s)
	}
	return d, nil
}
