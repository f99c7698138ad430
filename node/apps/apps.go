// Package apps holds the built-in applications a Shoal node can mount:
// "echo" (an echo endpoint and a demo page), "conformance" (the SockJS
// protocol test-server endpoints) and "hub" (the realtime server of
// package hub). Tests mount them in-process with Mount.
package apps

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/shoal-rt/shoal/node/apps/hub"
	"github.com/shoal-rt/shoal/sockjs"
)

// Options are what every app may need from the program.
type Options struct {
	// SockJSURL is the sockjs-client script for iframe and demo pages;
	// empty means the node's own copy (SockJSClientPath) when it serves one,
	// else sockjs.DefaultSockJSURL.
	SockJSURL string
	// SockJSClientFile is a sockjs-client installed from npm for the node
	// to serve (see FindSockJSClient); empty searches the usual places.
	SockJSClientFile string
	// Hub configures the "hub" app (zero value: an open hub with the
	// default rules and limits).
	Hub hub.Config
	// HubReady, when set, is called once the "hub" app is mounted, with
	// its Hub and the mux the app's pages go on: the program mounts the
	// HTTP API and starts the bridges there, on the hub's Go API
	// (Publish, Presence, History, ...). An error fails the mount.
	HubReady func(h *hub.Hub, mux *http.ServeMux) error
	// HubDemo serves the hub's chat demo page at /chat/ (--hub-demo).
	HubDemo bool
}

// mountFunc mounts one app's endpoints on node and its pages on mux.
type mountFunc func(node *sockjs.Node, mux *http.ServeMux, opts Options) error

var registry = map[string]mountFunc{
	"echo":        mountEcho,
	"conformance": mountConformance,
	"hub":         mountHub,
}

// Names lists the built-in apps.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Mount mounts the named apps (a comma-separated list is accepted too):
// their SockJS endpoints on node, their pages on mux (nil: a new one). It
// returns the handler to serve: endpoints by prefix, mux for the rest.
// Each app is mounted once; "conformance" goes first because its /echo
// (with the test server's settings) is the one "echo" then reuses.
func Mount(node *sockjs.Node, mux *http.ServeMux, names []string, opts Options) (http.Handler, error) {
	want := make(map[string]bool)
	for _, list := range names {
		for name := range strings.SplitSeq(list, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			if _, ok := registry[name]; !ok {
				return nil, fmt.Errorf("apps: unknown app %q (have %s)", name, strings.Join(Names(), ", "))
			}
			want[name] = true
		}
	}
	order := Names()
	sort.SliceStable(order, func(i, j int) bool { return order[i] == "conformance" && order[j] != "conformance" })
	if mux == nil {
		mux = http.NewServeMux()
	}
	url, err := mountSockJSClient(mux, opts)
	if err != nil {
		return nil, err
	}
	opts.SockJSURL = url
	for _, name := range order {
		if !want[name] {
			continue
		}
		if err := registry[name](node, mux, opts); err != nil {
			return nil, fmt.Errorf("apps: mount %s: %w", name, err)
		}
	}
	return node.Handler(mux), nil
}

// echoHandler sends every message back.
var echoHandler = sockjs.HandlerFuncs{
	Message: func(s *sockjs.Session, msg string) { s.Send(msg) },
}
