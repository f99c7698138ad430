package main

import (
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
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
// A small heap, though (a node with a few dozen sessions: 1 MiB live),
// at 50 gets a 2 MiB goal, half of Go's default (the runtime's smallest
// goal, 4 MiB, scales with the percent), and collects three times as
// often as at 100 for no memory worth saving: 93 collections against
// sockjs-go's 32 in the same polling echo (1k msg/s, 10 s), 5% of the
// node's CPU against 1.2%. So after each collection the target is raised
// above --gc-percent as far as gives the heap gcHeadroomFloor of room
// (gcPercentFor); from 6 MiB of live heap on it is --gc-percent's own.
//
// In a container with a memory limit, the collector is also told the
// limit (less a tenth for what is not heap), so a burst makes it collect
// harder instead of the kernel killing the process.

// defaultGCPercent is --gc-percent's default.
const defaultGCPercent = 50

// cgroupMemoryFiles hold the memory limit of the process's container:
// cgroup v2, then v1 (whose "no limit" is a huge number).
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// gcHeadroomFloor is the least room a heap gets past its live bytes
// before a collection: what Go's default gives a heap of 1 MiB.
const gcHeadroomFloor = 3 << 20

// runtimeMinHeap is the runtime's smallest heap goal at GOGC=100.
const runtimeMinHeap = 4 << 20

// gcPercentFor is the collector's target for a live heap of live bytes:
// base, or more where base leaves less than gcHeadroomFloor of room. The
// runtime's goal at p is the larger of live×(1+p/100) and
// runtimeMinHeap×p/100; either reaching live+gcHeadroomFloor will do. In
// steps of 10, so that a live heap that wobbles does not re-target every
// collection.
func gcPercentFor(base int, live uint64) int {
	if live == 0 {
		live = 1
	}
	p := min(100*gcHeadroomFloor/live, 100*(live+gcHeadroomFloor)/runtimeMinHeap)
	return max(base, int(p+9)/10*10)
}

// gcTuner re-targets the collector after each collection (gcPercentFor),
// from a finalizer that every collection runs and that arms the next.
type gcTuner struct {
	base    int
	current int
	sample  []metrics.Sample
	stopped atomic.Bool
}

// gcCycle is what the tuner's finalizer is set on; with a pointer, so the
// tiny allocator never batches it with other objects (which could keep
// its finalizer from running).
type gcCycle struct{ _ *int }

// keepGCHeadroom starts re-targeting the collector from base (see
// gcPercentFor) after each collection, until stop.
func keepGCHeadroom(base int) (stop func()) {
	g := &gcTuner{base: base, current: base, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	runtime.SetFinalizer(&gcCycle{}, g.collected)
	return func() { g.stopped.Store(true) }
}

func (g *gcTuner) collected(*gcCycle) {
	if g.stopped.Load() {
		return
	}
	metrics.Read(g.sample)
	if g.sample[0].Value.Kind() == metrics.KindUint64 {
		if p := gcPercentFor(g.base, g.sample[0].Value.Uint64()); p != g.current {
			debug.SetGCPercent(p)
			g.current = p
		}
	}
	runtime.SetFinalizer(&gcCycle{}, g.collected)
}

// applyGCPolicy sets the collector's target and memory limit, unless
// GOGC and GOMEMLIMIT (getenv) set them already; gcPercent <= 0 leaves
// Go's default. It returns what it did, for the start-up log, and the
// target it set (0: none), which the caller keeps with keepGCHeadroom.
func applyGCPolicy(gcPercent int, getenv func(string) string, readFile func(string) ([]byte, error)) (did []any, setPercent int) {
	if getenv("GOGC") == "" && gcPercent > 0 {
		debug.SetGCPercent(gcPercent)
		setPercent = gcPercent
		did = append(did, "gc_percent", gcPercent, "gc_headroom_floor", gcHeadroomFloor)
	}
	if getenv("GOMEMLIMIT") == "" {
		if limit, ok := containerMemoryLimit(readFile); ok {
			soft := limit - limit/10
			debug.SetMemoryLimit(soft)
			did = append(did, "memory_limit", soft)
		}
	}
	return did, setPercent
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
