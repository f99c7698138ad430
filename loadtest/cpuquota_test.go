package loadtest

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCPUQuotaLimitsAProcess: a busy loop moved into a quota of 0.2 CPU
// spends no more than about that. Where this machine offers no cgroup cpu
// controller to write to, the error must say so plainly (the comparison
// then fails at its start rather than measuring unlimited servers).
func TestCPUQuotaLimitsAProcess(t *testing.T) {
	q, err := newCPUQuota(0.2)
	if err != nil {
		if !strings.Contains(err.Error(), "loadtest: no cgroup cpu controller") && !strings.Contains(err.Error(), "loadtest: server CPU share") {
			t.Fatalf("unclear error: %v", err)
		}
		t.Logf("no quota here: %v", err)
		return
	}
	defer q.remove()
	busy := exec.Command("sh", "-c", "while :; do :; done")
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { busy.Process.Kill(); busy.Wait() }()
	if err := q.add([]int{busy.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	start, err := cpuTime(busy.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	const window = 2 * time.Second
	time.Sleep(window)
	end, err := cpuTime(busy.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	used := end - start
	if used > window*35/100 {
		t.Fatalf("a busy loop limited to 0.2 CPU used %v of %v", used, window)
	}
	t.Logf("a busy loop limited to 0.2 CPU used %v of %v", used, window)
}
