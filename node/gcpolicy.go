package main

import (
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// The node's garbage collector policy.
//
// A node's heap is mostly the state of its connections (an idle websocket
// holds ~3 KiB of it), long-lived, while what a message allocates is small
// and dies at once. Go's default GOGC=100 lets the heap grow to twice the
// live heap before a collection: the connections' memory, doubled. At 50
// the heap stays within 1.5 times: idle websockets cost ~15-20% less RSS
// (loadtest idle, 2,000 sessions: 9.5 -> 7.7-7.9 KiB each), and the
// collector's CPU went from 0.2% to 0.6% of the server's in ws-echo and
// from 1.1% to 2.1% in broadcast (1,000 subscribers): what a message costs
// did not move beyond noise. An operator's GOGC or GOMEMLIMIT wins.
//
// In a container with a memory limit, the collector is also told the
// limit (less a tenth for what is not heap), so a burst makes it collect
// harder instead of the kernel killing the process.

// defaultGCPercent is --gc-percent's default.
const defaultGCPercent = 50

// cgroupMemoryFiles hold the memory limit of the process's container:
// cgroup v2, then v1 (whose "no limit" is a huge number).
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// applyGCPolicy sets the collector's target and memory limit, unless
// GOGC and GOMEMLIMIT (getenv) set them already; gcPercent <= 0 leaves
// Go's default. It returns what it did, for the start-up log.
func applyGCPolicy(gcPercent int, getenv func(string) string, readFile func(string) ([]byte, error)) []any {
	var did []any
	if getenv("GOGC") == "" && gcPercent > 0 {
		debug.SetGCPercent(gcPercent)
		did = append(did, "gc_percent", gcPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		if limit, ok := containerMemoryLimit(readFile); ok {
			soft := limit - limit/10
			debug.SetMemoryLimit(soft)
			did = append(did, "memory_limit", soft)
		}
	}
	return did
}

// containerMemoryLimit returns the memory limit of the process's cgroup,
// if it has one.
func containerMemoryLimit(readFile func(string) ([]byte, error)) (int64, bool) {
	for _, f := range cgroupMemoryFiles {
		b, err := readFile(f)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, false
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v <= 0 || v >= math.MaxInt64/2 {
			return 0, false // v1's "no limit" is close to MaxInt64
		}
		return v, true
	}
	return 0, false
}

// gcPolicyHelp is --gc-percent's help.
var gcPolicyHelp = fmt.Sprintf("the collector's heap growth target in percent of the live heap (Go's GOGC; GOGC, when set, wins); %d keeps connections' memory within 1.5 times its size for under 1%% more CPU (docs/operations.md); 0: Go's default (100)", defaultGCPercent)
