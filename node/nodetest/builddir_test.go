package nodetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBuildDirRemovesGoneProcessesBuilds: a build directory of a process
// that is gone is removed once it is old enough; a live process's stays.
func TestBuildDirRemovesGoneProcessesBuilds(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	mk := func(name string, mtime time.Time) string {
		d := filepath.Join(tmp, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(d, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return d
	}
	goneOld := mk(fmt.Sprintf("shoal-node-%d-1", gone.Process.Pid), old)
	goneNew := mk(fmt.Sprintf("shoal-node-%d-2", gone.Process.Pid), time.Now())
	liveOld := mk(fmt.Sprintf("shoal-node-%d-3", os.Getpid()), old)

	dir, err := buildDir()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(dir), fmt.Sprintf("shoal-node-%d-", os.Getpid())) || filepath.Dir(dir) != tmp {
		t.Errorf("build dir %s: want shoal-node-<this pid>-* in %s", dir, tmp)
	}
	for d, want := range map[string]bool{goneOld: false, goneNew: true, liveOld: true, dir: true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(d), err == nil, want)
		}
	}
}
