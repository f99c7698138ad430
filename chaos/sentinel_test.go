package chaos

import (
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// startSentinelHA starts a Redis master with two replicas (AOF on, so that
// a killed master starts again with its data), three Sentinels watching
// them (quorum 2) and a NATS cluster; the nodes find the master through
// the Sentinels (redis+sentinel://).
func (c *cluster) startSentinelHA(t *testing.T) {
	t.Helper()
	c.sentinel = testenv.RedisSentinel(t, 2, 3, "--appendonly", "yes", "--appendfsync", "everysec")
	c.redisURL = c.sentinel.URL()
	c.startNATSCluster(t)
}

// sentinelFailover: the master is killed (kill -9); the Sentinels agree
// it is down and promote a replica; later the old master starts again
// (its AOF says it was master) and the Sentinels turn it into a replica.
func sentinelFailover(t *testing.T, c *cluster, s settings) {
	master := c.sentinel.Master(t)
	killed := time.Now()
	master.Kill()
	promoted := c.sentinel.WaitFailover(t, master.Addr, 30*time.Second)
	t.Logf("Sentinels promoted %s %v after the master was killed (down-after %v)", promoted.Addr,
		time.Since(killed).Round(100*time.Millisecond), testenv.SentinelDownAfter)
	time.Sleep(s.downtime(8 * time.Second))
	if !master.Start() {
		t.Fatalf("chaos: the old master %s did not start again", master.Addr)
	}
}
