package cluster_test

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-rt/shoal/cluster"
	"github.com/shoal-rt/shoal/internal/testenv"
)

// testLogger sends warnings and errors to the test log, until the test
// ends: memberlist's goroutines may still log a little after Shutdown, and
// t.Log after the end panics.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	t    *testing.T
	mu   sync.Mutex // guards done; held while logging
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func startNode(t *testing.T, id string, seeds ...string) *cluster.Memberlist {
	t.Helper()
	return startNodeWith(t, cluster.Config{NodeID: id, Seeds: seeds})
}

// startNodeWith starts a node on a free loopback port with cfg's NodeID,
// Seeds, Kind and SecretKey. The port is testenv's, below the ephemeral
// range: a port the kernel picks (port 0) comes from that range, where a
// node's own attempts to join a seed that is down may take it (a
// connection to a loopback port nobody listens on can connect to itself),
// and TestMemberlistSeedStartsLater binds the seed's port again.
func startNodeWith(t *testing.T, cfg cluster.Config) *cluster.Memberlist {
	t.Helper()
	id := cfg.NodeID
	var m *cluster.Memberlist
	var err error
	for range 3 { // another test may bind the port first: draw again
		m, err = cluster.Join(cluster.Config{
			NodeID:         id,
			BindAddr:       testenv.FreeAddr(t),
			HTTPAddr:       "127.0.0.1:80" + id[len(id)-1:],
			Version:        "test-" + id,
			Seeds:          cfg.Seeds,
			RejoinInterval: 200 * time.Millisecond,
			Logger:         testLogger(t),
			Kind:           cfg.Kind,
			SecretKey:      cfg.SecretKey,
		})
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return m
}

func ids(ms []cluster.Member) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.ID+"("+m.State.String()+")")
	}
	return strings.Join(s, ",")
}

// waitMembers waits until every node sees exactly want, all alive.
func waitMembers(t *testing.T, nodes []*cluster.Memberlist, want ...string) {
	t.Helper()
	sort.Strings(want)
	wantStr := ids(aliveMembers(want))
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		for _, n := range nodes {
			if got := ids(n.Members()); got != wantStr {
				return fmt.Errorf("%s sees %s, want %s", n.Self().ID, got, wantStr)
			}
		}
		return nil
	})
}

func aliveMembers(ids []string) []cluster.Member {
	var ms []cluster.Member
	for _, id := range ids {
		ms = append(ms, cluster.Member{ID: id, State: cluster.StateAlive})
	}
	return ms
}

// leaves records OnLeave calls of one node.
type leaves struct {
	mu     sync.Mutex
	seen   map[string]cluster.Member
	at     map[string]time.Time
	cancel func()
}

func watchLeaves(m *cluster.Memberlist) *leaves {
	l := &leaves{seen: map[string]cluster.Member{}, at: map[string]time.Time{}}
	l.cancel = m.OnLeave(func(member cluster.Member) {
		// Callbacks may use the membership: this must not deadlock.
		_ = m.Members()
		l.mu.Lock()
		defer l.mu.Unlock()
		l.seen[member.ID] = member
		l.at[member.ID] = time.Now()
	})
	return l
}

func (l *leaves) get(id string) (cluster.Member, time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.seen[id]
	return m, l.at[id], ok
}

func startThree(t *testing.T) []*cluster.Memberlist {
	a := startNode(t, "node-a")
	b := startNode(t, "node-b", a.GossipAddr())
	c := startNode(t, "node-c", b.GossipAddr())
	nodes := []*cluster.Memberlist{a, b, c}
	waitMembers(t, nodes, "node-a", "node-b", "node-c")
	return nodes
}

func TestMemberlistThreeNodes(t *testing.T) {
	nodes := startThree(t)
	for _, n := range nodes {
		for _, m := range n.Members() {
			// Metadata travelled with the gossip.
			if want := "test-" + m.ID; m.Version != want {
				t.Errorf("%s sees %s with version %q, want %q", n.Self().ID, m.ID, m.Version, want)
			}
			if want := "127.0.0.1:80" + m.ID[len(m.ID)-1:]; m.HTTPAddr != want {
				t.Errorf("%s sees %s with HTTP address %q, want %q", n.Self().ID, m.ID, m.HTTPAddr, want)
			}
		}
		if s := n.Self(); s.State != cluster.StateAlive || s.Version != "test-"+s.ID {
			t.Errorf("Self() = %+v", s)
		}
	}
}

// waitLeft waits up to total until every survivor's OnLeave has seen
// node go, in state (dead or left).
func waitLeft(t *testing.T, total time.Duration, node string, state cluster.State, survivors ...*leaves) {
	t.Helper()
	testenv.CheckFor(t, total, 10*time.Millisecond, func() error {
		for i, l := range survivors {
			m, _, ok := l.get(node)
			if !ok {
				return fmt.Errorf("survivor %d has not seen %s go", i, node)
			}
			if m.State != state {
				return fmt.Errorf("survivor %d saw %s %v, want %v", i, node, m.State, state)
			}
		}
		return nil
	})
}

// A node killed without a goodbye (SIGKILL) is declared dead by the others
// within a bounded time, and exactly one survivor cleans up after it.
func TestMemberlistCrashDetected(t *testing.T) {
	nodes := startThree(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	la, lb := watchLeaves(a), watchLeaves(b)

	killed := time.Now()
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	// The bound: probe round + suspicion (2 s) with slack for a loaded
	// machine running -race; memberlist's awareness may stretch probes.
	const bound = 15 * time.Second
	waitLeft(t, bound, "node-c", cluster.StateDead, la, lb)
	_, atA, _ := la.get("node-c")
	_, atB, _ := lb.get("node-c")
	t.Logf("crash detected after %v (node-a) and %v (node-b)",
		atA.Sub(killed).Round(time.Millisecond), atB.Sub(killed).Round(time.Millisecond))

	waitMembers(t, []*cluster.Memberlist{a, b}, "node-a", "node-b")
	responsible := 0
	for _, n := range []*cluster.Memberlist{a, b} {
		if n.ResponsibleFor("node-c") {
			responsible++
			// node-c wraps around to the smallest id.
			if n.Self().ID != "node-a" {
				t.Errorf("%s is responsible for node-c, want node-a", n.Self().ID)
			}
		}
	}
	if responsible != 1 {
		t.Errorf("%d survivors responsible for node-c, want exactly 1", responsible)
	}
	if a.ResponsibleFor("node-a") || b.ResponsibleFor("node-a") {
		t.Error("a live node's own cleanup was assigned")
	}
}

// A node that leaves gracefully is seen as left, quickly.
func TestMemberlistLeave(t *testing.T) {
	nodes := startThree(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	la, lb, lc := watchLeaves(a), watchLeaves(b), watchLeaves(c)
	left := time.Now()
	if err := b.Leave(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.Leave(time.Second); err != nil {
		t.Errorf("second Leave: %v", err)
	}
	if err := b.Shutdown(); err != nil {
		t.Errorf("Shutdown after Leave: %v", err)
	}
	if got := b.Self().State; got != cluster.StateLeft {
		t.Errorf("leaver's own state = %v, want left", got)
	}
	waitLeft(t, 5*time.Second, "node-b", cluster.StateLeft, la, lc)
	_, at, _ := la.get("node-b")
	t.Logf("graceful leave seen after %v", at.Sub(left).Round(time.Millisecond))
	if _, _, ok := lb.get("node-b"); ok {
		t.Error("the leaver was told about its own leave")
	}
	waitMembers(t, []*cluster.Memberlist{a, c}, "node-a", "node-c")
	// node-b's cleaner is the next id: node-c.
	if !c.ResponsibleFor("node-b") || a.ResponsibleFor("node-b") {
		t.Errorf("ResponsibleFor(node-b): a=%v c=%v, want only c", a.ResponsibleFor("node-b"), c.ResponsibleFor("node-b"))
	}
}

// Nodes may start before their seeds: they join once the seed is up.
func TestMemberlistSeedStartsLater(t *testing.T) {
	a := startNode(t, "node-a")
	addr := a.GossipAddr()
	// b's seed is a, but a is gone and b starts alone.
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	b := startNode(t, "node-b", addr)
	if got := ids(b.Members()); got != "node-b(alive)" {
		t.Fatalf("b sees %s before its seed is up", got)
	}
	// A node comes up at the seed address; b's retries find it.
	c, err := cluster.Join(cluster.Config{NodeID: "node-c", BindAddr: addr, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("rebinding the seed address %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Shutdown() })
	waitMembers(t, []*cluster.Memberlist{b, c}, "node-b", "node-c")
}

func TestJoinRejectsBadConfig(t *testing.T) {
	for _, cfg := range []cluster.Config{
		{NodeID: ""},
		{NodeID: "x", BindAddr: "no-port"},
		{NodeID: "x", BindAddr: "127.0.0.1:99999"},
		{NodeID: "x", BindAddr: "127.0.0.1:0", HTTPAddr: strings.Repeat("h", 600)},
	} {
		if m, err := cluster.Join(cfg); err == nil {
			m.Shutdown()
			t.Errorf("Join(%+v) succeeded", cfg)
		}
	}
}

// stayApart checks, for hold, that each node sees only itself.
func stayApart(t *testing.T, hold time.Duration, nodes ...*cluster.Memberlist) {
	t.Helper()
	for end := time.Now().Add(hold); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		for _, n := range nodes {
			if got := n.Members(); len(got) != 1 {
				t.Fatalf("%s sees %s: a node it must refuse got in", n.Self().ID, ids(got))
			}
		}
	}
}

// TestMemberlistRefusesOtherKind: nodes of another kind (a memory-store
// node, a Redis node with another key prefix) are refused, both when they
// join and when the cluster joins them; nodes of the same kind join.
func TestMemberlistRefusesOtherKind(t *testing.T) {
	t.Parallel()
	a := startNodeWith(t, cluster.Config{NodeID: "kind-a", Kind: "redis:shoal"})
	b := startNodeWith(t, cluster.Config{NodeID: "kind-b", Kind: "redis:shoal", Seeds: []string{a.GossipAddr()}})
	waitMembers(t, []*cluster.Memberlist{a, b}, "kind-a", "kind-b")
	// The same kind joined within the time waited so far; the others get
	// as long again, and more, to try.
	start := time.Now()
	mem := startNodeWith(t, cluster.Config{NodeID: "kind-m", Kind: "memory", Seeds: []string{a.GossipAddr()}})
	other := startNodeWith(t, cluster.Config{NodeID: "kind-o", Kind: "redis:other", Seeds: []string{b.GossipAddr()}})
	none := startNodeWith(t, cluster.Config{NodeID: "kind-n", Seeds: []string{a.GossipAddr()}})
	stayApart(t, time.Second+time.Since(start), mem, other, none)
	for _, n := range []*cluster.Memberlist{a, b} {
		if got := ids(n.Members()); got != ids(aliveMembers([]string{"kind-a", "kind-b"})) {
			t.Fatalf("%s sees %s", n.Self().ID, got)
		}
	}
}

// TestMemberlistSecretKey: gossip with a key is only understood by nodes
// with that key.
func TestMemberlistSecretKey(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	a := startNodeWith(t, cluster.Config{NodeID: "key-a", SecretKey: key})
	b := startNodeWith(t, cluster.Config{NodeID: "key-b", SecretKey: key, Seeds: []string{a.GossipAddr()}})
	waitMembers(t, []*cluster.Memberlist{a, b}, "key-a", "key-b")
	start := time.Now()
	plain := startNodeWith(t, cluster.Config{NodeID: "key-p", Seeds: []string{a.GossipAddr()}})
	wrong := startNodeWith(t, cluster.Config{NodeID: "key-w", SecretKey: []byte("another key, 32 bytes long......"), Seeds: []string{b.GossipAddr()}})
	stayApart(t, time.Second+time.Since(start), plain, wrong)
	if _, err := cluster.Join(cluster.Config{NodeID: "key-x", BindAddr: "127.0.0.1:0", SecretKey: []byte("short")}); err == nil {
		t.Fatal("a 5-byte key was accepted")
	}
}
