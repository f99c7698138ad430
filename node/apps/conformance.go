package apps

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoal-rt/shoal/sockjs"
)

// mountConformance serves the endpoints the SockJS protocol suites expect
// of a test server (sockjs-node's tests/test_server).
func mountConformance(node *sockjs.Node, mux *http.ServeMux, opts Options) error {
	base := sockjs.Settings{SockJSURL: opts.SockJSURL, RawWebsocket: true}
	with := func(prefix string, f func(*sockjs.Settings)) sockjs.Settings {
		s := base
		s.Prefix = prefix
		if f != nil {
			f(&s)
		}
		return s
	}
	bc := &broadcaster{sessions: make(map[string]*sockjs.Session)}
	endpoints := []struct {
		h sockjs.Handler
		s sockjs.Settings
	}{
		{echoHandler, with("/echo", func(s *sockjs.Settings) { s.ResponseLimit = 4096 })},
		{closeHandler, with("/close", nil)},
		{echoHandler, with("/disabled_websocket_echo", func(s *sockjs.Settings) { s.DisableWebsocket = true })},
		{echoHandler, with("/cookie_needed_echo", func(s *sockjs.Settings) { s.JSessionID = sockjs.DefaultJSessionID })},
		{amplifyHandler, with("/amplify", nil)},
		{bc, with("/broadcast", nil)},
		{tickerHandler, with("/ticker", nil)},
	}
	for _, ep := range endpoints {
		if _, err := node.NewEndpoint(ep.h, ep.s); err != nil {
			return err
		}
	}
	return nil
}

// closeHandler closes every session as soon as it opens.
var closeHandler = sockjs.HandlerFuncs{
	Open: func(s *sockjs.Session) error { return s.Close(3000, "Go away!") },
}

// amplifyHandler answers a message n with 'x' repeated 2^n times (n = 1
// unless 0 < n < 19).
var amplifyHandler = sockjs.HandlerFuncs{
	Message: func(s *sockjs.Session, msg string) {
		f, err := strconv.ParseFloat(strings.TrimSpace(msg), 64)
		n := int(math.Floor(f))
		if err != nil || n <= 0 || n >= 19 {
			n = 1
		}
		s.Send(strings.Repeat("x", 1<<n))
	},
}

// tickerHandler sends "tick!" every second until the session closes. The
// ticking goroutine lives on the node that opened the session; its sends
// go through the store, so they reach the client wherever it polls.
var tickerHandler = sockjs.HandlerFuncs{
	Open: func(s *sockjs.Session) error {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for range t.C {
				if s.Send("tick!") != nil {
					return
				}
			}
		}()
		return nil
	},
}

// broadcaster sends every message to every open session of its endpoint.
// It tracks sessions in memory, which is complete only on a single node;
// channels (Subscribe/Publish) will replace it for clusters.
type broadcaster struct {
	mu       sync.Mutex // guards sessions
	sessions map[string]*sockjs.Session
}

func (b *broadcaster) OnOpen(s *sockjs.Session) error {
	b.mu.Lock()
	b.sessions[s.ID()] = s
	b.mu.Unlock()
	return nil
}

func (b *broadcaster) OnMessage(_ *sockjs.Session, msg string) {
	b.mu.Lock()
	all := make([]*sockjs.Session, 0, len(b.sessions))
	for _, s := range b.sessions {
		all = append(all, s)
	}
	b.mu.Unlock()
	sockjs.Broadcast(all, msg)
}

func (b *broadcaster) OnClose(s *sockjs.Session) {
	b.mu.Lock()
	delete(b.sessions, s.ID())
	b.mu.Unlock()
}
