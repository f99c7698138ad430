// Command embedded is a Go application that mounts its own SockJS handler
// on a Shoal node clustered through Redis and NATS, and keeps everything
// the shoal program has besides its built-in apps: /healthz, /readyz with
// the reason, /metrics, /_shoal/stats and /_shoal/cluster (package
// node/ops), cleanup after dead nodes, and a graceful drain on SIGTERM.
// Run as many as you like behind a round-robin balancer:
//
//	go run ./examples/embedded --listen 127.0.0.1:9001 \
//	    --redis redis://127.0.0.1:6379/0 --nats nats://127.0.0.1:4222
//
// then open a SockJS connection to http://127.0.0.1:9001/chat: every
// message is published to channel "lobby", which every session of every
// node joined.
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
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	natsbus "github.com/shoal-rt/shoal/bus/nats"
	"github.com/shoal-rt/shoal/node/ops"
	"github.com/shoal-rt/shoal/sockjs"
	redisstore "github.com/shoal-rt/shoal/store/redis"
)

type config struct {
	Listen, Redis, NATS, NodeID, Prefix string
	DrainDelay                          time.Duration
}

func main() {
	var cfg config
	flag.StringVar(&cfg.Listen, "listen", "127.0.0.1:9001", "HTTP listen address")
	flag.StringVar(&cfg.Redis, "redis", "redis://127.0.0.1:6379/0", "Redis URL: "+redisstore.URLForms)
	flag.StringVar(&cfg.NATS, "nats", nats.DefaultURL, "NATS URL")
	flag.StringVar(&cfg.NodeID, "node-id", "", "this node's id (default: a new ULID)")
	flag.StringVar(&cfg.Prefix, "key-prefix", "embedded", "Redis key and NATS subject prefix, shared by the cluster")
	flag.DurationVar(&cfg.DrainDelay, "drain-delay", 5*time.Second, "after SIGTERM, how long /readyz says draining before receivers end")
	flag.Parse()
	ops.QuietSysmon() // as the shoal program: Go's monitor thread left asleep (may run the program again)
	// SIGTERM or Ctrl-C starts the drain.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)), nil); err != nil {
		fmt.Fprintln(os.Stderr, "embedded:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, then drains. It sends the address it listens
// on to listening, if not nil.
func run(ctx context.Context, cfg config, log *slog.Logger, listening chan<- string) error {
	// The store, on the client the shoal program uses: any URL form (one
	// server, Redis Cluster, Sentinel), calls bounded by their context,
	// and go-redis's retries off (a resent script could append twice) in
	// favour of waiting out a restart or a failover.
	rc, err := redisstore.NewClient(cfg.Redis, 0)
	if err != nil {
		return fmt.Errorf("--redis: %w", err)
	}
	defer rc.Close()
	st := redisstore.New(rc, redisstore.Config{Prefix: cfg.Prefix})

	// The bus: natsbus.Connect keeps reconnecting forever, and buffers
	// what is sent while NATS is away.
	nc, err := natsbus.Connect(cfg.NATS, nats.Name("embedded"))
	if err != nil {
		return fmt.Errorf("--nats: %w", err)
	}
	b := natsbus.New(nc, natsbus.Config{Prefix: cfg.Prefix})
	defer b.Close()

	node, err := sockjs.NewNode(sockjs.NodeConfig{ID: cfg.NodeID, Store: st, Bus: b, Logger: log})
	if err != nil {
		return err
	}
	// A handler keeps no per-session state in memory: the next request of
	// a session may land on another node.
	var chat *sockjs.Endpoint
	chat, err = node.NewEndpoint(sockjs.HandlerFuncs{
		Open: func(s *sockjs.Session) error { return s.Subscribe(context.Background(), "lobby") },
		Message: func(s *sockjs.Session, msg string) {
			if err := chat.Publish(context.Background(), "lobby", s.ID()+": "+msg); err != nil {
				log.Warn("publish", "err", err)
			}
		},
	}, sockjs.Settings{Prefix: "/chat"})
	if err != nil {
		return err
	}
	if err := chat.HandleChannels(sockjs.ChannelConfig{Pattern: "lobby"}); err != nil {
		return err
	}

	// Operations: readiness pings Redis and NATS; /metrics, stats and the
	// drain come with it. Without a memberlist Membership (cluster.Join)
	// each node cleans up only after itself.
	o, err := ops.New(ops.Config{
		Node:   node,
		Logger: log,
		Checks: []ops.Check{
			{Name: "redis", Ping: func(ctx context.Context) error { return rc.Ping(ctx).Err() }},
			{Name: "nats", Ping: func(ctx context.Context) error {
				if !nc.IsConnected() {
					return errors.New("not connected")
				}
				return nc.FlushWithContext(ctx)
			}},
		},
		DrainDelay: cfg.DrainDelay,
	})
	if err != nil {
		return err
	}
	defer o.Close()

	mux := http.NewServeMux()
	o.Mount(mux) // or serve o.Handler() on a listener of its own
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "SockJS endpoint at /chat; /readyz, /metrics, /_shoal/stats")
	})
	// The node routes /chat, mux the rest; the server has the program's
	// timeouts (none on writes: streaming transports keep responses open).
	srv := ops.NewServer(node.Handler(mux), log)
	srv.ConnState = node.ConnState // connection counts in stats and metrics
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String(), "node", node.ID())
	if listening != nil {
		listening <- ln.Addr().String()
	}

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// /readyz says "draining" for DrainDelay, then receivers end (polls
	// get a heartbeat, websockets 1001) and the node closes.
	o.Drain(nil, srv)
	return nil
}
