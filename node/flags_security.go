package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/shoal-rt/shoal/cluster"
	"github.com/shoal-rt/shoal/sockjs"
	"github.com/shoal-rt/shoal/store"
)

// securityFlags are the flags that guard the node against hostile clients
// and foreign gossip (docs/security.md). They live in their own file so
// other flag groups do not collide with them.
type securityFlags struct {
	AllowedOrigins   string
	TrustedProxies   string
	ProxyProtocol    bool
	NewSessionsPerIP int
	BodyBudget       byteSize
	MemoryMaxBytes   byteSize
	GossipKey        string

	// Parsed by check.
	origins []string
	proxies []netip.Prefix
	key     []byte
}

// register adds the security flags to fs (parseFlags gives each its
// SHOAL_* variable).
func (f *securityFlags) register(fs *flag.FlagSet) {
	f.BodyBudget = sockjs.DefaultBodyBudget
	f.MemoryMaxBytes = store.DefaultMemoryMaxBytes
	fs.StringVar(&f.AllowedOrigins, "allowed-origins", "", "comma list of origins whose pages may use the node (CORS and websocket Origin): https://app.example.com, app.example.com (any scheme), *.example.com; others get 403; empty: any origin (the SockJS default)")
	fs.StringVar(&f.TrustedProxies, "trusted-proxies", "", "comma list of balancer addresses or CIDRs whose X-Forwarded-For names the client (Info().IP, per-IP limits); empty: the TCP peer is the client")
	fs.BoolVar(&f.ProxyProtocol, "proxy-protocol", false, "connections from --trusted-proxies start with a PROXY protocol header (HAProxy send-proxy or send-proxy-v2) naming the client")
	fs.IntVar(&f.NewSessionsPerIP, "new-sessions-per-ip", 0, "new sessions one client address may open on this node per minute (IPv6: per /64); past it 429; 0: no limit")
	fs.Var(&f.BodyBudget, "body-budget", "bytes of xhr_send/jsonp_send bodies the node reads at once, over all clients (e.g. 64MiB); past it a send gets 503")
	fs.Var(&f.MemoryMaxBytes, "memory-max-bytes", "without --redis: bytes of messages the in-memory store queues for all sessions together (e.g. 256MiB); past it the session sent to is closed with 3009")
	fs.StringVar(&f.GossipKey, "gossip-key", "", "base64 key of 16, 24 or 32 bytes that encrypts and authenticates gossip; the same on every node (prefer SHOAL_GOSSIP_KEY)")
}

// check parses the flags' values.
func (f *securityFlags) check() error {
	for o := range strings.SplitSeq(f.AllowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			f.origins = append(f.origins, o)
		}
	}
	for p := range strings.SplitSeq(f.TrustedProxies, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return fmt.Errorf("--trusted-proxies: %q is neither an address nor a CIDR", p)
			}
			prefix = netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen())
		}
		f.proxies = append(f.proxies, prefix.Masked())
	}
	if f.ProxyProtocol && len(f.proxies) == 0 {
		return errors.New("--proxy-protocol needs --trusted-proxies: whose PROXY headers to believe")
	}
	if f.NewSessionsPerIP < 0 {
		return errors.New("--new-sessions-per-ip must not be negative")
	}
	if f.GossipKey != "" {
		key, err := base64.StdEncoding.DecodeString(f.GossipKey)
		if err != nil {
			return fmt.Errorf("--gossip-key: not base64: %w", err)
		}
		if n := len(key); n != 16 && n != 24 && n != 32 {
			return fmt.Errorf("--gossip-key: %d bytes, want 16, 24 or 32", n)
		}
		f.key = key
	}
	return nil
}

// apply sets what the flags say on the node's configuration.
func (f *securityFlags) apply(nc *sockjs.NodeConfig) {
	nc.AllowedOrigins = f.origins
	nc.TrustedProxies = f.proxies
	nc.NewSessionsPerIP = f.NewSessionsPerIP
	nc.BodyBudget = int64(f.BodyBudget)
}

// wrapListener reads the PROXY headers of trusted connections on the
// public listener when --proxy-protocol is set (proxyproto.go).
func (f *securityFlags) wrapListener(ln net.Listener, log *slog.Logger) net.Listener {
	if !f.ProxyProtocol {
		return ln
	}
	return newProxyListener(ln, f.proxies, log)
}

// memoryConfig is the in-memory store's configuration.
func (f *securityFlags) memoryConfig() store.MemoryConfig {
	return store.MemoryConfig{MaxBytes: int64(f.MemoryMaxBytes)}
}

// gossip fills the security side of the memberlist configuration: the
// kind of cluster (a node of another kind is refused), the key, and the
// bind address, which defaults to --listen's interface rather than all of
// them.
func (f *securityFlags) gossip(cfg config, mc *cluster.Config, log *slog.Logger) error {
	mc.Kind = clusterKind(cfg)
	mc.SecretKey = f.key
	if mc.BindAddr == "" {
		host, _, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
		mc.BindAddr = net.JoinHostPort(host, strconv.Itoa(cluster.DefaultGossipPort))
	}
	host, _, err := net.SplitHostPort(mc.BindAddr)
	if err != nil {
		return fmt.Errorf("--gossip-listen: %w", err)
	}
	if ip, err := netip.ParseAddr(host); (err != nil || !ip.IsLoopback()) && f.key == nil {
		log.Warn("gossip is neither encrypted nor authenticated: anyone who reaches it can join the cluster and learn its members; set --gossip-key", "bind", mc.BindAddr)
	}
	return nil
}

// clusterKind names what the nodes of one cluster share: the store, and
// with Redis its key prefix. Nodes of different kinds refuse each other's
// gossip, so a memory-store node never joins a Redis-backed cluster.
func clusterKind(cfg config) string {
	if cfg.Redis == "" {
		return "memory"
	}
	kind := "redis:" + cfg.RedisPrefix
	if len(kind) > 128 {
		kind = kind[:128]
	}
	return kind
}

// byteSize is a flag of bytes: a number with an optional unit (KiB, MiB,
// GiB, or k, M, G with the same 1024 meaning).
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"k", 1 << 10}, {"K", 1 << 10}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("%q is not a byte size (such as 65536, 64KiB, 256MiB)", s)
	}
	*b = byteSize(n * mult)
	return nil
}
