// Command node runs one Shoal node: a SockJS server whose sessions live in
// a shared store. Alone (no --redis, no --nats) it keeps everything in
// memory: `go run ./node` needs nothing else.
//
// Operations: /healthz, /readyz, /_shoal/stats, /_shoal/cluster and
// /metrics (ops.go, metrics.go); membership and cleanup after dead nodes
// (membership.go); graceful drain on SIGTERM (drain.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/shoal-rt/shoal/cluster"
	"github.com/shoal-rt/shoal/node/apps"
	"github.com/shoal-rt/shoal/node/apps/hub"
	"github.com/shoal-rt/shoal/sockjs"
	redisstore "github.com/shoal-rt/shoal/store/redis"
)

// config is what the flags (and their SHOAL_* environment variables) say.
type config struct {
	Listen       string
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
	RedisPrefix  string
	// AdvertiseHTTP is where other nodes reach this one's HTTP (stats).
	AdvertiseHTTP string
	// DrainDelay is how long a draining node reports unready before it
	// ends its receivers; DrainTimeout bounds the rest of the drain.
	DrainDelay   time.Duration
	DrainTimeout time.Duration
	// Hub holds the hub app's flags (flags_hub.go).
	Hub hubFlags
	// Backend holds the bridges', HTTP API's and webhooks' flags
	// (flags_backend.go).
	Backend backendFlags
	// RedisOutageWait bounds how long a request waits for Redis during an
	// outage (a restart, a failover) before it fails.
	RedisOutageWait time.Duration
	// Security holds the flags against hostile clients and foreign
	// gossip (flags_security.go).
	Security securityFlags
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "shoal:", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "shoal:", err)
		os.Exit(1)
	}
}

// parseFlags reads args; a flag not given takes its SHOAL_<FLAG> variable
// (upper case, '-' as '_') from getenv, then its default.
func parseFlags(args []string, getenv func(string) string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("shoal", flag.ContinueOnError)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&cfg.Redis, "redis", "", "Redis URL for the shared store; empty: in-memory store")
	fs.StringVar(&cfg.NATS, "nats", "", "NATS URL for the bus; empty: in-process bus")
	fs.StringVar(&cfg.NodeID, "node-id", "", "this node's id (default: a new ULID)")
	fs.StringVar(&cfg.GossipListen, "gossip-listen", "", "memberlist bind address; empty: no gossip")
	fs.StringVar(&cfg.Join, "join", "", "comma-separated memberlist seeds")
	fs.StringVar(&cfg.Apps, "apps", "echo", "comma-separated built-in apps to mount: "+strings.Join(apps.Names(), ", "))
	fs.StringVar(&cfg.SockJSURL, "sockjs-url", "", "sockjs-client script URL for iframe and demo pages (default: "+apps.SockJSClientPath+" when the node serves a copy, else "+sockjs.DefaultSockJSURL+")")
	fs.StringVar(&cfg.SockJSClient, "sockjs-client", "", "sockjs-client installed from npm to serve at "+apps.SockJSClientPath+": its dist/sockjs.min.js, the package or a node_modules folder (default: searched beside the binary, in the working directory and Debian's node-sockjs-client)")
	fs.StringVar(&cfg.RedisPrefix, "key-prefix", "shoal", "prefix of Redis keys and NATS subjects, shared by the nodes of one cluster")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&cfg.AdvertiseHTTP, "advertise-http", "", "host:port other nodes reach this node's HTTP on (default: --listen, with this host's private IP for an unspecified host)")
	fs.DurationVar(&cfg.DrainDelay, "drain-delay", defaultDrainDelay, "after SIGTERM, how long /readyz answers 503 before receivers are ended, so the balancer stops sending requests (default 0 without --redis: no other node can take over)")
	fs.DurationVar(&cfg.RedisOutageWait, "redis-outage-wait", redisstore.DefaultOutageWait, "how long a request waits for Redis to come back (a restart, a failover) before it fails; only commands Redis surely did not run are sent again; 0: do not wait")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", defaultDrainTimeout, "after the drain delay, the bound on ending receivers, finishing requests and leaving the cluster")
	cfg.Hub.register(fs)
	cfg.Security.register(fs)
	cfg.Backend.register(fs)
	set := make(map[string]bool)
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "SHOAL_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
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
	if cfg.NodeID == "" {
		cfg.NodeID = ulid.Make().String()
	}
	if err := cfg.Backend.check(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func run(cfg config) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	// The first SIGTERM or SIGINT starts the drain (and aborts a start-up
	// still waiting for its backends); a second one cuts the drain delay
	// short.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, again := make(chan os.Signal, 1), make(chan os.Signal, 1)
	go func() {
		first <- <-sigs
		cancel()
		for sig := range sigs {
			select {
			case again <- sig:
			default:
			}
		}
	}()

	st, b, checks, closeBackends, err := backends(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeBackends()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	httpAddr, err := advertisedHTTP(cfg, ln.Addr().String())
	if err != nil {
		return err
	}
	version := buildVersion()
	// A store call may wait --redis-outage-wait for Redis to come back;
	// its own bound must not cut that wait short.
	nc := sockjs.NodeConfig{ID: cfg.NodeID, Store: st, Bus: b, Logger: log,
		OpTimeout: max(5*time.Second, cfg.RedisOutageWait+time.Second)}
	cfg.Security.apply(&nc)
	node, err := sockjs.NewNode(nc)
	if err != nil {
		return err
	}
	defer func() {
		// For early returns: after a drain this finds the node closed.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		node.Close(ctx)
	}()
	membership, err := joinCluster(cfg, cluster.Member{ID: cfg.NodeID, HTTPAddr: httpAddr, Version: version}, log)
	if err != nil {
		return err
	}
	defer membership.Shutdown() // after Leave, harmless
	cleaner := newCleaner(node, membership, log)
	relCtx, relCancel := context.WithTimeout(ctx, 10*time.Second)
	cleaner.releaseOwn(relCtx)
	relCancel()

	o := newOps(node, membership, cleaner, checks, log)
	checkCtx, stopChecks := context.WithCancel(context.Background())
	defer stopChecks()
	go o.checkLoop(checkCtx)
	mux := http.NewServeMux()
	o.mount(mux, metricsHandler(o, version))
	hubCfg, err := cfg.Hub.hubConfig()
	if err != nil {
		return err
	}
	hubCfg.Logger = log
	side, err := newBackendSide(cfg, &hubCfg, membership, log)
	if err != nil {
		return err
	}
	defer side.close()
	handler, err := apps.Mount(node, mux, []string{cfg.Apps}, apps.Options{SockJSURL: cfg.SockJSURL, SockJSClientFile: cfg.SockJSClient, HubDemo: cfg.Hub.Demo, Hub: hubCfg,
		HubReady: func(h *hub.Hub, mux *http.ServeMux) error { return side.ready(ctx, h, mux) }})
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: handler,
		// Streaming transports keep responses open, so there is no
		// overall read or write timeout; headers must come in time and
		// bodies are read with their own deadline.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnState:         node.ConnState,
	}
	log.Info("shoal node listening", "addr", ln.Addr().String(), "advertise", httpAddr, "node", node.ID(),
		"version", version, "apps", cfg.Apps, "members", len(membership.Members()))

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case sig := <-first:
		log.Info("signal received: draining", "signal", sig.String())
	}
	// Whatever happens in the drain, the process ends in bounded time.
	watchdog := time.AfterFunc(cfg.DrainDelay+cfg.DrainTimeout+exitGrace, func() {
		log.Error("drain overran its bound; exiting")
		os.Exit(1)
	})
	defer watchdog.Stop()
	d := &drainer{node: node, srv: srv, ops: o, membership: membership, cleaner: cleaner, log: log,
		delay: cfg.DrainDelay, timeout: cfg.DrainTimeout}
	d.drain(again)
	return nil
}
