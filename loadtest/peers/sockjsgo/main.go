// Command sockjsgo is the sockjs-go v3 peer of the load test comparison: it
// serves the two conformance endpoints the scenarios use, /echo and
// /broadcast, so Shoal and sockjs-go are measured on the same workload.
package main

import (
	"flag"
	"log"
	"net/http"
	"sync"

	"github.com/igm/sockjs-go/v3/sockjs"
)

// hub holds the open sessions of /broadcast.
type hub struct {
	mu       sync.Mutex // guards sessions
	sessions map[sockjs.Session]struct{}
}

func (h *hub) add(s sockjs.Session) {
	h.mu.Lock()
	h.sessions[s] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) remove(s sockjs.Session) {
	h.mu.Lock()
	delete(h.sessions, s)
	h.mu.Unlock()
}

// send delivers msg to every open session. sockjs-go's Send only appends to
// the session's buffer, so holding the lock does not wait on slow clients.
func (h *hub) send(msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.sessions {
		_ = s.Send(msg)
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "HTTP address")
	flag.Parse()

	opts := sockjs.DefaultOptions
	opts.RawWebsocket = true

	echo := sockjs.NewHandler("/echo", opts, func(s sockjs.Session) {
		for {
			msg, err := s.Recv()
			if err != nil {
				return
			}
			if s.Send(msg) != nil {
				return
			}
		}
	})

	h := &hub{sessions: make(map[sockjs.Session]struct{})}
	broadcast := sockjs.NewHandler("/broadcast", opts, func(s sockjs.Session) {
		h.add(s)
		defer h.remove(s)
		for {
			msg, err := s.Recv()
			if err != nil {
				return
			}
			h.send(msg)
		}
	})

	mux := http.NewServeMux()
	mux.Handle("/echo/", echo)
	mux.Handle("/broadcast/", broadcast)
	log.Printf("sockjs-go v3.0.3 peer listening on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, mux))
}
