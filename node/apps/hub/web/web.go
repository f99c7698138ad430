// Package web serves the hub's browser side: hub-client.js, the helper
// that browsers use on top of sockjs-client (docs/hub-client.md), and the
// chat demo page. The files are hand-written and embedded; nothing is
// built.
package web

import (
	"bytes"
	_ "embed"
	"html/template"
	"net/http"
	"time"
)

const (
	// ClientPath is where the node serves hub-client.js.
	ClientPath = "/hub-client.js"
	// DemoPath is where the node serves the chat demo (Options.Demo).
	DemoPath = "/chat/"
)

//go:embed hub-client.js
var clientJS []byte

//go:embed chat.html
var chatHTML string

var chatPage = template.Must(template.New("chat").Parse(chatHTML))

// started stands in for the embedded files' modification time, so
// conditional requests work across a node's life.
var started = time.Now()

// Options say where the pages find their scripts.
type Options struct {
	// SockJSURL is the sockjs-client script the demo page loads.
	SockJSURL string
	// HubPrefix is the hub endpoint's URL prefix (the demo connects to it).
	HubPrefix string
	// Demo serves the chat demo at DemoPath.
	Demo bool
}

// Mount serves hub-client.js on mux and, with opts.Demo, the chat demo.
func Mount(mux *http.ServeMux, opts Options) {
	mux.HandleFunc("GET "+ClientPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/javascript; charset=UTF-8")
		w.Header().Set("Cache-Control", "public, max-age=300")
		http.ServeContent(w, r, "hub-client.js", started, bytes.NewReader(clientJS))
	})
	if !opts.Demo {
		return
	}
	data := struct{ SockJSURL, HubPrefix, ClientURL string }{opts.SockJSURL, opts.HubPrefix, ClientPath}
	mux.HandleFunc("GET "+DemoPath+"{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		w.Header().Set("Cache-Control", "no-cache")
		chatPage.Execute(w, data)
	})
}

// ClientJS returns hub-client.js, for tests and programs that embed it.
func ClientJS() []byte { return bytes.Clone(clientJS) }
