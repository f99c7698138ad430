// Command node runs one Shoal node: a SockJS server whose sessions live in
// a shared store. Alone (no --redis, no --nats) it keeps everything in
// memory: `go run ./node` needs nothing else.
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

	"github.com/shoal-rt/shoal/node/apps"
	"github.com/shoal-rt/shoal/sockjs"
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
	LogLevel     string
	RedisPrefix  string
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
	fs.StringVar(&cfg.SockJSURL, "sockjs-url", sockjs.DefaultSockJSURL, "sockjs-client script URL for iframe and demo pages")
	fs.StringVar(&cfg.RedisPrefix, "key-prefix", "shoal", "prefix of Redis keys and NATS subjects, shared by the nodes of one cluster")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "SHOAL_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
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
	if cfg.NodeID == "" {
		cfg.NodeID = ulid.Make().String()
	}
	return cfg, nil
}

func run(cfg config) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.GossipListen != "" || cfg.Join != "" {
		return errors.New("--gossip-listen/--join are not yet supported by this build")
	}
	st, b, closeBackends, err := backends(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeBackends()
	node, err := sockjs.NewNode(sockjs.NodeConfig{ID: cfg.NodeID, Store: st, Bus: b, Logger: log})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ready\n"))
	})
	handler, err := apps.Mount(node, mux, []string{cfg.Apps}, apps.Options{SockJSURL: cfg.SockJSURL})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
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
	}
	log.Info("shoal node listening", "addr", ln.Addr().String(), "node", node.ID(), "apps", cfg.Apps)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Receivers end first (streams and polls would keep Shutdown waiting),
	// then the server stops accepting and finishes what is in flight.
	nodeErr := node.Close(shutCtx)
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	return nodeErr
}
