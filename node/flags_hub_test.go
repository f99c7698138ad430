package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestHubFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "hub.json")
	if err := os.WriteFile(file, []byte(`{"channels":[{"pattern":"room-*","subscribe":"authenticated"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SHOAL_DJANGO_SECRET_KEY": "s3cret", "SHOAL_DJANGO_MAX_AGE": "300", "SHOAL_CONFIG": file}
	cfg, err := parseFlags([]string{"--hub-prefix", "/rt", "--jwt-secret", "k"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	hc, err := cfg.Hub.hubConfig()
	if err != nil {
		t.Fatal(err)
	}
	if hc.Prefix != "/rt" || hc.Verifier == nil || len(hc.File.Channels) != 1 {
		t.Fatalf("hub config %+v", hc)
	}
	for in, want := range map[string]time.Duration{"300": 5 * time.Minute, "1.5": 1500 * time.Millisecond, "5m": 5 * time.Minute, "": 0} {
		if got, err := parseMaxAge(in); err != nil || got != want {
			t.Errorf("parseMaxAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1", "soon"} {
		if _, err := parseMaxAge(bad); err == nil {
			t.Errorf("parseMaxAge(%q) accepted", bad)
		}
	}
	if _, err := (hubFlags{DjangoSalt: "x"}).hubConfig(); err == nil {
		t.Error("--django-salt without a key accepted")
	}
}
