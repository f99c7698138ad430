// Package cluster tells a Shoal node who else is alive, what they serve
// (metadata), and which surviving node cleans up after a dead one. Static
// is the single-node default; Memberlist gossips over
// hashicorp/memberlist.
package cluster

import (
	"sort"
	"time"
)

// State is a member's health as seen by the local node.
type State uint8

const (
	// StateAlive: the member answers probes.
	StateAlive State = iota + 1
	// StateSuspect: a probe failed; the member is declared dead unless it
	// refutes in time.
	StateSuspect
	// StateDead: the member stopped answering (crash, SIGKILL, partition).
	StateDead
	// StateLeft: the member said goodbye (Leave).
	StateLeft
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return "unknown"
}

// Member is one node of the cluster.
type Member struct {
	ID       string // node id (--node-id), unique in the cluster
	HTTPAddr string // where the node serves HTTP, for operators and tools
	Version  string // the node's build version
	State    State
}

// Membership is the local node's view of the cluster. Views of different
// nodes converge but may differ for a while (a crash is noticed by one node
// before another). Methods are safe for concurrent use.
type Membership interface {
	// Self returns the local node.
	Self() Member
	// Members returns the members not known to be dead or gone (alive and
	// suspect ones), the local node included, sorted by ID.
	Members() []Member
	// OnLeave registers f to be called with a member (State dead or left)
	// when the local node learns that it died or left. Calls are made one
	// at a time from one goroutine, in the order events were seen; f may
	// call Self, Members and ResponsibleFor, not Leave or Shutdown (they
	// wait for f to return), and must not block for long.
	// cancel stops further calls; calling it twice is harmless.
	OnLeave(f func(Member)) (cancel func())
	// ResponsibleFor reports whether the local node is the one that should
	// clean up after the dead node deadID (reap its sessions, release its
	// leases): see Cleaner. Nodes with diverging views may both answer
	// true, or briefly none may, so every cleanup step must itself be an
	// atomic, idempotent store operation, and nodes should re-check
	// periodically for state left by nodes that are not members.
	ResponsibleFor(deadID string) bool
	// Leave tells the others that the local node is going away, waits at
	// most timeout for that to spread, and stops taking part.
	Leave(timeout time.Duration) error
	// Shutdown stops taking part without telling anyone: the others will
	// detect it as a failure. Calls after the first, or after Leave, are
	// harmless.
	Shutdown() error
}

// Cleaner returns the ID of the member that cleans up after deadID: the
// first alive member whose ID sorts after deadID, wrapping around to the
// smallest one, so every node that sees the same alive set picks the same
// cleaner, and the duty for different dead nodes spreads over the
// survivors. Suspect, dead and left members are not candidates, nor is
// deadID itself. It returns "" when no member is alive.
func Cleaner(members []Member, deadID string) string {
	ids := make([]string, 0, len(members))
	for _, m := range members {
		if m.State == StateAlive && m.ID != deadID {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) == 0 {
		return ""
	}
	sort.Strings(ids)
	i := sort.SearchStrings(ids, deadID)
	if i < len(ids) && ids[i] == deadID {
		i++
	}
	if i == len(ids) {
		i = 0
	}
	return ids[i]
}
