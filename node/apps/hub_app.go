package apps

import (
	"net/http"

	"github.com/shoal-rt/shoal/node/apps/hub"
	"github.com/shoal-rt/shoal/node/apps/hub/web"
	"github.com/shoal-rt/shoal/sockjs"
)

// mountHub mounts the hub (--apps hub): Shoal as a realtime server for
// backends not written in Go. The program fills Options.Hub from its
// flags and config file; Options.HubReady then gets the Hub and the mux,
// which is where the program mounts what is built on the hub's Go API (the
// HTTP API, bridges).
func mountHub(node *sockjs.Node, mux *http.ServeMux, opts Options) error {
	cfg := opts.Hub
	if cfg.Settings.SockJSURL == "" {
		cfg.Settings.SockJSURL = opts.SockJSURL
	}
	h, err := hub.New(node, cfg)
	if err != nil {
		return err
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = hub.DefaultPrefix
	}
	// hub-client.js, and the chat demo when asked for.
	web.Mount(mux, web.Options{SockJSURL: opts.SockJSURL, HubPrefix: prefix, Demo: opts.HubDemo})
	if opts.HubReady != nil {
		return opts.HubReady(h, mux)
	}
	return nil
}
