package cluster

import (
	"sync"
	"time"
)

var _ Membership = (*Static)(nil)

// Static is the membership of a node that runs alone (the embedded
// default): it is the only member, so it is responsible for cleaning up
// after any other node id it finds in the store, and no one ever leaves.
type Static struct {
	mu   sync.Mutex // guards self.State
	self Member
}

// NewStatic returns the membership of a lone node.
func NewStatic(self Member) *Static {
	self.State = StateAlive
	return &Static{self: self}
}

// Self implements Membership.
func (s *Static) Self() Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.self
}

// Members implements Membership: the node itself, until it leaves.
func (s *Static) Members() []Member {
	self := s.Self()
	if self.State != StateAlive {
		return nil
	}
	return []Member{self}
}

// OnLeave implements Membership. Nobody else is a member, so f is never
// called.
func (s *Static) OnLeave(func(Member)) func() { return func() {} }

// ResponsibleFor implements Membership.
func (s *Static) ResponsibleFor(deadID string) bool {
	return Cleaner(s.Members(), deadID) == s.self.ID
}

// Leave implements Membership.
func (s *Static) Leave(time.Duration) error {
	s.stop(StateLeft)
	return nil
}

// Shutdown implements Membership.
func (s *Static) Shutdown() error {
	s.stop(StateDead)
	return nil
}

func (s *Static) stop(state State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.self.State == StateAlive {
		s.self.State = state
	}
}
