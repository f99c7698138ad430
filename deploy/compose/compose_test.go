//go:build compose

// Package compose checks a running docker-compose.yml stack from outside:
// what a user of "docker compose up" gets. scripts/compose-test brings the
// stack up (a Docker engine in a network namespace of its own, stand-in
// base images) and runs these checks inside that namespace, where HAProxy's
// published port 8080 is; they are built only with -tags compose.
package compose

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/haproxy"
	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/node/nodetest"
	"github.com/shoal-rt/shoal/node/ops"
)

const (
	lbURL    = "http://127.0.0.1:8080"
	statsURL = "http://127.0.0.1:8404"
)

// nodes are docker-compose.yml's node services, which are also their ids.
var nodes = []string{"node1", "node2", "node3"}

// transports sockjs-client can use in Node.js.
var transports = []string{"websocket", "xhr-streaming", "xhr-polling", "eventsource"}

func env(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run these checks through scripts/compose-test", name)
	}
	return v
}

// compose runs docker-compose on the project's file and project name.
func compose(t *testing.T, args ...string) string {
	t.Helper()
	file := env(t, "SHOAL_COMPOSE_FILE")
	base := []string{"--project-directory", filepath.Dir(file), "-f", file, "-p", env(t, "SHOAL_COMPOSE_PROJECT")}
	out, err := exec.Command("docker-compose", append(base, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

var client = &http.Client{Timeout: 10 * time.Second}

// waitFor polls cond every 200 ms for up to within.
func waitFor(t *testing.T, within time.Duration, cond func() error) {
	t.Helper()
	testenv.CheckFor(t, within, 200*time.Millisecond, cond)
}

// nodesUp: HAProxy sees every one of want UP.
func nodesUp(want ...string) func() error {
	return func() error {
		up, err := haproxy.UpServers(statsURL)
		if err != nil {
			return err
		}
		for _, n := range want {
			if !slices.Contains(up, n) {
				return fmt.Errorf("HAProxy has %v UP, want %v", up, want)
			}
		}
		return nil
	}
}

// membersAre: the node HAProxy picks sees exactly want alive.
func membersAre(want ...string) func() error {
	return func() error {
		alive, err := nodetest.AliveMembers(lbURL)
		if err != nil {
			return err
		}
		ids := slices.Sorted(maps.Keys(alive))
		if !slices.Equal(ids, want) {
			return fmt.Errorf("alive members %v, want %v", ids, want)
		}
		return nil
	}
}

func TestCompose(t *testing.T) {
	// The stack was just started: HAProxy marks a node up after two
	// passed /readyz checks (2 s apart), and memberlist needs a moment.
	waitFor(t, 90*time.Second, nodesUp(nodes...))
	waitFor(t, 60*time.Second, membersAre(nodes...))
	t.Run("Members", testMembers)
	t.Run("RoundRobin", testRoundRobin)
	t.Run("SockJSClientServed", testSockJSClientServed)
	t.Run("Transports", testTransports)
	t.Run("HubPublish", testHubPublish)
	t.Run("KillNode", testKillNode)
}

// testMembers: every node sees the same three members, each advertising an
// HTTP address the others reach (its container's address, not 0.0.0.0).
func testMembers(t *testing.T) {
	seen := map[string]ops.ClusterView{}
	waitFor(t, 20*time.Second, func() error {
		var v ops.ClusterView
		if err := nodetest.GetJSON(lbURL+"/_shoal/cluster", &v); err != nil {
			return err
		}
		seen[v.Self] = v
		if len(seen) < len(nodes) {
			return fmt.Errorf("views from %d nodes", len(seen))
		}
		return nil
	})
	for self, v := range seen {
		if !v.Ready {
			t.Errorf("%s: not ready", self)
		}
		for _, m := range v.Members {
			if m.HTTPAddr == "" || strings.HasPrefix(m.HTTPAddr, "0.0.0.0") || strings.HasPrefix(m.HTTPAddr, "127.") {
				t.Errorf("%s sees %s at HTTP address %q", self, m.ID, m.HTTPAddr)
			}
			// The image stamps the VERSION build argument in (-ldflags).
			if want := env(t, "SHOAL_BUILD_VERSION"); m.Version != want {
				t.Errorf("%s sees %s with version %q, want %q", self, m.ID, m.Version, want)
			}
		}
		t.Logf("%s sees %+v", self, v.Members)
	}
	// Cluster stats fetch every member's figures over the advertised
	// addresses: none may be unreachable.
	var st struct {
		Nodes       map[string]json.RawMessage `json:"nodes"`
		Unreachable map[string]string          `json:"unreachable"`
	}
	if err := nodetest.GetJSON(lbURL+"/_shoal/stats", &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != len(nodes) || len(st.Unreachable) != 0 {
		t.Errorf("/_shoal/stats: figures from %d nodes, unreachable %v", len(st.Nodes), st.Unreachable)
	}
}

// testRoundRobin: consecutive requests on one keep-alive connection rotate
// over the three nodes.
func testRoundRobin(t *testing.T) { nodetest.CheckRotation(t, lbURL, nodes, 10) }

// testSockJSClientServed: the image's npm copy of sockjs-client is served
// at /sockjs.min.js, and the demo page loads it from there, not the CDN.
func testSockJSClientServed(t *testing.T) {
	get := func(path string) string {
		resp, err := client.Get(lbURL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		return string(body)
	}
	if js := get("/sockjs.min.js"); !strings.Contains(js, "SockJS") || len(js) < 10000 {
		t.Errorf("/sockjs.min.js: %d bytes, not sockjs-client", len(js))
	}
	if page := get("/"); !strings.Contains(page, `src="/sockjs.min.js"`) {
		t.Errorf("the demo page does not load /sockjs.min.js:\n%s", page)
	}
}

type echoResult struct {
	Error     string   `json:"error"`
	Transport string   `json:"transport"`
	Received  []string `json:"received"`
}

// testTransports: the real sockjs-client, on every transport it has in
// Node.js, echoes through HAProxy.
func testTransports(t *testing.T) {
	clientDir := env(t, "SHOAL_COMPOSE_CLIENT")
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, "node", filepath.Join(clientDir, "client.js"), "echo", lbURL+"/echo", tr, "20").Output()
			var r echoResult
			if jerr := json.Unmarshal(out, &r); jerr != nil {
				t.Fatalf("client output %q (%v): %v", out, err, jerr)
			}
			if r.Error != "" || r.Transport != tr {
				t.Fatalf("client error %q on transport %q (received %d)", r.Error, r.Transport, len(r.Received))
			}
			want := make([]string, 20)
			for i := range want {
				want[i] = fmt.Sprintf("msg-%d", i)
			}
			if !slices.Equal(r.Received, want) {
				t.Errorf("received %q, want %q", r.Received, want)
			}
		})
	}
}

// startClient starts one of testdata's sockjs-client scripts and waits for
// its "ready" line; the returned function closes its stdin and returns
// the rest of its output.
func startClient(t *testing.T, script string, args ...string) func() string {
	t.Helper()
	cmd := exec.Command("node", append([]string{filepath.Join("testdata", script)}, args...)...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(env(t, "SHOAL_COMPOSE_CLIENT"), "node_modules"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	sc := testenv.StartReading(t, cmd)
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := make(chan string, 1)
	var rest bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
				continue
			}
			rest.WriteString(sc.Text())
		}
		if first {
			lines <- ""
		}
	}()
	select {
	case l := <-lines:
		if l != "ready" {
			<-done
			t.Fatalf("%s did not start: %s %s", script, l, rest.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not ready in 30 s", script)
	}
	return func() string {
		stdin.Close()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("%s: no result within 60 s of its stdin closing", script)
		}
		cmd.Wait()
		return rest.String()
	}
}

// testHubPublish: hub sessions on every transport subscribe to a channel
// through HAProxy; a backend publishes over the HTTP API (each request to
// the next node) and over Redis PUBLISH; every session gets every message
// once, in order.
func testHubPublish(t *testing.T) {
	apiKey := env(t, "SHOAL_API_KEY")
	const channel, perPath = "news", 5
	wait := startClient(t, "hub.js", lbURL+"/hub", strings.Join(transports, ","), channel, fmt.Sprint(2*perPath))
	for i := range perPath {
		req, _ := http.NewRequest(http.MethodPost, lbURL+"/api/publish",
			strings.NewReader(fmt.Sprintf(`{"channel":%q,"data":{"n":%d}}`, channel, i)))
		req.Header.Set("Authorization", "apikey "+apiKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /api/publish: %s %s", resp.Status, body)
		}
	}
	// One exec for all of them: each docker-compose exec takes seconds.
	var script strings.Builder
	for i := perPath; i < 2*perPath; i++ {
		fmt.Fprintf(&script, `redis-cli PUBLISH shoal:%s '{"n":%d}' && `, channel, i)
	}
	script.WriteString("true")
	compose(t, "exec", "-T", "redis", "sh", "-c", script.String())
	var r struct {
		Sessions []struct {
			Transport string `json:"transport"`
			Received  []struct {
				N       int    `json:"n"`
				Channel string `json:"channel"`
				Offset  int64  `json:"offset"`
			} `json:"received"`
		} `json:"sessions"`
	}
	out := wait()
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Sessions) != len(transports) {
		t.Fatalf("hub client output %q: %v", out, err)
	}
	for _, s := range r.Sessions {
		var ns []int
		for _, m := range s.Received {
			ns = append(ns, m.N)
		}
		want := make([]int, 2*perPath)
		for i := range want {
			want[i] = i
		}
		if !slices.Equal(ns, want) {
			t.Errorf("%s session received %v, want %v", s.Transport, ns, want)
		}
	}
}

type pollingResult struct {
	Error    string `json:"error"`
	Sessions []struct {
		N         int      `json:"n"`
		Transport string   `json:"transport"`
		Sent      int      `json:"sent"`
		Received  []string `json:"received"`
		Closed    *struct {
			Code   int    `json:"code"`
			Reason string `json:"reason"`
		} `json:"closed"`
	} `json:"sessions"`
}

// testKillNode: "docker kill" of a node container (SIGKILL, then its
// address vanishes) while xhr-polling sessions keep echoing through
// HAProxy: no session is lost and every message comes back, in order.
// Then the node is started again and rejoins.
func testKillNode(t *testing.T) {
	const sessions = 12
	victim := "node2"
	wait := startClient(t, "polling.js", lbURL+"/echo", "xhr-polling", fmt.Sprint(sessions))
	time.Sleep(2 * time.Second) // traffic on every node before the kill

	id := compose(t, "ps", "-q", victim)
	killed := time.Now()
	if out, err := exec.Command("docker", "kill", id).CombinedOutput(); err != nil {
		t.Fatalf("docker kill %s: %v\n%s", victim, err, out)
	}
	waitFor(t, 30*time.Second, func() error {
		up, err := haproxy.UpServers(statsURL)
		if err != nil {
			return err
		}
		if slices.Contains(up, victim) {
			return fmt.Errorf("HAProxy still has %s UP: %v", victim, up)
		}
		return nil
	})
	t.Logf("HAProxy marked %s down %v after the kill", victim, time.Since(killed).Round(100*time.Millisecond))
	// restart: unless-stopped leaves a killed container alone (Docker
	// counts a kill as a stop by hand; docs/deploy.md says so).
	if out, _ := exec.Command("docker", "inspect", "-f", "{{.State.Running}} {{.RestartCount}}", id).Output(); strings.TrimSpace(string(out)) != "false 0" {
		t.Errorf("killed %s: running, restarts = %s", victim, out)
	}
	waitFor(t, 60*time.Second, membersAre("node1", "node3"))
	t.Logf("members without %s %v after the kill", victim, time.Since(killed).Round(100*time.Millisecond))
	time.Sleep(3 * time.Second) // traffic on the two survivors

	var r pollingResult
	out := wait()
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Error != "" {
		t.Fatalf("polling client output %q: %v", out, err)
	}
	lost, total := 0, 0
	for _, s := range r.Sessions {
		total += len(s.Received)
		want := make([]string, s.Sent)
		for i := range want {
			want[i] = fmt.Sprintf("%d:%d", s.N, i)
		}
		switch {
		case s.Closed != nil:
			lost++
			why := ""
			if strings.HasPrefix(s.Closed.Reason, "Sending error") {
				// Still seen in 2 of 16 full runs (1 of 12 sessions)
				// after sends became safe to retry: HAProxy's lines
				// of what did not end 200/204, printed by
				// scripts/compose-test on failure, say why.
				why = " (an xhr_send in flight on the killed node)"
			}
			t.Errorf("session %d (%s) closed %d %q after %d of %d echoes%s", s.N, s.Transport, s.Closed.Code, s.Closed.Reason, len(s.Received), s.Sent, why)
		case !slices.Equal(s.Received, want):
			t.Errorf("session %d: sent %d, received %q", s.N, s.Sent, s.Received)
		}
	}
	t.Logf("%d xhr-polling sessions, %d lost, %d echoes across the kill", len(r.Sessions), lost, total)
	if len(r.Sessions) != sessions {
		t.Errorf("%d sessions reported, want %d", len(r.Sessions), sessions)
	}

	// Start it again as a user would.
	compose(t, "start", victim)
	waitFor(t, 60*time.Second, nodesUp(nodes...))
	waitFor(t, 60*time.Second, membersAre(nodes...))
}
