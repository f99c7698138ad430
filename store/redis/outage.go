package redisstore

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
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
// NOREPLICAS, CLUSTERDOWN, TRYAGAIN). A command is sent again only when its error
// proves Redis did not run it, when it changes nothing (reads, and the
// scripts that only read), or, after a broken connection, when a repeat
// loses and doubles nothing (a take with Hold, a commit: see
// heldTakeScripts), so any other script that changes state (an append, a
// close) never runs twice: for it an error that leaves open whether it ran
// (a connection that broke after the command was written, a read timeout)
// is returned at once. The wait also ends with the command's context. Zero max means
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
	h := outageHook{max: max, idempotent: idempotentScripts, heldTakes: heldTakeScripts}
	if cc, ok := client.(*redis.ClusterClient); ok {
		// A dead master stays in the client's slot map until it reloads
		// (every 10 s, or on a MOVED): ask for a reload at each try, so
		// the promoted replica is found as soon as the cluster names it.
		h.reload = cc.ReloadState
	}
	client.AddHook(h)
}

// outageHook is the redis.Hook behind WaitOutages.
type outageHook struct {
	max        time.Duration
	reload     func(context.Context) // Cluster: refresh the slot map
	idempotent map[string]bool       // SHA1s of scripts safe to run twice
	heldTakes  map[string]bool       // SHA1s of scripts safe to repeat with Hold
}

// idempotentScripts are the scripts that change nothing (or only refresh a
// TTL), so running one twice is harmless: after a connection broke
// mid-call they are sent again, like Redis's read commands. A Redis that
// shuts down (SIGTERM) stops answering commands it has read: without this
// a session lookup in flight then failed with EOF and closed its session.
var idempotentScripts = map[string]bool{
	getScript.Hash(): true, attrScript.Hash(): true,
	subscriptionsScript.Hash(): true, readChannelScript.Hash(): true,
}

// heldTakeScripts take messages from a session's queue. Run with Hold
// (their last argument 1), what they take stays in flight under the
// receiver's token, and the same token's next take returns it again
// (keep_in_flight in lua/prelude.lua): after a connection that broke
// mid-call they are sent again, so the receiver gets what the first run
// took instead of an error (the chaos suite's "drain failed: EOF"), and a
// poll's attach leaves no lease behind that its client cannot reach. Not
// after a timeout: the first run may still be waiting in Redis and run
// after the repeat, and what it takes would then be committed unseen.
var heldTakeScripts = map[string]bool{drainScript.Hash(): true, attachScript.Hash(): true}

// readCommands are Redis commands that change nothing.
var readCommands = map[string]bool{
	"get": true, "mget": true, "hget": true, "hmget": true, "hgetall": true, "exists": true,
	"ttl": true, "pttl": true, "smembers": true, "scard": true, "sismember": true,
	"zrange": true, "zrangebyscore": true, "zscore": true, "zcard": true,
	"lrange": true, "llen": true, "lindex": true, "ping": true, "time": true, "info": true,
}

// safeToRepeat reports whether cmd may run twice without harm.
func (h outageHook) safeToRepeat(cmd redis.Cmder) bool {
	if readCommands[strings.ToLower(cmd.Name())] {
		return true
	}
	return h.idempotent[scriptHash(cmd)]
}

// repeatAfterBreak reports whether cmd is a take with Hold (see
// heldTakeScripts) or a commit. A commit too is sent again after a broken
// connection (not after a timeout, as above): its caller takes nothing
// between two tries, so a repeat forgets the same messages (with detach it
// finds the lease gone: ErrNotHolder, which the receiver ignores). Left
// unsent, a commit that did not run has its messages sent twice by the
// next take.
//
// A tagged append (store.OnceAppender) is sent again too: a repeat of one
// that ran appends nothing.
func (h outageHook) repeatAfterBreak(cmd redis.Cmder) bool {
	sha := scriptHash(cmd)
	if sha != "" && sha == commitScript.Hash() {
		return true
	}
	args := cmd.Args()
	if sha != "" && sha == appendScript.Hash() {
		return appendTag(args) != ""
	}
	return h.heldTakes[sha] && fmt.Sprint(args[len(args)-1]) == "1"
}

// appendTag returns the tag id of an append script call's arguments
// (EVALSHA sha numkeys keys... id margin limits... tag ...), "" if none.
func appendTag(args []any) string {
	if len(args) < 3 {
		return ""
	}
	numKeys, err := strconv.Atoi(fmt.Sprint(args[2]))
	i := 3 + numKeys + 2 + appendArgTag
	if err != nil || i >= len(args) {
		return ""
	}
	return fmt.Sprint(args[i])
}

// scriptHash returns the SHA1 of the script cmd runs, "" when it runs none.
func scriptHash(cmd redis.Cmder) string {
	args := cmd.Args()
	if len(args) < 2 {
		return ""
	}
	switch strings.ToLower(cmd.Name()) {
	case "evalsha", "evalsha_ro":
		return fmt.Sprint(args[1])
	case "eval", "eval_ro":
		sum := sha1.Sum([]byte(fmt.Sprint(args[1])))
		return hex.EncodeToString(sum[:])
	}
	return ""
}

// retryable reports whether cmd, failed with err, may be sent again: Redis
// surely did not run it, or running it twice is harmless and the
// connection broke (the command may or may not have run).
func (h outageHook) retryable(cmd redis.Cmder, err error) bool {
	if notRun(err) || (h.safeToRepeat(cmd) && connBroke(err)) {
		return true
	}
	var ne net.Error
	return h.repeatAfterBreak(cmd) && connBroke(err) && !(errors.As(err, &ne) && ne.Timeout())
}

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
			return err != nil && h.retryable(cmd, err), err
		})
	}
}

func (h outageHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		return h.retry(ctx, func() (bool, error) {
			err := next(ctx, cmds)
			if err == nil {
				return false, nil
			}
			// A pipeline is sent again only when each of its commands
			// surely did not run, or is harmless to run twice.
			for _, c := range cmds {
				cerr := c.Err()
				if cerr == nil {
					cerr = err
				}
				if !h.retryable(c, cerr) {
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
		if h.reload != nil {
			h.reload(ctx)
		}
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
	// NOREPLICAS (min-replicas-to-write unmet: a master whose replicas
	// left it, as when one was promoted) and READONLY refuse a script at
	// its first write, before it changed anything.
	return redis.IsLoadingError(err) || redis.IsMasterDownError(err) || redis.IsReadOnlyError(err) ||
		redis.IsClusterDownError(err) || redis.IsTryAgainError(err) || redis.IsNoReplicasError(err)
}

// connBroke reports whether err says the connection failed during the
// call, so the command may or may not have run.
func connBroke(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) || (errors.As(err, &ne) && ne.Timeout())
}
