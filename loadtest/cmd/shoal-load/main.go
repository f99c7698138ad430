// Command shoal-load runs SockJS load scenarios against a server, or, with
// --compare, the same scenarios against Shoal and its peers side by side.
//
//	shoal-load --url http://127.0.0.1:8080 --scenario ws-echo --sessions 50 --rate 5000 --duration 10s
//	shoal-load --compare --out loadtest/results
//
// It prints a live progress line to stderr and a summary to stdout, and
// writes a JSON result and an HTML report under --out.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shoal-rt/shoal/loadtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "shoal-load:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		cfg      loadtest.Config
		pids     string
		out      string
		quiet    bool
		compare  bool
		cc       loadtest.CompareConfig
		scens    string
		targets  string
		duration time.Duration
	)
	fs := flag.NewFlagSet("shoal-load", flag.ContinueOnError)
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "server root URL (loopback only unless --allow-remote)")
	fs.StringVar(&cfg.Scenario, "scenario", "ws-echo", "scenario: "+strings.Join(loadtest.ScenarioNames, ", "))
	transport := fs.String("transport", "", "transport for echo, broadcast, churn and idle: websocket, xhr-polling, xhr-streaming, eventsource")
	fs.IntVar(&cfg.Sessions, "sessions", 0, fmt.Sprintf("sessions (churn: cycles in flight); default per scenario, at most %d", loadtest.MaxSessions))
	fs.Float64Var(&cfg.Rate, "rate", 0, "messages/s over all sessions (echo), publishes/s (broadcast), sessions/s (churn); 0 = closed loop")
	fs.DurationVar(&duration, "duration", 10*time.Second, "measured window, at most 1h")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "traffic before the window (default 2s, idle 0; negative for none)")
	fs.IntVar(&cfg.Payload, "payload", 32, "message size in bytes, send time stamp included")
	fs.IntVar(&cfg.Inflight, "inflight", 0, "messages a session may have in flight (default 64 open loop, 1 closed loop)")
	fs.IntVar(&cfg.SourceIPs, "source-ips", 1, "spread connections over this many source addresses 127.0.0.1, 127.0.0.2, …")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "permit a target that is not a loopback address")
	fs.StringVar(&cfg.EchoPrefix, "echo-prefix", "/echo", "echo endpoint prefix")
	fs.StringVar(&cfg.BroadcastPrefix, "broadcast-prefix", "/broadcast", "broadcast endpoint prefix")
	fs.StringVar(&cfg.HubPrefix, "hub-prefix", "/hub", "hub endpoint prefix (scenario hub)")
	fs.IntVar(&cfg.Rooms, "rooms", 0, "hub: channels the sessions are spread over, evenly (default 1; compare: one per 10 sessions)")
	fs.StringVar(&cfg.APIKey, "api-key", "", "hub: the node's --api-key, for the backend's publishes (POST /api/publish)")
	fs.DurationVar(&cfg.Settle, "settle", 0, "idle: wait after opening before measuring (default 2s)")
	fs.StringVar(&pids, "server-pids", "", "comma list of server process ids to measure CPU and RSS of (all of them: nodes, Redis, NATS, balancer)")
	fs.StringVar(&cfg.Label, "label", "", "target name in reports (default the URL)")
	fs.StringVar(&out, "out", "loadtest/results", "directory for the JSON result and HTML report")
	fs.BoolVar(&quiet, "quiet", false, "no live progress line")

	render := fs.String("render", "", "redraw the HTML and Markdown of a comparison from its compare.json, measuring nothing")
	fs.BoolVar(&compare, "compare", false, "start each target, run the scenarios against it, and report Shoal's ratios to the peers")
	fs.StringVar(&scens, "scenarios", "ws-echo,xhr-polling,xhr-streaming,eventsource,broadcast,hub,churn,idle", "compare: scenarios to run")
	fs.StringVar(&targets, "targets", "sockjs-node,sockjs-go,shoal,shoal-cluster,sockjs-node-sticky", "compare: targets to run")
	fs.StringVar(&cc.RepoRoot, "repo", ".", "compare: the Shoal repository root (builds ./node and the peers from it)")
	fs.StringVar(&cc.ShoalBin, "shoal-bin", "", "compare: a built node program to run instead of building ./node")
	note := fs.String("note", "", "compare: a line to add to the report's notes")
	fs.BoolVar(&cc.NoClusterGossip, "no-gossip", false, "compare: start the cluster's nodes without memberlist (--gossip-listen/--join)")
	fs.StringVar(&cc.ServerCPUs, "server-cpus", "", "compare: CPU list servers are pinned to with taskset (default: the last CPU)")
	fs.StringVar(&cc.LoadCPUs, "load-cpus", "", "compare: CPU list this program pins itself to (default: all but the servers')")
	fs.IntVar(&cc.IdleSessions, "idle-sessions", 0, "compare: sessions the idle scenario holds (default 2000)")
	fs.BoolVar(&cc.ClosedLoop, "closed-loop", false, "compare: run echo and broadcast at saturation (rate 0, closed-loop sizes; default scenarios: those five)")
	fs.Float64Var(&cc.ServerShare, "server-share", 0, "compare: limit the servers to this share of one CPU together (cgroup quota, root only), so a closed loop saturates them rather than the load generator")
	fs.Float64Var(&cc.Scale, "scale", 1, "compare: multiply the default sessions and rates (bigger machines)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.Transport = loadtest.Transport(*transport)
	cfg.Duration = duration
	if !quiet {
		cfg.Progress = os.Stderr
	}
	for f := range strings.SplitSeq(pids, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return fmt.Errorf("bad pid %q in --server-pids", f)
		}
		cfg.ServerPIDs = append(cfg.ServerPIDs, pid)
	}
	if *render != "" {
		rep, err := loadtest.RenderCompare(*render)
		if err != nil {
			return err
		}
		fmt.Print(rep.Markdown())
		fmt.Printf("\nreport: %s\n", rep.HTMLPath)
		return nil
	}
	if err := raiseFileLimit(); err != nil {
		fmt.Fprintln(os.Stderr, "shoal-load: warning:", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}

	if compare {
		cc.Base = cfg
		cc.Scenarios = splitList(scens)
		if cc.ClosedLoop && !flagSet(fs, "scenarios") {
			cc.Scenarios = loadtest.ClosedLoopScenarios
		}
		cc.Targets = splitList(targets)
		cc.Out = out
		cc.Log = os.Stderr
		if *note != "" {
			cc.Notes = append(cc.Notes, *note)
		}
		if reexec, err := loadtest.PinSelf(cc); reexec || err != nil {
			return err
		}
		rep, err := loadtest.Compare(ctx, cc)
		if err != nil {
			return err
		}
		fmt.Print(rep.Markdown())
		fmt.Printf("\nreport: %s\nresults: %s\n", rep.HTMLPath, rep.JSONPath)
		return nil
	}

	res, err := loadtest.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Print(res.Summary())
	base := filepath.Join(out, fmt.Sprintf("%s-%s", res.Scenario, res.StartedAt.Format("20060102-150405")))
	if err := res.WriteJSON(base + ".json"); err != nil {
		return err
	}
	if err := res.WriteHTML(base + ".html"); err != nil {
		return err
	}
	fmt.Printf("result: %s.json\nreport: %s.html\n", base, base)
	return nil
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// raiseFileLimit lifts the soft open-files limit to the hard one, so that
// both this program and the servers it starts can hold many sessions. Go
// raises its own limit too, but restores the old one for child processes
// unless the program sets it itself.
func raiseFileLimit() error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("open files limit: %w", err)
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("open files limit: %w", err)
	}
	return nil
}

// flagSet reports whether the command line named the flag.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
