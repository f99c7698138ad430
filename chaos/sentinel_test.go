package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// sentinelMaster is the name the Sentinels know the master by.
const sentinelMaster = "shoal"

// sentinelDownAfter is the Sentinels' down-after-milliseconds: how long
// the master must be unreachable before they agree it is down, elect a
// leader and promote a replica (about this plus 1.5 s in all). Requests
// wait through it only if it stays under --redis-outage-wait (5 s). Not
// 1 s: on this loaded machine a promoted master once stalled past 1 s,
// the Sentinels replaced it while alive, and what it had acknowledged
// meanwhile was lost (2 xhr-polling sessions closed with 2010).
const sentinelDownAfter = 2 * time.Second

// startSentinelHA starts a Redis master with two replicas (AOF on), three
// Sentinels watching them (quorum 2) and a NATS cluster; the nodes find
// the master through the Sentinels (redis+sentinel://).
func (c *cluster) startSentinelHA(t *testing.T) {
	t.Helper()
	redisServer := testenv.LookPath(t, "redis-server")
	for i := range 3 {
		port := testenv.FreePort(t)
		srv := &server{name: fmt.Sprintf("redis-%d", i), bin: redisServer, addr: fmt.Sprintf("127.0.0.1:%d", port),
			args: []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", t.TempDir(),
				"--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--loglevel", "warning"}}
		if i > 0 {
			_, masterPort, _ := strings.Cut(c.redisNodes[0].addr, ":")
			srv.args = append(srv.args, "--replicaof", "127.0.0.1", masterPort)
		}
		srv.start(t)
		c.redisNodes = append(c.redisNodes, srv)
	}
	master := c.redisNodes[0].addr
	host, port, _ := strings.Cut(master, ":")
	var addrs []string
	for i := range 3 {
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("dir %s\n", dir) +
			fmt.Sprintf("sentinel monitor %s %s %s 2\n", sentinelMaster, host, port) +
			fmt.Sprintf("sentinel down-after-milliseconds %s %d\n", sentinelMaster, sentinelDownAfter.Milliseconds()) +
			fmt.Sprintf("sentinel failover-timeout %s 10000\n", sentinelMaster)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		sport := testenv.FreePort(t)
		srv := &server{name: fmt.Sprintf("sentinel-%d", i), bin: redisServer, addr: fmt.Sprintf("127.0.0.1:%d", sport),
			args: []string{conf, "--sentinel", "--port", strconv.Itoa(sport), "--bind", "127.0.0.1", "--loglevel", "warning"}}
		srv.start(t)
		c.sentinels = append(c.sentinels, srv)
		addrs = append(addrs, srv.addr)
	}
	// Replicas in sync (one that never synced is not promoted) and every
	// Sentinel knowing both replicas and the other Sentinels.
	want := fmt.Sprintf("status=ok,address=%s,slaves=2,sentinels=3", master)
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		for _, srv := range c.redisNodes[1:] {
			if !strings.Contains(redisCLI(t, srv.addr, "info", "replication"), "master_link_status:up") {
				return fmt.Errorf("%s: replica not in sync yet", srv.name)
			}
		}
		for _, srv := range c.sentinels {
			if info := redisCLI(t, srv.addr, "info", "sentinel"); !strings.Contains(info, want) {
				return fmt.Errorf("%s: %q, want %q", srv.name, strings.TrimSpace(info), want)
			}
		}
		return nil
	})
	c.redisURL = "redis+sentinel://" + strings.Join(addrs, ",") + "/" + sentinelMaster + "/0"
	c.startNATSCluster(t)
}

// sentinelMasterAddr is the master's address as the first Sentinel that
// answers names it.
func (c *cluster) sentinelMasterAddr(t *testing.T) string {
	for _, srv := range c.sentinels {
		out := strings.Fields(redisCLI(t, srv.addr, "sentinel", "get-master-addr-by-name", sentinelMaster))
		if len(out) == 2 {
			return out[0] + ":" + out[1]
		}
	}
	return ""
}

// sentinelFailover: the master is killed (kill -9); the Sentinels agree
// it is down and promote a replica; later the old master starts again
// (its AOF says it was master) and the Sentinels turn it into a replica.
func sentinelFailover(t *testing.T, c *cluster, s settings) {
	addr := c.sentinelMasterAddr(t)
	var master *server
	for _, srv := range c.redisNodes {
		if srv.addr == addr {
			master = srv
		}
	}
	if master == nil {
		t.Fatalf("chaos: the Sentinels name %q, no server of ours", addr)
	}
	killed := time.Now()
	master.proc.Kill(t)
	// Failed over: every Sentinel names another server, and it is master.
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		for _, srv := range c.sentinels {
			out := strings.Fields(redisCLI(t, srv.addr, "sentinel", "get-master-addr-by-name", sentinelMaster))
			if len(out) != 2 || out[0]+":"+out[1] == addr {
				return fmt.Errorf("%s names %v as master", srv.name, out)
			}
			if !strings.HasPrefix(redisCLI(t, out[0]+":"+out[1], "role"), "master") {
				return fmt.Errorf("%s:%s is not master yet", out[0], out[1])
			}
		}
		return nil
	})
	t.Logf("Sentinels promoted %s %v after the master was killed (down-after %v)", c.sentinelMasterAddr(t),
		time.Since(killed).Round(100*time.Millisecond), sentinelDownAfter)
	time.Sleep(s.downtime(8 * time.Second))
	master.start(t)
}
