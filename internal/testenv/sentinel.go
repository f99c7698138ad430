package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SentinelDownAfter is how long the Sentinels of RedisSentinel wait
// before they call an unreachable master down; a failover takes about
// this plus an election and the promotion. Shorter, a master that stalls
// on a loaded machine is replaced while alive, losing what it acknowledged
// in between.
const SentinelDownAfter = 2 * time.Second

// sentinelFailoverTimeout is the Sentinels' failover-timeout: a failover
// that has not completed by then is aborted.
const sentinelFailoverTimeout = 10 * time.Second

// SentinelGroup is a Redis master, its replicas and the Sentinels that
// watch them (redis-server --sentinel), each a RedisServer of the test.
type SentinelGroup struct {
	// MasterName is the name the Sentinels know the master by.
	MasterName string
	// Servers are the master the group started with, then its replicas.
	Servers []*RedisServer
	// Sentinels watch the servers; a majority of them agrees on a
	// failover.
	Sentinels []*RedisServer
}

// RedisSentinel starts a master with replicas and sentinels (a quorum
// of a majority), each on a free loopback port, and returns once every
// replica is in sync and every Sentinel knows them all. args go to the
// master and the replicas, each in a directory of its own.
func RedisSentinel(t testing.TB, replicas, sentinels int, args ...string) *SentinelGroup {
	t.Helper()
	g := &SentinelGroup{MasterName: "shoal"}
	// Each server its own directory: a replica's sync writes an RDB file.
	master := Redis(t, append(args, "--dir", t.TempDir())...)
	g.Servers = append(g.Servers, master)
	host, port, _ := strings.Cut(master.Addr, ":")
	for range replicas {
		g.Servers = append(g.Servers, Redis(t, append([]string{"--replicaof", host, port}, append(args, "--dir", t.TempDir())...)...))
	}
	for range sentinels {
		g.Sentinels = append(g.Sentinels, g.startSentinel(t, master.Addr, sentinels/2+1))
	}
	CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		for _, r := range g.Servers[1:] {
			if info, err := redisInfo(r.Addr, "replication"); err != nil || !strings.Contains(info, "master_link_status:up") {
				return fmt.Errorf("replica %s not in sync yet (%v)", r.Addr, err)
			}
		}
		want := fmt.Sprintf("status=ok,address=%s,slaves=%d,sentinels=%d", master.Addr, replicas, sentinels)
		for _, s := range g.Sentinels {
			if info, err := redisInfo(s.Addr, "sentinel"); err != nil || !strings.Contains(info, want) {
				return fmt.Errorf("sentinel %s: %q, want %q (%v)", s.Addr, info, want, err)
			}
		}
		return nil
	})
	return g
}

// startSentinel starts one Sentinel watching master. Its config file is
// its own (a Sentinel rewrites it), in a directory of the test.
func (g *SentinelGroup) startSentinel(t testing.TB, master string, quorum int) *RedisServer {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	host, port, _ := strings.Cut(master, ":")
	name := g.MasterName
	text := fmt.Sprintf("dir %s\n", dir) +
		fmt.Sprintf("sentinel monitor %s %s %s %d\n", name, host, port, quorum) +
		fmt.Sprintf("sentinel down-after-milliseconds %s %d\n", name, SentinelDownAfter.Milliseconds()) +
		fmt.Sprintf("sentinel failover-timeout %s %d\n", name, sentinelFailoverTimeout.Milliseconds()) +
		fmt.Sprintf("sentinel parallel-syncs %s 2\n", name)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatalf("testenv: sentinel config: %v", err)
	}
	for range 5 {
		r := &RedisServer{Addr: "127.0.0.1:" + strconv.Itoa(FreePort(t)), t: t, conf: conf}
		r.port, _ = strconv.Atoi(strings.TrimPrefix(r.Addr, "127.0.0.1:"))
		if r.Start() {
			t.Cleanup(r.Kill)
			return r
		}
	}
	t.Fatal("testenv: redis-server --sentinel did not start on any of 5 free ports")
	return nil
}

// URL is the group's redis+sentinel:// URL (database 0).
func (g *SentinelGroup) URL() string {
	addrs := make([]string, len(g.Sentinels))
	for i, s := range g.Sentinels {
		addrs[i] = s.Addr
	}
	return "redis+sentinel://" + strings.Join(addrs, ",") + "/" + g.MasterName + "/0"
}

// MasterAddr is the master's address as a majority of the Sentinels
// names it ("" while they disagree or call it down).
func (g *SentinelGroup) MasterAddr() string {
	votes := map[string]int{}
	for _, s := range g.Sentinels {
		info, err := redisInfo(s.Addr, "sentinel")
		if err != nil || !strings.Contains(info, "status=ok") {
			continue
		}
		_, rest, ok := strings.Cut(info, "address=")
		if !ok {
			continue
		}
		addr, _, _ := strings.Cut(rest, ",")
		votes[addr]++
	}
	for addr, n := range votes {
		if n > len(g.Sentinels)/2 {
			return addr
		}
	}
	return ""
}

// Master returns the server the Sentinels name master now.
func (g *SentinelGroup) Master(t testing.TB) *RedisServer {
	t.Helper()
	addr := g.MasterAddr()
	for _, r := range g.Servers {
		if r.Addr == addr {
			return r
		}
	}
	t.Fatalf("testenv: the Sentinels name no master of the group (%q)", addr)
	return nil
}

// WaitFailover waits until a majority of the Sentinels names a master
// other than old and that server says it is one.
func (g *SentinelGroup) WaitFailover(t testing.TB, old string, d time.Duration) *RedisServer {
	t.Helper()
	CheckFor(t, d, 20*time.Millisecond, func() error { return g.failedOver(old) })
	return g.Master(t)
}

// failedOver reports why the failover from old has not happened yet:
// nil once a majority of the Sentinels names another master and that
// server says it is one.
func (g *SentinelGroup) failedOver(old string) error {
	addr := g.MasterAddr()
	if addr == "" || addr == old {
		return fmt.Errorf("the Sentinels name %q as master", addr)
	}
	if info, err := redisInfo(addr, "replication"); err != nil || !strings.Contains(info, "role:master") {
		return fmt.Errorf("%s is not master yet (%v)", addr, err)
	}
	return nil
}

// FailOver asks the Sentinels for a manual failover (SENTINEL FAILOVER)
// from old, the master now, and returns the server promoted. A Sentinel
// may abort one: it promotes only a replica whose state it saw lately,
// and on a loaded machine its view can be older than it allows (the
// test once waited 30 s with old still named). So it asks again, the
// next Sentinel, when no new master came within the failover timeout,
// up to three times, as an operator would.
func (g *SentinelGroup) FailOver(t testing.TB, old string) *RedisServer {
	t.Helper()
	var why error
	for attempt := range 3 {
		s := g.Sentinels[attempt%len(g.Sentinels)]
		reply, err := redisCommand(s.Addr, "SENTINEL", "FAILOVER", g.MasterName)
		if err != nil && !strings.Contains(err.Error(), "INPROG") {
			t.Fatalf("testenv: SENTINEL FAILOVER on %s: %q, %v", s.Addr, reply, err)
		}
		deadline := time.Now().Add(sentinelFailoverTimeout + 5*time.Second)
		for why = g.failedOver(old); why != nil && time.Now().Before(deadline); why = g.failedOver(old) {
			time.Sleep(20 * time.Millisecond)
		}
		if why == nil {
			return g.Master(t)
		}
		t.Logf("testenv: manual failover %d from %s not done: %v; asking again", attempt+1, old, why)
	}
	t.Fatalf("testenv: three manual failovers from %s did not happen: %v", old, why)
	return nil
}
