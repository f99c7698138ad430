package bus

import (
	"context"
	"sync"
	"sync/atomic"
)

// DefaultQueueSize is how many messages a Memory listener may have waiting
// before further messages to it are dropped.
const DefaultQueueSize = 1024

var _ Bus = (*Memory)(nil)

// Memory is the in-process Bus of a single node (the embedded default).
// Every listener has its own goroutine and a bounded queue, so a slow
// handler delays only itself: a sender never blocks, and a message for a
// full queue is dropped and counted (see Dropped). That is within the Bus
// contract, which promises at most once.
type Memory struct {
	mu       sync.RWMutex // guards closed, nodes and channels.
	closed   bool
	nodes    map[string]map[*memListener]struct{}
	channels map[string]map[*memListener]struct{}

	wg      sync.WaitGroup // listener goroutines, waited for by Close.
	dropped atomic.Uint64
}

// NewMemory returns an empty in-process bus.
func NewMemory() *Memory {
	return &Memory{
		nodes:    make(map[string]map[*memListener]struct{}),
		channels: make(map[string]map[*memListener]struct{}),
	}
}

// memListener is one Listen call: a queue drained by its own goroutine.
type memListener struct {
	h       Handler
	queue   chan []byte
	done    chan struct{} // closed by stop
	once    sync.Once
	stopped atomic.Bool // checked before each handler call, set by stop
}

func (l *memListener) stop() {
	l.once.Do(func() {
		l.stopped.Store(true)
		close(l.done)
	})
}

func (l *memListener) run() {
	for {
		select {
		case <-l.done:
			return
		case msg := <-l.queue:
			// done and queue may both be ready; never start a handler
			// after the listener was cancelled.
			if l.stopped.Load() {
				return
			}
			l.h(msg)
		}
	}
}

// SendNode implements Bus.
func (m *Memory) SendNode(ctx context.Context, node string, msg []byte) error {
	return m.deliver(ctx, m.nodes, node, msg)
}

// ListenNode implements Bus.
func (m *Memory) ListenNode(node string, h Handler) (func(), error) {
	return m.listen(m.nodes, node, h)
}

// Publish implements Bus.
func (m *Memory) Publish(ctx context.Context, channel string, msg []byte) error {
	return m.deliver(ctx, m.channels, channel, msg)
}

// ListenChannel implements Bus.
func (m *Memory) ListenChannel(channel string, h Handler) (func(), error) {
	return m.listen(m.channels, channel, h)
}

// Dropped reports how many messages were dropped because a listener's
// queue was full.
func (m *Memory) Dropped() uint64 { return m.dropped.Load() }

// Close stops every listener and waits for their goroutines to return; a
// handler call under way finishes first. Close must not be called from a
// Handler. Calls after the first return nil.
func (m *Memory) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	for _, table := range []map[string]map[*memListener]struct{}{m.nodes, m.channels} {
		for name, set := range table {
			for l := range set {
				l.stop()
			}
			delete(table, name)
		}
	}
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}

func (m *Memory) deliver(ctx context.Context, table map[string]map[*memListener]struct{}, name string, msg []byte) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	for l := range table[name] {
		// Each handler owns its slice, and the caller may reuse msg.
		cp := make([]byte, len(msg))
		copy(cp, msg)
		select {
		case l.queue <- cp:
		default:
			m.dropped.Add(1)
		}
	}
	return nil
}

func (m *Memory) listen(table map[string]map[*memListener]struct{}, name string, h Handler) (func(), error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	l := &memListener{
		h:     h,
		queue: make(chan []byte, DefaultQueueSize),
		done:  make(chan struct{}),
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	set := table[name]
	if set == nil {
		set = make(map[*memListener]struct{})
		table[name] = set
	}
	set[l] = struct{}{}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		l.run()
	}()
	cancel := func() {
		m.mu.Lock()
		if set := table[name]; set != nil {
			delete(set, l)
			if len(set) == 0 {
				delete(table, name)
			}
		}
		m.mu.Unlock()
		l.stop()
	}
	return cancel, nil
}
