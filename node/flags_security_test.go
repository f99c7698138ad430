package main

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/cluster"
	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/sockjs"
)

func TestSecurityFlags(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	env := map[string]string{"SHOAL_GOSSIP_KEY": key, "SHOAL_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7, ::ffff:198.51.100.1"}
	cfg, err := parseFlags([]string{"--allowed-origins", "https://app.example, *.example.org", "--new-sessions-per-ip", "30",
		"--body-budget", "16MiB", "--memory-max-bytes", "1G"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	var nc sockjs.NodeConfig
	cfg.Security.apply(&nc)
	if !slices.Equal(nc.AllowedOrigins, []string{"https://app.example", "*.example.org"}) {
		t.Errorf("origins %q", nc.AllowedOrigins)
	}
	wantProxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("198.51.100.1/32")}
	if !slices.Equal(nc.TrustedProxies, wantProxies) {
		t.Errorf("proxies %v, want %v", nc.TrustedProxies, wantProxies)
	}
	if nc.NewSessionsPerIP != 30 || nc.BodyBudget != 16<<20 || cfg.Security.memoryConfig().MaxBytes != 1<<30 {
		t.Errorf("limits: %d, %d, %d", nc.NewSessionsPerIP, nc.BodyBudget, cfg.Security.memoryConfig().MaxBytes)
	}
	if string(cfg.Security.key) != "0123456789abcdef" {
		t.Errorf("gossip key %q", cfg.Security.key)
	}

	// Defaults: any origin, nobody trusted, no per-IP limit, the budgets.
	cfg, err = parseFlags(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	nc = sockjs.NodeConfig{}
	cfg.Security.apply(&nc)
	if nc.AllowedOrigins != nil || nc.TrustedProxies != nil || nc.NewSessionsPerIP != 0 ||
		nc.BodyBudget != sockjs.DefaultBodyBudget || cfg.Security.key != nil {
		t.Errorf("defaults: %+v", nc)
	}

	for _, bad := range [][]string{
		{"--trusted-proxies", "balancer.local"},
		{"--new-sessions-per-ip", "-1"},
		{"--gossip-key", "not base64!"},
		{"--gossip-key", base64.StdEncoding.EncodeToString([]byte("short"))},
		{"--body-budget", "lots"},
		{"--memory-max-bytes", "-5"},
	} {
		if _, err := parseFlags(bad, func(string) string { return "" }); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestJoinRefusesOtherStores: a node without --redis, or with another
// --key-prefix, does not join a Redis-backed cluster; one like it does.
// Gossip binds --listen's interface unless --gossip-listen says otherwise.
func TestJoinRefusesOtherStores(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	start := func(cfg config) cluster.Membership {
		t.Helper()
		cfg.Listen = "127.0.0.1:8080"
		if cfg.GossipListen == "" {
			cfg.GossipListen = "127.0.0.1:0"
		}
		m, err := joinCluster(cfg, cluster.Member{ID: cfg.NodeID}, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Shutdown() })
		return m
	}
	gossipAddr := func(m cluster.Membership) string { return m.(*cluster.Memberlist).GossipAddr() }
	redis := config{Redis: "redis://127.0.0.1:6379/0", RedisPrefix: "shoal"}

	a := redis
	a.NodeID = "a"
	ma := start(a)
	b := redis
	b.NodeID, b.Join = "b", gossipAddr(ma)
	mb := start(b)
	began := time.Now()
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if a, b := len(ma.Members()), len(mb.Members()); a != 2 || b != 2 {
			return fmt.Errorf("a sees %d members, b %d; want 2", a, b)
		}
		return nil
	})
	joined := time.Since(began)

	memory := config{NodeID: "m", Join: gossipAddr(ma)}
	other := config{NodeID: "o", Redis: redis.Redis, RedisPrefix: "other", Join: gossipAddr(mb)}
	mm, mo := start(memory), start(other)
	for end := time.Now().Add(time.Second + 2*joined); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		for _, m := range []cluster.Membership{ma, mb, mm, mo} {
			want := 1
			if m == ma || m == mb {
				want = 2
			}
			if got := len(m.Members()); got != want {
				t.Fatalf("%s sees %d members, want %d", m.Self().ID, got, want)
			}
		}
	}

	// Without --gossip-listen, gossip binds --listen's host.
	mc := cluster.Config{}
	var f securityFlags
	if err := f.gossip(config{Listen: "127.0.0.1:8080"}, &mc, log); err != nil || mc.BindAddr != "127.0.0.1:7946" || mc.Kind != "memory" {
		t.Fatalf("gossip config %+v, %v", mc, err)
	}
	if k := clusterKind(config{Redis: "x", RedisPrefix: strings.Repeat("p", 300)}); len(k) > 128 {
		t.Fatalf("kind of %d bytes", len(k))
	}
}
