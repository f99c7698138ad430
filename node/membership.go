package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"

	"github.com/shoal-rt/shoal/cluster"
	"github.com/shoal-rt/shoal/sockjs"
	"github.com/shoal-rt/shoal/store"
)

// releaseVersion, when set at link time (go build -ldflags
// "-X main.releaseVersion=v1.2.3"), is the version nodes report.
var releaseVersion string

// buildVersion names this binary in node metadata: releaseVersion, else
// the module version of a released build, else the VCS revision it was
// built from, else "dev".
func buildVersion() string {
	if releaseVersion != "" {
		return releaseVersion
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "dev"
	}
	return rev[:min(len(rev), 12)] + dirty
}

// advertisedHTTP is the address other nodes (and operators) use to reach
// this node's HTTP listener: --advertise-http if set, else the listen
// address, with an unspecified host (0.0.0.0, ::, empty) replaced by this
// host's private IP, as memberlist picks it for gossip.
func advertisedHTTP(cfg config, listenAddr string) (string, error) {
	if cfg.AdvertiseHTTP != "" {
		return cfg.AdvertiseHTTP, nil
	}
	host, port, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return listenAddr, nil
	}
	priv, err := sockaddr.GetPrivateIP()
	if err != nil || priv == "" {
		return "", fmt.Errorf("--listen %s has no specific host and no private IP was found (%v): set --advertise-http", listenAddr, err)
	}
	return net.JoinHostPort(priv, port), nil
}

// joinCluster returns the node's membership: memberlist when
// --gossip-listen or --join is given, else a static one-node cluster.
func joinCluster(cfg config, self cluster.Member, log *slog.Logger) (cluster.Membership, error) {
	if cfg.GossipListen == "" && cfg.Join == "" {
		return cluster.NewStatic(self), nil
	}
	if cfg.Redis == "" {
		log.Warn("gossip without --redis: each node keeps its own sessions, so they are members of a cluster that shares nothing")
	}
	var seeds []string
	for s := range strings.SplitSeq(cfg.Join, ",") {
		if s = strings.TrimSpace(s); s != "" {
			seeds = append(seeds, s)
		}
	}
	mc := cluster.Config{
		NodeID:   self.ID,
		BindAddr: cfg.GossipListen,
		HTTPAddr: self.HTTPAddr,
		Version:  self.Version,
		Seeds:    seeds,
		Logger:   log,
	}
	if err := cfg.Security.gossip(cfg, &mc, log); err != nil {
		return nil, err
	}
	m, err := cluster.Join(mc)
	if err != nil {
		return nil, err
	}
	log.Info("gossiping", "addr", m.GossipAddr(), "seeds", seeds)
	return m, nil
}

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

	wg sync.WaitGroup // releases under way

	mu         sync.Mutex // guards departures
	departures []departure

	runs     atomic.Uint64 // releases this node ran
	released atomic.Uint64 // leases they released
	closed   atomic.Uint64 // websocket sessions they closed
	failures atomic.Uint64 // releases that failed
}

func newCleaner(node *sockjs.Node, m cluster.Membership, log *slog.Logger) *cleaner {
	c := &cleaner{node: node, membership: m, log: log, timeout: 30 * time.Second}
	m.OnLeave(c.onLeave)
	return c
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
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
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
		time.Sleep(time.Duration(attempt) * time.Second)
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
