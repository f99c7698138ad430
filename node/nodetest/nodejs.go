package nodetest

import (
	"context"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/internal/testenv"
)

// NodeJS returns the command that runs the Node.js script with args under
// ctx. When ctx ends the script gets SIGTERM first (a playwright driver
// then closes its Chromium, which a killed one would leave behind) and a
// kill 10 s later. Its standard error is kept and logged, the last 100
// lines, if the test fails.
func NodeJS(t testing.TB, ctx context.Context, script string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	t.Cleanup(func() {
		if t.Failed() && stderr.String() != "" {
			t.Logf("--- stderr of %s:\n%s", filepath.Base(script), testenv.LastLines(stderr.String(), 100))
		}
	})
	return cmd
}
