package ops

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-rt/shoal/cluster"
	"github.com/shoal-rt/shoal/sockjs"
	"github.com/shoal-rt/shoal/store"
)

// Cleanup after dead nodes: their receiver leases are released (and their
// websocket sessions closed) by the one survivor membership makes
// responsible, so that their clients can attach elsewhere at once instead
// of waiting for the leases to run out.

// departure is a member that died or left, as this node saw it.
type departure struct {
	cluster.Member
	At time.Time
	// Cleaned says whether this node released the member's sessions.
	Cleaned bool
}

// maxDepartures bounds the departures /_shoal/cluster remembers.
const maxDepartures = 32

// cleaner cleans up after members that die or leave, on the one survivor
// that membership makes responsible (see cluster.Cleaner), and remembers
// recent departures for /_shoal/cluster.
type cleaner struct {
	node       *sockjs.Node
	membership cluster.Membership
	log        *slog.Logger
	timeout    time.Duration // bounds one release

	wg     sync.WaitGroup  // releases under way
	ctx    context.Context // ends when the cleaner stops: retries give up
	cancel context.CancelFunc
	unsub  func() // stops membership's OnLeave calls

	mu         sync.Mutex // guards departures
	departures []departure

	runs     atomic.Uint64 // releases this node ran
	released atomic.Uint64 // leases they released
	closed   atomic.Uint64 // websocket sessions they closed
	failures atomic.Uint64 // releases that failed
}

func newCleaner(node *sockjs.Node, m cluster.Membership, log *slog.Logger) *cleaner {
	c := &cleaner{node: node, membership: m, log: log, timeout: 30 * time.Second}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.unsub = m.OnLeave(c.onLeave)
	return c
}

// stop takes no more departures and ends the releases under way (a store
// call in flight is cancelled); their leases run out by themselves.
func (c *cleaner) stop() {
	c.unsub()
	c.cancel()
	c.wg.Wait()
}

// onLeave runs on membership's event goroutine, which must not wait: the
// releases run on their own goroutines.
//
// The member that was responsible for an earlier departure may itself be
// the one that just went, before or while it cleaned up: departures of the
// last store.DefaultLeaseTTL (after which their leases have run out
// anyway) that this node was not responsible for are looked at again, and
// released if this node is responsible now. Releasing twice is harmless.
func (c *cleaner) onLeave(m cluster.Member) {
	now := time.Now()
	var release []string
	c.mu.Lock()
	for i := range c.departures {
		d := &c.departures[i]
		if !d.Cleaned && now.Sub(d.At) < store.DefaultLeaseTTL && d.ID != m.ID && c.membership.ResponsibleFor(d.ID) {
			d.Cleaned = true
			release = append(release, d.ID)
		}
	}
	responsible := c.membership.ResponsibleFor(m.ID)
	c.departures = append(c.departures, departure{Member: m, At: now, Cleaned: responsible})
	if len(c.departures) > maxDepartures {
		c.departures = c.departures[len(c.departures)-maxDepartures:]
	}
	c.mu.Unlock()
	c.log.Info("member gone", "member", m.ID, "state", m.State.String(), "cleaning_up", responsible)
	if responsible {
		release = append(release, m.ID)
	}
	for _, id := range release {
		if id != m.ID {
			c.log.Info("taking over the cleanup after an earlier departure", "member", id, "because_gone", m.ID)
		}
		c.wg.Go(func() { c.release(id) })
	}
}

// release releases the leases of the dead node id, retrying a few times
// if the store fails (after that its leases still run out by themselves).
func (c *cleaner) release(id string) {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		// A node restarted under the same id may be back already.
		if !c.membership.ResponsibleFor(id) {
			c.log.Info("cleanup skipped: not responsible any more", "member", id)
			return
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.timeout)
		res, err := c.node.ReleaseNode(ctx, id)
		cancel()
		c.released.Add(uint64(res.Released))
		c.closed.Add(uint64(len(res.Closed)))
		if err == nil {
			c.runs.Add(1)
			c.log.Info("cleaned up after member", "member", id, "released", res.Released,
				"websockets_closed", len(res.Closed), "took", time.Since(start).Round(time.Millisecond))
			return
		}
		c.failures.Add(1)
		if attempt == 3 {
			c.log.Error("cleanup failed; its leases will run out by themselves", "member", id, "err", err)
			return
		}
		c.log.Warn("cleanup failed, retrying", "member", id, "err", err)
		select {
		case <-time.After(time.Duration(attempt) * time.Second):
		case <-c.ctx.Done():
			return
		}
	}
}

// releaseOwn releases leases an earlier process with this node's id left
// behind (a crash, then a restart faster than the others noticed it).
func (c *cleaner) releaseOwn(ctx context.Context) {
	res, err := c.node.ReleaseNode(ctx, c.node.ID())
	switch {
	case err != nil:
		c.log.Warn("could not release leases of an earlier run of this node id", "err", err)
	case res.Released > 0:
		c.log.Info("released leases of an earlier run of this node id", "released", res.Released, "websockets_closed", len(res.Closed))
	}
}

// recent returns the remembered departures, latest last.
func (c *cleaner) recent() []departure {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]departure(nil), c.departures...)
}

// wait waits for releases under way, until ctx ends.
func (c *cleaner) wait(ctx context.Context) {
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
