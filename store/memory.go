package store

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMemoryMaxBytes bounds what a Memory store holds in all its queues
// together when MemoryConfig.MaxBytes is zero.
const DefaultMemoryMaxBytes = 256 << 20

// MemoryConfig configures a Memory store. The zero value is usable.
type MemoryConfig struct {
	// MaxBytes bounds the bytes of messages queued for all sessions
	// together: the node-wide budget of the embedded default, where the
	// queues live in the node's own memory. An Append that would pass it
	// gets ErrQueueFull, like one that passes its session's limits.
	// Zero means DefaultMemoryMaxBytes; negative, no bound.
	MaxBytes int64
	// NodeBound says that one node uses the store, in its own process
	// (see store.NodeBound); false: several nodes may share it.
	NodeBound bool
}

// Memory is the in-process Store of a single node (the embedded default).
// Sessions are spread over shards by a hash of the id, so unrelated
// sessions never contend for one lock.
type Memory struct {
	shards   [memoryShards]memoryShard
	channels memChannels // see channels_memory.go

	maxBytes    int64
	queuedBytes atomic.Int64 // message bytes in every session's queue
	nodeBound   bool
}

var (
	_ Store            = (*Memory)(nil)
	_ LeaseTaker       = (*Memory)(nil)
	_ Committer        = (*Memory)(nil)
	_ HandOffCommitter = (*Memory)(nil)
	_ OnceAppender     = (*Memory)(nil)
)

const memoryShards = 64

type memoryShard struct {
	mu       sync.Mutex // guards sessions and every memSession in it
	sessions map[string]*memSession
}

type memSession struct {
	state  State
	code   int
	reason string
	info   []byte
	delay  time.Duration // disconnect delay

	// Receiver lease; live while leaseToken != "" and now < leaseUntil.
	leaseNode   string
	leaseToken  string
	leaseSticky bool
	leaseUntil  time.Time

	// deadline is when the session may be reaped if no lease is live. It
	// is kept at leaseUntil+delay while a lease is held, so a receiver
	// that vanishes without detaching still lets the session expire.
	deadline time.Time

	queue      []string
	queueBytes int // message lengths in queue, summed
	// inFlight holds what inFlightToken took with Hold and has not
	// committed.
	inFlight      []string
	inFlightToken string
	attrs         map[string]string

	// Hand-offs (see HandOffCommitter): the live lease takes up to
	// leaseHandOff bytes; handOffBatch (0: none) names the first handOffN
	// queued messages, handed to it; handOffSeq numbers the batches.
	leaseHandOff int
	handOffSeq   uint64
	handOffBatch uint64
	handOffN     int

	// lastTag is the tag of the last tagged append (see OnceAppender).
	lastTag    AppendTag
	hasLastTag bool
}

// NewMemory returns an empty in-memory Store with the default MemoryConfig.
func NewMemory() *Memory { return NewMemoryWithConfig(MemoryConfig{}) }

// NewMemoryWithConfig returns an empty in-memory Store.
func NewMemoryWithConfig(c MemoryConfig) *Memory {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMemoryMaxBytes
	}
	m := &Memory{maxBytes: c.MaxBytes, nodeBound: c.NodeBound}
	for i := range m.shards {
		m.shards[i].sessions = make(map[string]*memSession)
	}
	return m
}

// NodeBound implements NodeBound: as MemoryConfig.NodeBound said.
func (m *Memory) NodeBound() bool { return m.nodeBound }

// shard is id's shard, by a hash of id (maphash: no allocation, unlike
// fnv over a []byte copy of the id).
func (m *Memory) shard(id string) *memoryShard {
	return &m.shards[maphash.String(memoryShardSeed, id)%memoryShards]
}

var memoryShardSeed = maphash.MakeSeed()

func (s *memSession) leaseLive(now time.Time) bool {
	return s.leaseToken != "" && now.Before(s.leaseUntil)
}

// leaseBars reports that a live lease of another receiver keeps the
// receiver with token from attaching: any, but a lease of node from that
// is not sticky (TakeOver's holder that did not answer).
func (s *memSession) leaseBars(token, from string, now time.Time) bool {
	return s.leaseLive(now) && s.leaseToken != token && (from == "" || s.leaseNode != from || s.leaseSticky)
}

func (s *memSession) holds(token string, now time.Time) bool {
	return token != "" && s.leaseToken == token && now.Before(s.leaseUntil)
}

// Create implements Store.
func (m *Memory) Create(ctx context.Context, id string, opts CreateOptions) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if opts.Lease != nil && opts.Lease.Token == "" {
		return false, ErrNotHolder
	}
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.sessions[id]; ok {
		return false, nil
	}
	delay := opts.DisconnectDelay
	if delay <= 0 {
		delay = DefaultDisconnectDelay
	}
	now := time.Now()
	s := &memSession{
		state:    StateOpen,
		info:     append([]byte(nil), opts.Info...),
		delay:    delay,
		deadline: now.Add(delay),
	}
	if opts.Lease != nil {
		s.takeLease(*opts.Lease, now)
	}
	sh.sessions[id] = s
	return true, nil
}

// Get implements Store.
func (m *Memory) Get(ctx context.Context, id string) (out Session, err error) {
	err = m.with(ctx, id, func(s *memSession) error {
		out = Session{
			ID:     id,
			State:  s.state,
			Code:   s.code,
			Reason: s.reason,
			Info:   s.info, // never changed after Create: shared, read-only
		}
		if s.leaseLive(time.Now()) {
			out.ReceiverNode = s.leaseNode
			out.ReceiverSticky = s.leaseSticky
		}
		return nil
	})
	return out, err
}

// QueuedBytes returns the bytes of messages queued for all sessions: what
// MemoryConfig.MaxBytes bounds.
func (m *Memory) QueuedBytes() int64 { return m.queuedBytes.Load() }

// Attach implements Store.
func (m *Memory) Attach(ctx context.Context, id string, lease Lease, opts ...DrainOption) (AttachResult, error) {
	return m.attach(ctx, id, "", lease, opts)
}

// TakeOver implements LeaseTaker.
func (m *Memory) TakeOver(ctx context.Context, id, from string, lease Lease, opts ...DrainOption) (AttachResult, error) {
	return m.attach(ctx, id, from, lease, opts)
}

// attach takes the lease of id; a live one only when from holds it (and
// it is not sticky).
func (m *Memory) attach(ctx context.Context, id, from string, lease Lease, opts []DrainOption) (AttachResult, error) {
	if err := ctx.Err(); err != nil {
		return AttachResult{}, err
	}
	if lease.Token == "" {
		return AttachResult{}, ErrNotHolder
	}
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s, ok := sh.sessions[id]
	if !ok {
		return AttachResult{Status: Unknown}, nil
	}
	now := time.Now()
	if s.state == StateClosed {
		res := AttachResult{Status: AttachClosed, Code: s.code, Reason: s.reason}
		if s.leaseBars(lease.Token, from, now) {
			// In flight counts too: a holder that dies before its
			// write leaves them to whoever takes its lease over.
			res.HeldBack = len(s.queue) > 0 || len(s.inFlight) > 0
		} else {
			// What was queued before the close goes to the first receiver
			// after it (in flight first: its taker died uncommitted).
			o := DrainOptionsOf(opts)
			msgs, more := m.take(s, o.MaxBytes)
			switch {
			case o.Hold:
				// Held, under a lease of the taker's (Leased): it
				// commits them once written, and dies leaving them in
				// flight, as after an open session's take.
				if msgs = s.hold(lease.Token, msgs); len(msgs) > 0 {
					s.takeLease(lease, now)
					s.leaseHandOff = 0
					res.Leased = true
				}
			case len(s.inFlight) > 0:
				msgs = append(s.inFlight[:len(s.inFlight):len(s.inFlight)], msgs...)
				s.inFlight, s.inFlightToken = nil, ""
			}
			res.Messages, res.More = msgs, more
		}
		return res, nil
	}
	if s.leaseBars(lease.Token, from, now) {
		return AttachResult{Status: Busy}, nil
	}
	s.takeLease(lease, now)
	o := DrainOptionsOf(opts)
	s.leaseHandOff = o.HandOff
	msgs, more := m.take(s, o.MaxBytes)
	if o.Hold {
		msgs = s.hold(lease.Token, msgs)
	}
	return AttachResult{Status: Attached, Messages: msgs, More: more}, nil
}

// take takes messages off s's queue, oldest first, up to maxBytes (<= 0:
// all; the oldest always). more reports that some are left. Lock should
// be held.
func (m *Memory) take(s *memSession, maxBytes int) (msgs []string, more bool) {
	n, size := len(s.queue), s.queueBytes
	if maxBytes > 0 && size > maxBytes {
		n, size = 0, 0
		for n < len(s.queue) && (n == 0 || size+len(s.queue[n]) <= maxBytes) {
			size += len(s.queue[n])
			n++
		}
	}
	msgs = s.queue[:n:n]
	if n > 0 {
		s.handOffBatch = 0 // taken: a hand-off of it is stale
	}
	if n == len(s.queue) {
		s.queue = nil
	} else {
		// A copy, so the taken messages' backing array is not kept alive
		// by what stays.
		s.queue = append([]string(nil), s.queue[n:]...)
	}
	s.queueBytes -= size
	m.queuedBytes.Add(-int64(size))
	return msgs, len(s.queue) > 0
}

// dropQueue forgets s's queue (the session is deleted). Lock should be held.
func (m *Memory) dropQueue(s *memSession) {
	m.queuedBytes.Add(-int64(s.queueBytes))
	s.queue, s.queueBytes = nil, 0
	s.handOffBatch = 0
}

// Lock should be held.
func (s *memSession) takeLease(lease Lease, now time.Time) {
	ttl := lease.TTL
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	s.leaseNode = lease.Node
	s.leaseToken = lease.Token
	s.leaseSticky = lease.Sticky
	s.leaseUntil = now.Add(ttl)
	s.deadline = s.leaseUntil.Add(s.delay)
}

// Renew implements Store.
func (m *Memory) Renew(ctx context.Context, id string, lease Lease) error {
	return m.holding(ctx, id, lease.Token, func(s *memSession, now time.Time) {
		s.takeLease(lease, now)
	})
}

// Detach implements Store.
func (m *Memory) Detach(ctx context.Context, id, token string) error {
	return m.holding(ctx, id, token, func(s *memSession, now time.Time) { s.detach(now) })
}

// detach releases the lease. Lock should be held.
func (s *memSession) detach(now time.Time) {
	s.leaseNode, s.leaseToken, s.leaseSticky = "", "", false
	s.leaseUntil = time.Time{}
	s.leaseHandOff = 0
	s.deadline = now.Add(s.delay)
}

// with runs f on session id under its shard's lock: ErrNotFound if there
// is no such session, else what f returns.
func (m *Memory) with(ctx context.Context, id string, f func(s *memSession) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s, ok := sh.sessions[id]
	if !ok {
		return ErrNotFound
	}
	return f(s)
}

// holding runs f on session id, under its shard's lock, if token holds the
// session's lease now.
func (m *Memory) holding(ctx context.Context, id, token string, f func(s *memSession, now time.Time)) error {
	return m.with(ctx, id, func(s *memSession) error {
		now := time.Now()
		if !s.holds(token, now) {
			return ErrNotHolder
		}
		f(s, now)
		return nil
	})
}

// Append implements Store. Besides limits, the store's MaxBytes bounds all
// queues together.
func (m *Memory) Append(ctx context.Context, id string, msgs []string, limits QueueLimits) (res AppendResult, err error) {
	return m.appendTagged(ctx, id, msgs, limits, nil)
}

// AppendOnce implements OnceAppender.
func (m *Memory) AppendOnce(ctx context.Context, id string, msgs []string, limits QueueLimits, tag AppendTag) (AppendResult, error) {
	if err := tag.Check(); err != nil {
		return AppendResult{}, err
	}
	return m.appendTagged(ctx, id, msgs, limits, &tag)
}

func (m *Memory) appendTagged(ctx context.Context, id string, msgs []string, limits QueueLimits, tag *AppendTag) (res AppendResult, err error) {
	size := 0
	for _, msg := range msgs {
		size += len(msg)
	}
	err = m.with(ctx, id, func(s *memSession) error {
		if s.state == StateClosed {
			return ErrClosed
		}
		if tag != nil && s.hasLastTag && s.lastTag.ID == tag.ID && s.lastTag.Seq >= tag.Seq {
			// A repeat: queued already.
			if s.leaseLive(time.Now()) {
				res.ReceiverNode = s.leaseNode
			}
			return nil
		}
		if limits.Messages > 0 && len(s.queue)+len(msgs) > limits.Messages {
			return ErrQueueFull
		}
		if limits.Bytes > 0 && s.queueBytes+size > limits.Bytes {
			return ErrQueueFull
		}
		if total := m.queuedBytes.Add(int64(size)); m.maxBytes > 0 && total > m.maxBytes {
			m.queuedBytes.Add(-int64(size))
			return ErrQueueFull
		}
		handOff := s.leaseHandOff > 0 && len(s.queue) == 0 && len(s.inFlight) == 0 && size <= s.leaseHandOff
		s.queueBytes += size
		s.queue = append(s.queue, msgs...)
		if s.leaseLive(time.Now()) {
			res.ReceiverNode = s.leaseNode
			if handOff {
				s.handOffSeq++
				s.handOffBatch, s.handOffN = s.handOffSeq, len(msgs)
				res.HandOff = HandedOff{Token: s.leaseToken, Batch: s.handOffBatch}
			}
		}
		if tag != nil {
			s.lastTag, s.hasLastTag = *tag, true
		}
		return nil
	})
	return res, err
}

// Drain implements Store.
func (m *Memory) Drain(ctx context.Context, id, token string, opts ...DrainOption) (res DrainResult, err error) {
	err = m.holding(ctx, id, token, func(s *memSession, _ time.Time) {
		res = DrainResult{State: s.state, Code: s.code, Reason: s.reason}
		o := DrainOptionsOf(opts)
		res.Messages, res.More = m.take(s, o.MaxBytes)
		if o.Hold {
			res.Messages = s.hold(token, res.Messages)
		}
	})
	return res, err
}

// hold keeps msgs, just taken by token, in flight, and returns what token
// should send: everything in flight, oldest first. What another token left
// there (it died before its commit) and what token itself took before
// without committing (a take whose result it never got) both go out again,
// so a held take is safe to repeat. Lock should be held.
func (s *memSession) hold(token string, msgs []string) []string {
	if len(s.inFlight) > 0 {
		msgs = append(s.inFlight[:len(s.inFlight):len(s.inFlight)], msgs...)
	}
	if len(msgs) == 0 {
		return msgs
	}
	s.inFlight = msgs[:len(msgs):len(msgs)]
	s.inFlightToken = token
	return msgs
}

// Commit implements Committer.
func (m *Memory) Commit(ctx context.Context, id, token string, detach bool) error {
	return m.CommitHandOff(ctx, id, token, 0, detach)
}

// CommitHandOff implements HandOffCommitter.
func (m *Memory) CommitHandOff(ctx context.Context, id, token string, batch uint64, detach bool) error {
	return m.holding(ctx, id, token, func(s *memSession, now time.Time) {
		if batch != 0 && s.handOffBatch == batch {
			size := 0
			for _, msg := range s.queue[:s.handOffN] {
				size += len(msg)
			}
			s.queue = append([]string(nil), s.queue[s.handOffN:]...)
			s.queueBytes -= size
			m.queuedBytes.Add(-int64(size))
			s.handOffBatch = 0
		}
		if s.inFlightToken == token {
			s.inFlight, s.inFlightToken = nil, ""
		}
		if detach {
			s.detach(now)
		}
	})
}

// Close implements Store.
func (m *Memory) Close(ctx context.Context, id string, code int, reason string) (won bool, err error) {
	err = m.with(ctx, id, func(s *memSession) error {
		if s.state == StateClosed {
			return nil
		}
		s.state, s.code, s.reason = StateClosed, code, reason
		// With no receiver, keep the close frame for one more disconnect
		// delay; with one, its detach (or lease expiry) starts the delay.
		if now := time.Now(); !s.leaseLive(now) {
			s.deadline = now.Add(s.delay)
		}
		won = true
		return nil
	})
	return won, err
}

// Reap implements Store. The given now is the clock for deadlines and lease
// expiry.
func (m *Memory) Reap(ctx context.Context, now time.Time, limit int) ([]string, error) {
	var ids []string
	for i := range m.shards {
		if err := ctx.Err(); err != nil {
			return ids, err
		}
		sh := &m.shards[i]
		sh.mu.Lock()
		for id, s := range sh.sessions {
			if limit > 0 && len(ids) >= limit {
				break
			}
			if s.leaseLive(now) || !s.deadline.Before(now) {
				continue
			}
			delete(sh.sessions, id)
			m.dropQueue(s)
			if s.state == StateOpen {
				ids = append(ids, id)
			}
		}
		sh.mu.Unlock()
		if limit > 0 && len(ids) >= limit {
			break
		}
	}
	return ids, nil
}

// SetAttr implements Store.
func (m *Memory) SetAttr(ctx context.Context, id, key, value string) error {
	return m.with(ctx, id, func(s *memSession) error {
		if s.attrs == nil {
			s.attrs = make(map[string]string)
		}
		s.attrs[key] = value
		return nil
	})
}

// Attr implements Store.
func (m *Memory) Attr(ctx context.Context, id, key string) (value string, ok bool, err error) {
	err = m.with(ctx, id, func(s *memSession) error {
		value, ok = s.attrs[key]
		return nil
	})
	return value, ok, err
}
