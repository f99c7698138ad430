// Package ops is what a Shoal node needs besides its SockJS endpoints to
// run in production: liveness and readiness with the reason (/healthz,
// /readyz), node and cluster stats (/_shoal/stats, /_shoal/cluster),
// Prometheus metrics (/metrics), cleanup after dead nodes, and a graceful
// drain. The shoal program (node/main.go) wires it around its built-in
// apps; a Go application wires it the same way around its own handlers
// (see the example).
//
// It sits above sockjs and cluster and knows no backend: the application
// passes its Redis and NATS (or anything else) as named Checks.
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/cluster"
	"github.com/shoal-rt/shoal/sockjs"
)

// Defaults of Config fields left zero.
const (
	// DefaultCheckInterval is how often the backends are pinged.
	DefaultCheckInterval = time.Second
	// DefaultCheckTimeout bounds one ping: a backend slower than this
	// counts as unreachable.
	DefaultCheckTimeout = time.Second
	// DefaultDrainTimeout bounds the drain after its delay. With the
	// shoal program's default delay (5 s) it keeps the whole drain under
	// the 30 s a container gets between SIGTERM and SIGKILL.
	DefaultDrainTimeout = 20 * time.Second
)

const (
	// memberStatsTimeout bounds fetching one member's stats.
	memberStatsTimeout = time.Second
	// maxStatsBody bounds a member's stats reply.
	maxStatsBody = 64 << 10
)

// Check pings one backend for readiness.
type Check struct {
	Name string // "redis", "nats", ...: named in /readyz and metrics
	// Ping returns nil when the backend answers before ctx ends.
	Ping func(ctx context.Context) error
}

// Config configures Ops. Zero fields take their defaults in New.
type Config struct {
	// Node is the SockJS node whose operations these are (required).
	Node *sockjs.Node
	// Membership is the node's view of the cluster; nil: the node runs
	// alone (cluster.NewStatic).
	Membership cluster.Membership
	// Checks ping the networked backends; none: always ready.
	Checks []Check
	// Version labels the build in metrics; "": "dev".
	Version string
	// Logger receives readiness changes, cleanups and the drain's steps;
	// nil: slog.Default().
	Logger *slog.Logger
	// CheckInterval and CheckTimeout pace and bound the pings.
	CheckInterval, CheckTimeout time.Duration
	// DrainDelay is how long Drain reports the node unready before it ends
	// the receivers, so that a balancer's health checks stop sending it
	// requests; zero: no delay (nothing health-checks the node).
	DrainDelay time.Duration
	// DrainTimeout bounds the rest of the drain.
	DrainTimeout time.Duration
	// Latency, if set, adds its histograms to /metrics; with Bus set too,
	// the node publishes a probe on Bus every few seconds and records how
	// long every node's probes take to arrive (publish→deliver).
	Latency *Latency
	Bus     bus.Bus
}

// Ops serves a node's operations endpoints, keeps its readiness, cleans up
// after dead members and drains it. Its methods are safe for concurrent use.
type Ops struct {
	cfg        Config
	node       *sockjs.Node
	membership cluster.Membership
	cleaner    *cleaner
	log        *slog.Logger
	client     *http.Client // fetches members' stats
	registry   *prometheus.Registry

	draining atomic.Bool
	stop     context.CancelFunc // ends the check loop and the probe
	loops    sync.WaitGroup

	mu     sync.Mutex // guards health and shared
	health map[string]error
	// shared holds the unreachable backends that no other member reaches
	// either: an outage the whole cluster shares (see NotReady).
	shared map[string]bool
}

// New pings the checks once, releases receiver leases an earlier process
// with this node's id left behind (a crash, then a restart faster than the
// others noticed), starts cleaning up after members that die, and pings the
// checks every CheckInterval until Close or Drain.
func New(cfg Config) (*Ops, error) {
	if cfg.Node == nil {
		return nil, errors.New("ops: Config.Node is nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Membership == nil {
		cfg.Membership = cluster.NewStatic(cluster.Member{ID: cfg.Node.ID(), Version: cfg.Version})
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = DefaultCheckInterval
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = DefaultCheckTimeout
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.DrainDelay < 0 {
		return nil, errors.New("ops: DrainDelay is negative")
	}
	for _, c := range cfg.Checks {
		if c.Name == "" || c.Ping == nil {
			return nil, fmt.Errorf("ops: check %q has no name or no Ping", c.Name)
		}
	}
	o := &Ops{
		cfg: cfg, node: cfg.Node, membership: cfg.Membership, log: cfg.Logger,
		client: &http.Client{Timeout: memberStatsTimeout},
		health: make(map[string]error),
		shared: make(map[string]bool),
	}
	o.runChecks(context.Background())
	o.cleaner = newCleaner(o.node, o.membership, o.log)
	o.registry = newRegistry(o) // collects from the cleaner
	relCtx, relCancel := context.WithTimeout(context.Background(), 10*time.Second)
	o.cleaner.releaseOwn(relCtx)
	relCancel()
	ctx, cancel := context.WithCancel(context.Background())
	o.stop = cancel
	o.loops.Go(func() { o.checkLoop(ctx) })
	if l := cfg.Latency; l != nil {
		o.registry.MustRegister(l.collectors()...)
		if cfg.Bus != nil {
			o.loops.Go(func() { l.runProbe(ctx, cfg.Bus) })
		}
	}
	return o, nil
}

// Close stops pinging the backends and stops cleaning up after dead
// members; it does not drain (see Drain) nor close the node.
func (o *Ops) Close() {
	o.stop()
	o.loops.Wait()
	o.cleaner.stop()
}

// runChecks pings every backend once, in parallel, asks the other members
// about the ones that failed, and then updates health and shared together,
// so /readyz never sees a failure before it is judged.
func (o *Ops) runChecks(ctx context.Context) {
	var mu sync.Mutex
	health := make(map[string]error, len(o.cfg.Checks))
	var wg sync.WaitGroup
	for _, c := range o.cfg.Checks {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, o.cfg.CheckTimeout)
			err := c.Ping(pctx)
			cancel()
			mu.Lock()
			health[c.Name] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	shared := o.judgeOutages(ctx, health)

	o.mu.Lock()
	defer o.mu.Unlock()
	for name, err := range health {
		prev, seen := o.health[name]
		switch {
		case err != nil && shared[name] && (prev == nil || !o.shared[name]):
			o.log.Warn("backend unreachable from every member: staying ready, degraded", "backend", name, "err", err)
		case err != nil && !shared[name] && (prev == nil || !seen || o.shared[name]):
			o.log.Error("backend unreachable: not ready", "backend", name, "err", err)
		case err == nil && prev != nil:
			o.log.Info("backend reachable again", "backend", name)
		}
	}
	o.health, o.shared = health, shared
}

// judgeOutages asks the other members, for each backend this node cannot
// reach (health), whether they reach it, and returns those nobody does. An
// outage nobody escapes (a restarting Redis, NATS down) is shared: taking
// this node out of the balancer would not send its requests anywhere
// better, and taking every node out turns every request into the
// balancer's 503 and closes every HTTP session. So a shared outage leaves
// the node ready, degraded (a request waits, bounded, for Redis; without
// NATS, receivers find their messages by re-checking the store); only a
// node alone in losing a backend (its own network, its own connection)
// reports unready.
func (o *Ops) judgeOutages(ctx context.Context, health map[string]error) map[string]bool {
	shared := make(map[string]bool)
	for name, err := range health {
		if err != nil {
			shared[name] = true
		}
	}
	if len(shared) == 0 {
		return shared
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range o.membership.Members() {
		if m.ID == o.node.ID() || m.State != cluster.StateAlive {
			continue
		}
		wg.Go(func() {
			up, err := o.memberBackendsUp(ctx, m)
			if err != nil {
				return // a member that does not answer reaches nothing we know of
			}
			mu.Lock()
			defer mu.Unlock()
			for name := range up {
				if shared[name] {
					shared[name] = false
				}
			}
		})
	}
	wg.Wait()
	return shared
}

// memberBackendsUp returns the backends a member reports reachable, from
// its GET /_shoal/cluster.
func (o *Ops) memberBackendsUp(ctx context.Context, m cluster.Member) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, o.cfg.CheckTimeout)
	defer cancel()
	_, body, err := o.getMember(ctx, m, "/_shoal/cluster")
	if err != nil {
		return nil, err
	}
	var v ClusterView
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("bad cluster view: %w", err)
	}
	up := make(map[string]bool)
	for name, state := range v.Backends {
		if state == "up" {
			up[name] = true
		}
	}
	return up, nil
}

// checkLoop pings the backends every CheckInterval until ctx ends.
func (o *Ops) checkLoop(ctx context.Context) {
	t := time.NewTicker(o.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			o.runChecks(ctx)
		}
	}
}

// backendHealth returns each backend's last ping error (nil: up).
func (o *Ops) backendHealth() map[string]error {
	o.mu.Lock()
	defer o.mu.Unlock()
	h := make(map[string]error, len(o.health))
	for k, v := range o.health {
		h[k] = v
	}
	return h
}

// NotReady says why the node should get no new requests, or "". A backend
// every member has lost does not count (judgeOutages): Degraded names it.
func (o *Ops) NotReady() string {
	if o.draining.Load() {
		return "draining"
	}
	for _, name := range o.unreachable(false) {
		return fmt.Sprintf("%s unreachable: %v", name, o.backendHealth()[name])
	}
	return ""
}

// Degraded lists the backends this node and every other member cannot
// reach, which leave the node ready.
func (o *Ops) Degraded() []string { return o.unreachable(true) }

// unreachable returns, sorted, the unreachable backends whose outage is
// shared by every member (shared) or not.
func (o *Ops) unreachable(shared bool) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var names []string
	for name, err := range o.health {
		if err != nil && o.shared[name] == shared {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// Draining reports whether Drain has started.
func (o *Ops) Draining() bool { return o.draining.Load() }

// Registry is the registry /metrics serves: the node's metrics, the Go
// runtime's and the process's. An application registers its own there.
func (o *Ops) Registry() *prometheus.Registry { return o.registry }

// Mount adds the operations endpoints to mux: GET /healthz, /readyz,
// /_shoal/stats, /_shoal/cluster and /metrics.
func (o *Ops) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", o.serveReady)
	mux.HandleFunc("GET /_shoal/stats", o.serveStats)
	mux.HandleFunc("GET /_shoal/cluster", o.serveCluster)
	mux.Handle("GET /metrics", o.metricsHandler())
}

// Handler returns a handler that serves the operations endpoints only, for
// a listener of their own (the shoal program's --admin-listen).
func (o *Ops) Handler() http.Handler {
	mux := http.NewServeMux()
	o.Mount(mux)
	return mux
}

func (o *Ops) serveReady(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if why := o.NotReady(); why != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %s\n", why)
		return
	}
	if d := o.Degraded(); len(d) > 0 {
		fmt.Fprintf(w, "ready, degraded: %s unreachable from every member\n", strings.Join(d, ", "))
		return
	}
	w.Write([]byte("ready\n"))
}

// ClusterStats is the body of GET /_shoal/stats.
type ClusterStats struct {
	NodeID string       `json:"node_id"`
	Node   sockjs.Stats `json:"node"`
	// Cluster is the sum over the members that answered.
	Cluster sockjs.Stats `json:"cluster"`
	// Nodes holds each answering member's own figures.
	Nodes map[string]sockjs.Stats `json:"nodes"`
	// Unreachable lists members whose stats could not be fetched in time
	// (their figures are missing from Cluster), with why.
	Unreachable map[string]string `json:"unreachable,omitempty"`
}

// serveStats answers with this node's stats and the cluster's, summed
// over the live members: this node asks each of them for its own figures
// (?scope=node) over HTTP, in parallel, with a short timeout. With
// ?scope=node it answers with its own figures only, as one flat object in
// sockjs-tornado's format.
//
// Why fetch rather than publish (say, each node writing its counters to
// Redis with a TTL): nothing is written while nobody asks, figures are as
// fresh as the request, membership already says who is alive (a dead
// node's figures cannot linger until a TTL passes), and the embedded
// single-node mode, which has no Redis, works the same way.
func (o *Ops) serveStats(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("scope") == "node" {
		writeJSON(w, o.node.Stats())
		return
	}
	self := o.node.Stats()
	out := ClusterStats{NodeID: o.node.ID(), Node: self, Cluster: self.Add(sockjs.Stats{}),
		Nodes: map[string]sockjs.Stats{o.node.ID(): self}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range o.membership.Members() {
		if m.ID == o.node.ID() {
			continue
		}
		wg.Go(func() {
			st, err := o.memberStats(r.Context(), m)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if out.Unreachable == nil {
					out.Unreachable = make(map[string]string)
				}
				out.Unreachable[m.ID] = err.Error()
				return
			}
			out.Nodes[m.ID] = st
			out.Cluster = out.Cluster.Add(st)
		})
	}
	wg.Wait()
	writeJSON(w, out)
}

// memberStats fetches one member's own stats.
func (o *Ops) memberStats(ctx context.Context, m cluster.Member) (sockjs.Stats, error) {
	var st sockjs.Stats
	code, body, err := o.getMember(ctx, m, "/_shoal/stats?scope=node")
	if err != nil {
		return st, err
	}
	if code != http.StatusOK {
		return st, fmt.Errorf("status %d %s", code, http.StatusText(code))
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("bad stats: %w", err)
	}
	return st, nil
}

// getMember GETs path from member m and returns the reply's status and
// body (at most maxStatsBody bytes).
func (o *Ops) getMember(ctx context.Context, m cluster.Member, path string) (int, []byte, error) {
	if m.HTTPAddr == "" {
		return 0, nil, fmt.Errorf("no HTTP address in its metadata")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.HTTPAddr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatsBody))
	return resp.StatusCode, body, err
}

// MemberView is one member in GET /_shoal/cluster.
type MemberView struct {
	ID       string    `json:"id"`
	HTTPAddr string    `json:"http_addr,omitempty"`
	Version  string    `json:"version,omitempty"`
	State    string    `json:"state"`
	At       time.Time `json:"at,omitzero"`
	Cleaned  *bool     `json:"cleaned_up_here,omitempty"`
}

// ClusterView is the body of GET /_shoal/cluster.
type ClusterView struct {
	Self     string            `json:"self"`
	Ready    bool              `json:"ready"`
	Draining bool              `json:"draining"`
	Backends map[string]string `json:"backends,omitempty"` // name -> "up" or the error
	// Members are the members this node sees alive (or suspect), itself
	// included, sorted by id.
	Members []MemberView `json:"members"`
	// Departed are the latest members seen dying or leaving, latest last.
	Departed []MemberView `json:"departed"`
}

func (o *Ops) serveCluster(w http.ResponseWriter, r *http.Request) {
	v := ClusterView{
		Self:     o.node.ID(),
		Ready:    o.NotReady() == "",
		Draining: o.draining.Load(),
		Members:  []MemberView{},
		Departed: []MemberView{},
	}
	for name, err := range o.backendHealth() {
		if v.Backends == nil {
			v.Backends = make(map[string]string)
		}
		v.Backends[name] = "up"
		if err != nil {
			v.Backends[name] = err.Error()
		}
	}
	for _, m := range o.membership.Members() {
		v.Members = append(v.Members, MemberView{ID: m.ID, HTTPAddr: m.HTTPAddr, Version: m.Version, State: m.State.String()})
	}
	for _, d := range o.cleaner.recent() {
		cleaned := d.Cleaned
		v.Departed = append(v.Departed, MemberView{ID: d.ID, HTTPAddr: d.HTTPAddr, Version: d.Version,
			State: d.State.String(), At: d.At, Cleaned: &cleaned})
	}
	writeJSON(w, v)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
