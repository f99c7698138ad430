package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"

	"github.com/shoal-rt/shoal/node/nodetest"
	"github.com/shoal-rt/shoal/node/ops"
	"github.com/shoal-rt/shoal/store"
)

func TestParseFlags(t *testing.T) {
	env := map[string]string{"SHOAL_LISTEN": "127.0.0.1:9", "SHOAL_APPS": "conformance", "SHOAL_NODE_ID": "n1"}
	getenv := func(k string) string { return env[k] }

	cfg, err := parseFlags(nil, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9" || cfg.Apps != "conformance" || cfg.NodeID != "n1" || cfg.LogLevel != "info" {
		t.Fatalf("env not applied: %+v", cfg)
	}
	cfg, err = parseFlags([]string{"--listen", "127.0.0.1:10", "--node-id", "n2"}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:10" || cfg.NodeID != "n2" || cfg.Apps != "conformance" {
		t.Fatalf("flags must win over env: %+v", cfg)
	}
	cfg, err = parseFlags(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.Apps != "echo" || len(cfg.NodeID) != 26 {
		t.Fatalf("defaults: %+v", cfg)
	}
	if _, err := parseFlags([]string{"extra"}, getenv); err == nil {
		t.Fatal("stray argument accepted")
	}
}

func TestBackendsInMemory(t *testing.T) {
	st, b, checks, closeAll, err := backends(context.Background(), config{}, slog.Default(), &startup{}, ops.NewLatency())
	if err != nil || st == nil || b == nil || len(checks) != 0 {
		t.Fatalf("in-memory backends: %v (%d checks)", err, len(checks))
	}
	closeAll()
}

func TestBackendsUnreachableNamesWhatFailed(t *testing.T) {
	port := testenv.FreePort(t) // nothing listens there
	for _, tc := range []struct {
		what string
		cfg  config
	}{
		{"redis", config{Redis: fmt.Sprintf("redis://:secret@127.0.0.1:%d/0", port)}},
		{"nats", config{NATS: fmt.Sprintf("nats://127.0.0.1:%d", port)}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		_, _, _, _, err := backends(ctx, tc.cfg, slog.New(slog.DiscardHandler), &startup{}, ops.NewLatency())
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.what+" at ") || !strings.Contains(err.Error(), fmt.Sprint(port)) {
			t.Errorf("%s: error %v does not say what failed", tc.what, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error leaks the password: %v", tc.what, err)
		}
	}
}

func TestBackendsReal(t *testing.T) {
	cfg := config{Redis: nodetest.Redis(t), NATS: nodetest.NATS(t), RedisPrefix: "maintest"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, b, checks, closeAll, err := backends(ctx, cfg, slog.Default(), &startup{}, ops.NewLatency())
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	if len(checks) != 2 {
		t.Fatalf("%d backend checks, want redis and nats", len(checks))
	}
	for _, c := range checks {
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("%s ping: %v", c.Name, err)
		}
	}
	if created, err := st.Create(ctx, "s1", store.CreateOptions{DisconnectDelay: time.Second}); err != nil || !created {
		t.Fatalf("create on redis: %v %v", created, err)
	}
	got := make(chan []byte, 1)
	cancelListen, err := b.ListenNode("n1", func(m []byte) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer cancelListen()
	if err := b.SendNode(ctx, "n1", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if string(m) != "hi" {
			t.Fatalf("got %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message over NATS")
	}
}

// TestNodeRunsWithQuietSysmon: the node program runs itself again, in the
// same process, with schedtrace in GODEBUG, keeping what GODEBUG held; an
// operator's schedtrace is left alone.
func TestNodeRunsWithQuietSysmon(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ given, want string }{
		{"", ops.QuietSysmonSetting},
		{"gctrace=0", "gctrace=0," + ops.QuietSysmonSetting},
		{"schedtrace=0", "schedtrace=0"},
	} {
		addr := testenv.FreeAddr(t)
		p := nodetest.StartEnv(t, []string{"GODEBUG=" + tc.given}, nodetest.Binary(t), "--listen", addr)
		testenv.CheckFor(t, 30*time.Second, 25*time.Millisecond, func() error {
			if p.Exited() {
				t.Fatalf("node exited:\n%s", p.Output())
			}
			resp, err := testenv.HTTPClient(t).Get("http://" + addr + "/healthz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		})
		environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.Cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		var godebug []string
		for kv := range bytes.SplitSeq(environ, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte("GODEBUG=")); ok {
				godebug = append(godebug, string(v))
			}
		}
		if len(godebug) != 1 || godebug[0] != tc.want {
			t.Errorf("GODEBUG %q: the node runs with %q, want %q", tc.given, godebug, tc.want)
		}
		p.Terminate(t)
	}
}
