package chaos

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// counters are the cluster's cumulative costs at one moment: commands Redis
// processed, messages NATS took in and sent out, CPU time the nodes used,
// and their resident memory. A restarted process starts its own from zero,
// so only a run without restarts (scenario steady) gives clean deltas.
type counters struct {
	at               time.Time
	redisCmds        int64
	natsIn, natsOut  int64
	nodeCPU          time.Duration
	nodeRSS          int64
	redisUsedMemory  int64
	redisCPU         time.Duration // Redis's own CPU (used_cpu_user + used_cpu_sys)
	redisScripts     int64         // EVALSHA and EVAL calls: round trips that run a script
	natsMonitorFound bool
}

func readCounters(t *testing.T, c *cluster) counters {
	k := counters{at: time.Now()}
	redisAddrs := []string{}
	if c.redis != nil {
		redisAddrs = append(redisAddrs, c.redis.addr)
	}
	for _, r := range c.redisNodes {
		redisAddrs = append(redisAddrs, r.addr)
	}
	if c.sentinel != nil {
		for _, r := range c.sentinel.Servers {
			redisAddrs = append(redisAddrs, r.Addr)
		}
	}
	for _, a := range redisAddrs {
		// redis-cli, not testenv.ReadRedisInfo: a server down for the
		// fault reads as zeros here instead of failing the test.
		info := testenv.RedisInfo(redisCLI(t, a, "info", "all"))
		calls := info.Calls()
		k.redisCmds += info.Int("total_commands_processed")
		k.redisUsedMemory += info.Int("used_memory")
		k.redisCPU += info.CPU()
		k.redisScripts += calls["evalsha"] + calls["eval"]
	}
	for _, m := range c.natsMonitors {
		resp, err := http.Get("http://" + m + "/varz")
		if err != nil {
			continue
		}
		var v struct {
			InMsgs  int64 `json:"in_msgs"`
			OutMsgs int64 `json:"out_msgs"`
		}
		json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		k.natsIn += v.InMsgs
		k.natsOut += v.OutMsgs
		k.natsMonitorFound = true
	}
	for _, n := range c.nodes {
		if n.Exited() {
			continue
		}
		pid := n.Cmd.Process.Pid
		cpu, _ := testenv.ProcessCPU(pid) // 0 for a process gone meanwhile
		k.nodeCPU += cpu
		if v, err := rss(pid); err == nil {
			k.nodeRSS += v
		}
	}
	return k
}

// logCosts prints what the load cost per delivered message and per
// session between two readings.
func logCosts(t *testing.T, s settings, before, idle, after counters, report map[string]*transportReport) {
	var delivered int
	for _, r := range report {
		delivered += r.Received
	}
	secs := after.at.Sub(before.at).Seconds()
	t.Logf("rates over %.1f s with %d sessions: %.0f messages echoed/s, Redis %.0f commands/s (%.0f scripts/s, %.1f%% of one core), NATS %.0f messages in/s, nodes %.1f%% of one core",
		secs, s.sessions, float64(delivered)/secs, float64(after.redisCmds-before.redisCmds)/secs,
		float64(after.redisScripts-before.redisScripts)/secs, 100*(after.redisCPU-before.redisCPU).Seconds()/secs,
		float64(after.natsIn-before.natsIn)/secs, 100*(after.nodeCPU-before.nodeCPU).Seconds()/secs)
	if delivered == 0 {
		return
	}
	d := float64(delivered)
	t.Logf("costs over %.1f s, %d messages echoed (%.0f/s), %d sessions (valid only when no process restarted):", secs, delivered, d/secs, s.sessions)
	t.Logf("  Redis per message: %.2f commands (those scripts run included), %.2f script calls, %.1f µs of Redis CPU (all of it: each session's polls, leases and re-checks too)",
		float64(after.redisCmds-before.redisCmds)/d, float64(after.redisScripts-before.redisScripts)/d,
		float64((after.redisCPU-before.redisCPU).Microseconds())/d)
	if after.natsMonitorFound {
		t.Logf("  NATS messages in per message: %.2f, out per message: %.2f", float64(after.natsIn-before.natsIn)/d, float64(after.natsOut-before.natsOut)/d)
	}
	t.Logf("  node CPU per message: %.3f ms (3 nodes summed; %.0f%% of one core on average)",
		float64((after.nodeCPU-before.nodeCPU).Microseconds())/1000/d, 100*(after.nodeCPU-before.nodeCPU).Seconds()/secs)
	t.Logf("  node RSS: %d MiB idle (3 nodes), %d MiB with %d sessions: %.0f KiB per session",
		idle.nodeRSS>>20, after.nodeRSS>>20, s.sessions, float64(after.nodeRSS-idle.nodeRSS)/1024/float64(s.sessions))
	t.Logf("  Redis used_memory: %d KiB idle, %d KiB with the sessions: %.1f KiB per session",
		idle.redisUsedMemory>>10, after.redisUsedMemory>>10, float64(after.redisUsedMemory-idle.redisUsedMemory)/1024/float64(s.sessions))
}
