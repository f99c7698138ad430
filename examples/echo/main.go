// Command echo serves a SockJS echo endpoint at /echo, with health,
// readiness, metrics and a graceful drain on Ctrl-C or SIGTERM.
package main

import (
	"context"
	"log"
	"net/http"
	"os/signal"
	"syscall"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/node/ops"
	"github.com/shoal-rt/shoal/sockjs"
	"github.com/shoal-rt/shoal/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Swap these two for store/redis and bus/nats to run many nodes
	// (examples/embedded does).
	node, err := sockjs.NewNode(sockjs.NodeConfig{Store: store.NewMemory(), Bus: bus.NewMemory()})
	if err != nil {
		log.Fatal(err)
	}
	_, err = node.NewEndpoint(sockjs.HandlerFuncs{
		Message: func(s *sockjs.Session, msg string) { s.Send(msg) },
	}, sockjs.Settings{Prefix: "/echo"})
	if err != nil {
		log.Fatal(err)
	}
	o, err := ops.New(ops.Config{Node: node})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	o.Mount(mux) // /healthz, /readyz, /metrics, /_shoal/stats, /_shoal/cluster
	// ConnState counts connections; ConnContext lets streams take
	// channel messages without waking their goroutines.
	srv := &http.Server{Addr: addr(), Handler: node.Handler(mux), ConnState: node.ConnState, ConnContext: sockjs.ConnContext}
	drained := make(chan struct{})
	go func() {
		<-ctx.Done()
		o.Drain(nil, srv) // readiness down, receivers ended, node closed
		close(drained)
	}()
	log.Printf("serving on http://%s/echo", srv.Addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
	<-drained
}
