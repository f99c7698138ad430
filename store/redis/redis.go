// Package redisstore is the Redis implementation of store.Store, shared by
// every node of a Shoal cluster. Each state transition is one Lua script, so
// it is atomic and costs one round trip; it works with a single Redis,
// Sentinel and Redis Cluster through redis.UniversalClient.
//
// Keys. Sessions are spread over Config.Buckets buckets by an FNV hash of
// their id. Every key of a bucket carries the hash tag {<prefix>:<bucket>},
// so a session's hash, queue and attributes and its bucket's deadline index
// live in one Cluster slot and one script can update them together. That
// keeps the deadline index exact (not a hint that can drift) while Cluster
// still spreads the buckets over its shards:
//
//	{p:b}:s:<id>  hash: state, close code/reason, info, lease, deadline
//	{p:b}:q:<id>  list: the outgoing queue
//	{p:b}:a:<id>  hash: attributes
//	{p:b}:due     sorted set: session id -> deadline (ms), for Reap
//	{p:b}:h:<n>   set: sessions whose lease names node n, for ReleaseNode
//	{p:b}:ch:<id> hash: the session's channels and their cursors
//
// Clock. Lease and disconnect deadlines are judged by the Redis server's
// clock (TIME inside the scripts), so the nodes' clocks do not matter. The
// now given to Reap only picks candidates from the index; the per-session
// script decides with the server's clock.
//
// Every key carries a TTL of at least the session's deadline plus
// Config.KeyTTLMargin, extended (to two margins past it) when a transition
// moves the deadline past that: if every node dies, Redis forgets the
// sessions by itself, and a session polled many times a second extends its
// keys about once a margin.
//
// Calls honour their context only as far as the client does: create the
// client with ContextTimeoutEnabled so a stuck server cannot hold a caller
// past its deadline.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shoal-rt/shoal/store"
)

// Config configures a Store. The zero value is usable; all nodes of a
// cluster must use the same Prefix and Buckets.
type Config struct {
	// Prefix starts every key (default "shoal"). It must not contain braces.
	Prefix string
	// Buckets is how many buckets (Cluster slots) sessions are spread over
	// (default 128). Changing it orphans existing sessions.
	Buckets int
	// KeyTTLMargin is how long keys outlive a session's deadline, so a reap
	// that runs late still finds the session (default 1 minute).
	KeyTTLMargin time.Duration
}

// Store is a store.Store kept in Redis. It holds no session state itself;
// any number of Stores, on any number of nodes, may share one Redis.
type Store struct {
	client  redis.UniversalClient
	prefix  string
	buckets int
	margin  string        // KeyTTLMargin in ms, as a script argument
	next    atomic.Uint32 // rotates the bucket Reap starts at
}

var (
	_ store.Store            = (*Store)(nil)
	_ store.LeaseTaker       = (*Store)(nil)
	_ store.Committer        = (*Store)(nil)
	_ store.HandOffCommitter = (*Store)(nil)
	_ store.OnceAppender     = (*Store)(nil)
)

// New returns a Store that keeps its state through client.
func New(client redis.UniversalClient, c Config) *Store {
	if c.Prefix == "" {
		c.Prefix = "shoal"
	}
	if c.Buckets <= 0 {
		c.Buckets = 128
	}
	if c.KeyTTLMargin <= 0 {
		c.KeyTTLMargin = time.Minute
	}
	return &Store{
		client:  client,
		prefix:  c.Prefix,
		buckets: c.Buckets,
		margin:  strconv.FormatInt(c.KeyTTLMargin.Milliseconds(), 10),
	}
}

// reapCandidates bounds how many due ids one Reap reads from each bucket.
const reapCandidates = 1000

func (s *Store) bucket(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % uint32(s.buckets))
}

func (s *Store) tag(bucket int) string {
	return "{" + s.prefix + ":" + strconv.Itoa(bucket) + "}"
}

// keys returns the keys every session script takes, in the order the
// scripts expect: session hash, queue, attributes, deadline index.
func (s *Store) keys(id string) []string {
	t := s.tag(s.bucket(id))
	return []string{t + ":s:" + id, t + ":q:" + id, t + ":a:" + id, t + ":due"}
}

// run runs a session script: EVALSHA, falling back to EVAL when Redis does
// not have it cached. ARGV[1] is always the id and ARGV[2] the key margin.
func (s *Store) run(ctx context.Context, sc *redis.Script, id string, args ...any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return sc.Run(ctx, s.client, s.keys(id), append([]any{id, s.margin}, args...)...).Result()
}

func durationMs(d, def time.Duration) int64 {
	if d <= 0 {
		d = def
	}
	if ms := d.Milliseconds(); ms > 0 {
		return ms
	}
	return 1
}

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, id string, opts store.CreateOptions) (created bool, err error) {
	defer wrap(&err, "create")
	delay := durationMs(opts.DisconnectDelay, store.DefaultDisconnectDelay)
	args := []any{delay, opts.Info}
	if l := opts.Lease; l != nil {
		if l.Token == "" {
			return false, store.ErrNotHolder
		}
		args = append(args, l.Node, l.Token, durationMs(l.TTL, store.DefaultLeaseTTL), sticky(*l))
	}
	r, err := s.run(ctx, createScript, id, args...)
	if err != nil {
		return false, err
	}
	switch n, err := toInt(r); {
	case err != nil:
		return false, err
	case n == createCreated:
		return true, nil
	case n == createExisted:
		return false, nil
	default:
		return false, fmt.Errorf("unexpected reply code %d", n)
	}
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id string) (sess store.Session, err error) {
	defer wrap(&err, "get")
	r, err := s.run(ctx, getScript, id)
	if err != nil {
		return store.Session{}, err
	}
	d := decoder{r: r}
	if err := codeErr(d.int()); err != nil {
		return store.Session{}, d.done(err)
	}
	st := d.int()
	sess = store.Session{
		ID:             id,
		Code:           int(d.int()),
		Reason:         d.str(),
		Info:           []byte(d.str()),
		ReceiverNode:   d.str(),
		ReceiverSticky: d.int() == 1,
	}
	if err := d.done(nil); err != nil {
		return store.Session{}, err
	}
	sess.State, err = stateOf(st)
	return sess, err
}

// Attach implements store.Store. It takes the lease and drains the queue in
// one round trip.
func (s *Store) Attach(ctx context.Context, id string, l store.Lease, opts ...store.DrainOption) (res store.AttachResult, err error) {
	defer wrap(&err, "attach")
	return s.attach(ctx, id, "", l, opts)
}

// TakeOver implements store.LeaseTaker.
func (s *Store) TakeOver(ctx context.Context, id, from string, l store.Lease, opts ...store.DrainOption) (res store.AttachResult, err error) {
	defer wrap(&err, "take over")
	return s.attach(ctx, id, from, l, opts)
}

func (s *Store) attach(ctx context.Context, id, from string, l store.Lease, opts []store.DrainOption) (res store.AttachResult, err error) {
	if l.Token == "" {
		return res, store.ErrNotHolder
	}
	o := store.DrainOptionsOf(opts)
	r, err := s.run(ctx, attachScript, id, l.Node, l.Token, durationMs(l.TTL, store.DefaultLeaseTTL), sticky(l), o.MaxBytes, from, max(o.HandOff, 0), flag(o.Hold))
	if err != nil {
		return res, err
	}
	d := decoder{r: r}
	switch code := d.int(); code {
	case replyOK:
		res.Status, res.Messages, res.More = store.Attached, d.strs(), d.int() == 1
	case replyBusy:
		res.Status = store.Busy
	case replyClosed:
		res.Status, res.Code, res.Reason = store.AttachClosed, int(d.int()), d.str()
		res.Messages, res.More, res.HeldBack, res.Leased = d.strs(), d.int() == 1, d.int() == 1, d.int() == 1
	case replyNoSession:
		res.Status = store.Unknown
	default:
		return res, d.done(fmt.Errorf("unexpected reply code %d", code))
	}
	return res, d.done(nil)
}

// Commit implements store.Committer.
func (s *Store) Commit(ctx context.Context, id, token string, detach bool) (err error) {
	return s.CommitHandOff(ctx, id, token, 0, detach)
}

// CommitHandOff implements store.HandOffCommitter.
func (s *Store) CommitHandOff(ctx context.Context, id, token string, batch uint64, detach bool) (err error) {
	defer wrap(&err, "commit")
	r, err := s.run(ctx, commitScript, id, token, flag(detach), batch)
	if err != nil {
		return err
	}
	return outcome(r)
}

func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sticky(l store.Lease) int {
	if l.Sticky {
		return 1
	}
	return 0
}

// Renew implements store.Store.
func (s *Store) Renew(ctx context.Context, id string, l store.Lease) (err error) {
	defer wrap(&err, "renew")
	r, err := s.run(ctx, renewScript, id, l.Node, l.Token, durationMs(l.TTL, store.DefaultLeaseTTL), sticky(l))
	if err != nil {
		return err
	}
	return outcome(r)
}

// Detach implements store.Store.
func (s *Store) Detach(ctx context.Context, id, token string) (err error) {
	defer wrap(&err, "detach")
	r, err := s.run(ctx, detachScript, id, token)
	if err != nil {
		return err
	}
	return outcome(r)
}

// Append implements store.Store.
func (s *Store) Append(ctx context.Context, id string, msgs []string, limits store.QueueLimits) (store.AppendResult, error) {
	return s.appendTagged(ctx, id, msgs, limits, store.AppendTag{})
}

// AppendOnce implements store.OnceAppender: the tag goes into the append
// script, which skips a repeat in the same atomic step. A tagged append is
// therefore also sent again after a broken connection (see outage.go).
func (s *Store) AppendOnce(ctx context.Context, id string, msgs []string, limits store.QueueLimits, tag store.AppendTag) (store.AppendResult, error) {
	if err := tag.Check(); err != nil {
		return store.AppendResult{}, fmt.Errorf("store/redis: append: %w", err)
	}
	return s.appendTagged(ctx, id, msgs, limits, tag)
}

// appendArgTag is the position of the tag id among the append script's
// arguments after the session id and the TTL margin (see outage.go).
const appendArgTag = 2

func (s *Store) appendTagged(ctx context.Context, id string, msgs []string, limits store.QueueLimits, tag store.AppendTag) (res store.AppendResult, err error) {
	defer wrap(&err, "append")
	args := make([]any, 0, 4+len(msgs))
	args = append(args, limits.Messages, limits.Bytes, tag.ID, tag.Seq)
	for _, m := range msgs {
		args = append(args, m)
	}
	r, err := s.run(ctx, appendScript, id, args...)
	if err != nil {
		return res, err
	}
	d := decoder{r: r}
	if err := outcome(d.next()); err != nil {
		return res, d.done(err)
	}
	res.ReceiverNode = d.str()
	if d.more() {
		res.HandOff = store.HandedOff{Token: d.str(), Batch: uint64(d.int())}
	}
	return res, d.done(nil)
}

// Drain implements store.Store.
func (s *Store) Drain(ctx context.Context, id, token string, opts ...store.DrainOption) (res store.DrainResult, err error) {
	defer wrap(&err, "drain")
	o := store.DrainOptionsOf(opts)
	r, err := s.run(ctx, drainScript, id, token, o.MaxBytes, flag(o.Hold))
	if err != nil {
		return res, err
	}
	d := decoder{r: r}
	if err := outcome(d.next()); err != nil {
		return res, d.done(err)
	}
	st := d.int()
	res.Code = int(d.int())
	res.Reason = d.str()
	res.Messages = d.strs()
	res.More = d.int() == 1
	if err := d.done(nil); err != nil {
		return res, err
	}
	res.State, err = stateOf(st)
	return res, err
}

// Close implements store.Store.
func (s *Store) Close(ctx context.Context, id string, code int, reason string) (won bool, err error) {
	defer wrap(&err, "close")
	r, err := s.run(ctx, closeScript, id, code, reason)
	if err != nil {
		return false, err
	}
	switch err := outcome(r); {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrClosed):
		return false, nil
	default:
		return false, err
	}
}

// readBuckets sends n reads of string lists in one pipeline (read(p, i)
// gives the i-th, of one bucket's key) and returns what they all listed,
// in order.
func (s *Store) readBuckets(ctx context.Context, n int, read func(p redis.Pipeliner, i int) *redis.StringSliceCmd) ([]string, error) {
	pipe := s.client.Pipeline()
	reads := make([]*redis.StringSliceCmd, n)
	for i := range reads {
		reads[i] = read(pipe, i)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	var all []string
	for _, r := range reads {
		all = append(all, r.Val()...)
	}
	return all, nil
}

// Reap implements store.Store. now picks candidates from the deadline
// index; whether each is due is decided by the Redis server's clock, in one
// script per session, so each reaped id goes to exactly one caller however
// many nodes reap at once. With limit <= 0 one call handles up to 1000
// candidates per bucket.
func (s *Store) Reap(ctx context.Context, now time.Time, limit int) (ids []string, err error) {
	defer wrap(&err, "reap")
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	per := int64(reapCandidates)
	if limit > 0 && int64(limit) < per {
		per = int64(limit)
	}
	// One pipelined read of every bucket's due ids. Start at a rotating
	// bucket so that, under a limit, no bucket waits behind the others.
	start := int(s.next.Add(1) % uint32(s.buckets))
	candidates, err := s.readBuckets(ctx, s.buckets, func(p redis.Pipeliner, i int) *redis.StringSliceCmd {
		return p.ZRangeByScore(ctx, s.tag((start+i)%s.buckets)+":due", &redis.ZRangeBy{
			Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: per,
		})
	})
	if err != nil {
		return nil, err
	}
	// Each candidate yields at most one id, so a batch no bigger than what
	// the limit leaves can never overshoot it.
	for len(candidates) > 0 {
		n := len(candidates)
		if limit > 0 {
			n = min(n, limit-len(ids))
		}
		if n == 0 {
			break
		}
		reaped, err := s.reapBatch(ctx, candidates[:n])
		ids = append(ids, reaped...)
		if err != nil {
			return ids, err
		}
		candidates = candidates[n:]
	}
	return ids, nil
}

// reapBatch runs the reap script for each candidate in one pipeline and
// returns the ids of the open sessions it reaped.
func (s *Store) reapBatch(ctx context.Context, candidates []string) ([]string, error) {
	var ids []string
	args := func(id string) []any { return []any{id, s.margin} }
	err := s.evalEach(ctx, reapScript, candidates, args, func(id string, n int) error {
		switch n {
		case reapReapedOpen:
			ids = append(ids, id)
		case reapDeletedClosed, reapGone, reapNotDue:
		default:
			return fmt.Errorf("unexpected reply code %d", n)
		}
		return nil
	})
	return ids, err
}

// evalEach runs script once for each of ids, in one pipeline, with the
// session's keys and args(id), loading the script where the server lacks
// it (NOSCRIPT: a fresh or flushed server), and hands each reply code to
// reply, in order. It returns the first error, of a call or of reply,
// once every reply has been handed over.
func (s *Store) evalEach(ctx context.Context, script *redis.Script, ids []string, args func(id string) []any, reply func(id string, code int) error) error {
	pipe := s.client.Pipeline()
	cmds := make([]*redis.Cmd, len(ids))
	for i, id := range ids {
		cmds[i] = script.EvalSha(ctx, pipe, s.keys(id), args(id)...)
	}
	// Exec's error is the first command's; each command is judged below.
	_, _ = pipe.Exec(ctx)
	var firstErr error
	for i, cmd := range cmds {
		id := ids[i]
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			cmd = script.Eval(ctx, s.client, s.keys(id), args(id)...)
		}
		n, err := cmd.Int()
		if err == nil {
			err = reply(id, n)
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// SetAttr implements store.Store.
func (s *Store) SetAttr(ctx context.Context, id, key, value string) (err error) {
	defer wrap(&err, "set attribute")
	r, err := s.run(ctx, setAttrScript, id, key, value)
	if err != nil {
		return err
	}
	return outcome(r)
}

// Attr implements store.Store.
func (s *Store) Attr(ctx context.Context, id, key string) (value string, ok bool, err error) {
	defer wrap(&err, "get attribute")
	r, err := s.run(ctx, attrScript, id, key)
	if err != nil {
		return "", false, err
	}
	d := decoder{r: r}
	switch code := d.int(); code {
	case attrFound:
		return d.str(), true, d.done(nil)
	case attrMissing:
		return "", false, d.done(nil)
	default:
		return "", false, d.done(codeErr(code))
	}
}

// wrap prefixes an error with the package and operation, keeping sentinels
// reachable through errors.Is.
func wrap(err *error, op string) {
	if *err != nil {
		*err = fmt.Errorf("store/redis: %s: %w", op, *err)
	}
}

// decoder reads a script's array reply. A reply of the wrong shape (a
// script and this code out of step) turns into an error, never a panic.
type decoder struct {
	r   any
	i   int
	err error
}

func (d *decoder) next() any {
	a, ok := d.r.([]any)
	if !ok {
		d.fail(fmt.Errorf("reply is %T, want an array", d.r))
		return nil
	}
	if d.i >= len(a) {
		d.fail(fmt.Errorf("reply has %d elements, want more", len(a)))
		return nil
	}
	d.i++
	return a[d.i-1]
}

// more reports whether the reply has elements left.
func (d *decoder) more() bool {
	a, ok := d.r.([]any)
	return ok && d.i < len(a)
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) int() int64 {
	n, err := toInt(d.next())
	d.fail(err)
	return n
}

func (d *decoder) str() string {
	v := d.next()
	s, ok := v.(string)
	if !ok && d.err == nil {
		d.fail(fmt.Errorf("reply element is %T, want a string", v))
	}
	return s
}

func (d *decoder) strs() []string {
	v := d.next()
	a, ok := v.([]any)
	if !ok {
		if d.err == nil {
			d.fail(fmt.Errorf("reply element is %T, want an array", v))
		}
		return nil
	}
	if len(a) == 0 {
		return nil
	}
	out := make([]string, len(a))
	for i, e := range a {
		s, ok := e.(string)
		if !ok {
			d.fail(fmt.Errorf("message is %T, want a string", e))
			return nil
		}
		out[i] = s
	}
	return out
}

// done returns the decoding error if there was one, else err.
func (d *decoder) done(err error) error {
	if d.err != nil {
		return d.err
	}
	return err
}

func toInt(v any) (int64, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("reply is %T, want an integer", v)
	}
	return n, nil
}
