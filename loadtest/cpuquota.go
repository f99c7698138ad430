package loadtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cpuQuota is a cgroup whose processes may use at most a share of one CPU
// together: what lets a load generator on one CPU saturate servers on a
// 2-core machine, where the servers would otherwise need as much CPU per
// message as the generator has (CompareConfig.ServerShare).
type cpuQuota struct {
	dir string
}

// quotaPeriodUs is the cgroup's accounting period: short, so a throttled
// server stalls for at most a few milliseconds at a time.
const quotaPeriodUs = 10_000

// newCPUQuota makes a cgroup of its own limited to share of one CPU, under
// cgroup v2 when its root offers the cpu controller, else under v1's cpu
// hierarchy.
func newCPUQuota(share float64) (*cpuQuota, error) {
	if share <= 0 || share > 64 {
		return nil, fmt.Errorf("loadtest: server CPU share %g: want more than 0", share)
	}
	quota := strconv.Itoa(int(share * quotaPeriodUs))
	name := fmt.Sprintf("shoal-load-%d", os.Getpid())
	if ctl, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && strings.Contains(" "+string(ctl), " cpu") {
		// v2: the parent must hand the cpu controller down.
		_ = os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+cpu"), 0o644)
		q := &cpuQuota{dir: filepath.Join("/sys/fs/cgroup", name)}
		return q, q.make(map[string]string{"cpu.max": quota + " " + strconv.Itoa(quotaPeriodUs)})
	}
	if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"); err == nil {
		q := &cpuQuota{dir: filepath.Join("/sys/fs/cgroup/cpu", name)}
		return q, q.make(map[string]string{"cpu.cfs_period_us": strconv.Itoa(quotaPeriodUs), "cpu.cfs_quota_us": quota})
	}
	return nil, errors.New("loadtest: no cgroup cpu controller (v2 root or v1 /sys/fs/cgroup/cpu) to limit the servers with")
}

func (q *cpuQuota) make(files map[string]string) error {
	if err := os.Mkdir(q.dir, 0o755); err != nil {
		return fmt.Errorf("loadtest: server CPU share: %w", err)
	}
	// The period first: the quota counts in its units.
	for _, f := range []string{"cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.max"} {
		if v, ok := files[f]; ok {
			if err := os.WriteFile(filepath.Join(q.dir, f), []byte(v), 0o644); err != nil {
				q.remove()
				return fmt.Errorf("loadtest: server CPU share: %w", err)
			}
		}
	}
	return nil
}

// add moves processes (all their threads) into the cgroup; what they start
// later is born there.
func (q *cpuQuota) add(pids []int) error {
	for _, pid := range pids {
		if err := os.WriteFile(filepath.Join(q.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("loadtest: server CPU share: process %d: %w", pid, err)
		}
	}
	return nil
}

// remove deletes the cgroup; its processes must have ended.
func (q *cpuQuota) remove() { _ = os.Remove(q.dir) }
