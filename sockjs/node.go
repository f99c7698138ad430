package sockjs

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/shoal-rt/shoal/bus"
	"github.com/shoal-rt/shoal/store"
)

// NodeConfig configures a Node. A zero field means its default, filled in
// by NewNode; Store and Bus are required.
type NodeConfig struct {
	// ID names this node in receiver leases and on the bus; default a
	// new ULID. Unique in the cluster.
	ID     string
	Store  store.Store
	Bus    bus.Bus
	Logger *slog.Logger // default slog.Default()
	// LeaseTTL is how long a receiver lease lives unless renewed; live
	// receivers renew it every LeaseTTL/3. Default store.DefaultLeaseTTL.
	LeaseTTL time.Duration
	// RecheckInterval is how often a parked receiver looks at the store
	// even without a wake-up, so a lost bus message only delays delivery.
	// Default 1 s.
	RecheckInterval time.Duration
	// WebsocketRecheckInterval is RecheckInterval for websockets. Their
	// messages arrive in memory or over the bus, never through a poll, so
	// the store check is only a safety net for a lost bus message (a close
	// from another node): checking rarely saves one store call per second
	// per socket. Default 10 s.
	WebsocketRecheckInterval time.Duration
	// WebsocketQuietAfter is how long a websocket's client may send
	// nothing before its reader gives its goroutine up: the socket then
	// waits in the node's one poller (Linux; elsewhere the goroutine
	// stays), and an idle websocket holds no goroutine and no stack. Long
	// enough that a client sending steadily keeps its goroutine (handing
	// over costs a few system calls and a goroutine start). Default 2 s.
	WebsocketQuietAfter time.Duration
	// QuietRecheckInterval replaces RecheckInterval for an HTTP receiver
	// while the bus vouches for its wake-ups (bus.LossCounter: connected,
	// and nothing lost since the receiver last looked at the store): a
	// lost wake-up is then unlikely, and each re-check costs a store round
	// trip per parked poll or stream. A reconnect or a drop brings the
	// next re-check back to RecheckInterval. Default 10 s, as websockets.
	QuietRecheckInterval time.Duration
	// ReapInterval is how often the node reaps expired sessions. Default 1 s.
	ReapInterval time.Duration
	// HolderTimeout is how long a receiver that finds its session's lease
	// held by another node waits for that node to say it still serves
	// it; past it, the lease is taken over (see takeover.go). Default
	// 500 ms.
	HolderTimeout time.Duration
	// OpTimeout bounds store and bus calls made without a caller context
	// (Session.Send, Session.Close, the reaper). Default 5 s.
	OpTimeout time.Duration
	// BodyBudget bounds the bytes of incoming xhr_send and jsonp_send
	// bodies the node reads and handles at once, over all its clients
	// (each body is also bounded by its endpoint's MaxMessageSize). A send
	// that would pass it gets 503 and its session stays open. Default
	// DefaultBodyBudget; negative: no bound.
	BodyBudget int64
	// AllowedOrigins is Settings.AllowedOrigins for every endpoint whose
	// Settings leave it empty. Empty: any origin (the SockJS default).
	AllowedOrigins []string
	// TrustedProxies are the balancers whose X-Forwarded-For names the
	// client: ConnectionInfo.IP and NewSessionsPerIP use that address for
	// requests from them (see clientip.go). Empty: the TCP peer's address.
	TrustedProxies []netip.Prefix
	// NewSessionsPerIP bounds the sessions one client address may open on
	// this node per minute; past it a new session gets 429. Zero: no bound.
	NewSessionsPerIP int
}

// Node is one Shoal process: it owns the store and bus clients, listens on
// the bus for wake-ups addressed to it, reaps expired sessions, and keeps
// the registry of the receivers that live in this process. Endpoints are
// mounted on it with NewEndpoint. A Node is safe for concurrent use.
type Node struct {
	id    string
	store store.Store
	bus   bus.Bus
	log   *slog.Logger
	cfg   NodeConfig
	// nodeBound: the store is this node's own, in its memory, and dies
	// with it (store.NodeBound). Otherwise it outlives the node, and a
	// poll's answer leaves before it commits what it took (answerPoll).
	// See also opContext and the HTTP receivers' re-checks.
	nodeBound bool

	mu     sync.Mutex // guards closed, and serialises changes of endpoints
	closed bool
	// endpoints are the mounted endpoints; replaced whole (under mu) when
	// one is added, so every request reads them without a lock.
	endpoints atomic.Pointer[endpointTable]

	receivers [receiverShards]receiverShard
	// opening holds, per store key, a channel closed when OnOpen returns;
	// OnClose for that session waits for it (see runOnClose).
	opening sync.Map

	chans *nodeChannels // nil when the store has no store.Channels

	stats nodeStats // see stats.go

	// leaseTokens make the lease tokens of HTTP receivers: a ULID made at
	// start, unique to this process, and a count (see newLeaseToken).
	leaseTokenPrefix string
	leaseTokenSeq    atomic.Uint64

	asks   sync.Map      // question id → chan bool: holder questions awaiting an answer
	askSeq atomic.Uint64 // the last question id

	bodies   byteBudget // incoming bodies being read or handled (BodyBudget)
	newPerIP ipLimiter  // NewSessionsPerIP

	// polls watches quiet websockets (wsReader), made by the first that
	// goes quiet; guarded by mu.
	polls      *readPoller
	pollsErr   bool // the poller could not be made: do not try again
	stopListen func()
	done       chan struct{} // closed by Close: every receiver ends
	wg         sync.WaitGroup
	// releases runs polls' releases after their answer left (warm.go).
	releases *warmGoroutines
}

// NewNode starts a node: it begins listening on the bus for its ID and
// reaping expired sessions. Call Close to stop it.
func NewNode(cfg NodeConfig) (*Node, error) {
	if cfg.Store == nil || cfg.Bus == nil {
		return nil, errors.New("sockjs: NodeConfig needs a Store and a Bus")
	}
	if cfg.ID == "" {
		cfg.ID = newULID()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	orDefault(&cfg.LeaseTTL, store.DefaultLeaseTTL)
	orDefault(&cfg.RecheckInterval, time.Second)
	orDefault(&cfg.WebsocketRecheckInterval, 10*time.Second)
	orDefault(&cfg.WebsocketQuietAfter, 2*time.Second)
	orDefault(&cfg.QuietRecheckInterval, 10*time.Second)
	orDefault(&cfg.ReapInterval, time.Second)
	orDefault(&cfg.HolderTimeout, defaultHolderTimeout)
	orDefault(&cfg.OpTimeout, 5*time.Second)
	if cfg.BodyBudget == 0 {
		cfg.BodyBudget = DefaultBodyBudget
	}
	n := &Node{
		id:       cfg.ID,
		store:    cfg.Store,
		bus:      cfg.Bus,
		log:      cfg.Logger.With("node", cfg.ID),
		cfg:      cfg,
		done:     make(chan struct{}),
		bodies:   byteBudget{max: cfg.BodyBudget},
		newPerIP: ipLimiter{perMinute: cfg.NewSessionsPerIP},
	}
	n.releases = newWarmGoroutines(time.Second, n.done)
	n.endpoints.Store(&endpointTable{byPrefix: map[string]*Endpoint{}})
	n.leaseTokenPrefix = newULID() + "."
	if b, ok := cfg.Store.(store.NodeBound); ok && b.NodeBound() {
		n.nodeBound = true
	}
	for i := range n.receivers {
		n.receivers[i].m = make(map[string][]*localReceiver)
	}
	if cs, ok := cfg.Store.(store.Channels); ok {
		chans, err := newNodeChannels(n, cs)
		if err != nil {
			return nil, err
		}
		n.chans = chans
	}
	stop, err := cfg.Bus.ListenNode(cfg.ID, n.onBusMessage)
	if err != nil {
		return nil, fmt.Errorf("sockjs: listen on bus: %w", err)
	}
	n.stopListen = stop
	n.goFunc(n.reapLoop)
	n.goFunc(n.statsLoop)
	return n, nil
}

// ID returns the node's id.
func (n *Node) ID() string { return n.id }

// Close stops the node: receivers end (websockets are closed with
// CodeGoingAway, HTTP receivers detach so the client resumes elsewhere),
// the reaper, the bus listeners and the channel fan-out stop. It waits for
// the node's goroutines until ctx is done. Store and Bus stay open; they
// belong to the caller.
func (n *Node) Close(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	close(n.done)
	polls := n.polls
	n.mu.Unlock()
	if polls != nil {
		// Its goroutine ends; the websockets it watched are ended by
		// their writers, kicked below.
		polls.close()
	}
	n.stopListen()
	// Websocket writers run only when kicked, and HTTP receivers wait
	// for their signals: tell them.
	for i := range n.receivers {
		sh := &n.receivers[i]
		sh.mu.RLock()
		for _, list := range sh.m {
			for _, lr := range list {
				if lr.ws != nil {
					lr.ws.kick(wsEvNodeClosing)
				} else {
					lr.signal(lrNodeClosing)
				}
			}
		}
		sh.mu.RUnlock()
	}
	finished := make(chan struct{})
	go func() { n.wg.Wait(); close(finished) }()
	var err error
	select {
	case <-finished:
	case <-ctx.Done():
		err = fmt.Errorf("sockjs: node close: %w", ctx.Err())
	}
	if n.chans != nil {
		// The fan-out's timers no longer run (afterFunc refuses now):
		// stop the channels they would have retired.
		n.chans.fanout.Close()
	}
	return err
}

// goFunc runs f on a goroutine that Close waits for. It refuses (returns
// false) once the node is closed.
func (n *Node) goFunc(f func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
	return true
}

// enter counts a live receiver in the node's lifecycle: Close waits for
// it to end (and detach) as it waits for goroutines started by goFunc. It
// refuses (returns false) once the node is closed; exit undoes it.
func (n *Node) enter() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.wg.Add(1)
	return true
}

func (n *Node) exit() { n.wg.Done() }

// readPoller returns the node's poller of quiet websockets, made and
// started at the first call; nil once the node is closing, or where there
// is none (not Linux, or epoll refused).
func (n *Node) readPoller() *readPoller {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.polls != nil || n.closed || n.pollsErr || !readPollSupported {
		return n.polls
	}
	p, err := newReadPoller()
	if err != nil {
		n.pollsErr = true
		n.log.Warn("sockjs: idle websockets keep their reading goroutines", "err", err)
		return nil
	}
	n.polls = p
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		p.run()
	}()
	return p
}

// pollerIfAny returns the node's poller of quiet websockets if it has
// one.
func (n *Node) pollerIfAny() *readPoller {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.polls
}

// afterFunc runs f after d on a goroutine of the node's lifecycle: not at
// all once the node is closed, and Close waits for it when it runs. Stop
// the returned timer to cancel it.
func (n *Node) afterFunc(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, func() {
		if !n.enter() {
			return
		}
		defer n.exit()
		f()
	})
}

// opContext bounds an operation that has no caller context. A store
// bound to this node (store.NodeBound) answers from memory at once, and
// every receiver of its sessions is on this node, so no wake-up waits on
// the bus: its operations go unbounded, as a context with a timeout costs
// a timer and three allocations per call (several per polling message).
func (n *Node) opContext() (context.Context, context.CancelFunc) {
	if n.nodeBound {
		return context.Background(), noCancel
	}
	return context.WithTimeout(context.Background(), n.cfg.OpTimeout)
}

func noCancel() {}

func newULID() string { return ulid.MustNew(ulid.Now(), rand.Reader).String() }

// newLeaseToken returns a lease token no other receiver, on any node, in
// any process, has had: this process's own ULID and a count. A ULID of
// its own per receiver cost a random read and its encoding (0.9% of the
// node's CPU in a polling echo, one per poll).
func (n *Node) newLeaseToken() string {
	var buf [64]byte // the prefix (27 bytes) and 13 digits at most: one allocation, the string's
	return string(strconv.AppendUint(append(buf[:0], n.leaseTokenPrefix...), n.leaseTokenSeq.Add(1), 36))
}

// Registry of live receivers. Several may exist for one key for a moment
// (a receiver that lost the lease has not yet left), so each key maps to a
// short slice.

const receiverShards = 32

type receiverShard struct {
	mu sync.RWMutex // guards m
	m  map[string][]*localReceiver
}

// localReceiver is the node's registry entry of a receiver (poll, stream
// or websocket) running in this process: how a wake-up from the bus, a
// websocket frame from another node or a channel note finds it. Its loop
// is a receiverEngine; what it writes to goes through a receiverSink.
type localReceiver struct {
	key    string
	wakeCh chan struct{} // capacity 1: signalled (HTTP receivers; nil for a websocket)
	// signals are what wakeCh was signalled for (lrWake, lrLocal,
	// lrClock, lrClientGone, lrNodeClosing): one channel for the
	// engine's loop to wait on, not several.
	signals atomic.Uint32
	reqCtx  context.Context // the receiving request's context
	// done is closed when the receiver has left the registry; made by
	// finished, when a second receiver first waits for this one (most are
	// never waited for: a channel per poll for nothing).
	done   doneOnDemand
	doneMu sync.Mutex        // guards done
	ws     *wsWriter         // set for websockets: in-memory delivery
	chans  *receiverChannels // channel state, nil without channels
	// handOffToken is the lease token of a poll that takes hand-offs
	// (store.HandOffCommitter), empty for other receivers; handOff is
	// the batch handed to it, waiting for its engine.
	handOffToken string
	handOff      atomic.Pointer[handOffBatch]
	// entered: the receiver counts in the node's life (Node.enter), until
	// it leaves (Node.leave). HTTP receivers only.
	entered bool
	// finishing is set as a poll's answer leaves: it then commits what it
	// took and releases the lease, its request over (receive). A second
	// receiver waits for that rather than getting 2010 (see takeover.go).
	finishing atomic.Bool
}

// handOffBatch is what a sender's Append handed to a parked poll.
type handOffBatch struct {
	batch uint64
	msgs  []string
}

// newLocalReceiver returns the registry entry of a receiver; ws is set
// for a websocket, whose writer gets its wake-ups as events.
func newLocalReceiver(key string, reqCtx context.Context, ws *wsWriter) *localReceiver {
	lr := new(localReceiver)
	lr.init(key, reqCtx, ws)
	return lr
}

// init makes lr, zero, the entry newLocalReceiver returns, where it lives
// in something bigger (an httpSink).
func (lr *localReceiver) init(key string, reqCtx context.Context, ws *wsWriter) {
	lr.key, lr.reqCtx, lr.ws = key, reqCtx, ws
	if ws == nil {
		lr.wakeCh = make(chan struct{}, 1)
	}
}

// finished returns a channel closed once lr has left the registry.
func (lr *localReceiver) finished() <-chan struct{} {
	lr.doneMu.Lock()
	defer lr.doneMu.Unlock()
	return lr.done.wait()
}

// doneOnDemand is a channel closed when something has finished, made only
// when someone waits for it: most things are never waited for, and a
// channel each would be an allocation for nothing. Its owner's lock
// guards it.
type doneOnDemand struct {
	ch       chan struct{}
	finished bool
}

// wait returns the channel, closed already if finish was called. Lock
// should be held.
func (d *doneOnDemand) wait() <-chan struct{} {
	if d.ch == nil {
		d.ch = make(chan struct{})
		if d.finished {
			close(d.ch)
		}
	}
	return d.ch
}

// finish closes the channel of those who wait, and of those who will.
// Lock should be held.
func (d *doneOnDemand) finish() {
	d.finished = true
	if d.ch != nil {
		close(d.ch)
	}
}

// What an HTTP receiver's engine is signalled for.
const (
	lrWake        = 1 << iota // the store may hold messages or a close
	lrLocal                   // channel messages wait in memory
	lrClock                   // one of the engine's duties may be due
	lrClientGone              // the request's context is done
	lrNodeClosing             // the node is closing
)

func (lr *localReceiver) wake() {
	if lr.ws != nil {
		lr.ws.kick(wsEvWake)
		return
	}
	lr.signal(lrWake)
}

// signal records what (lrWake, lrLocal, ...) and wakes an HTTP
// receiver's engine.
func (lr *localReceiver) signal(what uint32) {
	lr.signals.Or(what)
	select {
	case lr.wakeCh <- struct{}{}:
	default:
	}
}

// shard is key's shard of the registry, by a hash of key (maphash: no
// allocation, unlike fnv over a []byte copy of the key).
func (n *Node) shard(key string) *receiverShard {
	return &n.receivers[maphash.String(receiverShardSeed, key)%receiverShards]
}

var receiverShardSeed = maphash.MakeSeed()

func (n *Node) register(lr *localReceiver) {
	sh := n.shard(lr.key)
	sh.mu.Lock()
	sh.m[lr.key] = append(sh.m[lr.key], lr)
	sh.mu.Unlock()
}

func (n *Node) unregister(lr *localReceiver) {
	sh := n.shard(lr.key)
	sh.mu.Lock()
	list := sh.m[lr.key]
	for i, x := range list {
		if x == lr {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(sh.m, lr.key)
	} else {
		sh.m[lr.key] = list
	}
	sh.mu.Unlock()
	lr.chans.finish()
	lr.doneMu.Lock()
	lr.done.finish()
	lr.doneMu.Unlock()
}

// leave takes an HTTP receiver out of the node once it holds no lease:
// out of the registry, and of the node's life if it entered it.
func (n *Node) leave(lr *localReceiver) {
	n.unregister(lr)
	if lr.entered {
		n.exit()
	}
}

// wakeLocal wakes this node's receivers of key; it reports whether there
// were any.
func (n *Node) wakeLocal(key string) bool {
	sh := n.shard(key)
	sh.mu.RLock()
	list := sh.m[key]
	for _, lr := range list {
		lr.wake()
	}
	sh.mu.RUnlock()
	return len(list) > 0
}

// websocketReceiver returns the live websocket of key on this node, if any.
func (n *Node) websocketReceiver(key string) *wsWriter {
	sh := n.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	for _, lr := range sh.m[key] {
		if lr.ws != nil {
			return lr.ws
		}
	}
	return nil
}

// otherReceiver returns a receiver of key running here other than self.
func (n *Node) otherReceiver(key string, self *localReceiver) *localReceiver {
	sh := n.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	for _, lr := range sh.m[key] {
		if lr != self {
			return lr
		}
	}
	return nil
}

func (n *Node) onBusMessage(msg []byte) {
	if len(msg) < 2 {
		n.log.Warn("sockjs: short bus message", "len", len(msg))
		return
	}
	switch msg[0] {
	case envelopeWake:
		n.wakeLocal(string(msg[1:]))
	case envelopeFrames:
		key, msgs, ok := decodeFramesEnvelope(msg[1:])
		if !ok {
			n.log.Warn("sockjs: malformed frames envelope", "len", len(msg))
			return
		}
		// No live websocket any more: the session is ending, and its
		// messages with it.
		if ws := n.websocketReceiver(key); ws != nil {
			ws.enqueue(wsItem{msgs: msgs})
		}
	case envelopeHandOff:
		key, token, batch, msgs, ok := decodeHandOffEnvelope(msg[1:])
		if !ok {
			n.log.Warn("sockjs: malformed hand-off envelope", "len", len(msg))
			return
		}
		n.handOffLocal(key, token, &handOffBatch{batch: batch, msgs: msgs})
	case envelopeChannels:
		op, key, channel, cursor, ok := decodeNote(msg[1:])
		if !ok || n.chans == nil {
			n.log.Warn("sockjs: malformed or unexpected subscription note", "len", len(msg))
			return
		}
		n.chans.onNote(op, key, channel, cursor)
	case envelopeAsk:
		node, key, id, ok := decodeAsk(msg[1:])
		if !ok {
			n.log.Warn("sockjs: malformed holder question", "len", len(msg))
			return
		}
		n.onAsk(node, key, id)
	case envelopeAnswer:
		id, st, ok := decodeAnswer(msg[1:])
		if !ok {
			n.log.Warn("sockjs: malformed holder answer", "len", len(msg))
			return
		}
		n.onAnswer(id, st)
	default:
		n.log.Warn("sockjs: unknown bus message", "kind", msg[0])
	}
}

// sendToRemoteWebsocket hands msgs straight to the node that holds the
// websocket of key, when key is a websocket session held elsewhere. A
// websocket cannot move, so the store queue adds nothing but a round trip;
// like the socket itself, the bus is at most once. While the bus says it
// is disconnected, msgs go through the store instead (the holder's writer
// rechecks it): a bus that buffers them until it reconnects would deliver
// them before the holder has subscribed again, to nobody.
func (n *Node) sendToRemoteWebsocket(ctx context.Context, key string, msgs []string) (sent bool) {
	if cb, ok := n.bus.(connectedBus); ok && !cb.Connected() {
		return false
	}
	sess, err := n.store.Get(ctx, key)
	if err != nil || !sess.ReceiverSticky || sess.ReceiverNode == "" || sess.ReceiverNode == n.id || sess.State != store.StateOpen {
		return false
	}
	return n.bus.SendNode(ctx, sess.ReceiverNode, appendFramesEnvelope(nil, key, msgs)) == nil
}

// connectedBus is a Bus that knows whether it reaches its server right now
// (natsbus.Bus does).
type connectedBus interface{ Connected() bool }

// wake tells the receiver of key, held by node receiverNode, to look at
// the store.
func (n *Node) wake(ctx context.Context, key, receiverNode string) {
	switch receiverNode {
	case "":
	case n.id:
		n.wakeLocal(key)
	default:
		if err := n.bus.SendNode(ctx, receiverNode, appendWakeEnvelope(make([]byte, 0, len(key)+1), key)); err != nil {
			// A lost wake-up only delays: the receiver rechecks the store.
			n.log.Debug("sockjs: wake-up not sent", "node", receiverNode, "err", err)
		}
	}
}

// handOff gives msgs, handed off by the store to the poll holding key's
// lease (ho), to that poll on node receiverNode, and wakes it. It is a
// wake-up that saves the poll a drain: lost, the poll drains as after any
// wake-up.
func (n *Node) handOff(ctx context.Context, key, receiverNode string, ho store.HandedOff, msgs []string) {
	if receiverNode == n.id {
		n.handOffLocal(key, ho.Token, &handOffBatch{batch: ho.Batch, msgs: msgs})
		return
	}
	if err := n.bus.SendNode(ctx, receiverNode, appendHandOffEnvelope(nil, key, ho.Token, ho.Batch, msgs)); err != nil {
		n.log.Debug("sockjs: hand-off not sent", "node", receiverNode, "err", err)
	}
}

// handOffLocal gives b to this node's receiver of key whose lease token is
// token, and wakes the receivers of key.
func (n *Node) handOffLocal(key, token string, b *handOffBatch) {
	sh := n.shard(key)
	sh.mu.RLock()
	for _, lr := range sh.m[key] {
		if lr.handOffToken == token {
			lr.handOff.Store(b)
		}
		lr.wake()
	}
	sh.mu.RUnlock()
}

// wakeReceiver wakes the receiver of key wherever it is.
func (n *Node) wakeReceiver(ctx context.Context, key string) {
	if n.wakeLocal(key) {
		return
	}
	sess, err := n.store.Get(ctx, key)
	if err != nil {
		return
	}
	n.wake(ctx, key, sess.ReceiverNode)
}

func (n *Node) addEndpoint(e *Endpoint) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("sockjs: node closed")
	}
	old := n.endpoints.Load()
	if _, ok := old.byPrefix[e.settings.Prefix]; ok {
		return fmt.Errorf("sockjs: prefix %q already mounted", e.settings.Prefix)
	}
	t := &endpointTable{byPrefix: maps.Clone(old.byPrefix), longestFirst: append(slices.Clip(old.longestFirst), e)}
	t.byPrefix[e.settings.Prefix] = e
	slices.SortStableFunc(t.longestFirst, func(a, b *Endpoint) int { return len(b.settings.Prefix) - len(a.settings.Prefix) })
	n.endpoints.Store(t)
	return nil
}

// endpointTable is a node's endpoints, never changed once made.
type endpointTable struct {
	byPrefix     map[string]*Endpoint
	longestFirst []*Endpoint // by prefix length, longest first
}

// Endpoint returns the endpoint mounted at prefix, or nil.
func (n *Node) Endpoint(prefix string) *Endpoint {
	return n.endpoints.Load().byPrefix[prefix]
}

// Handler routes requests to the node's endpoints by prefix (the longest
// one that matches on a path-segment boundary) and everything else to
// fallback (nil: 404). Serve it directly rather than through
// http.ServeMux, which redirects the unclean paths ("//") that the SockJS
// protocol wants answered with 404.
func (n *Node) Handler(fallback http.Handler) http.Handler {
	if fallback == nil {
		fallback = http.NotFoundHandler()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := n.endpointForPath(r.URL.EscapedPath()); e != nil {
			e.ServeHTTP(w, r)
			return
		}
		fallback.ServeHTTP(w, r)
	})
}

// endpointForPath finds the endpoint whose prefix is path or path's part
// before one of its slashes, the longest if several are; a node mounts a
// handful, so comparing each costs less than a map lookup per part.
func (n *Node) endpointForPath(path string) *Endpoint {
	for _, e := range n.endpoints.Load().longestFirst {
		p := e.settings.Prefix
		if strings.HasPrefix(path, p) && (len(path) == len(p) || path[len(p)] == '/') {
			return e
		}
	}
	return nil
}

// endpointForKey finds the endpoint a store key belongs to.
func (n *Node) endpointForKey(key string) (*Endpoint, string) {
	i := strings.LastIndexByte(key, '/')
	if i < 0 {
		return nil, ""
	}
	return n.endpoints.Load().byPrefix[key[:i]], key[i+1:]
}

const reapBatch = 512

func (n *Node) reapLoop() {
	t := time.NewTicker(n.cfg.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		}
		for {
			ctx, cancel := n.opContext()
			ids, err := n.store.Reap(ctx, time.Now(), reapBatch)
			cancel()
			if err != nil {
				n.log.Warn("sockjs: reap failed", "err", err)
				break
			}
			for _, key := range ids {
				if e, id := n.endpointForKey(key); e != nil {
					e.runOnClose(e.sessionFor(id, key, nil))
				} else {
					n.log.Warn("sockjs: reaped session of an endpoint not mounted here", "key", key)
				}
			}
			if len(ids) < reapBatch {
				break
			}
		}
	}
}
