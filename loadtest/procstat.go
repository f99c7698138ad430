package loadtest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports.
const clockTicks = 100

// tick is one clock tick as a duration.
const tick = time.Second / clockTicks

// ProcSample is the sum over a set of processes of their CPU time so far
// and their resident memory now.
type ProcSample struct {
	CPUSeconds float64 `json:"cpu_s"`
	RSSKiB     int64   `json:"rss_kib"`
	// Procs holds the same figures per process, in the order of the pids.
	Procs []ProcessSample `json:"procs,omitempty"`
}

// ProcessSample is one process' CPU time so far and resident memory now.
type ProcessSample struct {
	PID        int     `json:"pid"`
	Name       string  `json:"name"`
	CPUSeconds float64 `json:"cpu_s"`
	RSSKiB     int64   `json:"rss_kib"`
}

// SampleProcs reads /proc for every pid. A process that is gone is an
// error: a measurement that silently lost a server would be wrong.
func SampleProcs(pids []int) (ProcSample, error) {
	var s ProcSample
	for _, pid := range pids {
		used, err := cpuTime(pid)
		if err != nil {
			return ProcSample{}, err
		}
		rss, err := rssKiB(pid)
		if err != nil {
			return ProcSample{}, err
		}
		cpu := used.Seconds()
		s.CPUSeconds += cpu
		s.RSSKiB += rss
		s.Procs = append(s.Procs, ProcessSample{PID: pid, Name: procName(pid), CPUSeconds: cpu, RSSKiB: rss})
	}
	return s, nil
}

// procName is the process' command name, e.g. "redis-server".
func procName(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// cpuTime returns the CPU time a process has used, all its threads
// included. Its stat's utime+stime count every thread, exited ones too,
// but in ticks, each rounded down: a server busy 3% of a core for a 10 s
// window (0.3 s) would be measured to ±7%. The threads' schedstat
// runtimes count nanoseconds, but only for the live threads: their sum,
// read first and held within the 2 ticks the stat may lag behind, is
// exact unless a thread has exited (then it is the stat's figure).
func cpuTime(pid int) (time.Duration, error) {
	live := liveThreadsRuntime(pid)
	ticks, err := readProc(pid, "stat", parseStatTicks)
	if err != nil {
		return 0, err
	}
	low := time.Duration(ticks) * tick
	return min(max(live, low), low+2*tick), nil
}

// liveThreadsRuntime sums the first field of /proc/<pid>/task/*/schedstat,
// each thread's time on a CPU in nanoseconds; 0 when it cannot be read.
func liveThreadsRuntime(pid int) time.Duration {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0
	}
	var sum time.Duration
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, task.Name()))
		if err != nil {
			continue // the thread has exited
		}
		f, _, _ := strings.Cut(string(b), " ")
		ns, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0
		}
		sum += time.Duration(ns)
	}
	return sum
}

// readProc parses /proc/<pid>/<name>.
func readProc(pid int, name string, parse func([]byte) (int64, error)) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	if err != nil {
		return 0, fmt.Errorf("loadtest: server process %d: %w", pid, err)
	}
	return parse(b)
}

// parseStatTicks reads fields 14 (utime) and 15 (stime) of a stat line. The
// command name in field 2 may hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseStatTicks(b []byte) (int64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("loadtest: malformed /proc stat line")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so utime (14) is f[11] and stime (15) f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("loadtest: short /proc stat line")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("loadtest: malformed utime/stime in /proc stat line")
	}
	return u + s, nil
}

// rssKiB returns VmRSS of a process.
func rssKiB(pid int) (int64, error) { return readProc(pid, "status", parseVmRSS) }

func parseVmRSS(b []byte) (int64, error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("loadtest: no VmRSS in /proc status")
}

// withDescendants returns pids followed by every process descended from
// them, each once, so that a server started through a wrapper (a shell,
// npm) is measured whole. The tree is read once: processes started later
// are not added.
func withDescendants(pids []int) []int {
	children := map[int][]int{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return pids
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		if ppid, ok := parseStatPPID(b); ok {
			children[ppid] = append(children[ppid], pid)
		}
	}
	seen := map[int]bool{}
	var out []int
	var walk func(int)
	walk = func(pid int) {
		if seen[pid] {
			return
		}
		seen[pid] = true
		out = append(out, pid)
		for _, c := range children[pid] {
			walk(c)
		}
	}
	for _, p := range pids {
		walk(p)
	}
	return out
}

// parseStatPPID reads field 4 (ppid) of a stat line.
func parseStatPPID(b []byte) (int, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}
