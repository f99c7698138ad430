package main

import (
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	env := map[string]string{"SHOAL_LISTEN": "127.0.0.1:9", "SHOAL_APPS": "conformance", "SHOAL_NODE_ID": "n1"}
	getenv := func(k string) string { return env[k] }

	cfg, err := parseFlags(nil, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9" || cfg.Apps != "conformance" || cfg.NodeID != "n1" || cfg.LogLevel != "info" {
		t.Fatalf("env not applied: %+v", cfg)
	}
	cfg, err = parseFlags([]string{"--listen", "127.0.0.1:10", "--node-id", "n2"}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:10" || cfg.NodeID != "n2" || cfg.Apps != "conformance" {
		t.Fatalf("flags must win over env: %+v", cfg)
	}
	cfg, err = parseFlags(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.Apps != "echo" || len(cfg.NodeID) != 26 {
		t.Fatalf("defaults: %+v", cfg)
	}
	if _, err := parseFlags([]string{"extra"}, getenv); err == nil {
		t.Fatal("stray argument accepted")
	}
}

func TestBackendsRefuseWhatIsNotWired(t *testing.T) {
	if _, _, err := backends(config{}); err != nil {
		t.Fatalf("in-memory backends: %v", err)
	}
	for _, cfg := range []config{{Redis: "redis://x"}, {NATS: "nats://x"}} {
		if _, _, err := backends(cfg); err == nil || !strings.Contains(err.Error(), "not yet supported") {
			t.Fatalf("%+v: %v", cfg, err)
		}
	}
}
