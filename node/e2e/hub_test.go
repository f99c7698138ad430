package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/node/nodetest"
)

// The hub's end-to-end test: three nodes sharing Redis and NATS behind the
// round-robin HAProxy, tokens minted by real Django, the real sockjs-client
// in Node.js (testdata/hub/hub.js) and in Chromium (testdata/browser/hub.js)
// running the same scenarios (testdata/hub/scenarios.js) on every
// transport; the backend publishing into rooms by Redis and the HTTP API
// (hub_backend_test.go); then the chat demo with two users and the echo
// demo page's errors. One cluster serves every subtest.

const (
	hubSecret      = "e2e-django-secret-key-!@#$%^&*(-_=+)"
	hubSalt        = "shoal.hub.e2e"
	hubMaxAge      = "300"
	hubBlogChannel = "news-blog"
	hubMaxMessage  = 4096
)

// hubConfigFile is the --config the cluster runs with: rooms any signed-in
// user may join and post in (with join/leave notices), every other channel
// only for those whose token grants it; limits low enough to reach.
const hubConfigFile = `{
  "channels": [
    {"pattern": "room-*", "subscribe": "authenticated", "publish": "subscribers", "join_leave": true},
    {"pattern": "*", "subscribe": "granted", "publish": "subscribers"}
  ],
  "limits": {"message_rate": 20, "message_burst": 40, "max_message_size": 4096, "max_violations": 30}
}`

// The limits scenario sends pings in rounds of hubFloodRound, at most
// hubFloodRounds: past the burst (40) and then past max_violations (30)
// on one node.
const (
	hubFloodRound  = 10
	hubFloodRounds = 60
)

type hubTokens struct {
	Ann         string `json:"ann"`
	Bob         string `json:"bob"`
	Carol       string `json:"carol"`
	Blog        string `json:"blog"`
	BlogChannel string `json:"blogChannel"`
	Expired     string `json:"expired"`
	BadSalt     string `json:"badSalt"`
}

// mintHubTokens has real Django (python3-django) sign the tokens, with the
// token package's test script.
func mintHubTokens(t *testing.T) hubTokens {
	t.Helper()
	dj := func(payload any, extra ...any) map[string]any {
		r := map[string]any{"django": payload, "secret": hubSecret, "salt": hubSalt}
		for i := 0; i+1 < len(extra); i += 2 {
			r[extra[i].(string)] = extra[i+1]
		}
		return r
	}
	requests := []map[string]any{
		dj(map[string]any{"user": "ann", "channels": []string{"secret-ann", hubBlogChannel}}),
		dj(map[string]any{"user": "bob", "channels": []string{"secret-bob"}}, "algorithm", "sha1"),
		dj(map[string]any{"user": "carol"}, "compress", true),
		dj(hubBlogChannel),
		dj(map[string]any{"user": "ann"}, "age", 600),
		dj(map[string]any{"user": "ann"}, "salt", "another-salt"),
	}
	toks := runMint(t, requests)
	return hubTokens{Ann: toks[0], Bob: toks[1], Carol: toks[2], Blog: toks[3], BlogChannel: hubBlogChannel, Expired: toks[4], BadSalt: toks[5]}
}

type hubScenario struct {
	Errors []string       `json:"errors"`
	Facts  map[string]any `json:"facts"`
	Ms     int            `json:"ms"`
}

// hubResults: transport → scenario → what happened.
type hubResults map[string]map[string]hubScenario

var hubScenarioNames = []string{"seedBlog", "auth", "subscribe", "recovery", "acks", "presence", "limits"}

// checkHubResults makes one subtest per transport and scenario.
func checkHubResults(t *testing.T, results hubResults, transports []string) {
	t.Helper()
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			got, ok := results[tr]
			if !ok {
				t.Fatalf("no results for %s", tr)
			}
			if d, ok := got["driver"]; ok {
				t.Fatalf("driver: %q", d.Errors)
			}
			for _, name := range hubScenarioNames {
				t.Run(name, func(t *testing.T) {
					s, ok := got[name]
					if !ok {
						t.Fatal("scenario did not run")
					}
					for _, e := range s.Errors {
						t.Error(e)
					}
					if testing.Verbose() || t.Failed() {
						facts, _ := json.Marshal(s.Facts)
						t.Logf("%d ms, facts %s", s.Ms, facts)
					}
				})
			}
		})
	}
}

// runDriver runs the Node.js script in dir with cfg (JSON) as its argument
// and returns its standard output; timeout is what the script allows
// itself, the process gets 30 s more.
func runDriver(t *testing.T, dir, script string, cfg any, timeout time.Duration) []byte {
	t.Helper()
	arg, _ := json.Marshal(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	out, err := nodetest.NodeJS(t, ctx, filepath.Join(dir, script), string(arg)).Output()
	if err != nil {
		t.Fatalf("%s: %v\nstdout: %s", script, err, out)
	}
	return out
}

func TestHubCluster(t *testing.T) {
	for _, dir := range []string{clientDir, browserDir} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "sockjs-client")); err != nil {
			t.Fatalf("%v: run scripts/test, which runs npm ci in %s", err, dir)
		}
	}
	tokens := mintHubTokens(t)
	cfgPath := filepath.Join(t.TempDir(), "hub.json")
	if err := os.WriteFile(cfgPath, []byte(hubConfigFile), 0o644); err != nil {
		t.Fatal(err)
	}
	sockjsClient, err := filepath.Abs(filepath.Join(browserDir, "node_modules", "sockjs-client"))
	if err != nil {
		t.Fatal(err)
	}
	roomTokens := hubRoomTokens(t)
	c := nodetest.StartCluster(t, 3, "--apps", "hub,echo", "--hub-demo", "--config", cfgPath, "--api-key", hubAPIKey,
		"--django-secret-key", hubSecret, "--django-salt", hubSalt, "--django-max-age", hubMaxAge,
		"--sockjs-client", sockjsClient)
	var nodes []string
	for _, n := range c.Nodes {
		nodes = append(nodes, n.URL())
	}
	base := map[string]any{
		"base": c.URL(), "nodes": nodes, "prefix": "/hub", "tokens": tokens,
		"maxMessageSize": hubMaxMessage, "floodRound": hubFloodRound, "floodRounds": hubFloodRounds, "stepMs": 20000,
	}
	with := func(extra map[string]any) map[string]any {
		m := make(map[string]any, len(base)+len(extra))
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}

	t.Run("nodejs", func(t *testing.T) {
		start := time.Now()
		out := runDriver(t, "testdata/hub", "hub.js", with(map[string]any{
			"transports": transports, "parallel": true, "timeoutMs": 100000,
		}), 100*time.Second)
		var r struct {
			Error   string     `json:"error"`
			Results hubResults `json:"results"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("driver output %q: %v", out, err)
		}
		if r.Error != "" {
			t.Fatalf("driver error: %s", r.Error)
		}
		t.Logf("Node.js scenarios on %d transports: %v", len(transports), time.Since(start).Round(time.Millisecond))
		checkHubResults(t, r.Results, transports)
	})

	t.Run("backend publishes", func(t *testing.T) {
		runBackendRooms(t, c, with(map[string]any{
			"transports": transports, "timeoutMs": 80000,
			"backend": map[string]any{"rooms": roomTokens, "want": 2 * hubBackendEach},
		}))
	})

	t.Run("chromium", func(t *testing.T) {
		start := time.Now()
		out := runDriver(t, browserDir, "hub.js", with(map[string]any{
			"chromium": chromium(t), "transports": browserHubTransports(), "timeoutMs": 240000, "scenarioMs": 30000,
			"chat": map[string]any{"room": "room-chat", "screenshotDir": os.TempDir()},
		}), 240*time.Second)
		var r struct {
			Error       string     `json:"error"`
			Scenarios   hubResults `json:"scenarios"`
			OffLoopback []string   `json:"offLoopback"`
			PageErrors  []string   `json:"pageErrors"`
			LaunchMs    int        `json:"launchMs"`
			ScenariosMs int        `json:"scenariosMs"`
			ChatMs      int        `json:"chatMs"`
			EchoMs      int        `json:"echoMs"`
			Chat        *struct {
				Users map[string]struct {
					Status, Me, Presence, Count, Error, Screenshot string
					Messages                                       []string
				} `json:"users"`
				LateJoiner []string `json:"lateJoiner"`
			} `json:"chat"`
			ChatError string `json:"chatError"`
			Echo      *struct {
				Works    struct{ Status, Log string } `json:"works"`
				NoSockJS struct {
					Error     string `json:"error"`
					Visible   bool   `json:"visible"`
					Msg       string `json:"msg"`
					Navigated bool   `json:"navigated"`
				} `json:"noSockJS"`
				NoServer struct {
					Error, Status string
					Visible       bool
				} `json:"noServer"`
			} `json:"echo"`
			EchoError string   `json:"echoError"`
			Timings   []string `json:"timings"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("driver output %q: %v", out, err)
		}
		t.Logf("Chromium: launch %d ms, scenarios on %d transports %d ms, chat %d ms, echo %d ms; driver %v",
			r.LaunchMs, len(browserHubTransports()), r.ScenariosMs, r.ChatMs, r.EchoMs, time.Since(start).Round(time.Millisecond))
		if r.Error != "" {
			t.Errorf("driver error: %s", r.Error)
		}
		if testing.Verbose() {
			t.Logf("page timings: %q", r.Timings)
		}
		if len(r.OffLoopback) > 0 {
			t.Errorf("requests left loopback (the node serves sockjs-client; nothing may come from a CDN): %q", r.OffLoopback)
		}
		// The echo page's "no sockjs-client" check aborts the script on
		// purpose; nothing else may throw.
		for _, e := range r.PageErrors {
			t.Errorf("page error: %s", e)
		}
		t.Run("scenarios", func(t *testing.T) { checkHubResults(t, r.Scenarios, browserHubTransports()) })
		t.Run("chat demo", func(t *testing.T) {
			if r.Chat == nil {
				t.Fatalf("chat did not run: %s", r.ChatError)
			}
			for _, user := range []string{"ann", "bob"} {
				u, ok := r.Chat.Users[user]
				if !ok {
					t.Fatalf("no page for %s", user)
				}
				t.Logf("%s's page (%s): status %q, %q, presence %q, messages %q", user, u.Screenshot, u.Status, u.Me, u.Presence, u.Messages)
				if want := map[string]string{"ann": "connected over websocket", "bob": "connected over xhr-polling"}[user]; u.Status != want || u.Error != "" {
					t.Errorf("%s: status %q, error %q", user, u.Status, u.Error)
				}
				if u.Me != "you are "+user {
					t.Errorf("%s: the page names its user %q (from the token)", user, u.Me)
				}
				// bob's "forged name" claimed to be mallory's: the hub's
				// stamp names its real sender.
				want := []string{"ann:hello from ann", "bob:forged name", "bob:hello from bob"}
				got := slices.Clone(u.Messages)
				sort.Strings(got)
				if !slices.Equal(got, want) {
					t.Errorf("%s sees %q, want %q", user, u.Messages, want)
				}
				if u.Count != "2" {
					t.Errorf("%s: presence %q, want 2 online", user, u.Presence)
				}
			}
			if late := r.Chat.LateJoiner; len(late) < 2 {
				t.Errorf("a late joiner's history shows %q, want both earlier lines", late)
			}
		})
		t.Run("echo demo", func(t *testing.T) {
			if r.Echo == nil {
				t.Fatalf("echo did not run: %s", r.EchoError)
			}
			if !strings.HasPrefix(r.Echo.Works.Status, "connected") || !strings.Contains(r.Echo.Works.Log, "< echo me") {
				t.Errorf("echo with the node's sockjs-client: %+v", r.Echo.Works)
			}
			ns := r.Echo.NoSockJS
			if !ns.Visible || !strings.Contains(ns.Error, "Could not load sockjs-client") {
				t.Errorf("without sockjs-client: error %q visible %v", ns.Error, ns.Visible)
			}
			if ns.Msg != "keep me" || ns.Navigated {
				t.Errorf("Send without a connection: input %q, page reloaded %v", ns.Msg, ns.Navigated)
			}
			if sv := r.Echo.NoServer; !sv.Visible || !strings.Contains(sv.Error, "Cannot reach the server") {
				t.Errorf("server unreachable: %+v", sv)
			}
		})
	})
}

// browserHubTransports are the transports the browser scenarios run on:
// all of Chromium's, or SHOAL_E2E_TRANSPORTS (comma-separated) to look
// at a few while debugging.
func browserHubTransports() []string {
	if v := os.Getenv("SHOAL_E2E_TRANSPORTS"); v != "" {
		return strings.Split(v, ",")
	}
	return browserTransports
}
