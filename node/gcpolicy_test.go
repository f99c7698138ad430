package main

import (
	"io/fs"
	"math"
	"runtime/debug"
	"testing"
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
