package ops

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/shoal-rt/shoal/sockjs"
)

// NewServer returns the http.Server a node's listener needs, serving h:
// request headers must arrive within 10 s, idle keep-alive connections
// close after 2 minutes, and there is no overall read or write timeout,
// since streaming transports keep responses open (sockjs reads bodies
// with deadlines of its own). Its error log goes to log at debug level
// (nil: slog.Default()). Set ConnState to the node's (sockjs.Node.ConnState)
// for the connection counts in stats and metrics. Its ConnContext is
// sockjs.ConnContext: a stream's channel messages may then be written
// without waking its goroutine.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.Default()
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnContext:       sockjs.ConnContext,
	}
}
