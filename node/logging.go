package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// newLogger returns the node's logger: --log-level, --log-format (text or
// json) on w. Libraries that log on their own (go-redis, net/http,
// memberlist) are routed through it, so every line has the same format.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	log := slog.New(h)
	redis.SetLogger(redisLogger{log.With("component", "go-redis")})
	return log, nil
}

// redisLogger turns go-redis's printf lines into structured warnings: it
// only logs what went wrong (a failed dial, a pool problem), and would
// otherwise write them in its own format to stderr.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)))
}
