package redisstore

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultOutageWait is how long a command waits for Redis to come back
// when none is given to WaitOutages.
const DefaultOutageWait = 5 * time.Second

// WaitOutages makes every command of client wait, up to max, while Redis
// cannot take it: a restart (connection refused, LOADING while it reads its
// AOF or RDB back), a Sentinel or Cluster failover (MASTERDOWN, READONLY,
// CLUSTERDOWN, TRYAGAIN). The command is sent again only when its error
// proves Redis did not run it, so a non-idempotent script (an append, a
// close) never runs twice; an error that leaves it unknown (a connection
// that broke after the command was written, a read timeout) is returned at
// once. The wait also ends with the command's context. Zero max means
// DefaultOutageWait; a negative one turns waiting off.
//
// Run it on a client whose own retries are off (Options.MaxRetries = -1):
// go-redis otherwise resends after an EOF, which may follow a command Redis
// ran. Call it once, before the client is shared.
func WaitOutages(client redis.UniversalClient, max time.Duration) {
	if max == 0 {
		max = DefaultOutageWait
	}
	if max < 0 {
		return
	}
	client.AddHook(outageHook{max: max})
}

// outageHook is the redis.Hook behind WaitOutages.
type outageHook struct{ max time.Duration }

// outageStep bounds the pause between two tries: short, so a Redis that is
// back serves the waiting requests within a fraction of a second.
const (
	outageFirstStep = 25 * time.Millisecond
	outageMaxStep   = 250 * time.Millisecond
)

func (h outageHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h outageHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		return h.retry(ctx, func() (bool, error) {
			err := next(ctx, cmd)
			return notRun(err), err
		})
	}
}

func (h outageHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		return h.retry(ctx, func() (bool, error) {
			err := next(ctx, cmds)
			if err == nil || !notRun(err) {
				return false, err
			}
			// A pipeline is sent again only when none of its commands ran.
			for _, c := range cmds {
				if c.Err() != nil && !notRun(c.Err()) {
					return false, err
				}
			}
			return true, err
		})
	}
}

// retry calls try until it succeeds, fails with an error Redis may have
// acted on (again false), or the wait (or ctx) ends.
func (h outageHook) retry(ctx context.Context, try func() (again bool, err error)) error {
	var deadline time.Time
	step := outageFirstStep
	for {
		again, err := try()
		if err == nil || !again {
			return err
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(h.max)
		}
		if now.Add(step).After(deadline) {
			return err
		}
		if d, ok := ctx.Deadline(); ok && now.Add(step).After(d) {
			return err
		}
		t := time.NewTimer(step)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		step = min(2*step, outageMaxStep)
	}
}

// notRun reports whether err proves Redis did not run the command: no
// connection could be made (so nothing was sent), or Redis refused it with
// an error it gives before running anything.
func notRun(err error) bool {
	if err == nil {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true // a refused connection is a dial that failed, however wrapped
	}
	if errors.Is(err, redis.ErrPoolTimeout) {
		return true // no connection was free: nothing was sent
	}
	return redis.IsLoadingError(err) || redis.IsMasterDownError(err) || redis.IsReadOnlyError(err) ||
		redis.IsClusterDownError(err) || redis.IsTryAgainError(err)
}
