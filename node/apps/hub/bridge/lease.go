package bridge

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lease elects the one node that runs a bridge.
type Lease interface {
	// Run calls work each time this node wins the lease, with a context
	// that ends when the lease is lost or ctx ends, and valid, which says
	// whether the holder may still act (check it before each append: a
	// holder cut off from Redis stops before another node can win).
	// Run returns once ctx has ended and work has returned.
	Run(ctx context.Context, work func(ctx context.Context, valid func() bool))
}

// Local is the lease of a node without Redis: it is alone, so it always
// holds it.
type Local struct{}

var _ Lease = Local{}

// Run implements Lease.
func (Local) Run(ctx context.Context, work func(context.Context, func() bool)) {
	work(ctx, func() bool { return ctx.Err() == nil })
}

// RedisLease is a lease kept in a Redis key (SET NX PX, renewed by its
// holder). The holder renews every TTL/4 and acts only until TTL minus a
// tenth after the start of its last successful renewal: Redis counts the
// TTL from a later moment, so the old holder has stopped before the key
// expires and a new one can win. A holder that ends (drain) deletes the
// key, so the next node takes over at once.
type RedisLease struct {
	Client redis.UniversalClient
	Key    string
	Owner  string        // this node's id
	TTL    time.Duration // default 2 s
	Log    *slog.Logger
}

var _ Lease = (*RedisLease)(nil)

// acquireScript takes the key when free and extends it when already ours.
var acquireScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

func (l *RedisLease) ttl() time.Duration {
	if l.TTL <= 0 {
		return 2 * time.Second
	}
	return l.TTL
}

// try acquires or renews; it returns the moment until which the holder may
// act, or the zero time when another node holds the key.
func (l *RedisLease) try(ctx context.Context) (time.Time, error) {
	ttl := l.ttl()
	sent := time.Now()
	ctx, cancel := context.WithTimeout(ctx, ttl/4)
	defer cancel()
	won, err := acquireScript.Run(ctx, l.Client, []string{l.Key}, l.Owner, ttl.Milliseconds()).Int()
	if err != nil || won != 1 {
		return time.Time{}, err
	}
	return sent.Add(ttl - ttl/10), nil
}

// Run implements Lease.
func (l *RedisLease) Run(ctx context.Context, work func(context.Context, func() bool)) {
	log := logger(l.Log).With("lease", l.Key)
	ttl := l.ttl()
	for ctx.Err() == nil {
		until, err := l.try(ctx)
		if until.IsZero() {
			if err != nil && ctx.Err() == nil {
				log.Warn("bridge: lease unreachable", "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(ttl / 8):
			}
			continue
		}
		log.Info("bridge: lease won", "owner", l.Owner)
		var deadline atomic.Int64
		deadline.Store(until.UnixNano())
		valid := func() bool { return time.Now().UnixNano() < deadline.Load() }
		wctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			work(wctx, valid)
		}()
		tick := time.NewTicker(ttl / 4)
	hold:
		for {
			select {
			case <-ctx.Done():
				break hold
			case <-done:
				break hold
			case <-tick.C:
				until, err := l.try(ctx)
				switch {
				case !until.IsZero():
					deadline.Store(until.UnixNano())
				case err == nil:
					log.Warn("bridge: lease taken by another node")
					deadline.Store(0)
					break hold
				case !valid():
					log.Warn("bridge: lease lost (Redis unreachable)", "err", err)
					break hold
				}
			}
		}
		tick.Stop()
		stop()
		<-done
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		releaseScript.Run(rctx, l.Client, []string{l.Key}, l.Owner)
		cancel()
		if ctx.Err() == nil {
			// Let another node take over after a work failure.
			select {
			case <-ctx.Done():
			case <-time.After(ttl / 8):
			}
		}
	}
}
