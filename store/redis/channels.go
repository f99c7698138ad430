package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/store"
)

// Channels. A channel's keys share the hash tag {<prefix>:c:<channel>}, so
// one script appends, trims and reads its log atomically, and Cluster
// spreads channels over its shards:
//
//	{p:c:<ch>}:h  string: the head (newest offset); ChannelTTL
//	{p:c:<ch>}:l  list: "<offset>:<ms>:<msg>", oldest first; expires
//	              when its newest entry is older than the keep
//	{p:c:<ch>}:m  set: member session ids; ChannelTTL
//
// The log is a list rather than a stream or a sorted set: offsets are
// contiguous while the log lives, so the entry after offset o sits at index
// o-first and a read is one LRANGE; trimming pops from the front (LTRIM
// for length, LPOP while the oldest is past the keep, amortised over
// appends). A stream's ids would have to encode the time for MINID
// trimming, which leaves no room for the dense offsets readers use to see
// gaps.
//
// A session's subscriptions live in its bucket, beside its hash, so a
// script can check the session and the per-session bound together:
//
//	{p:b}:ch:<id>  hash: channel → cursor; ChannelTTL
//
// It is a key of its own, not part of the session hash, so it outlives a
// reap: the node that runs OnClose calls UnsubscribeAll afterwards.
//
// Atomicity: each script is atomic within its slot. Subscribe runs the
// channel side first (join the member set, read the head; the head read in
// the same step as the join defines "messages after subscribing"), then
// the session side; a refusal there undoes the join. Unsubscribe and
// UnsubscribeAll run the session side first, then leave the member sets.
// Between the two steps Members may disagree with Subscriptions.

var _ store.Channels = (*Store)(nil)

func (s *Store) channelTag(channel string) string {
	return "{" + s.prefix + ":c:" + channel + "}"
}

// channelKeys: head, log, members.
func (s *Store) channelKeys(channel string) []string {
	t := s.channelTag(channel)
	return []string{t + ":h", t + ":l", t + ":m"}
}

// subsKeys: session hash, subscriptions hash.
func (s *Store) subsKeys(id string) []string {
	t := s.tag(s.bucket(id))
	return []string{t + ":s:" + id, t + ":ch:" + id}
}

var channelTTLms = strconv.FormatInt(store.ChannelTTL.Milliseconds(), 10)

func (s *Store) runKeys(ctx context.Context, sc *redis.Script, keys []string, args ...any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return sc.Run(ctx, s.client, keys, args...).Result()
}

// Subscribe implements store.Channels.
func (s *Store) Subscribe(ctx context.Context, id, channel string, max int) (res store.SubscribeResult, err error) {
	return s.SubscribeFrom(ctx, id, channel, max, math.MaxUint64)
}

// SubscribeFrom implements store.Channels: the session side's script
// records the cursor it is given, min(from, head).
func (s *Store) SubscribeFrom(ctx context.Context, id, channel string, max int, from uint64) (res store.SubscribeResult, err error) {
	defer wrap(&err, "subscribe")
	if err := store.CheckChannel(channel); err != nil {
		return res, err
	}
	ck := s.channelKeys(channel)
	r, err := s.runKeys(ctx, joinChannelScript, []string{ck[0], ck[2]}, id, channelTTLms)
	if err != nil {
		return res, err
	}
	d := decoder{r: r}
	head, added := d.str(), d.int()
	if err := d.done(nil); err != nil {
		return res, err
	}
	if from != math.MaxUint64 {
		h, err := strconv.ParseUint(head, 10, 64)
		if err != nil {
			return res, fmt.Errorf("head %q: %w", head, err)
		}
		head = strconv.FormatUint(min(from, h), 10)
	}
	r, err = s.runKeys(ctx, subscribeScript, s.subsKeys(id), channel, head, max, channelTTLms)
	if err == nil {
		d = decoder{r: r}
		if code := d.int(); code == replyOK {
			res.Cursor, err = strconv.ParseUint(d.str(), 10, 64)
			res.ReceiverNode = d.str()
			res.Created = d.int() == 1
			err = d.done(err)
		} else {
			err = d.done(codeErr(code))
		}
	}
	if err != nil && added == 1 {
		// Refused: leave the member set as it was. A background context,
		// so a caller's expired deadline does not leave a stray member.
		undo, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if uerr := s.client.SRem(undo, ck[2], id).Err(); uerr != nil {
			err = errors.Join(err, uerr)
		}
	}
	return res, err
}

// Unsubscribe implements store.Channels.
func (s *Store) Unsubscribe(ctx context.Context, id, channel string) (removed bool, node string, err error) {
	defer wrap(&err, "unsubscribe")
	if err := store.CheckChannel(channel); err != nil {
		return false, "", err
	}
	r, err := s.runKeys(ctx, unsubscribeScript, s.subsKeys(id), channel)
	if err != nil {
		return false, "", err
	}
	d := decoder{r: r}
	removed, node = d.int() == 1, d.str()
	if err := d.done(nil); err != nil {
		return false, "", err
	}
	if removed {
		err = s.client.SRem(ctx, s.channelKeys(channel)[2], id).Err()
	}
	return removed, node, err
}

// UnsubscribeAll implements store.Channels.
func (s *Store) UnsubscribeAll(ctx context.Context, id string) (channels []string, err error) {
	defer wrap(&err, "unsubscribe all")
	r, err := s.runKeys(ctx, unsubscribeAllScript, s.subsKeys(id)[1:])
	if err != nil {
		return nil, err
	}
	d := decoder{r: r}
	channels = d.strs()
	if err := d.done(nil); err != nil || len(channels) == 0 {
		return nil, err
	}
	// One pipeline: Cluster splits it by shard.
	pipe := s.client.Pipeline()
	for _, ch := range channels {
		pipe.SRem(ctx, s.channelKeys(ch)[2], id)
	}
	_, err = pipe.Exec(ctx)
	return channels, err
}

// Subscriptions implements store.Channels. It also keeps the
// subscriptions key alive for a session that stays attached for long.
func (s *Store) Subscriptions(ctx context.Context, id string) (subs map[string]uint64, err error) {
	defer wrap(&err, "subscriptions")
	r, err := s.runKeys(ctx, subscriptionsScript, s.subsKeys(id)[1:], channelTTLms)
	if err != nil {
		return nil, err
	}
	d := decoder{r: r}
	flat := d.strs()
	if err := d.done(nil); err != nil {
		return nil, err
	}
	subs = make(map[string]uint64, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		cur, err := strconv.ParseUint(flat[i+1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("cursor of %q: %w", flat[i], err)
		}
		subs[flat[i]] = cur
	}
	return subs, nil
}

// SetCursors implements store.Channels.
func (s *Store) SetCursors(ctx context.Context, id string, cursors map[string]uint64) (err error) {
	defer wrap(&err, "set cursors")
	if len(cursors) == 0 {
		return ctx.Err()
	}
	args := make([]any, 0, 1+2*len(cursors))
	args = append(args, channelTTLms)
	for ch, cur := range cursors {
		args = append(args, ch, strconv.FormatUint(cur, 10))
	}
	_, err = s.runKeys(ctx, setCursorsScript, s.subsKeys(id)[1:], args...)
	return err
}

// Members implements store.Channels. Members whose session is gone (reaped
// before its channels were left) are filtered out with one pipelined
// EXISTS per member.
func (s *Store) Members(ctx context.Context, channel string) (ids []string, err error) {
	defer wrap(&err, "members")
	if err := store.CheckChannel(channel); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	all, err := s.client.SMembers(ctx, s.channelKeys(channel)[2]).Result()
	if err != nil || len(all) == 0 {
		return nil, err
	}
	pipe := s.client.Pipeline()
	exists := make([]*redis.IntCmd, len(all))
	for i, id := range all {
		exists[i] = pipe.Exists(ctx, s.subsKeys(id)[0])
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	for i, id := range all {
		if exists[i].Val() == 1 {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// AppendChannel implements store.Channels: one script, one round trip.
func (s *Store) AppendChannel(ctx context.Context, channel, msg string, opts store.LogOptions) (off uint64, err error) {
	defer wrap(&err, "append to channel")
	if err := store.CheckChannel(channel); err != nil {
		return 0, err
	}
	keep, maxLen := opts.Keep, opts.MaxLen
	if keep <= 0 {
		keep = store.DefaultLogKeep
	}
	if maxLen <= 0 {
		maxLen = store.DefaultLogMaxLen
	}
	r, err := s.runKeys(ctx, appendChannelScript, s.channelKeys(channel), msg, durationMs(keep, 0), maxLen, channelTTLms)
	if err != nil {
		return 0, err
	}
	str, ok := r.(string)
	if !ok {
		return 0, fmt.Errorf("reply is %T, want a string", r)
	}
	return strconv.ParseUint(str, 10, 64)
}

// ReadChannel implements store.Channels: one read-only script.
func (s *Store) ReadChannel(ctx context.Context, channel string, after uint64, max int) (res store.ReadResult, err error) {
	defer wrap(&err, "read channel")
	if err := store.CheckChannel(channel); err != nil {
		return res, err
	}
	if max <= 0 {
		max = store.DefaultReadMax
	}
	r, err := s.runKeys(ctx, readChannelScript, s.channelKeys(channel)[:2], strconv.FormatUint(after, 10), max)
	if err != nil {
		return res, err
	}
	d := decoder{r: r}
	head := d.str()
	if head == "" {
		return res, d.done(nil) // no log
	}
	res.Truncated = d.int() == 1
	raw := d.strs()
	if err := d.done(nil); err != nil {
		return res, err
	}
	if res.Head, err = strconv.ParseUint(head, 10, 64); err != nil {
		return res, err
	}
	res.Entries = make([]store.LogEntry, 0, len(raw))
	for _, e := range raw {
		offStr, rest, ok1 := strings.Cut(e, ":")
		_, msg, ok2 := strings.Cut(rest, ":")
		off, perr := strconv.ParseUint(offStr, 10, 64)
		if !ok1 || !ok2 || perr != nil {
			return res, fmt.Errorf("malformed log entry %.40q", e)
		}
		res.Entries = append(res.Entries, store.LogEntry{Offset: off, Msg: msg})
	}
	return res, nil
}
