package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-rt/shoal/cluster"
	"github.com/shoal-rt/shoal/sockjs"
)

// Operations endpoints: /healthz, /readyz, /_shoal/stats, /_shoal/cluster,
// /metrics (metrics.go).

const (
	// checkInterval is how often the backends are pinged for /readyz.
	checkInterval = time.Second
	// checkTimeout bounds one ping: a backend slower than this counts as
	// unreachable.
	checkTimeout = time.Second
	// memberStatsTimeout bounds fetching one member's stats for the
	// cluster figures.
	memberStatsTimeout = time.Second
	// maxStatsBody bounds a member's stats reply.
	maxStatsBody = 64 << 10
)

// ops holds what the operations endpoints report: readiness (draining,
// backend health), node and cluster stats, membership.
type ops struct {
	node       *sockjs.Node
	membership cluster.Membership
	cleaner    *cleaner
	checks     []backendCheck
	log        *slog.Logger
	client     *http.Client // fetches members' stats

	draining atomic.Bool

	mu     sync.Mutex // guards health and shared
	health map[string]error
	// shared holds the unreachable backends that no other member reaches
	// either: an outage the whole cluster shares (see notReady).
	shared map[string]bool
}

func newOps(node *sockjs.Node, m cluster.Membership, cl *cleaner, checks []backendCheck, log *slog.Logger) *ops {
	o := &ops{
		node: node, membership: m, cleaner: cl, checks: checks, log: log,
		client: &http.Client{Timeout: memberStatsTimeout},
		health: make(map[string]error),
		shared: make(map[string]bool),
	}
	o.runChecks(context.Background())
	return o
}

// runChecks pings every backend once, in parallel, asks the other members
// about the ones that failed, and then updates health and shared together,
// so /readyz never sees a failure before it is judged.
func (o *ops) runChecks(ctx context.Context) {
	var mu sync.Mutex
	health := make(map[string]error, len(o.checks))
	var wg sync.WaitGroup
	for _, c := range o.checks {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, checkTimeout)
			err := c.ping(pctx)
			cancel()
			mu.Lock()
			health[c.name] = err
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
func (o *ops) judgeOutages(ctx context.Context, health map[string]error) map[string]bool {
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
func (o *ops) memberBackendsUp(ctx context.Context, m cluster.Member) (map[string]bool, error) {
	if m.HTTPAddr == "" {
		return nil, fmt.Errorf("no HTTP address in its metadata")
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.HTTPAddr+"/_shoal/cluster", nil)
	if err != nil {
		return nil, err
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var v clusterView
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxStatsBody)).Decode(&v); err != nil {
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

// checkLoop pings the backends every checkInterval until ctx ends.
func (o *ops) checkLoop(ctx context.Context) {
	t := time.NewTicker(checkInterval)
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
func (o *ops) backendHealth() map[string]error {
	o.mu.Lock()
	defer o.mu.Unlock()
	h := make(map[string]error, len(o.health))
	for k, v := range o.health {
		h[k] = v
	}
	return h
}

// notReady says why the node should get no new requests, or "". A backend
// every member has lost does not count (judgeOutages): degraded() names it.
func (o *ops) notReady() string {
	if o.draining.Load() {
		return "draining"
	}
	for _, name := range o.unreachable(false) {
		return fmt.Sprintf("%s unreachable: %v", name, o.backendHealth()[name])
	}
	return ""
}

// degraded lists the backends this node and every other member cannot
// reach, which leave the node ready.
func (o *ops) degraded() []string { return o.unreachable(true) }

// unreachable returns, sorted, the unreachable backends whose outage is
// shared by every member (shared) or not.
func (o *ops) unreachable(shared bool) []string {
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

// mount adds the operations endpoints to mux.
func (o *ops) mount(mux *http.ServeMux, metrics http.Handler) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", o.serveReady)
	mux.HandleFunc("GET /_shoal/stats", o.serveStats)
	mux.HandleFunc("GET /_shoal/cluster", o.serveCluster)
	mux.Handle("GET /metrics", metrics)
}

func (o *ops) serveReady(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if why := o.notReady(); why != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %s\n", why)
		return
	}
	if d := o.degraded(); len(d) > 0 {
		fmt.Fprintf(w, "ready, degraded: %s unreachable from every member\n", strings.Join(d, ", "))
		return
	}
	w.Write([]byte("ready\n"))
}

// clusterStats is the body of GET /_shoal/stats.
type clusterStats struct {
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
func (o *ops) serveStats(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("scope") == "node" {
		writeJSON(w, o.node.Stats())
		return
	}
	self := o.node.Stats()
	out := clusterStats{NodeID: o.node.ID(), Node: self, Cluster: self.Add(sockjs.Stats{}),
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
func (o *ops) memberStats(ctx context.Context, m cluster.Member) (sockjs.Stats, error) {
	var st sockjs.Stats
	if m.HTTPAddr == "" {
		return st, fmt.Errorf("no HTTP address in its metadata")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.HTTPAddr+"/_shoal/stats?scope=node", nil)
	if err != nil {
		return st, err
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatsBody))
	if err != nil {
		return st, err
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status %s", resp.Status)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("bad stats: %w", err)
	}
	return st, nil
}

// memberJSON is one member in GET /_shoal/cluster.
type memberJSON struct {
	ID       string    `json:"id"`
	HTTPAddr string    `json:"http_addr,omitempty"`
	Version  string    `json:"version,omitempty"`
	State    string    `json:"state"`
	At       time.Time `json:"at,omitzero"`
	Cleaned  *bool     `json:"cleaned_up_here,omitempty"`
}

// clusterView is the body of GET /_shoal/cluster.
type clusterView struct {
	Self     string            `json:"self"`
	Ready    bool              `json:"ready"`
	Draining bool              `json:"draining"`
	Backends map[string]string `json:"backends,omitempty"` // name -> "up" or the error
	// Members are the members this node sees alive (or suspect), itself
	// included, sorted by id.
	Members []memberJSON `json:"members"`
	// Departed are the latest members seen dying or leaving, latest last.
	Departed []memberJSON `json:"departed"`
}

func (o *ops) serveCluster(w http.ResponseWriter, r *http.Request) {
	v := clusterView{
		Self:     o.node.ID(),
		Ready:    o.notReady() == "",
		Draining: o.draining.Load(),
		Members:  []memberJSON{},
		Departed: []memberJSON{},
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
		v.Members = append(v.Members, memberJSON{ID: m.ID, HTTPAddr: m.HTTPAddr, Version: m.Version, State: m.State.String()})
	}
	for _, d := range o.cleaner.recent() {
		cleaned := d.Cleaned
		v.Departed = append(v.Departed, memberJSON{ID: d.ID, HTTPAddr: d.HTTPAddr, Version: d.Version,
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
