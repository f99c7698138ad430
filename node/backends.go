package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/bus"
	natsbus "github.com/shoal-rt/shoal/bus/nats"
	"github.com/shoal-rt/shoal/node/ops"
	"github.com/shoal-rt/shoal/store"
	redisstore "github.com/shoal-rt/shoal/store/redis"
)

// backends picks the store and bus: Redis and NATS when their URLs are
// given, the in-memory pair otherwise. It waits (retrying, logging what
// failed) until each networked backend answers, or ctx ends. checks ping
// the networked ones; closeAll releases both. progress says what it waits
// for, for /readyz. Store and bus operations are timed into lat.
func backends(ctx context.Context, cfg config, log *slog.Logger, progress *startup, lat *ops.Latency) (st store.Store, b bus.Bus, checks []ops.Check, closeAll func(), err error) {
	var closers []func()
	release := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			release()
		}
	}()

	// Without --redis the store is this node's alone, and dies with it.
	mc := cfg.Security.memoryConfig()
	mc.NodeBound = true
	st = store.NewMemoryWithConfig(mc)
	if cfg.Redis != "" {
		client, err := redisClient(cfg.Redis, cfg.RedisOutageWait)
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("--redis %s: %w", redactURL(cfg.Redis), err)
		}
		client.AddHook(redisTimer{lat})
		closers = append(closers, func() { client.Close() })
		ping := func(ctx context.Context) error { return client.Ping(ctx).Err() }
		if err = waitUntil(ctx, log, progress, "redis", redactURL(cfg.Redis), ping); err != nil {
			return nil, nil, nil, nil, err
		}
		checks = append(checks, ops.Check{Name: "redis", Ping: ping})
		st = redisstore.New(client, redisstore.Config{Prefix: cfg.RedisPrefix})
	}

	if cfg.NATS == "" {
		mb := bus.NewMemory()
		closers = append(closers, func() { mb.Close() })
		return st, lat.Bus(mb), checks, release, nil
	}
	nc, err := natsbus.Connect(cfg.NATS)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("--nats %s: %w", redactURL(cfg.NATS), err)
	}
	nb := natsbus.New(nc, natsbus.Config{Prefix: cfg.RedisPrefix})
	closers = append(closers, func() { nb.Close() })
	ping := func(ctx context.Context) error {
		if nc.Status() != nats.CONNECTED {
			return fmt.Errorf("not connected (%s)", nc.Status())
		}
		return nc.FlushWithContext(ctx)
	}
	if err = waitUntil(ctx, log, progress, "nats", redactURL(cfg.NATS), ping); err != nil {
		return nil, nil, nil, nil, err
	}
	checks = append(checks, ops.Check{Name: "nats", Ping: ping})
	return st, lat.Bus(nb), checks, release, nil
}

// redisClient returns a client for --redis (one server, Redis Cluster or
// Sentinel: redisstore.URLForms) whose calls wait up to outageWait through
// a restart or a failover; the flag's 0 means no wait.
func redisClient(url string, outageWait time.Duration) (redis.UniversalClient, error) {
	if outageWait == 0 {
		outageWait = -1
	}
	return redisstore.NewClient(url, outageWait)
}

// waitUntil calls ping until it succeeds, logging each failure with what
// failed (and telling progress), backing off up to 5 s between tries.
func waitUntil(ctx context.Context, log *slog.Logger, progress *startup, what, url string, ping func(context.Context) error) error {
	wait := 250 * time.Millisecond
	progress.set("connecting to %s at %s", what, url)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := ping(pctx)
		cancel()
		if err == nil {
			log.Info("connected", "backend", what, "url", url)
			return nil
		}
		log.Error("backend unreachable, retrying", "backend", what, "url", url, "err", err, "retry_in", wait)
		progress.set("waiting for %s at %s: %v", what, url, err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s at %s unreachable: %w", what, url, err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// redactURL hides a password in a backend URL for logs.
func redactURL(raw string) string {
	at := strings.LastIndex(raw, "@")
	scheme := strings.Index(raw, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return raw
	}
	return raw[:scheme+3] + "***" + raw[at:]
}

// redisTimer is a go-redis hook that times every command as a store
// operation, named by its script (redisstore.ScriptName) when it runs one.
type redisTimer struct{ lat *ops.Latency }

func (h redisTimer) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h redisTimer) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.lat.ObserveStore(opName(cmd), time.Since(start), answered(err))
		return err
	}
}

// opName names a command: its script for EVALSHA, else the command.
func opName(cmd redis.Cmder) string {
	op := cmd.Name()
	if args := cmd.Args(); op == "evalsha" && len(args) > 1 {
		// (go-redis passes the script's SHA as a string.)
		if sha, ok := args[1].(string); ok {
			if name := redisstore.ScriptName(sha); name != "" {
				op = name
			}
		}
	}
	return op
}

// answered drops the errors that are answers: an absent key, a script
// Redis has not loaded yet (go-redis loads it and runs it again).
func answered(err error) error {
	if errors.Is(err, redis.Nil) || err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		return nil
	}
	return err
}

func (h redisTimer) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		// A store operation is one script, sent as a pipeline of one.
		op := "pipeline"
		if len(cmds) > 0 {
			op = opName(cmds[0])
		}
		h.lat.ObserveStore(op, time.Since(start), answered(err))
		return err
	}
}
