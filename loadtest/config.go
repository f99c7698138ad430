package loadtest

import (
	"fmt"
	"io"
	"time"
)

// Scenario kinds. The names users pass (ws-echo, xhr-polling, …) map onto
// these with a default transport, see ParseScenario.
const (
	KindEcho      = "echo"      // every session sends stamped messages to /echo and times the echo
	KindBroadcast = "broadcast" // one publisher on /broadcast, every session receives every message
	KindChurn     = "churn"     // sessions opened per second, each echoes one message and closes
	KindIdle      = "idle"      // sessions held open, server memory per session measured
	KindHub       = "hub"       // sessions join rooms on the hub, a backend publishes through its HTTP API
)

// Bounds on every run, whatever the flags say: a load test must stop by
// itself.
const (
	MaxSessions = 100_000
	MaxDuration = time.Hour
	MaxWarmup   = 10 * time.Minute
	MaxRate     = 1_000_000
	MaxPayload  = 64 << 10
	MaxInflight = 10_000
)

// scenarioAliases are the scenario names of the issue: a kind with a
// transport.
var scenarioAliases = map[string]struct {
	kind      string
	transport Transport
}{
	"echo":          {KindEcho, ""},
	"ws-echo":       {KindEcho, TransportWebsocket},
	"xhr-polling":   {KindEcho, TransportXHRPolling},
	"broadcast":     {KindBroadcast, ""},
	"xhr-streaming": {KindBroadcast, TransportXHRStreaming},
	"eventsource":   {KindBroadcast, TransportEventSource},
	"churn":         {KindChurn, ""},
	"idle":          {KindIdle, ""},
	"hub":           {KindHub, ""},
}

// ScenarioNames lists the names ParseScenario accepts.
var ScenarioNames = []string{"ws-echo", "xhr-polling", "broadcast", "xhr-streaming", "eventsource", "churn", "idle", "hub", "echo"}

// ParseScenario resolves a scenario name and an optional transport to a
// kind and the transport its sessions use.
func ParseScenario(name string, t Transport) (kind string, transport Transport, err error) {
	a, ok := scenarioAliases[name]
	if !ok {
		return "", "", fmt.Errorf("loadtest: unknown scenario %q (want one of %v)", name, ScenarioNames)
	}
	switch {
	case t == "" && a.transport == "":
		t = TransportWebsocket
	case t == "":
		t = a.transport
	case a.transport != "" && t != a.transport:
		return "", "", fmt.Errorf("loadtest: scenario %s runs on %s, not %s (use %s with --transport)", name, a.transport, t, a.kind)
	}
	if !validTransport(t) {
		return "", "", fmt.Errorf("loadtest: unknown transport %q (want one of %v)", t, Transports)
	}
	return a.kind, t, nil
}

func validTransport(t Transport) bool {
	for _, v := range Transports {
		if v == t {
			return true
		}
	}
	return false
}

// Config describes one run. A zero field takes the scenario's default.
type Config struct {
	URL       string    // server root, http://127.0.0.1:8080
	Scenario  string    // a name of ScenarioNames
	Transport Transport // sessions' transport; "" = the scenario's

	// Sessions is how many sessions echo, receive or idle; for churn, how
	// many cycles may be in flight at once.
	Sessions int
	// Rate is messages per second over all sessions (echo), publishes per
	// second (broadcast) or sessions opened per second (churn). 0 makes
	// echo and broadcast closed-loop: each session sends its next message
	// when the previous one is back.
	Rate     float64
	Duration time.Duration // the measured window
	Warmup   time.Duration // traffic before the window; negative = none
	Payload  int           // message size in bytes, time stamp included

	// Inflight bounds messages a session has sent and not yet seen back;
	// an open-loop send beyond it is skipped and counted.
	Inflight        int
	OpenConcurrency int           // sessions being opened at once during the ramp
	OpenTimeout     time.Duration // bound on opening one session
	RampTimeout     time.Duration // bound on opening all of them
	Settle          time.Duration // idle: wait after the ramp before measuring

	SourceIPs   int  // local addresses 127.0.0.1… to spread connections over
	AllowRemote bool // permit a target that is not loopback

	EchoPrefix      string // "/echo"
	BroadcastPrefix string // "/broadcast"

	// The hub scenario: HubPrefix is the hub's endpoint ("/hub"); Rooms is
	// how many channels its sessions are spread over, evenly (default 1);
	// APIKey is the node's --api-key, which the backend's publishes carry.
	HubPrefix string
	Rooms     int
	APIKey    string

	// ServerPIDs are the server's processes (all of them: nodes, Redis,
	// NATS, balancer) whose CPU and memory the run reports; their
	// descendants at the start of the run are measured too.
	ServerPIDs []int
	// Counters, when set, are read at the window's edges (Redis and NATS
	// counts of a cluster: see Result.BackendPerOp).
	Counters Counters `json:"-"`

	Label    string    // names the target in reports
	Progress io.Writer // live progress line; nil for none
}

// kindSessions are the default session counts per kind.
var kindSessions = map[string]int{KindEcho: 10, KindBroadcast: 100, KindChurn: 20, KindIdle: 1000, KindHub: 100}

// defaultChurnRate is sessions opened per second when churn has no rate.
const defaultChurnRate = 20

// normalize fills defaults and checks bounds.
func (c Config) normalize() (Config, string, error) {
	if c.Scenario == "" {
		c.Scenario = "ws-echo"
	}
	kind, t, err := ParseScenario(c.Scenario, c.Transport)
	if err != nil {
		return c, "", err
	}
	c.Transport = t
	if c.Sessions == 0 {
		c.Sessions = kindSessions[kind]
	}
	if c.Rate == 0 && kind == KindChurn {
		c.Rate = defaultChurnRate
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	switch {
	case c.Warmup < 0:
		c.Warmup = 0
	case c.Warmup == 0 && kind != KindIdle:
		c.Warmup = 2 * time.Second
	}
	if c.Payload == 0 {
		c.Payload = 32
	}
	if c.Inflight == 0 {
		c.Inflight = 64
		if c.Rate == 0 {
			c.Inflight = 1
		}
	}
	if c.OpenConcurrency == 0 {
		c.OpenConcurrency = 32
	}
	if c.OpenTimeout == 0 {
		c.OpenTimeout = 10 * time.Second
	}
	if c.RampTimeout == 0 {
		c.RampTimeout = 2 * time.Minute
	}
	if c.Settle == 0 {
		c.Settle = 2 * time.Second
	}
	if c.EchoPrefix == "" {
		c.EchoPrefix = "/echo"
	}
	if c.BroadcastPrefix == "" {
		c.BroadcastPrefix = "/broadcast"
	}
	if c.HubPrefix == "" {
		c.HubPrefix = "/hub"
	}
	if c.Rooms == 0 {
		c.Rooms = 1
	}
	if c.Label == "" {
		c.Label = c.URL
	}
	switch {
	case c.URL == "":
		return c, "", fmt.Errorf("loadtest: no target url")
	case c.Sessions < 1 || c.Sessions > MaxSessions:
		return c, "", fmt.Errorf("loadtest: sessions %d: want 1..%d", c.Sessions, MaxSessions)
	case c.Rate < 0 || c.Rate > MaxRate:
		return c, "", fmt.Errorf("loadtest: rate %g: want 0..%d", c.Rate, MaxRate)
	case c.Duration < time.Second || c.Duration > MaxDuration:
		return c, "", fmt.Errorf("loadtest: duration %s: want 1s..%s", c.Duration, MaxDuration)
	case c.Warmup > MaxWarmup:
		return c, "", fmt.Errorf("loadtest: warmup %s: want at most %s", c.Warmup, MaxWarmup)
	case c.Payload < 0 || c.Payload > MaxPayload:
		return c, "", fmt.Errorf("loadtest: payload %d: want 0..%d bytes", c.Payload, MaxPayload)
	case c.Inflight < 1 || c.Inflight > MaxInflight:
		return c, "", fmt.Errorf("loadtest: inflight %d: want 1..%d", c.Inflight, MaxInflight)
	case c.OpenConcurrency < 1 || c.OpenConcurrency > 1024:
		return c, "", fmt.Errorf("loadtest: open concurrency %d: want 1..1024", c.OpenConcurrency)
	case c.OpenTimeout > time.Minute || c.RampTimeout > 30*time.Minute || c.Settle > 5*time.Minute:
		return c, "", fmt.Errorf("loadtest: open timeout ≤ 1m, ramp timeout ≤ 30m, settle ≤ 5m")
	case c.SourceIPs < 0 || c.SourceIPs > maxSourceIPs:
		return c, "", fmt.Errorf("loadtest: source ips %d: want 0..%d", c.SourceIPs, maxSourceIPs)
	case kind == KindHub && (c.Rooms < 1 || c.Sessions%c.Rooms != 0):
		return c, "", fmt.Errorf("loadtest: hub: %d sessions do not split evenly into %d rooms", c.Sessions, c.Rooms)
	case kind == KindHub && c.APIKey == "":
		return c, "", fmt.Errorf("loadtest: hub: no API key (the node's --api-key), which the backend's publishes need")
	}
	return c, kind, nil
}
