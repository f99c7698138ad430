package loadtest

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	t.Parallel()
	// The command name may hold spaces and parentheses.
	line := "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 70 0 0 20 0 8 0 100 1000000 500 18446744073709551615\n"
	got, err := parseStatTicks([]byte(line))
	if err != nil || got != 320 {
		t.Errorf("parseStatTicks = %d, %v; want 320", got, err)
	}
	if _, err := parseStatTicks([]byte("4242 (x) S 1 2")); err == nil {
		t.Error("a short stat line must be an error")
	}
	status := "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t1\n"
	if rss, err := parseVmRSS([]byte(status)); err != nil || rss != 5120 {
		t.Errorf("parseVmRSS = %d, %v; want 5120", rss, err)
	}
	if _, err := parseVmRSS([]byte("Name:\tkthreadd\n")); err == nil {
		t.Error("a status without VmRSS must be an error")
	}
}

func TestSampleOwnProcess(t *testing.T) {
	t.Parallel()
	s, err := SampleProcs([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if s.RSSKiB < 1024 {
		t.Errorf("own RSS = %d KiB, implausible", s.RSSKiB)
	}
	if _, err := SampleProcs([]int{1 << 30}); err == nil {
		t.Error("a process that does not exist must be an error")
	}
}

// TestCPUTimeFinerThanTicks: a busy process's CPU time is read to better
// than the stat's 10 ms ticks (successive readings a few milliseconds
// apart differ by other than whole ticks), and never strays from the
// stat's own figure by more than the ticks it rounds away.
func TestCPUTimeFinerThanTicks(t *testing.T) {
	t.Parallel()
	busy := exec.Command("sh", "-c", "while :; do :; done")
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { busy.Process.Kill(); busy.Wait() }()
	pid := busy.Process.Pid
	time.Sleep(50 * time.Millisecond)
	finer := false
	last := time.Duration(-1)
	for range 20 {
		used, err := cpuTime(pid)
		if err != nil {
			t.Fatal(err)
		}
		ticks, err := readProc(pid, "stat", parseStatTicks)
		if err != nil {
			t.Fatal(err)
		}
		// The stat is read after: it may have moved on by up to a tick.
		if low := time.Duration(ticks) * tick; used < low-tick || used > low+2*tick {
			t.Fatalf("cpuTime %v, stat %v: further apart than its rounding", used, low)
		}
		if used < last {
			t.Fatalf("cpuTime went back from %v to %v", last, used)
		}
		if last >= 0 && used > last && (used-last)%tick != 0 {
			finer = true
		}
		last = used
		time.Sleep(3 * time.Millisecond)
	}
	if !finer {
		t.Fatal("every reading moved by whole ticks: no finer source than /proc/<pid>/stat")
	}
}

func TestDescendantsAreMeasured(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("sh", "-c", "sleep 30 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, pid := range withDescendants([]int{cmd.Process.Pid})[1:] {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	var pids []int
	deadline := time.Now().Add(5 * time.Second)
	for len(pids) < 2 && time.Now().Before(deadline) {
		pids = withDescendants([]int{cmd.Process.Pid})
		time.Sleep(10 * time.Millisecond)
	}
	if len(pids) != 2 || pids[0] != cmd.Process.Pid {
		t.Fatalf("withDescendants = %v, want the shell then its sleep", pids)
	}
	if name := procName(pids[1]); name != "sleep" {
		t.Errorf("descendant is %q, want sleep", name)
	}
}

// TestFreePortBelowEphemeralRange: ports for the servers come from below
// the kernel's ephemeral range, where the load generator's own client
// connections never take them.
func TestFreePortBelowEphemeralRange(t *testing.T) {
	t.Parallel()
	low := ephemeralLow()
	if low == 0 {
		t.Fatal("no ephemeral port range in /proc/sys/net/ipv4/ip_local_port_range")
	}
	for range 20 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		if port < 1024 || port >= low {
			t.Fatalf("freePort = %d, want one in [1024, %d)", port, low)
		}
	}
}
