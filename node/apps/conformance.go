package apps

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
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
	endpoints := []struct {
		h sockjs.Handler
		s sockjs.Settings
	}{
		{echoHandler, with("/echo", func(s *sockjs.Settings) { s.ResponseLimit = 4096 })},
		{closeHandler, with("/close", nil)},
		{echoHandler, with("/disabled_websocket_echo", func(s *sockjs.Settings) { s.DisableWebsocket = true })},
		{echoHandler, with("/cookie_needed_echo", func(s *sockjs.Settings) { s.JSessionID = sockjs.DefaultJSessionID })},
		{amplifyHandler, with("/amplify", nil)},
		{broadcastHandler, with("/broadcast", nil)},
		{tickerHandler, with("/ticker", nil)},
	}
	for _, ep := range endpoints {
		e, err := node.NewEndpoint(ep.h, ep.s)
		if err != nil {
			return err
		}
		if ep.s.Prefix == "/broadcast" {
			if err := e.HandleChannels(sockjs.ChannelConfig{Pattern: broadcastChannel}); err != nil {
				return err
			}
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

// broadcastChannel is the channel every session of /broadcast joins.
const broadcastChannel = "all"

// broadcastHandler sends every message to every open session of its
// endpoint, on every node: each session joins one channel when it opens
// (before the client sees the open frame, so it misses nothing it could
// have sent itself) and each message is published there, its sender
// included, as the SockJS test server does.
var broadcastHandler = sockjs.HandlerFuncs{
	Open: func(s *sockjs.Session) error {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		return s.Subscribe(ctx, broadcastChannel)
	},
	Message: func(s *sockjs.Session, msg string) {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := s.Endpoint().Publish(ctx, broadcastChannel, msg); err != nil {
			slog.Warn("broadcast: publish failed", "err", err)
		}
	},
}

// opTimeout bounds the store calls of a handler.
const opTimeout = 5 * time.Second
