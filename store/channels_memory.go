package store

import (
	"context"
	"math"
	"sync"
	"time"
)

var _ Channels = (*Memory)(nil)

// memChannels is the channel side of Memory. Lock order: a session shard's
// mu before memChannels.mu, never the other way.
type memChannels struct {
	mu        sync.Mutex                   // guards everything below
	logs      map[string]*memLog           // channel → log and members
	subs      map[string]map[string]uint64 // session id → channel → cursor
	lastSweep time.Time
}

type memLog struct {
	head    uint64
	entries []memEntry // oldest first, contiguous offsets ending at head
	members map[string]struct{}
	touched time.Time     // last Append or Subscribe
	keep    time.Duration // of the last Append
}

type memEntry struct {
	offset uint64
	at     time.Time
	msg    string
}

// Lock should be held.
func (c *memChannels) log(channel string, create bool, now time.Time) *memLog {
	l := c.logs[channel]
	if l != nil && now.Sub(l.touched) > ChannelTTL {
		// Expired, as a Redis key with ChannelTTL would be.
		delete(c.logs, channel)
		l = nil
	}
	if l == nil && create {
		if c.logs == nil {
			c.logs = make(map[string]*memLog)
		}
		l = &memLog{head: ChannelLogBase(now), members: make(map[string]struct{})}
		c.logs[channel] = l
	}
	return l
}

// sweep forgets channels that expired, at most once a minute, so channels
// nobody uses any more do not pile up. Lock should be held.
func (c *memChannels) sweep(now time.Time) {
	if now.Sub(c.lastSweep) < time.Minute {
		return
	}
	c.lastSweep = now
	for name, l := range c.logs {
		if now.Sub(l.touched) > ChannelTTL {
			delete(c.logs, name)
		}
	}
}

// trim drops entries older than keep and beyond maxLen.
func (l *memLog) trim(keep time.Duration, maxLen int, now time.Time) {
	drop := 0
	if over := len(l.entries) - maxLen; over > 0 {
		drop = over
	}
	for drop < len(l.entries) && now.Sub(l.entries[drop].at) >= keep {
		drop++
	}
	if drop == 0 {
		return
	}
	if drop > len(l.entries)/2 {
		// Copy, so the dropped prefix's backing array can be freed.
		l.entries = append([]memEntry(nil), l.entries[drop:]...)
	} else {
		l.entries = l.entries[drop:]
	}
}

func logOptions(o LogOptions) (time.Duration, int) {
	keep, maxLen := o.Keep, o.MaxLen
	if keep <= 0 {
		keep = DefaultLogKeep
	}
	if maxLen <= 0 {
		maxLen = DefaultLogMaxLen
	}
	return keep, maxLen
}

// Subscribe implements Channels. It is atomic: the session's state and the
// channel's head are read under both locks.
func (m *Memory) Subscribe(ctx context.Context, id, channel string, max int) (SubscribeResult, error) {
	return m.SubscribeFrom(ctx, id, channel, max, math.MaxUint64)
}

// SubscribeFrom implements Channels.
func (m *Memory) SubscribeFrom(ctx context.Context, id, channel string, max int, from uint64) (res SubscribeResult, err error) {
	if err := CheckChannel(channel); err != nil {
		return SubscribeResult{}, err
	}
	err = m.with(ctx, id, func(s *memSession) error {
		if s.state == StateClosed {
			return ErrClosed
		}
		now := time.Now()
		if s.leaseLive(now) {
			res.ReceiverNode = s.leaseNode
		}
		c := &m.channels
		c.mu.Lock()
		defer c.mu.Unlock()
		c.sweep(now)
		subs := c.subs[id]
		if cur, ok := subs[channel]; ok {
			res.Cursor = cur
			return nil
		}
		if max > 0 && len(subs) >= max {
			return ErrTooManySubscriptions
		}
		l := c.log(channel, true, now)
		l.touched = now
		l.members[id] = struct{}{}
		if subs == nil {
			if c.subs == nil {
				c.subs = make(map[string]map[string]uint64)
			}
			subs = make(map[string]uint64)
			c.subs[id] = subs
		}
		cursor := min(from, l.head)
		subs[channel] = cursor
		res.Cursor, res.Created = cursor, true
		return nil
	})
	if err != nil {
		return SubscribeResult{}, err
	}
	return res, nil
}

// Unsubscribe implements Channels.
func (m *Memory) Unsubscribe(ctx context.Context, id, channel string) (bool, string, error) {
	if err := ctx.Err(); err != nil {
		return false, "", err
	}
	if err := CheckChannel(channel); err != nil {
		return false, "", err
	}
	var node string
	sh := m.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s, ok := sh.sessions[id]; ok && s.leaseLive(time.Now()) {
		node = s.leaseNode
	}
	c := &m.channels
	c.mu.Lock()
	defer c.mu.Unlock()
	subs := c.subs[id]
	if _, ok := subs[channel]; !ok {
		return false, node, nil
	}
	delete(subs, channel)
	if len(subs) == 0 {
		delete(c.subs, id)
	}
	if l := c.logs[channel]; l != nil {
		delete(l.members, id)
	}
	return true, node, nil
}

// UnsubscribeAll implements Channels.
func (m *Memory) UnsubscribeAll(ctx context.Context, id string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := &m.channels
	c.mu.Lock()
	defer c.mu.Unlock()
	subs := c.subs[id]
	delete(c.subs, id)
	out := make([]string, 0, len(subs))
	for ch := range subs {
		out = append(out, ch)
		if l := c.logs[ch]; l != nil {
			delete(l.members, id)
		}
	}
	return out, nil
}

// Subscriptions implements Channels.
func (m *Memory) Subscriptions(ctx context.Context, id string) (map[string]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := &m.channels
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.subs[id]))
	for ch, cur := range c.subs[id] {
		out[ch] = cur
	}
	return out, nil
}

// SetCursors implements Channels.
func (m *Memory) SetCursors(ctx context.Context, id string, cursors map[string]uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &m.channels
	c.mu.Lock()
	defer c.mu.Unlock()
	subs := c.subs[id]
	for ch, cur := range cursors {
		if old, ok := subs[ch]; ok && cur > old {
			subs[ch] = cur
		}
	}
	return nil
}

// Members implements Channels.
func (m *Memory) Members(ctx context.Context, channel string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := CheckChannel(channel); err != nil {
		return nil, err
	}
	c := &m.channels
	c.mu.Lock()
	var ids []string
	if l := c.log(channel, false, time.Now()); l != nil {
		ids = make([]string, 0, len(l.members))
		for id := range l.members {
			ids = append(ids, id)
		}
	}
	c.mu.Unlock()
	// Leave out sessions that were reaped before they left (their node
	// runs UnsubscribeAll after the reap). Shard locks come first in the
	// lock order, so this runs after c.mu is released.
	out := ids[:0]
	for _, id := range ids {
		sh := m.shard(id)
		sh.mu.Lock()
		_, ok := sh.sessions[id]
		sh.mu.Unlock()
		if ok {
			out = append(out, id)
		}
	}
	return out, nil
}

// AppendChannel implements Channels.
func (m *Memory) AppendChannel(ctx context.Context, channel, msg string, opts LogOptions) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := CheckChannel(channel); err != nil {
		return 0, err
	}
	keep, maxLen := logOptions(opts)
	now := time.Now()
	c := &m.channels
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweep(now)
	l := c.log(channel, true, now)
	l.touched, l.keep = now, keep
	l.head++
	l.entries = append(l.entries, memEntry{offset: l.head, at: now, msg: msg})
	l.trim(keep, maxLen, now)
	return l.head, nil
}

// ReadChannel implements Channels. Once the newest entry is older than the
// keep of the last Append the log is empty, as in Redis, where its key
// expires then.
func (m *Memory) ReadChannel(ctx context.Context, channel string, after uint64, max int) (ReadResult, error) {
	if err := ctx.Err(); err != nil {
		return ReadResult{}, err
	}
	if err := CheckChannel(channel); err != nil {
		return ReadResult{}, err
	}
	if max <= 0 {
		max = DefaultReadMax
	}
	c := &m.channels
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.log(channel, false, time.Now())
	if l == nil {
		return ReadResult{}, nil
	}
	if n := len(l.entries); n > 0 && time.Since(l.entries[n-1].at) >= l.keep {
		l.entries = nil
	}
	return readEntries(l.head, l.entries, after, max), nil
}

// readEntries answers a read of a log whose newest offset is head and
// whose kept entries (contiguous, ending at head) are entries.
func readEntries(head uint64, entries []memEntry, after uint64, max int) ReadResult {
	res := ReadResult{Head: head}
	first := head + 1 - uint64(len(entries))
	if after >= head {
		res.Truncated = after > head // the log started over below after
		return res
	}
	start := uint64(0)
	if after+1 < first {
		res.Truncated = true
	} else {
		start = after + 1 - first
	}
	end := min(uint64(len(entries)), start+uint64(max))
	res.Entries = make([]LogEntry, 0, end-start)
	for _, e := range entries[start:end] {
		res.Entries = append(res.Entries, LogEntry{Offset: e.offset, Msg: e.msg})
	}
	return res
}
