package haproxy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// TestConfigValid runs HAProxy's own check on haproxy.cfg as shipped.
func TestConfigValid(t *testing.T) {
	out, err := exec.Command(testenv.LookPath(t, "haproxy"), "-c", "-f", "haproxy.cfg").CombinedOutput()
	if err != nil {
		t.Fatalf("haproxy -c -f haproxy.cfg: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "[ALERT]") {
		t.Fatalf("haproxy -c reported alerts:\n%s", out)
	}
}

// TestConfigPolicy pins what the deployment depends on, so that an edit of
// haproxy.cfg that brings back stickiness or a short timeout fails here.
func TestConfigPolicy(t *testing.T) {
	lines := map[string]bool{}
	timeouts := map[string]time.Duration{}
	for _, l := range strings.Split(Config, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		lines[l] = true
		f := strings.Fields(l)
		if f[0] == "timeout" && len(f) == 3 {
			d, err := parseDuration(f[2])
			if err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			timeouts[f[1]] = d
		}
		for _, sticky := range []string{"cookie", "stick", "stick-table", "persist", "hash-type"} {
			if f[0] == sticky {
				t.Errorf("sticky routing in haproxy.cfg: %q", l)
			}
		}
		if l == "option prefer-last-server" || (f[0] == "balance" && f[1] != "roundrobin") {
			t.Errorf("requests must rotate over nodes, not stick: %q", l)
		}
	}
	checkHas(t, "haproxy.cfg", func(l string) bool { return lines[l] },
		"balance roundrobin",
		"option httpchk",
		"http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host shoal",
		"http-check expect status 200",
		"option forwardfor",
		`bind "${SHOAL_STATS_BIND-127.0.0.1:8404}"`,
		// A request that found a dead node is sent again elsewhere; a
		// send carries an id, the same on its retries, so that a node
		// appends nothing twice (TestSendRetrySameID).
		"option redispatch 1",
		"retry-on conn-failure empty-response junk-response 502 503 504",
		`unique-id-format %{+X}o\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid`,
		"http-request set-header X-Shoal-Send-Id %[unique-id] if { path_end /xhr_send /jsonp_send }",
		// Streams end with the node's connection, so a killed node's
		// streams end cleanly at the client (sockjs.HeaderStreamEnd).
		"http-request set-header X-Shoal-Stream-End close",
		// A poll or stream parked on a node whose address vanished is cut
		// within seconds, not timeout server (chaos: vanish).
		"option srvtcpka",
		"srvtcpka-idle 1s",
		"srvtcpka-intvl 1s",
		"srvtcpka-cnt 2",
	)
	for name, min := range map[string]time.Duration{
		"client":          60 * time.Second, // above the 25 s heartbeat of parked polls and streams
		"server":          60 * time.Second,
		"tunnel":          time.Hour, // websockets
		"http-keep-alive": time.Second,
		"connect":         time.Second,
	} {
		if got, ok := timeouts[name]; !ok || got < min {
			t.Errorf("timeout %s = %v, want at least %v", name, got, min)
		}
	}
	// A vanished node address holds a connection attempt this long: well
	// under the 5 s disconnect delay, or polls waiting on it let their
	// sessions expire.
	if got := timeouts["connect"]; got > 2*time.Second {
		t.Errorf("timeout connect = %v, want at most 2s (well under the disconnect delay)", got)
	}
}

func TestDeriveRejectsBadInput(t *testing.T) {
	for _, servers := range [][]Server{
		nil,
		{{Name: "", Addr: "127.0.0.1:1"}},
		{{Name: "a b", Addr: "127.0.0.1:1"}},
		{{Name: "a", Addr: "127.0.0.1"}},
		{{Name: "a", Addr: "127.0.0.1:1 check"}},
		{{Name: "a", Addr: ":1"}},
		{{Name: "a", Addr: "127.0.0.1:1"}, {Name: "a", Addr: "127.0.0.1:2"}},
	} {
		if cfg, err := Derive(servers); err == nil {
			t.Errorf("Derive(%v) = nil error, config:\n%s", servers, cfg)
		}
	}
}

// TestScriptConfig: scripts/cluster derives its configuration in awk; it
// must be Derive's, line for line, and valid.
func TestScriptConfig(t *testing.T) {
	cmd := exec.Command(filepath.Join("..", "scripts", "cluster"), "config", "4")
	cmd.Env = append(os.Environ(), "SHOAL_CLUSTER_NODE_PORT=9100")
	script, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/cluster config 4: %v", err)
	}
	var servers []Server
	for i := range 4 {
		servers = append(servers, Server{Name: fmt.Sprintf("node%d", i+1), Addr: fmt.Sprintf("127.0.0.1:%d", 9100+i)})
	}
	want, err := Derive(servers)
	if err != nil {
		t.Fatal(err)
	}
	if string(script) != want {
		t.Fatalf("scripts/cluster config differs from Derive:\n--- script\n%s\n--- Derive\n%s", script, want)
	}
	if n := strings.Count(want, "\n    server "); n != 4 {
		t.Fatalf("derived config has %d server lines, want 4", n)
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, script, 0o644); err != nil {
		t.Fatal(err)
	}
	check := exec.Command(testenv.LookPath(t, "haproxy"), "-c", "-f", path)
	check.Env = append(os.Environ(), EnvBind+"=127.0.0.1:18080", EnvStatsBind+"=127.0.0.1:18404")
	if out, err := check.CombinedOutput(); err != nil || strings.Contains(string(out), "WARNING") {
		t.Fatalf("haproxy -c on the script's config: %v\n%s", err, out)
	}
}

// TestCompose parses docker-compose.yml with Debian's docker-compose, which
// needs no Docker engine for that.
func TestCompose(t *testing.T) {
	dc := testenv.LookPath(t, "docker-compose")
	file := filepath.Join("..", "docker-compose.yml")
	if out, err := exec.Command(dc, "-f", file, "config", "-q").CombinedOutput(); err != nil {
		t.Fatalf("docker-compose config -q: %v\n%s", err, out)
	}
	out, err := exec.Command(dc, "-f", file, "config", "--services").Output()
	if err != nil {
		t.Fatalf("docker-compose config --services: %v", err)
	}
	services := strings.Fields(string(out))
	slices.Sort(services)
	if want := []string{"haproxy", "nats", "node1", "node2", "node3", "redis"}; !slices.Equal(services, want) {
		t.Fatalf("services = %v, want %v", services, want)
	}
	full, err := exec.Command(dc, "-f", file, "config").Output()
	if err != nil {
		t.Fatalf("docker-compose config: %v", err)
	}
	checkHas(t, "docker-compose config", func(w string) bool { return strings.Contains(string(full), w) },
		"haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro",
		"published: 8080",
		"127.0.0.1:8404:8404",
		"SHOAL_REDIS: redis://redis:6379/0",
		"SHOAL_NATS: nats://nats:4222",
		"SHOAL_NODE_ID: node3",
		"condition: service_healthy",
		"GLIBC_TUNABLES: "+strings.TrimPrefix(MallocTunables, "GLIBC_TUNABLES="),
	)
}

// checkHas reports each of wants that has does not find in what.
func checkHas(t *testing.T, what string, has func(string) bool, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !has(want) {
			t.Errorf("%s lacks %q", what, want)
		}
	}
}

// parseDuration reads an HAProxy time: a number with an optional unit
// (us, ms, s, m, h, d); no unit means milliseconds.
func parseDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		d      time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}}
	unit := time.Millisecond
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, unit = strings.TrimSuffix(s, u.suffix), u.d
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad HAProxy time %q", s)
	}
	return time.Duration(n) * unit, nil
}

// TestMallocTunablesEverywhere: the script that starts a native cluster
// runs HAProxy with MallocTunables too (docker-compose.yml: TestCompose).
func TestMallocTunablesEverywhere(t *testing.T) {
	script, err := os.ReadFile(filepath.Join("..", "scripts", "cluster"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(script), MallocTunables+` \`+"\n\t\tstart haproxy ") {
		t.Errorf("scripts/cluster does not start haproxy with %s", MallocTunables)
	}
}
