package testenv

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// RedisInfo is a reply of Redis's INFO command, read field by field.
type RedisInfo string

// ReadRedisInfo sends INFO section ("commandstats", "cpu", "all", ...) to
// the server at addr. The INFO call itself counts among its commandstats.
func ReadRedisInfo(t testing.TB, addr, section string) RedisInfo {
	t.Helper()
	info, err := redisInfo(addr, section)
	if err != nil {
		t.Fatalf("testenv: INFO %s of %s: %v", section, addr, err)
	}
	return RedisInfo(info)
}

// Field returns the value of field ("used_memory", ...), "" if absent.
func (i RedisInfo) Field(field string) string {
	for line := range strings.SplitSeq(string(i), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// Int returns field as an integer, 0 if absent.
func (i RedisInfo) Int(field string) int64 {
	n, _ := strconv.ParseInt(i.Field(field), 10, 64)
	return n
}

// CPU is the CPU time the server has used (used_cpu_user +
// used_cpu_sys): on a busy machine a steadier figure than the wall clock.
func (i RedisInfo) CPU() time.Duration {
	user, _ := strconv.ParseFloat(i.Field("used_cpu_user"), 64)
	sys, _ := strconv.ParseFloat(i.Field("used_cpu_sys"), 64)
	return time.Duration((user + sys) * float64(time.Second))
}

// Calls returns the calls of each command (commandstats; the commands
// scripts ran included), by name.
func (i RedisInfo) Calls() map[string]int64 {
	out := make(map[string]int64)
	for line := range strings.SplitSeq(string(i), "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, _ := strconv.ParseInt(calls, 10, 64)
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out
}
