// Package bridge carries what backends publish outside Shoal into hub
// channels: Redis PUBLISH on a channel prefix (redis.go), entries a backend
// adds to a Redis stream (stream.go, the durable variant) and NATS
// messages on a subject prefix (nats.go). docs/backends.md says what each
// one promises.
//
// Each bridge runs on one node of the cluster at a time, the holder of a
// lease in Redis (lease.go): Redis pub/sub and plain NATS subscriptions hand
// every message to every subscriber, and a NATS queue group would spread
// one publisher's messages over nodes that append them in any order. One
// holder gives each message one append, in the order its publisher sent it.
package bridge

import (
	"context"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Publisher is what a bridge needs from the hub: Publish appends payload
// (a JSON value, or bytes that are not JSON, which subscribers then get as
// a JSON string) to channel's log and fans it out, returning its offset.
// It is called concurrently, but never concurrently for one channel.
type Publisher interface {
	Publish(ctx context.Context, channel string, payload []byte) (offset uint64, err error)
}

// Stats counts what a bridge did; every field is read atomically.
type Stats struct {
	Bridged atomic.Uint64 // appended to a channel
	Failed  atomic.Uint64 // Publish returned an error
	Fenced  atomic.Uint64 // dropped because the lease was no longer sure
	// Skipped counts redelivered stream entries found appended already.
	Skipped atomic.Uint64
}

// publishTimeout bounds one Publish of a bridged message.
const publishTimeout = 5 * time.Second

// shards keeps each channel's messages in order (one worker per shard,
// chosen by the channel's hash) while channels proceed in parallel.
type shards struct {
	queues []chan func()
	wg     sync.WaitGroup
}

func newShards(n, depth int) *shards {
	s := &shards{queues: make([]chan func(), n)}
	for i := range s.queues {
		q := make(chan func(), depth)
		s.queues[i] = q
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for f := range q {
				f()
			}
		}()
	}
	return s
}

// add queues f behind the earlier work of channel; it blocks while the
// shard is full, so a slow hub pushes back on the reader.
func (s *shards) add(channel string, f func()) {
	h := fnv.New32a()
	h.Write([]byte(channel))
	s.queues[h.Sum32()%uint32(len(s.queues))] <- f
}

// close waits for everything queued.
func (s *shards) close() {
	for _, q := range s.queues {
		close(q)
	}
	s.wg.Wait()
}

// runRetrying runs bridge whenever this node holds lease, until ctx ends,
// starting it again 250 ms after it fails (a dropped connection).
func runRetrying(ctx context.Context, lease Lease, log *slog.Logger, what string, bridge func(ctx context.Context, valid func() bool) error) {
	lease.Run(ctx, func(ctx context.Context, valid func() bool) {
		for ctx.Err() == nil {
			if err := bridge(ctx, valid); err != nil && ctx.Err() == nil {
				log.Warn("bridge: "+what+" failed, retrying", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(250 * time.Millisecond):
				}
			}
		}
	})
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// core is what the three bridges share: the hub they publish into, the
// lease that elects the bridging node, the workers, the log and counters.
type core struct {
	pub            Publisher
	lease          Lease
	workers, depth int
	log            *slog.Logger
	Stats          Stats
	live           atomic.Bool // this node is bridging now
}

// Options are the settings every bridge's config has. Zero fields take
// defaults.
type Options struct {
	// Lease elects the bridging node; nil: Local (a lone node).
	Lease Lease
	// Workers bound how many channels are appended in parallel (default
	// 8); QueueDepth is each worker's queue (default 1024).
	Workers, QueueDepth int
	Log                 *slog.Logger
}

// init takes a bridge's Options, with their defaults, and log (o.Log with
// the bridge's attributes).
func (b *core) init(pub Publisher, o Options, log *slog.Logger) {
	if o.Lease == nil {
		o.Lease = Local{}
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.QueueDepth <= 0 {
		o.QueueDepth = 1024
	}
	b.pub, b.lease, b.workers, b.depth, b.log = pub, o.Lease, o.Workers, o.QueueDepth, log
}

// Live reports whether this node is the one bridging right now.
func (b *core) Live() bool { return b.live.Load() }

// bridging runs read, which queues what it reads on work, with this node
// reported live; it returns once read has and the queued appends are done.
func (b *core) bridging(read func(work *shards) error) error {
	b.live.Store(true)
	defer b.live.Store(false)
	b.log.Info("bridge: bridging")
	work := newShards(b.workers, b.depth)
	defer work.close()
	return read(work)
}

// appendAtMostOnce appends one message of an at-most-once bridge (Redis
// pub/sub, NATS): no retry, since a Publish that failed may still have
// appended, and a second one would deliver twice.
func (b *core) appendAtMostOnce(valid func() bool, channel string, payload []byte) {
	if !valid() {
		b.Stats.Fenced.Add(1)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if _, err := b.pub.Publish(ctx, channel, payload); err != nil {
		b.Stats.Failed.Add(1)
		b.log.Warn("bridge: publish failed", "channel", channel, "err", err)
		return
	}
	b.Stats.Bridged.Add(1)
}
