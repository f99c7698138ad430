package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/cluster"
)

func alive(ids ...string) []cluster.Member {
	var ms []cluster.Member
	for _, id := range ids {
		ms = append(ms, cluster.Member{ID: id, State: cluster.StateAlive})
	}
	return ms
}

func TestCleaner(t *testing.T) {
	suspect := cluster.Member{ID: "c", State: cluster.StateSuspect}
	tests := []struct {
		members []cluster.Member
		dead    string
		want    string
	}{
		{alive("a", "b", "d"), "c", "d"},                   // next after the dead id
		{alive("d", "a", "b"), "c", "d"},                   // order of the view does not matter
		{alive("a", "b", "d"), "e", "a"},                   // wraps around
		{alive("a", "b", "d"), "0", "a"},                   // before everyone
		{alive("a", "b", "c"), "b", "c"},                   // the dead one still in the view is skipped
		{alive("a", "b", "c"), "c", "a"},                   // ... also at the end
		{append(alive("a", "b", "d"), suspect), "bb", "d"}, // suspects are not candidates
		{[]cluster.Member{suspect, {ID: "x", State: cluster.StateDead}}, "b", ""},
		{nil, "b", ""},
		{alive("solo"), "other", "solo"},
	}
	for _, tt := range tests {
		if got := cluster.Cleaner(tt.members, tt.dead); got != tt.want {
			t.Errorf("Cleaner(%v, %q) = %q, want %q", tt.members, tt.dead, got, tt.want)
		}
	}
}

// Different dead nodes are spread over the survivors, and every survivor
// computes the same answer from the same view.
func TestCleanerSpreadsDuty(t *testing.T) {
	view := alive("n1", "n2", "n3", "n4")
	count := map[string]int{}
	for i := 0; i < 1000; i++ {
		count[cluster.Cleaner(view, fmt.Sprintf("dead-%03d", i))]++
	}
	// "dead-..." sorts before every "n...", so all of these go to n1; ids
	// between survivors go to the next one.
	if count["n1"] != 1000 {
		t.Errorf("counts %v", count)
	}
	for _, tc := range []struct{ dead, want string }{{"n1a", "n2"}, {"n2a", "n3"}, {"n3a", "n4"}, {"n4a", "n1"}} {
		if got := cluster.Cleaner(view, tc.dead); got != tc.want {
			t.Errorf("Cleaner(%q) = %q, want %q", tc.dead, got, tc.want)
		}
	}
}

func TestStatic(t *testing.T) {
	s := cluster.NewStatic(cluster.Member{ID: "me", HTTPAddr: "127.0.0.1:8080", Version: "v1"})
	var _ cluster.Membership = s
	if got := s.Self(); got.ID != "me" || got.State != cluster.StateAlive || got.HTTPAddr != "127.0.0.1:8080" {
		t.Fatalf("Self() = %+v", got)
	}
	if got := s.Members(); len(got) != 1 || got[0].ID != "me" {
		t.Fatalf("Members() = %+v", got)
	}
	if !s.ResponsibleFor("some-dead-node") {
		t.Error("a lone node must clean up after any other node")
	}
	if s.ResponsibleFor("me") {
		t.Error("a node is not responsible for itself")
	}
	cancel := s.OnLeave(func(cluster.Member) { t.Error("OnLeave called on a static membership") })
	cancel()
	cancel()
	if err := s.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if got := s.Self().State; got != cluster.StateLeft {
		t.Errorf("state after Leave then Shutdown = %v, want left", got)
	}
	if got := s.Members(); len(got) != 0 {
		t.Errorf("Members() after Leave = %+v", got)
	}
	if s.ResponsibleFor("some-dead-node") {
		t.Error("a node that left is responsible for nothing")
	}
}
