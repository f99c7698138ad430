package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/node/apps/hub"
)

// StreamConfig configures the durable bridge. Zero fields take defaults.
type StreamConfig struct {
	// Client is the Redis holding the stream.
	Client redis.UniversalClient
	// Stream is the key backends XADD to, each entry with fields
	// "channel" and "data":
	//   XADD shoal:stream * channel room-1 data '{"text":"hi"}'
	Stream string
	// Group is the consumer group (default "shoal-bridge"), created at the
	// start of the stream, so entries added before any node ran are
	// bridged too. Consumer is this node's name in it (its node id).
	Group, Consumer string
	Options
	// Batch is how many entries one XREADGROUP returns (default 100).
	Batch int
	// MarkTTL is how long an appended entry's id is remembered (default
	// 24 h): a pending entry older than that is appended again.
	MarkTTL time.Duration
}

// Recorder is an optional capability of a Publisher (*hub.Hub has it):
// reading a channel's log. The stream bridge uses it to settle the one
// case its marks cannot: a holder that died between an append and the
// mark that follows it.
type Recorder interface {
	History(ctx context.Context, channel string, since uint64, limit int) (hub.HistoryInfo, error)
}

var _ Recorder = (*hub.Hub)(nil)

// Stream bridges a Redis stream to hub channels, at least once and in
// stream order per channel, without duplicates. Only the lease holder
// reads, through a consumer group: an entry is acknowledged (XACK) after
// it is appended, and its id is marked (SET <stream>:bridged:<id>) in the
// same round trip. A new holder first claims every entry still pending
// in the group (XAUTOCLAIM: the old holder's, in stream order) and skips
// the marked ones. An entry the old holder was appending when it died is
// unmarked but may be in the log: before each append the holder records
// the channel's last offset (SET <stream>:inflight:<id>), and its
// successor looks for the payload after that offset (with a Recorder)
// before appending it again; without a Recorder such an entry may
// arrive twice.
type Stream struct {
	core
	rec Recorder // nil when pub is no Recorder
	cfg StreamConfig
}

// NewStream returns a durable bridge into pub; Run starts it.
func NewStream(pub Publisher, c StreamConfig) *Stream {
	if c.Group == "" {
		c.Group = "shoal-bridge"
	}
	if c.Consumer == "" {
		c.Consumer = "shoal"
	}
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if c.MarkTTL <= 0 {
		c.MarkTTL = 24 * time.Hour
	}
	rec, _ := pub.(Recorder)
	b := &Stream{rec: rec, cfg: c}
	b.init(pub, c.Options, logger(c.Log).With("bridge", "stream", "stream", c.Stream))
	return b
}

// Run bridges whenever this node holds the lease, until ctx ends.
func (b *Stream) Run(ctx context.Context) {
	runRetrying(ctx, b.lease, b.log, "stream read", b.bridge)
}

func (b *Stream) bridge(ctx context.Context, valid func() bool) error {
	rdb := b.cfg.Client
	err := rdb.XGroupCreateMkStream(ctx, b.cfg.Stream, b.cfg.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("bridge: create group: %w", err)
	}
	return b.bridging(func(work *shards) error {
		// Entries still pending in the group, whoever read them, come first:
		// they are older than anything '>' returns.
		start := "0-0"
		for {
			msgs, next, err := rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
				Stream: b.cfg.Stream, Group: b.cfg.Group, Consumer: b.cfg.Consumer,
				Start: start, Count: int64(b.cfg.Batch),
			}).Result()
			if err != nil {
				return fmt.Errorf("bridge: xautoclaim: %w", err)
			}
			for _, m := range msgs {
				b.queue(ctx, work, valid, m, true)
			}
			if next == "0-0" || len(msgs) == 0 && next == start {
				break
			}
			start = next
		}
		for {
			streams, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
				Group: b.cfg.Group, Consumer: b.cfg.Consumer,
				Streams: []string{b.cfg.Stream, ">"}, Count: int64(b.cfg.Batch), Block: time.Second,
			}).Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return fmt.Errorf("bridge: xreadgroup: %w", err)
			}
			for _, s := range streams {
				for _, m := range s.Messages {
					b.queue(ctx, work, valid, m, false)
				}
			}
		}
	})
}

// queue hands one entry to its channel's worker. A malformed entry is
// acknowledged and dropped (it would never succeed).
func (b *Stream) queue(ctx context.Context, work *shards, valid func() bool, m redis.XMessage, redelivered bool) {
	channel, _ := m.Values["channel"].(string)
	data, _ := m.Values["data"].(string)
	if channel == "" {
		b.log.Warn("bridge: stream entry without channel dropped", "id", m.ID)
		b.Stats.Failed.Add(1)
		b.cfg.Client.XAck(ctx, b.cfg.Stream, b.cfg.Group, m.ID)
		return
	}
	work.add(channel, func() { b.append(ctx, valid, m.ID, channel, []byte(data), redelivered) })
}

func (b *Stream) markKey(kind, id string) string { return b.cfg.Stream + ":" + kind + ":" + id }

// append appends one entry unless it was appended before, retrying while
// this node holds the lease: the entry stays pending, so a successor
// appends it if this node cannot.
func (b *Stream) append(ctx context.Context, valid func() bool, id, channel string, payload []byte, redelivered bool) {
	rdb := b.cfg.Client
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		if !valid() {
			b.Stats.Fenced.Add(1)
			return
		}
		done, err := b.appended(ctx, id, channel, payload, redelivered)
		if err == nil && done {
			b.Stats.Skipped.Add(1)
			err = rdb.XAck(ctx, b.cfg.Stream, b.cfg.Group, id).Err()
			if err == nil {
				return
			}
		}
		if err == nil {
			err = b.appendOnce(ctx, id, channel, payload)
			if err == nil {
				b.Stats.Bridged.Add(1)
				return
			}
			if errors.Is(err, hub.ErrInvalidChannel) || errors.Is(err, hub.ErrUnknownChannel) {
				// It would never succeed: drop it rather than stall the channel's worker.
				b.Stats.Failed.Add(1)
				b.log.Warn("bridge: stream entry for a channel the hub refuses dropped", "id", id, "channel", channel, "err", err)
				rdb.XAck(ctx, b.cfg.Stream, b.cfg.Group, id)
				return
			}
		}
		b.Stats.Failed.Add(1)
		b.log.Warn("bridge: stream append failed, retrying", "id", id, "channel", channel, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// appended says whether entry id is in the channel log already: marked,
// or (a redelivered entry its first holder was appending) found after
// the offset recorded before that append.
func (b *Stream) appended(ctx context.Context, id, channel string, payload []byte, redelivered bool) (bool, error) {
	if !redelivered {
		return false, nil
	}
	rdb := b.cfg.Client
	vals, err := rdb.MGet(ctx, b.markKey("bridged", id), b.markKey("inflight", id)).Result()
	if err != nil {
		return false, fmt.Errorf("bridge: read marks: %w", err)
	}
	if vals[0] != nil {
		return true, nil
	}
	before, ok := vals[1].(string)
	if !ok || b.rec == nil {
		return false, nil
	}
	after, err := strconv.ParseUint(before, 10, 64)
	if err != nil {
		return false, nil
	}
	// The old holder appended nothing else to this channel after the
	// entry it died on, so the entry, if there, is among the first few.
	rctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	logged, err := b.rec.History(rctx, channel, after, 100)
	if err != nil {
		return false, fmt.Errorf("bridge: read channel log: %w", err)
	}
	for _, m := range logged.Messages {
		if delivers(m, channel, payload) {
			return true, nil
		}
	}
	return false, nil
}

func (b *Stream) appendOnce(ctx context.Context, id, channel string, payload []byte) error {
	rdb := b.cfg.Client
	if b.rec != nil {
		rctx, cancel := context.WithTimeout(ctx, publishTimeout)
		head, err := b.rec.History(rctx, channel, 0, 1)
		cancel()
		if err != nil {
			return fmt.Errorf("bridge: channel offset: %w", err)
		}
		if err := rdb.Set(ctx, b.markKey("inflight", id), head.Offset, b.cfg.MarkTTL).Err(); err != nil {
			return fmt.Errorf("bridge: mark inflight: %w", err)
		}
	}
	pctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	off, err := b.pub.Publish(pctx, channel, payload)
	cancel()
	if err != nil {
		return fmt.Errorf("bridge: publish: %w", err)
	}
	// From here the entry is in the log: mark and acknowledge it even when
	// ctx ended (a drain), so no successor appends it again.
	mctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	_, err = rdb.Pipelined(mctx, func(p redis.Pipeliner) error {
		p.Set(mctx, b.markKey("bridged", id), off, b.cfg.MarkTTL)
		p.Del(mctx, b.markKey("inflight", id))
		p.XAck(mctx, b.cfg.Stream, b.cfg.Group, id)
		return nil
	})
	if err != nil {
		// The entry stays pending; the mark decides if it comes back.
		b.log.Warn("bridge: stream mark failed", "id", id, "err", err)
	}
	return nil
}

// delivers says whether msg, a message of channel's log in delivery form
// (docs/hub-protocol.md), is payload as published: an object with
// "channel" and "offset" added, or the "data" envelope around any other
// value (bytes that are not JSON travel as a string).
func delivers(msg json.RawMessage, channel string, payload []byte) bool {
	var want any = string(payload)
	if json.Valid(payload) {
		json.Unmarshal(payload, &want)
	}
	var got map[string]any
	if json.Unmarshal(msg, &got) != nil || got["channel"] != channel {
		return false
	}
	delete(got, "channel")
	delete(got, "offset")
	if reflect.DeepEqual(got, want) {
		return true
	}
	data, ok := got["data"]
	return ok && len(got) == 2 && got["data_type"] == "data" && reflect.DeepEqual(data, want)
}
