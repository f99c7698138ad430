package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Target names of the comparison.
const (
	TargetSockJSNode   = "sockjs-node"
	TargetSockJSGo     = "sockjs-go"
	TargetShoal        = "shoal"
	TargetShoalCluster = "shoal-cluster"
	// TargetSockJSNodeSticky is what a Shoal cluster replaces: three
	// sockjs-node processes behind the same HAProxy, each session pinned to
	// one of them. It runs the echo scenarios only: sockjs-node has no
	// broadcast across processes.
	TargetSockJSNodeSticky = "sockjs-node-sticky"
)

// compareAPIKey is the --api-key Shoal's targets run with: the hub
// scenario's backend publishes with it.
const compareAPIKey = "shoal-load"

// notRun starts the error of a run its target skips (targetRunner.skip).
const notRun = "not run: "

// ratioPeers are the peers Shoal's ratios are taken against, in report
// order; the sticky trio only against the cluster, its like.
var ratioPeers = []string{TargetSockJSNode, TargetSockJSGo, TargetSockJSNodeSticky}

// CompareConfig describes a comparison run. A zero field is a default.
type CompareConfig struct {
	// Base holds the settings shared by every run: duration, warmup,
	// payload, source addresses, progress. Sessions and Rate, when set,
	// replace every scenario's preset.
	Base      Config
	Scenarios []string // default all eight
	Targets   []string // default all five
	RepoRoot  string   // the Shoal repository: ./node and loadtest/peers are built from it
	// ShoalBin is a node program to run instead of building ./node.
	ShoalBin string
	// Notes are added to the report, e.g. which commit ShoalBin was built from.
	Notes []string
	// ServerCPUs and LoadCPUs are taskset CPU lists; by default the servers
	// get the last CPU and the load generator the others.
	ServerCPUs, LoadCPUs string
	IdleSessions         int     // default 2000
	Scale                float64 // multiplies preset sessions and rates; default 1
	Out                  string  // reports go to Out/compare-<time>/
	Log                  io.Writer
	// NoClusterGossip starts the cluster's nodes without
	// --gossip-listen/--join. Without it they get them, and run without
	// them (with a note) if the node program rejects the flags.
	NoClusterGossip bool
	// ClosedLoop runs each echo and broadcast scenario at saturation:
	// every sender sends its next message when one of its in-flight
	// messages is back, at the closed-loop presets' sizes, so the
	// servers' CPU is the bottleneck. Churn and idle keep their presets.
	ClosedLoop bool
	// ServerShare, when above 0, limits the servers of every run to that
	// share of one CPU together (a cgroup CPU quota; root only): on a
	// 2-core machine a closed loop then saturates the servers, not the
	// load generator, whose CPU costs about as much per message.
	ServerShare float64
}

// preset is a scenario's default size in a comparison: modest, so that the
// whole comparison fits a 2-core machine in a few minutes. closed is its
// size in a closed-loop comparison (rate 0: enough senders and messages in
// flight to keep the servers busy); zero for a scenario without a closed
// loop (churn, idle).
type preset struct {
	sessions int
	rate     float64
	closed   closedLoop
	room     int // hub: sessions per room
}

type closedLoop struct{ sessions, inflight int }

var comparePresets = map[string]preset{
	"ws-echo":       {sessions: 50, rate: 4000, closed: closedLoop{100, 4}},
	"xhr-polling":   {sessions: 20, rate: 1000, closed: closedLoop{50, 1}},
	"broadcast":     {sessions: 200, rate: 20, closed: closedLoop{1000, 1}},
	"xhr-streaming": {sessions: 100, rate: 20, closed: closedLoop{100, 1}},
	"eventsource":   {sessions: 100, rate: 20, closed: closedLoop{100, 1}},
	"churn":         {sessions: 50, rate: 50},
	"idle":          {sessions: 2000},
	// Chat rooms of ten, as a Django site has them; the closed loop keeps
	// 8 publishes in flight, as one room's fan-out is small.
	"hub":  {sessions: 200, rate: 200, room: 10, closed: closedLoop{1000, 8}},
	"echo": {sessions: 50, rate: 4000, closed: closedLoop{100, 4}},
}

// ClosedLoopScenarios are the scenarios a closed-loop comparison runs by
// default: those that have a closed loop.
var ClosedLoopScenarios = []string{"ws-echo", "xhr-polling", "xhr-streaming", "eventsource", "broadcast", "hub"}

// CompareReport is what a comparison measured; it is the comparison's JSON
// file and the source of its HTML and Markdown.
type CompareReport struct {
	StartedAt  time.Time `json:"started_at"`
	Elapsed    float64   `json:"elapsed_s"`
	Command    string    `json:"command"`
	Machine    string    `json:"machine"`
	ServerCPUs string    `json:"server_cpus"`
	LoadCPUs   string    `json:"load_cpus"`
	// ServerShare is CompareConfig.ServerShare (0: the servers had their
	// CPUs whole).
	ServerShare float64      `json:"server_share,omitempty"`
	Targets     []TargetInfo `json:"targets"`
	Scenarios   []string     `json:"scenarios"`
	Runs        []CompareRun `json:"runs"`
	Notes       []string     `json:"notes,omitempty"`
	Ratios      []RatioRow   `json:"ratios"`
	Dir         string       `json:"-"`
	HTMLPath    string       `json:"-"`
	JSONPath    string       `json:"-"`
}

// TargetInfo says what a target is and whether it could run.
type TargetInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Available   bool   `json:"available"`
	Reason      string `json:"reason,omitempty"`
}

// CompareRun is one scenario against one target.
type CompareRun struct {
	Scenario string  `json:"scenario"`
	Target   string  `json:"target"`
	Result   *Result `json:"result,omitempty"`
	Error    string  `json:"error,omitempty"`
	Report   string  `json:"report,omitempty"` // the run's HTML, relative to the comparison's
}

// RatioRow is Shoal's (one node or cluster) figure for a scenario divided
// by a peer's: below 1 means Shoal spends less.
type RatioRow struct {
	Scenario string  `json:"scenario"`
	Metric   string  `json:"metric"`
	Shoal    string  `json:"shoal"` // shoal or shoal-cluster
	Peer     string  `json:"peer"`
	Ratio    float64 `json:"ratio"`
	// Caveat is set when either run delivered under 99% of its messages:
	// a cost per delivered message is then not the same work.
	Caveat string `json:"caveat,omitempty"`
}

// targetRunner starts one target fresh for one scenario.
type targetRunner struct {
	info  TargetInfo
	start func(ctx context.Context, dir string) (*running, error)
	// skip, when set, says why the target does not run a scenario ("" runs it).
	skip func(scenario string) string
}

// running is a started target: the URL to load and the processes to measure.
type running struct {
	url      string
	procs    []*proc
	notes    []string
	counters Counters // the backends' counts, if the target has backends
}

func (r *running) pids() []int {
	var out []int
	for _, p := range r.procs {
		out = append(out, p.pid())
	}
	return out
}

func (r *running) stop() {
	// Stop the balancer and nodes before the store and bus they use.
	for i := len(r.procs) - 1; i >= 0; i-- {
		r.procs[i].stop()
	}
}

// pinnedEnv marks the re-executed, pinned load generator.
const pinnedEnv = "SHOAL_LOAD_PINNED"

// defaultCPUs splits this machine's CPUs: servers on the last, the load
// generator on the rest. One CPU: no pinning.
func defaultCPUs(c CompareConfig) (server, load string) {
	n := runtime.NumCPU()
	if os.Getenv(pinnedEnv) != "" {
		n = numCPUsOnline()
	}
	server, load = c.ServerCPUs, c.LoadCPUs
	if n < 2 {
		return server, load
	}
	if server == "" {
		server = fmt.Sprint(n - 1)
	}
	if load == "" {
		if n == 2 {
			load = "0"
		} else {
			load = fmt.Sprintf("0-%d", n-2)
		}
	}
	return server, load
}

// numCPUsOnline counts the machine's CPUs, not just those this process may
// run on.
func numCPUsOnline() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for part := range strings.SplitSeq(strings.TrimSpace(string(b)), ",") {
		var lo, hi int
		if c, _ := fmt.Sscanf(part, "%d-%d", &lo, &hi); c == 2 {
			n += hi - lo + 1
		} else {
			n++
		}
	}
	return max(n, 1)
}

// PinSelf re-executes this program under taskset on the load generator's
// CPUs, so that it and the servers do not share a CPU. It returns true in
// the parent only if exec failed; a successful exec does not return.
func PinSelf(c CompareConfig) (bool, error) {
	if os.Getenv(pinnedEnv) != "" {
		return false, nil
	}
	_, load := defaultCPUs(c)
	ts, err := exec.LookPath("taskset")
	if load == "" || err != nil {
		return false, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return false, nil
	}
	argv := append([]string{"taskset", "-c", load, exe}, os.Args[1:]...)
	env := append(os.Environ(), pinnedEnv+"=1")
	if err := syscall.Exec(ts, argv, env); err != nil {
		return true, fmt.Errorf("loadtest: pin to CPUs %s: %w", load, err)
	}
	return true, nil
}

// Compare builds and starts each target in turn, fresh for every scenario,
// runs the scenario against it with its processes measured, and writes a
// JSON, HTML and Markdown report.
func Compare(ctx context.Context, c CompareConfig) (*CompareReport, error) {
	started := time.Now()
	if len(c.Scenarios) == 0 {
		c.Scenarios = []string{"ws-echo", "xhr-polling", "xhr-streaming", "eventsource", "broadcast", "hub", "churn", "idle"}
	}
	if len(c.Targets) == 0 {
		c.Targets = []string{TargetSockJSNode, TargetSockJSGo, TargetShoal, TargetShoalCluster, TargetSockJSNodeSticky}
	}
	if c.IdleSessions == 0 {
		c.IdleSessions = comparePresets["idle"].sessions
	}
	if c.Scale <= 0 {
		c.Scale = 1
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	for _, s := range c.Scenarios {
		if _, ok := comparePresets[s]; !ok {
			return nil, fmt.Errorf("loadtest: compare: unknown scenario %q", s)
		}
	}
	var quota *cpuQuota // nil: the servers have their CPUs whole
	if c.ServerShare > 0 {
		q, err := newCPUQuota(c.ServerShare)
		if err != nil {
			return nil, err
		}
		defer q.remove()
		quota = q
	}
	root, err := filepath.Abs(c.RepoRoot)
	if err != nil {
		return nil, err
	}
	c.RepoRoot = root
	server, load := defaultCPUs(c)
	rep := &CompareReport{
		StartedAt:   started.UTC().Round(time.Second),
		Command:     strings.Join(os.Args, " "),
		Machine:     machineText(),
		ServerCPUs:  server,
		ServerShare: c.ServerShare,
		LoadCPUs:    load,
		Scenarios:   c.Scenarios,
	}
	rep.Notes = append(rep.Notes, c.Notes...)
	if c.ServerShare > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("servers limited to %g of one CPU together (a cgroup CPU quota, %d µs period): CPU per message is what they spent, busy at most %g", c.ServerShare, quotaPeriodUs, c.ServerShare))
	}
	if c.ClosedLoop {
		rep.Notes = append(rep.Notes, "closed loop: each sender sends its next message when one in flight is back (echo and broadcast scenarios at their closed-loop sizes); the servers' CPU is meant to be the bottleneck, see its utilisation per run")
	}
	if server == "" {
		rep.Notes = append(rep.Notes, "servers and load generator share the CPUs: taskset or a second CPU is missing")
	}
	rep.Dir = filepath.Join(c.Out, "compare-"+started.Format("20060102-150405"))
	if err := os.MkdirAll(filepath.Join(rep.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	binDir := filepath.Join(rep.Dir, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, err
	}

	var runners []*targetRunner
	for _, name := range c.Targets {
		fmt.Fprintf(c.Log, "== preparing %s\n", name)
		tr, err := prepareTarget(ctx, c, name, binDir, server)
		if err != nil {
			return nil, err
		}
		if !tr.info.Available {
			fmt.Fprintf(c.Log, "   %s unavailable: %s\n", name, tr.info.Reason)
		}
		rep.Targets = append(rep.Targets, tr.info)
		runners = append(runners, tr)
	}

	for _, scen := range c.Scenarios {
		for i, tr := range runners {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			run := CompareRun{Scenario: scen, Target: tr.info.Name}
			if !tr.info.Available {
				run.Error = "unavailable: " + tr.info.Reason
				rep.Runs = append(rep.Runs, run)
				continue
			}
			if tr.skip != nil {
				if why := tr.skip(scen); why != "" {
					run.Error = notRun + why
					rep.Runs = append(rep.Runs, run)
					continue
				}
			}
			fmt.Fprintf(c.Log, "== %s against %s\n", scen, tr.info.Name)
			res, err := runOne(ctx, c, quota, tr, scen, filepath.Join(rep.Dir, "logs"))
			if err != nil {
				run.Error = err.Error()
				if errors.Is(err, errExited) && !rep.hasResult(tr.info.Name) {
					// The target cannot start at all: it is unavailable, and
					// the other scenarios skip it.
					runners[i].info.Available = false
					runners[i].info.Reason = err.Error()
					rep.Targets[i] = runners[i].info
					run.Error = "unavailable: " + err.Error()
				}
				fmt.Fprintf(c.Log, "   %s\n", run.Error)
			} else {
				run.Result = res
				base := fmt.Sprintf("%s-%s", scen, tr.info.Name)
				if err := res.WriteJSON(filepath.Join(rep.Dir, base+".json")); err != nil {
					return nil, err
				}
				if err := res.WriteHTML(filepath.Join(rep.Dir, base+".html")); err != nil {
					return nil, err
				}
				run.Report = base + ".html"
				fmt.Fprint(c.Log, indent(res.Summary()))
			}
			rep.Runs = append(rep.Runs, run)
		}
	}
	rep.Ratios = rep.ratios()
	rep.Elapsed = math.Round(time.Since(started).Seconds())
	rep.JSONPath = filepath.Join(rep.Dir, "compare.json")
	rep.HTMLPath = filepath.Join(rep.Dir, "compare.html")
	if err := writeJSON(rep.JSONPath, "comparison", rep); err != nil {
		return nil, err
	}
	if err := rep.writePages(); err != nil {
		return nil, err
	}
	return rep, nil
}

func (rep *CompareReport) hasResult(target string) bool {
	for _, r := range rep.Runs {
		if r.Target == target && r.Result != nil {
			return true
		}
	}
	return false
}

func indent(s string) string {
	return "   " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n   ") + "\n"
}

// runOne starts the target (in quota, when set), runs one scenario against
// it and stops it.
func runOne(ctx context.Context, c CompareConfig, quota *cpuQuota, tr *targetRunner, scen, logDir string) (*Result, error) {
	rt, err := tr.start(ctx, filepath.Join(logDir, scen+"-"+tr.info.Name))
	if rt != nil {
		defer rt.stop()
	}
	if err != nil {
		return nil, err
	}
	if quota != nil {
		if err := quota.add(rt.pids()); err != nil {
			return nil, err
		}
	}
	cfg := c.Base
	cfg.URL = rt.url
	cfg.Scenario = scen
	cfg.Transport = ""
	cfg.Label = tr.info.Name
	cfg.ServerPIDs = rt.pids()
	cfg.Counters = rt.counters
	p := comparePresets[scen]
	if scen == "idle" {
		p.sessions = c.IdleSessions
	}
	if c.ClosedLoop && p.closed.sessions > 0 {
		p = preset{sessions: p.closed.sessions, room: p.room}
		cfg.Rate = 0
		if cfg.Inflight == 0 {
			cfg.Inflight = comparePresets[scen].closed.inflight
		}
	}
	if cfg.Sessions == 0 {
		cfg.Sessions = max(1, int(float64(p.sessions)*c.Scale))
	}
	if cfg.Rate == 0 && p.rate > 0 {
		cfg.Rate = p.rate * c.Scale
	}
	if p.room > 0 && cfg.Rooms == 0 {
		cfg.Rooms = max(1, cfg.Sessions/p.room)
		cfg.Sessions = cfg.Rooms * p.room
	}
	cfg.APIKey = compareAPIKey
	res, err := Run(ctx, cfg)
	if err != nil {
		for _, pr := range rt.procs {
			if pr.exited() {
				return nil, fmt.Errorf("%w: %s died during the run: %s", errExited, pr.name, pr.logTail(3))
			}
		}
		return nil, err
	}
	res.Notes = append(res.Notes, rt.notes...)
	return res, nil
}

func machineText() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d CPUs (%s)%s, %s", numCPUsOnline(), model, kernel, runtime.Version())
}

// metricOf is the figure a scenario is compared on: server CPU per
// operation, or memory per session for idle.
func metricOf(scen string, r *Result) (name string, v float64, ok bool) {
	if r == nil || r.Server == nil {
		return "", 0, false
	}
	if r.Kind == KindIdle {
		return "server memory per idle session (KiB)", r.Server.RSSPerSessionKiB, r.Server.RSSPerSessionKiB > 0
	}
	return fmt.Sprintf("server CPU per %s (µs)", r.OpsName), r.Server.CPUPerOpMicros, r.Server.CPUPerOpMicros > 0
}

func (rep *CompareReport) result(scen, target string) *Result {
	for _, r := range rep.Runs {
		if r.Scenario == scen && r.Target == target {
			return r.Result
		}
	}
	return nil
}

// deliveryCaveat names the runs that delivered under 99% of what they sent.
func deliveryCaveat(rs ...*Result) string {
	var parts []string
	for _, r := range rs {
		if r.Kind != KindIdle && r.DeliveryRatio < 0.99 {
			parts = append(parts, fmt.Sprintf("%s delivered %.0f%%", r.Label, 100*r.DeliveryRatio))
		}
	}
	return strings.Join(parts, ", ")
}

func (rep *CompareReport) ratios() []RatioRow {
	var out []RatioRow
	for _, scen := range rep.Scenarios {
		for _, s := range []string{TargetShoal, TargetShoalCluster} {
			name, sv, ok := metricOf(scen, rep.result(scen, s))
			if !ok {
				continue
			}
			for _, peer := range ratioPeers {
				if peer == TargetSockJSNodeSticky && s != TargetShoalCluster {
					continue
				}
				_, pv, ok := metricOf(scen, rep.result(scen, peer))
				if !ok {
					continue
				}
				row := RatioRow{Scenario: scen, Metric: name, Shoal: s, Peer: peer, Ratio: round3(sv / pv)}
				row.Caveat = deliveryCaveat(rep.result(scen, s), rep.result(scen, peer))
				out = append(out, row)
			}
		}
	}
	return out
}
