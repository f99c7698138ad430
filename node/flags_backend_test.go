package main

import (
	"strings"
	"testing"
	"time"
)

func TestBackendFlags(t *testing.T) {
	env := map[string]string{"SHOAL_API_KEY": "k", "SHOAL_BRIDGE_PREFIX": "app:", "SHOAL_WEBHOOK_TIMEOUT": "1500ms"}
	cfg, err := parseFlags([]string{"--webhook-url", "http://app/hook", "--webhook-secret", "s", "--bridge-nats", "off"},
		func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Backend
	if f.APIKey != "k" || f.BridgePref != "app:" || f.WebhookTime != 1500*time.Millisecond || f.WebhookURL != "http://app/hook" ||
		f.APIMaxBody != 1<<20 || f.NATSPrefix != "shoal.bridge" {
		t.Fatalf("flags %+v", f)
	}
	if orDefault(f.BridgeNATS, "nats://x") != "" || orDefault(f.BridgeRedis, "redis://x") != "redis://x" {
		t.Fatalf("defaults: nats %q redis %q", orDefault(f.BridgeNATS, "nats://x"), orDefault(f.BridgeRedis, "redis://x"))
	}
	if _, err := parseFlags([]string{"--webhook-url", "http://app/hook"}, func(string) string { return "" }); err == nil ||
		!strings.Contains(err.Error(), "--webhook-secret") {
		t.Fatalf("webhook without secret: %v", err)
	}
}
