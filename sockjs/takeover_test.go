package sockjs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/shoal-rt/shoal/store"
)

// killableStore is the shared store as seen by one node: once killed,
// nothing that node does reaches it any more, as after a SIGKILL. It has
// the capabilities of the memory store it wraps.
type killableStore struct {
	store.Store
	dead atomic.Bool
	// late counts the calls made once dead.
	late atomic.Int64
	// dieOnDrain kills the node right after a Drain took messages: it
	// dies before writing them.
	dieOnDrain atomic.Bool
}

var errKilled = errors.New("test: node killed")

func (s *killableStore) isDead() bool {
	if s.dead.Load() {
		s.late.Add(1)
		return true
	}
	return false
}

func (s *killableStore) Create(ctx context.Context, id string, opts store.CreateOptions) (bool, error) {
	if s.isDead() {
		return false, errKilled
	}
	return s.Store.Create(ctx, id, opts)
}

func (s *killableStore) Get(ctx context.Context, id string) (store.Session, error) {
	if s.isDead() {
		return store.Session{}, errKilled
	}
	return s.Store.Get(ctx, id)
}

func (s *killableStore) Attach(ctx context.Context, id string, l store.Lease, opts ...store.DrainOption) (store.AttachResult, error) {
	if s.isDead() {
		return store.AttachResult{}, errKilled
	}
	return s.Store.Attach(ctx, id, l, opts...)
}

func (s *killableStore) Renew(ctx context.Context, id string, l store.Lease) error {
	if s.isDead() {
		return errKilled
	}
	return s.Store.Renew(ctx, id, l)
}

func (s *killableStore) Detach(ctx context.Context, id, token string) error {
	if s.isDead() {
		return errKilled
	}
	return s.Store.Detach(ctx, id, token)
}

func (s *killableStore) Append(ctx context.Context, id string, msgs []string, limits store.QueueLimits) (store.AppendResult, error) {
	if s.isDead() {
		return store.AppendResult{}, errKilled
	}
	return s.Store.Append(ctx, id, msgs, limits)
}

func (s *killableStore) Drain(ctx context.Context, id, token string, opts ...store.DrainOption) (store.DrainResult, error) {
	if s.isDead() {
		return store.DrainResult{}, errKilled
	}
	res, err := s.Store.Drain(ctx, id, token, opts...)
	if err == nil && len(res.Messages) > 0 && s.dieOnDrain.Load() {
		s.dead.Store(true)
		return store.DrainResult{}, errKilled
	}
	return res, err
}

func (s *killableStore) Commit(ctx context.Context, id, token string, detach bool) error {
	if s.isDead() {
		return errKilled
	}
	return s.Store.(store.Committer).Commit(ctx, id, token, detach)
}

func (s *killableStore) TakeOver(ctx context.Context, id, from string, l store.Lease, opts ...store.DrainOption) (store.AttachResult, error) {
	if s.isDead() {
		return store.AttachResult{}, errKilled
	}
	return s.Store.(store.LeaseTaker).TakeOver(ctx, id, from, l, opts...)
}

func (s *killableStore) Close(ctx context.Context, id string, code int, reason string) (bool, error) {
	if s.isDead() {
		return false, errKilled
	}
	return s.Store.Close(ctx, id, code, reason)
}

func (s *killableStore) Reap(ctx context.Context, now time.Time, limit int) ([]string, error) {
	if s.isDead() {
		return nil, errKilled
	}
	return s.Store.Reap(ctx, now, limit)
}

func (s *killableStore) SetAttr(ctx context.Context, id, key, value string) error {
	if s.isDead() {
		return errKilled
	}
	return s.Store.SetAttr(ctx, id, key, value)
}

func (s *killableStore) Attr(ctx context.Context, id, key string) (string, bool, error) {
	if s.isDead() {
		return "", false, errKilled
	}
	return s.Store.Attr(ctx, id, key)
}

// TestTakeOverFromDeadHolder: a node dies (no store, no bus, no cleanup)
// while it holds a parked poll. The client polls again on a survivor: it
// gets what was sent meanwhile within HolderTimeout, never 2010, long
// before the lease's TTL or membership would free it. While the holder
// lived, the same second poll got 2010.
func TestTakeOverFromDeadHolder(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	ks := &killableStore{Store: c.store}
	settings := Settings{HeartbeatDelay: time.Minute}
	a, _, baseA := c.node(t, &recorder{}, settings, func(cfg *NodeConfig) { cfg.Store = ks })
	_, eB, baseB := c.node(t, &recorder{}, settings)
	_, body := do(t, "POST", baseA+"/0/s/xhr", "")
	want(t, "open on A", body, "o\n")

	pollCtx, abortPoll := context.WithCancel(context.Background())
	defer abortPoll()
	go func() {
		req, _ := http.NewRequestWithContext(pollCtx, "POST", baseA+"/0/s/xhr", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	key := eB.keyOf(idFromClientSession("s"))
	testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st, err := c.store.Get(context.Background(), key); err != nil || st.ReceiverNode != a.ID() {
			return fmt.Errorf("poll not parked on A: %+v, %v", st, err)
		}
		return nil
	})
	_, body = do(t, "POST", baseB+"/0/s/xhr", "")
	want(t, "second poll while A lives", body, "c[2010,\"Another connection still open\"]\n")

	// A dies: its store calls fail, its bus listener is gone, nothing
	// detaches its poll.
	ks.dead.Store(true)
	a.stopListen()
	resp, _ := do(t, "POST", baseB+"/0/s/xhr_send", `["after"]`)
	want(t, "send on B", resp.StatusCode, http.StatusNoContent)
	start := time.Now()
	_, body = do(t, "POST", baseB+"/0/s/xhr", "")
	took := time.Since(start)
	want(t, "poll on B after A died", body, `a["after"]`+"\n")
	if limit := 5 * defaultHolderTimeout; took > limit {
		t.Fatalf("take-over took %v, more than %v", took, limit)
	}
	t.Logf("poll on the survivor served %v after it began", took.Round(time.Millisecond))
	// The session goes on from B.
	do(t, "POST", baseB+"/0/s/xhr_send", `["next"]`)
	_, body = do(t, "POST", baseB+"/0/s/xhr", "")
	if !strings.Contains(body, "next") {
		t.Fatalf("poll after take-over: %q", body)
	}
}

// TestDrainedMessagesSurviveHolderDeath: the node holding a parked poll
// takes a message off the queue and dies before writing it. The client's
// poll on a survivor gets it (the store kept it in flight), exactly once.
func TestDrainedMessagesSurviveHolderDeath(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	ks := &killableStore{Store: c.store}
	settings := Settings{HeartbeatDelay: time.Minute}
	a, _, baseA := c.node(t, &recorder{}, settings, func(cfg *NodeConfig) { cfg.Store = ks })
	_, eB, baseB := c.node(t, &recorder{}, settings)
	_, body := do(t, "POST", baseA+"/0/s/xhr", "")
	want(t, "open on A", body, "o\n")
	pollCtx, abortPoll := context.WithCancel(context.Background())
	defer abortPoll()
	go func() {
		req, _ := http.NewRequestWithContext(pollCtx, "POST", baseA+"/0/s/xhr", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	key := eB.keyOf(idFromClientSession("s"))
	testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st, err := c.store.Get(context.Background(), key); err != nil || st.ReceiverNode != a.ID() {
			return fmt.Errorf("poll not parked on A: %+v, %v", st, err)
		}
		return nil
	})
	ks.dieOnDrain.Store(true)
	resp, _ := do(t, "POST", baseB+"/0/s/xhr_send", `["taken"]`)
	want(t, "send on B", resp.StatusCode, http.StatusNoContent)
	testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if !ks.dead.Load() {
			return errors.New("A has not drained yet")
		}
		return nil
	})
	a.stopListen()
	abortPoll()
	_, body = do(t, "POST", baseB+"/0/s/xhr", "")
	want(t, "poll on B after A died holding the message", body, `a["taken"]`+"\n")
	do(t, "POST", baseB+"/0/s/xhr_send", `["next"]`)
	_, body = do(t, "POST", baseB+"/0/s/xhr", "")
	want(t, "next poll: no duplicate", body, `a["next"]`+"\n")
}
