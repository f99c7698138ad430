package ops

import (
	"slices"
	"strings"
	"testing"
)

func TestGodebugNames(t *testing.T) {
	named := []string{"schedtrace=0", "gctrace=1, schedtrace=1000"}
	unnamed := []string{"", "gctrace=1,scheddetail=1", "madvdontneed=1,schedtracex=1"}
	for _, godebug := range append(named, unnamed...) {
		want := slices.Contains(named, godebug)
		if godebugNames(godebug, "schedtrace") != want {
			t.Errorf("godebugNames(%q) is not %v", godebug, want)
		}
	}
	env := withEnv([]string{"A=1", "GODEBUG=x=1", "B=2"}, "GODEBUG", "x=1,y=2")
	if got := strings.Join(env, " "); got != "A=1 B=2 GODEBUG=x=1,y=2" {
		t.Errorf("withEnv = %s", got)
	}
}
