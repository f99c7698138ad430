package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
	"github.com/shoal-rt/shoal/node/nodetest"
)

// --help exits 0 and names every flag's SHOAL_* variable.
func TestHelp(t *testing.T) {
	out := testenv.Run(t, nodetest.Binary(t), "--help")
	for _, want := range []string{"--listen", "SHOAL_LISTEN", "--admin-listen", "SHOAL_ADMIN_LISTEN", "SHOAL_REDIS", "SHOAL_LOG_FORMAT"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help does not mention %s:\n%s", want, out)
		}
	}
	if out := testenv.Run(t, nodetest.Binary(t), "--version"); !strings.HasPrefix(out, "shoal ") {
		t.Errorf("--version: %q", out)
	}
}

// A node waiting for Redis already listens: /healthz 200, /readyz 503 with
// what it waits for, other requests 503; once Redis is up the node serves.
// With --admin-listen the public listener serves none of the operations
// endpoints, and --log-format json writes one JSON object a line.
func TestStartupWaitsVisibly(t *testing.T) {
	redisPort := testenv.FreePort(t)
	public := testenv.FreeAddr(t)
	admin := testenv.FreeAddr(t)
	n := nodetest.Start(t, nodetest.Binary(t), "--listen", public, "--admin-listen", admin, "--node-id", "starting",
		"--redis", fmt.Sprintf("redis://127.0.0.1:%d/0", redisPort), "--log-format", "json")
	nodetest.WaitGet(t, 20*time.Second, "http://"+admin+"/readyz", 503, "waiting for redis at redis://127.0.0.1:", "refused")
	if code, _, err := nodetest.TryGet("http://" + admin + "/healthz"); err != nil || code != 200 {
		t.Fatalf("/healthz while waiting for Redis = %d, %v", code, err)
	}
	if code, body, err := nodetest.TryGet("http://" + public + "/echo/info"); err != nil || code != 503 || !strings.Contains(body, "starting") {
		t.Fatalf("/echo/info while waiting for Redis = %d %q, %v", code, body, err)
	}

	testenv.RedisOn(t, redisPort)
	nodetest.WaitGet(t, 20*time.Second, "http://"+admin+"/readyz", 200)
	if code, _, err := nodetest.TryGet("http://" + public + "/echo/info"); err != nil || code != 200 {
		t.Fatalf("/echo/info once ready = %d, %v", code, err)
	}
	for _, path := range []string{"/metrics", "/healthz", "/readyz", "/_shoal/stats", "/_shoal/cluster"} {
		if code, _, err := nodetest.TryGet("http://" + public + path); err != nil || code != 404 {
			t.Errorf("public GET %s = %d, %v; want 404 with --admin-listen", path, code, err)
		}
		if code, _, err := nodetest.TryGet("http://" + admin + path); err != nil || code != 200 {
			t.Errorf("admin GET %s = %d, %v", path, code, err)
		}
	}

	// Latency histograms: store operations by script name, the bus probe.
	if code, body, err := nodetest.TryPost(t, "http://"+public+"/echo/000/metrics/xhr", ""); err != nil || code != 200 || body != "o\n" {
		t.Fatalf("open a session: %d %q, %v", code, body, err)
	}
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		_, body, err := nodetest.TryGet("http://" + admin + "/metrics")
		if err != nil {
			return err
		}
		for _, want := range []string{`shoal_store_op_duration_seconds_count{op="create",result="ok"} `,
			`shoal_bus_op_duration_seconds_count{op="publish",result="ok"} `, "shoal_bus_publish_deliver_seconds_count "} {
			i := strings.Index(body, want)
			if i < 0 || strings.HasPrefix(body[i+len(want):], "0\n") {
				return fmt.Errorf("no %s in /metrics", want)
			}
		}
		return nil
	})

	sc := bufio.NewScanner(strings.NewReader(n.Output()))
	lines := 0
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		if rec["level"] == nil || rec["msg"] == nil {
			t.Fatalf("log line without level or msg: %q", sc.Text())
		}
		lines++
	}
	if lines == 0 {
		t.Fatal("no log lines")
	}
}
