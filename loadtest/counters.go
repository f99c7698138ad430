package loadtest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Counters reads cumulative counts from the server's backends (Redis
// commands, NATS messages, ...), by name. Run reads them at the window's
// edges and reports the difference per operation: unlike CPU time, such
// counts do not move with the machine's load.
type Counters func(ctx context.Context) (map[string]float64, error)

// countersTimeout bounds one reading of every counter.
const countersTimeout = 5 * time.Second

// Names of the counts redisCounters and natsCounters read.
const (
	CountRedisCommands = "redis_commands" // every command Redis ran, those inside scripts included
	CountRedisScripts  = "redis_scripts"  // EVAL, EVALSHA, FCALL and their _RO forms
	CountRedisCPU      = "redis_cpu_us"   // Redis's own CPU time (INFO cpu), µs
	CountNATSIn        = "nats_in_msgs"   // messages NATS received from clients
	CountNATSOut       = "nats_out_msgs"  // messages NATS delivered to subscribers
)

// joinCounters reads every one of cs into one map.
func joinCounters(cs ...Counters) Counters {
	return func(ctx context.Context) (map[string]float64, error) {
		all := make(map[string]float64)
		for _, c := range cs {
			m, err := c(ctx)
			if err != nil {
				return nil, err
			}
			for k, v := range m {
				all[k] = v
			}
		}
		return all, nil
	}
}

// redisCounters reads INFO commandstats and INFO cpu of the Redis at addr.
func redisCounters(addr string) Counters {
	return func(ctx context.Context) (map[string]float64, error) {
		ctx, cancel := context.WithTimeout(ctx, countersTimeout)
		defer cancel()
		c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1, PoolSize: 1})
		defer c.Close()
		info, err := c.Info(ctx, "commandstats", "cpu").Result()
		if err != nil {
			return nil, fmt.Errorf("loadtest: redis at %s: %w", addr, err)
		}
		return parseRedisInfo(info), nil
	}
}

// parseRedisInfo sums INFO's cmdstat_* calls (and those of scripts alone)
// and its used_cpu_* seconds.
func parseRedisInfo(info string) map[string]float64 {
	m := map[string]float64{CountRedisCommands: 0, CountRedisScripts: 0, CountRedisCPU: 0}
	for line := range strings.SplitSeq(info, "\n") {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		if cmd, ok := strings.CutPrefix(name, "cmdstat_"); ok {
			calls, _, _ := strings.Cut(strings.TrimPrefix(value, "calls="), ",")
			n, _ := strconv.ParseFloat(calls, 64)
			m[CountRedisCommands] += n
			switch cmd {
			case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
				m[CountRedisScripts] += n
			}
		} else if name == "used_cpu_sys" || name == "used_cpu_user" {
			s, _ := strconv.ParseFloat(value, 64)
			m[CountRedisCPU] += s * 1e6
		}
	}
	return m
}

// countsPerOp is what each count grew by from start to end, per op.
func countsPerOp(start, end map[string]float64, ops int64) map[string]float64 {
	if ops <= 0 || start == nil || end == nil {
		return nil
	}
	out := make(map[string]float64, len(end))
	for k, v := range end {
		if s, ok := start[k]; ok {
			out[k] = round3((v - s) / float64(ops))
		}
	}
	return out
}
