package main

import (
	"fmt"
	"io/fs"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// TestGCPolicy: --gc-percent applies unless GOGC is set; a container's
// memory limit (cgroup v2 or v1) becomes 90% of itself as the soft limit
// unless GOMEMLIMIT is set; no limit, no soft limit.
func TestGCPolicy(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	const noLimit = math.MaxInt64
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(name string) ([]byte, error) {
			if v, ok := m[name]; ok {
				return []byte(v), nil
			}
			return nil, fs.ErrNotExist
		}
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		name    string
		env     map[string]string
		files   map[string]string
		percent int
		wantGC  int
		wantLim int64 // 0: none set
	}{
		{"default, no container", nil, nil, 50, 50, 0},
		{"GOGC wins", map[string]string{"GOGC": "200"}, nil, 50, 100, 0},
		{"zero keeps Go's", nil, nil, 0, 100, 0},
		{"cgroup v2 limit", nil, map[string]string{"/sys/fs/cgroup/memory.max": "1000000000\n"}, 50, 50, 900000000},
		{"cgroup v2 no limit", nil, map[string]string{"/sys/fs/cgroup/memory.max": "max\n"}, 50, 50, 0},
		{"cgroup v1 limit", nil, map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "2000000000\n"}, 50, 50, 1800000000},
		{"cgroup v1 no limit", nil, map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 50, 50, 0},
		{"GOMEMLIMIT wins", map[string]string{"GOMEMLIMIT": "1GiB"}, map[string]string{"/sys/fs/cgroup/memory.max": "1000000000\n"}, 50, 50, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(noLimit)
			applyGCPolicy(tc.percent, env(tc.env), files(tc.files))
			if got := debug.SetGCPercent(100); got != tc.wantGC {
				t.Errorf("GC percent %d, want %d", got, tc.wantGC)
			}
			if got := debug.SetMemoryLimit(-1); (tc.wantLim == 0) != (got == noLimit) || tc.wantLim != 0 && got != tc.wantLim {
				t.Errorf("memory limit %d, want %d (0: none)", got, tc.wantLim)
			}
		})
	}
}

// TestGCPercentFor: a small live heap gets at least gcHeadroomFloor of
// room before a collection (the runtime's goal is the larger of
// live×(1+p/100) and 4 MiB×p/100); from 6 MiB live on, the base.
func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	goal := func(p int, live uint64) uint64 {
		return max(live+live*uint64(p)/100, runtimeMinHeap*uint64(p)/100)
	}
	for _, live := range []uint64{0, 100 << 10, mib / 2, mib, 2 * mib, 4 * mib, 6 * mib, 64 * mib, 1 << 30} {
		p := gcPercentFor(50, live)
		if p < 50 || p%10 != 0 {
			t.Errorf("live %d: percent %d, want a multiple of 10, at least 50", live, p)
		}
		if g := goal(p, live); g < live+gcHeadroomFloor && p != 50 {
			t.Errorf("live %d: percent %d gives goal %d, less than %d of room", live, p, g, gcHeadroomFloor)
		}
		if live >= 6*mib && p != 50 {
			t.Errorf("live %d: percent %d, want the base 50", live, p)
		}
		if g := goal(p, live); g > live+gcHeadroomFloor+live/10+runtimeMinHeap/10 && p != 50 {
			t.Errorf("live %d: percent %d gives goal %d, far more than %d of room", live, p, g, gcHeadroomFloor)
		}
	}
	if p := gcPercentFor(200, mib); p != 200 {
		t.Errorf("base 200, 1 MiB live: percent %d, want 200", p)
	}
}

// TestKeepGCHeadroom: after a collection the target is raised above a
// base that leaves a test's heap (well under 30 MiB live) less than
// gcHeadroomFloor of room; once stopped, it is left alone.
func TestKeepGCHeadroom(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	stop := keepGCHeadroom(10)
	defer stop()
	sample := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		runtime.GC()
		metrics.Read(sample)
		if p := sample[0].Value.Uint64(); p <= 10 {
			return fmt.Errorf("percent %d, want more than the base 10", p)
		}
		return nil
	})
}
