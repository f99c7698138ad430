package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/shoal-rt/shoal/node/apps"
	"github.com/shoal-rt/shoal/sockjs"
	redisstore "github.com/shoal-rt/shoal/store/redis"
)

// Defaults of the drain flags.
const (
	// defaultDrainDelay covers HAProxy's view of a node going unready:
	// haproxy.cfg checks every second and needs 2 failures (fall 2), so
	// about 2 s; the rest is margin for a loaded machine.
	defaultDrainDelay = 5 * time.Second
	// defaultDrainTimeout keeps delay + timeout (25 s) under the 30 s a
	// container gets between SIGTERM and SIGKILL (docker-compose.yml).
	defaultDrainTimeout = 20 * time.Second
	// exitGrace is how long past delay + timeout the process may take
	// before the watchdog ends it.
	exitGrace = 5 * time.Second
)

// config is what the flags (and their SHOAL_* environment variables) say.
type config struct {
	Listen string
	// AdminListen, when set, serves the operations endpoints (/metrics,
	// /_shoal/*, /healthz, /readyz) instead of the public listener.
	AdminListen  string
	Redis        string
	NATS         string
	NodeID       string
	GossipListen string
	Join         string
	Apps         string
	SockJSURL    string
	// SockJSClient is a sockjs-client installed from npm to serve.
	SockJSClient string
	LogLevel     string
	LogFormat    string
	// Version asks for the version only.
	Version     bool
	RedisPrefix string
	// AdvertiseHTTP is where other nodes reach this one's operations
	// endpoints (stats).
	AdvertiseHTTP string
	// DrainDelay is how long a draining node reports unready before it
	// ends its receivers; DrainTimeout bounds the rest of the drain.
	DrainDelay   time.Duration
	DrainTimeout time.Duration
	// GCPercent is the collector's target (gcpolicy.go).
	GCPercent int
	// RedisOutageWait bounds how long a request waits for Redis during an
	// outage (a restart, a failover) before it fails.
	RedisOutageWait time.Duration
	// Security holds the flags against hostile clients and foreign
	// gossip (flags_security.go).
	Security securityFlags
	// Backend holds the bridges', HTTP API's and webhooks' flags
	// (flags_backend.go).
	Backend backendFlags
	// Hub holds the hub app's flags (flags_hub.go).
	Hub hubFlags
}

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return "SHOAL_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// newFlagSet declares every flag of the program into cfg. docs/flags.md is
// generated from it (TestFlagsDoc keeps them in step).
func newFlagSet(cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet("shoal", flag.ContinueOnError)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "public HTTP address (SockJS endpoints, apps; the operations endpoints too unless --admin-listen is set)")
	fs.StringVar(&cfg.AdminListen, "admin-listen", "", "address for /metrics, /_shoal/*, /healthz and /readyz; when set, the public listener serves none of them")
	fs.StringVar(&cfg.Redis, "redis", "", "Redis URL for the shared store: "+redisstore.URLForms+"; empty: in-memory store")
	fs.StringVar(&cfg.NATS, "nats", "", "NATS URL(s) for the bus, comma-separated; empty: in-process bus")
	fs.StringVar(&cfg.NodeID, "node-id", "", "this node's id, unique in the cluster (default: a new ULID)")
	fs.StringVar(&cfg.GossipListen, "gossip-listen", "", "memberlist bind address (host:port); empty: with --join, --listen's host on port 7946, else no gossip")
	fs.StringVar(&cfg.Join, "join", "", "comma-separated memberlist seeds (host:port)")
	fs.StringVar(&cfg.Apps, "apps", "echo", "comma-separated built-in apps to mount: "+strings.Join(apps.Names(), ", "))
	fs.StringVar(&cfg.SockJSURL, "sockjs-url", "", "sockjs-client script URL for iframe and demo pages (default: "+apps.SockJSClientPath+" when the node serves a copy, else "+sockjs.DefaultSockJSURL+")")
	fs.StringVar(&cfg.SockJSClient, "sockjs-client", "", "sockjs-client installed from npm to serve at "+apps.SockJSClientPath+": its dist/sockjs.min.js, the package or a node_modules folder (default: searched beside the binary, in the working directory and Debian's node-sockjs-client)")
	fs.StringVar(&cfg.RedisPrefix, "key-prefix", "shoal", "prefix of Redis keys and NATS subjects, shared by the nodes of one cluster")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", "text", "text (logfmt-like key=value) or json, one object a line")
	fs.StringVar(&cfg.AdvertiseHTTP, "advertise-http", "", "host:port other nodes reach this node's operations endpoints on (default: --admin-listen if set, else --listen, with this host's private IP for an unspecified host)")
	fs.DurationVar(&cfg.DrainDelay, "drain-delay", defaultDrainDelay, "after SIGTERM, how long /readyz answers 503 before receivers are ended, so the balancer stops sending requests (default 0 without --redis: no other node can take over)")
	fs.DurationVar(&cfg.RedisOutageWait, "redis-outage-wait", redisstore.DefaultOutageWait, "how long a request waits for Redis to come back (a restart, a failover) before it fails; a command is sent again only when a repeat cannot do harm: Redis surely did not run it, it only reads, or it is a held take or commit; 0: do not wait")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", defaultDrainTimeout, "after the drain delay, the bound on ending receivers, finishing requests and leaving the cluster")
	fs.BoolVar(&cfg.Version, "version", false, "print the version and exit")
	fs.IntVar(&cfg.GCPercent, "gc-percent", defaultGCPercent, gcPolicyHelp)
	cfg.Hub.register(fs)
	cfg.Security.register(fs)
	cfg.Backend.register(fs)
	fs.SetOutput(io.Discard) // parseFlags reports errors; usage prints help
	return fs
}

// errHelp is returned by parseFlags for -h, -help and --help: main prints
// usage and exits 0.
var errHelp = flag.ErrHelp

// parseFlags reads args; a flag not given takes its SHOAL_<FLAG> variable
// (upper case, '-' as '_') from getenv, then its default.
func parseFlags(args []string, getenv func(string) string) (config, error) {
	var cfg config
	fs := newFlagSet(&cfg)
	set := make(map[string]bool)
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v := getenv(name); v != "" {
			set[f.Name] = true
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s: %w", name, err)
			}
		}
	})
	if envErr != nil {
		return cfg, envErr
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["drain-delay"] && cfg.Redis == "" {
		cfg.DrainDelay = 0
	}
	if cfg.DrainDelay < 0 || cfg.DrainTimeout <= 0 {
		return cfg, errors.New("--drain-delay must not be negative and --drain-timeout must be positive")
	}
	if err := cfg.Security.check(); err != nil {
		return cfg, err
	}
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		return cfg, fmt.Errorf("--log-format %q: want text or json", cfg.LogFormat)
	}
	if cfg.NodeID == "" {
		cfg.NodeID = ulid.Make().String()
	}
	if err := cfg.Backend.check(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// usage writes --help: what the program is, then every flag with its
// environment variable and default.
func usage(w io.Writer) {
	var cfg config
	fs := newFlagSet(&cfg)
	fmt.Fprintf(w, `shoal %s: a SockJS server whose sessions live in a shared store, so any
request of any session may land on any node (no sticky balancing).

Usage: shoal [flags]

Alone (no --redis, no --nats) a node keeps everything in memory. Every flag
may also be set by its environment variable; a flag on the command line
wins over its variable.

Flags:
`, buildVersion())
	fs.VisitAll(func(f *flag.Flag) {
		typ, help := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if typ != "" {
			fmt.Fprintf(w, " %s", typ)
		}
		fmt.Fprintf(w, "  (env %s", envName(f.Name))
		if f.DefValue != "" {
			fmt.Fprintf(w, ", default %s", f.DefValue)
		}
		fmt.Fprintf(w, ")\n      %s\n", help)
	})
}
