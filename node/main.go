// Command node runs one Shoal node: a SockJS server whose sessions live in
// a shared store. Alone (no --redis, no --nats) it keeps everything in
// memory: `go run ./node` needs nothing else.
//
// Flags and their SHOAL_* variables are in flags.go (docs/flags.md is
// generated from them); the listeners open at once and report the start-up
// on /readyz (startup.go); the operations endpoints, cleanup after dead
// nodes and the drain on SIGTERM are package node/ops, which a Go
// application embedding sockjs wires the same way.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shoal-rt/shoal/cluster"
	"github.com/shoal-rt/shoal/node/apps"
	"github.com/shoal-rt/shoal/node/apps/hub"
	"github.com/shoal-rt/shoal/node/ops"
	"github.com/shoal-rt/shoal/sockjs"
)

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Getenv)
	switch {
	case errors.Is(err, errHelp):
		usage(os.Stdout)
		return
	case err != nil:
		fmt.Fprintln(os.Stderr, "shoal:", err)
		fmt.Fprintln(os.Stderr, "shoal --help lists the flags and their SHOAL_* variables")
		os.Exit(2)
	case cfg.Version:
		fmt.Println("shoal", buildVersion())
		return
	}
	ops.QuietSysmon() // may run the program again, from the start
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "shoal:", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	log, err := newLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	version := buildVersion()
	did, gcPercent := applyGCPolicy(cfg.GCPercent, os.Getenv, os.ReadFile)
	if len(did) > 0 {
		log.Info("shoal: garbage collector", did...)
	}
	log.Debug("shoal: runtime", "godebug", os.Getenv("GODEBUG")) // ops.QuietSysmon's

	if gcPercent > 0 {
		defer keepGCHeadroom(gcPercent)()
	}

	// The first SIGTERM or SIGINT starts the drain (and aborts a start-up
	// still waiting for its backends); a second one cuts the drain delay
	// short.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, again := make(chan os.Signal, 1), make(chan struct{}, 1)
	go func() {
		first <- <-sigs
		cancel()
		for range sigs {
			select {
			case again <- struct{}{}:
			default:
			}
		}
	}()

	// Listeners open at once: while the backends are awaited, /readyz
	// says what the node waits for.
	progress := &startup{}
	conns := &connStates{}
	public, err := listen(cfg.Listen, progress.handler(cfg.AdminListen == ""), log)
	if err != nil {
		return err
	}
	public.ln = cfg.Security.wrapListener(public.ln, log)
	public.srv.ConnState = conns.track
	defer public.srv.Close()
	opsAddr := public.ln.Addr().String()
	var admin *server
	if cfg.AdminListen != "" {
		if admin, err = listen(cfg.AdminListen, progress.handler(true), log); err != nil {
			return err
		}
		defer admin.srv.Close()
		opsAddr = admin.ln.Addr().String()
	}
	served := make(chan error, 2)
	public.serve(served)
	if admin != nil {
		admin.serve(served)
	}

	lat := ops.NewLatency()
	st, b, checks, closeBackends, err := backends(ctx, cfg, log, progress, lat)
	if err != nil {
		return err
	}
	defer closeBackends()
	progress.set("joining the cluster")
	httpAddr, err := advertisedHTTP(cfg, opsAddr)
	if err != nil {
		return err
	}
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
	conns.node.Store(node)
	membership, err := joinCluster(cfg, cluster.Member{ID: cfg.NodeID, HTTPAddr: httpAddr, Version: version}, log)
	if err != nil {
		return err
	}
	defer membership.Shutdown() // after Leave, harmless
	o, err := ops.New(ops.Config{
		Node: node, Membership: membership, Checks: checks, Version: version, Logger: log,
		DrainDelay: cfg.DrainDelay, DrainTimeout: cfg.DrainTimeout, Latency: lat, Bus: b,
	})
	if err != nil {
		return err
	}
	defer o.Close()

	mux := http.NewServeMux()
	if admin != nil {
		admin.handler.set(o.Handler())
	} else {
		o.Mount(mux)
	}
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
	// The hub's auth timers stop before the node closes (deferred above,
	// so run after this).
	var mounted *hub.Hub
	defer func() {
		if mounted != nil {
			mounted.Close()
		}
	}()
	handler, err := apps.Mount(node, mux, []string{cfg.Apps}, apps.Options{SockJSURL: cfg.SockJSURL, SockJSClientFile: cfg.SockJSClient, HubDemo: cfg.Hub.Demo, Hub: hubCfg,
		HubReady: func(h *hub.Hub, mux *http.ServeMux) error { mounted = h; return side.ready(ctx, h, mux) }})
	if err != nil {
		return err
	}
	public.handler.set(handler)
	log.Info("shoal node ready", "addr", public.ln.Addr().String(), "admin", cfg.AdminListen, "advertise", httpAddr,
		"node", node.ID(), "version", version, "apps", cfg.Apps, "members", len(membership.Members()))

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
	// The admin listener keeps answering (/readyz: draining) until the
	// public one is drained.
	o.Drain(again, public.srv)
	return nil
}

// server is one listener and the HTTP server on it.
type server struct {
	ln      net.Listener
	srv     *http.Server
	handler *swapHandler
}

// listen opens addr at once and prepares a server for h (swappable later).
func listen(addr string, h http.Handler, log *slog.Logger) (*server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	sw := newSwapHandler(h)
	return &server{ln: ln, handler: sw, srv: ops.NewServer(sw, log)}, nil
}

// serve serves until the server is shut down; any other end goes to errs.
func (s *server) serve(errs chan<- error) {
	go func() {
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- err
		}
	}()
}
