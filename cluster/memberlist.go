package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

var _ Membership = (*Memberlist)(nil)

// Failure detection settings, tuned for a LAN or one machine. A node that
// stops answering is probed by each survivor within (members-1) probe
// intervals, suspected after the probe timeout and its indirect probes,
// and declared dead when the suspicion timeout runs out: SuspicionMult ×
// ProbeInterval = 2 s for clusters of up to 9 nodes (memberlist scales it
// by log10 of the size beyond that). Clusters of up to 5 nodes need no
// confirmations, so the 2 s is fixed; bigger ones wait for 2 confirmations
// or at most 6 × 2 s. A crashed node of a small quiet cluster is therefore
// declared dead after about 2.5 to 4 s (measured in the tests). memberlist
// stretches the probe interval up to 8× when the local node itself is
// slow to answer (its "awareness"), trading speed for fewer false alarms.
const (
	probeInterval = 500 * time.Millisecond
	probeTimeout  = 200 * time.Millisecond
	suspicionMult = 4
	gossipEvery   = 100 * time.Millisecond
	// A node restarted with the same ID on another address may take its
	// name back after this long; the default (never) would lock out a
	// container that came back with a new IP.
	deadNodeReclaimTime = 30 * time.Second
)

// eventQueueSize bounds the leave events waiting for OnLeave callbacks.
const eventQueueSize = 1024

// DefaultGossipPort is the memberlist port when Config.BindAddr gives none.
const DefaultGossipPort = 7946

// Config configures Join. NodeID is required; zero values of the other
// fields are defaults.
type Config struct {
	// NodeID is this node's unique id.
	NodeID string
	// BindAddr is the host:port memberlist listens on (TCP and UDP).
	// Default "0.0.0.0:7946". Port 0 picks a free port.
	BindAddr string
	// AdvertiseAddr is the host:port other nodes use to reach this one.
	// Default: the bind address, or a private IP of this host when bound
	// to all interfaces.
	AdvertiseAddr string
	// HTTPAddr and Version are published to the other nodes as metadata.
	HTTPAddr string
	Version  string
	// Seeds are host:port addresses of other nodes to join through. While
	// this node sees no other member it keeps retrying them every
	// RejoinInterval, so nodes may start in any order.
	Seeds []string
	// RejoinInterval defaults to 5 s.
	RejoinInterval time.Duration
	// Kind names what the nodes of one cluster must share, such as their
	// store and its key prefix ("redis:shoal"). It is published in the
	// node metadata, and a node of another kind is refused (its join, and
	// its alive messages), so two clusters that do not share state never
	// merge and clean up after each other's nodes. At most 128 bytes.
	Kind string
	// SecretKey, when set, encrypts and authenticates all gossip
	// (memberlist's AES-GCM keyring): 16, 24 or 32 bytes, the same on
	// every node. Nodes without it, or with another, cannot join.
	SecretKey []byte
	// Logger receives memberlist's log lines; default slog.Default().
	Logger *slog.Logger
}

// Memberlist is a Membership gossiped with hashicorp/memberlist (SWIM:
// random probes, indirect probes, suspicion, piggybacked gossip).
type Memberlist struct {
	ml         *memberlist.Memberlist
	self       Member
	gossipAddr string
	cfg        Config
	log        *slog.Logger

	// events carries leave events from memberlist's EventDelegate, which
	// runs with memberlist's node lock held, to the dispatch goroutine
	// that calls OnLeave callbacks without it.
	events chan Member
	meta   *metaDelegate

	// view is the membership as told by the EventDelegate. memberlist's
	// own Members hands out nodes it keeps mutating after its lock is
	// released (a data race on Meta), so Members reads this copy instead.
	viewMu sync.Mutex // guards view.
	view   map[string]Member

	mu       sync.Mutex // guards handlers and nextID.
	handlers map[uint64]func(Member)
	nextID   uint64

	stopMu  sync.Mutex    // serializes Leave and Shutdown.
	stopped atomic.Uint32 // 0 while running, else StateLeft or StateDead
	done    chan struct{}
	wg      sync.WaitGroup
}

// nodeMeta is what a node publishes about itself. memberlist gossips it in
// every alive message, so it must stay small (memberlist.MetaMaxSize).
type nodeMeta struct {
	HTTPAddr string `json:"http,omitempty"`
	Version  string `json:"v,omitempty"`
	// Leaving is set just before a graceful leave. memberlist reports a
	// leave and a death through the same NotifyLeave, with no state;
	// this is how the others tell StateLeft from StateDead.
	Leaving bool `json:"leaving,omitempty"`
	// Kind is Config.Kind.
	Kind string `json:"k,omitempty"`
}

// Join starts gossiping as cfg.NodeID and joins the cluster through
// cfg.Seeds. It does not fail when no seed answers: the node starts alone
// and keeps retrying.
func Join(cfg Config) (m *Memberlist, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("cluster: join as %q: %w", cfg.NodeID, err)
		}
	}()
	if cfg.NodeID == "" {
		return nil, errors.New("empty node id")
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = "0.0.0.0:" + strconv.Itoa(DefaultGossipPort)
	}
	if cfg.RejoinInterval <= 0 {
		cfg.RejoinInterval = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if len(cfg.Kind) > maxKindLen {
		return nil, fmt.Errorf("kind is %d bytes, more than %d", len(cfg.Kind), maxKindLen)
	}
	meta, err := json.Marshal(nodeMeta{HTTPAddr: cfg.HTTPAddr, Version: cfg.Version, Kind: cfg.Kind})
	if err != nil {
		return nil, err
	}
	if len(meta) > memberlist.MetaMaxSize {
		// memberlist would panic on it.
		return nil, fmt.Errorf("node metadata is %d bytes, more than %d", len(meta), memberlist.MetaMaxSize)
	}

	mc := memberlist.DefaultLocalConfig()
	mc.Name = cfg.NodeID
	if mc.BindAddr, mc.BindPort, err = splitHostPort(cfg.BindAddr); err != nil {
		return nil, fmt.Errorf("bind address: %w", err)
	}
	if cfg.AdvertiseAddr != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitHostPort(cfg.AdvertiseAddr); err != nil {
			return nil, fmt.Errorf("advertise address: %w", err)
		}
	} else {
		mc.AdvertisePort = mc.BindPort
	}
	mc.ProbeInterval = probeInterval
	mc.ProbeTimeout = probeTimeout
	mc.SuspicionMult = suspicionMult
	mc.GossipInterval = gossipEvery
	mc.DeadNodeReclaimTime = deadNodeReclaimTime
	if len(cfg.SecretKey) > 0 {
		// memberlist checks the length; incoming and outgoing gossip are
		// then both encrypted and verified.
		mc.SecretKey = cfg.SecretKey
	}
	logger := cfg.Logger.With("component", "memberlist", "node", cfg.NodeID)
	mc.Logger = log.New(slogWriter{logger}, "", 0)

	m = &Memberlist{
		self:     Member{ID: cfg.NodeID, HTTPAddr: cfg.HTTPAddr, Version: cfg.Version, State: StateAlive},
		cfg:      cfg,
		log:      logger,
		events:   make(chan Member, eventQueueSize),
		view:     make(map[string]Member),
		handlers: make(map[uint64]func(Member)),
		done:     make(chan struct{}),
	}
	m.meta = &metaDelegate{}
	m.meta.set(meta)
	mc.Delegate = m.meta
	mc.Events = eventDelegate{m: m}
	kc := kindCheck{kind: cfg.Kind, log: logger}
	mc.Merge, mc.Alive = kc, kc
	if m.ml, err = memberlist.Create(mc); err != nil {
		return nil, err
	}
	// Read once: Leave later updates the local node under memberlist's lock.
	local := m.ml.LocalNode()
	m.gossipAddr = net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port)))
	if len(cfg.Seeds) > 0 {
		if _, err := m.ml.Join(cfg.Seeds); err != nil {
			logger.Warn("no seed answered; retrying in the background", "seeds", cfg.Seeds, "err", err)
		}
	}
	m.wg.Add(2)
	go m.dispatch()
	go m.rejoin()
	return m, nil
}

// GossipAddr returns the host:port this node gossips on (useful with a
// BindAddr port of 0).
func (m *Memberlist) GossipAddr() string { return m.gossipAddr }

// Self implements Membership.
func (m *Memberlist) Self() Member {
	self := m.self
	if s := m.stopped.Load(); s != 0 {
		self.State = State(s)
	}
	return self
}

// Members implements Membership. memberlist keeps suspicion to itself, so
// suspect members are reported alive. After Leave or Shutdown it returns
// nil.
func (m *Memberlist) Members() []Member {
	if m.stopped.Load() != 0 {
		return nil
	}
	m.viewMu.Lock()
	members := make([]Member, 0, len(m.view))
	for _, member := range m.view {
		members = append(members, member)
	}
	m.viewMu.Unlock()
	sort.Slice(members, func(i, j int) bool { return members[i].ID < members[j].ID })
	return members
}

// OnLeave implements Membership. If callbacks fall more than 1024 events
// behind, further events are dropped and logged (see the periodic re-check
// advice on ResponsibleFor).
func (m *Memberlist) OnLeave(f func(Member)) func() {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := m.nextID
	m.nextID++
	m.handlers[id] = f
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.handlers, id)
	}
}

// ResponsibleFor implements Membership using Cleaner on the local view.
// It answers false while deadID is a member in the local view.
func (m *Memberlist) ResponsibleFor(deadID string) bool {
	members := m.Members()
	for _, member := range members {
		if member.ID == deadID {
			return false
		}
	}
	return Cleaner(members, deadID) == m.self.ID
}

// Leave implements Membership: it broadcasts the leave, waits at most
// timeout for it to reach a member, then shuts down. The others see the
// node as left within about one gossip round.
func (m *Memberlist) Leave(timeout time.Duration) error {
	m.stopMu.Lock()
	defer m.stopMu.Unlock()
	if m.stopped.Load() != 0 {
		return nil
	}
	// Say "leaving" first, so the others report StateLeft, not
	// StateDead; half the time goes to that, half to the leave itself.
	start := time.Now()
	meta, err := json.Marshal(nodeMeta{HTTPAddr: m.self.HTTPAddr, Version: m.self.Version, Leaving: true, Kind: m.cfg.Kind})
	if err == nil && len(meta) <= memberlist.MetaMaxSize {
		m.meta.set(meta)
		if err := m.ml.UpdateNode(timeout / 2); err != nil {
			m.log.Warn("announcing leave", "err", err)
		}
	}
	// memberlist panics on Leave after Shutdown; stopMu and stopped rule
	// that out.
	leaveErr := m.ml.Leave(max(timeout-time.Since(start), time.Millisecond))
	m.stopLocked(StateLeft)
	if leaveErr != nil {
		return fmt.Errorf("cluster: leave: %w", leaveErr)
	}
	return nil
}

// Shutdown implements Membership.
func (m *Memberlist) Shutdown() error {
	m.stopMu.Lock()
	defer m.stopMu.Unlock()
	if m.stopped.Load() != 0 {
		return nil
	}
	m.stopLocked(StateDead)
	return nil
}

// stopLocked shuts memberlist and our goroutines down, waiting for an
// OnLeave callback under way. stopMu must be held.
func (m *Memberlist) stopLocked(state State) {
	m.stopped.Store(uint32(state))
	if err := m.ml.Shutdown(); err != nil {
		m.log.Warn("memberlist shutdown", "err", err)
	}
	close(m.done)
	m.wg.Wait()
}

// dispatch calls the OnLeave callbacks, one event at a time, in order.
func (m *Memberlist) dispatch() {
	defer m.wg.Done()
	for {
		select {
		case <-m.done:
			return
		case member := <-m.events:
			m.mu.Lock()
			handlers := make([]func(Member), 0, len(m.handlers))
			for _, h := range m.handlers {
				handlers = append(handlers, h)
			}
			m.mu.Unlock()
			for _, h := range handlers {
				h(member)
			}
		}
	}
}

// rejoin retries the seeds while this node sees no other member: nodes may
// start in any order, and a node that lost everyone (a partition longer
// than memberlist keeps gossiping to the dead) finds its way back.
func (m *Memberlist) rejoin() {
	defer m.wg.Done()
	seeds := m.cfg.Seeds
	if len(seeds) == 0 {
		return
	}
	t := time.NewTicker(m.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
			if m.ml.NumMembers() > 1 {
				continue
			}
			if n, err := m.ml.Join(seeds); err != nil {
				m.log.Debug("rejoin failed", "seeds", seeds, "err", err)
			} else {
				m.log.Info("rejoined", "contacted", n)
			}
		}
	}
}

// toMember converts a memberlist node; its metadata comes from the network,
// so what does not parse is ignored. A leaving node reports StateLeft in
// place of dead.
func toMember(n *memberlist.Node, state State) Member {
	member := Member{ID: n.Name, State: state}
	var meta nodeMeta
	if json.Unmarshal(n.Meta, &meta) == nil {
		member.HTTPAddr = meta.HTTPAddr
		member.Version = meta.Version
		if meta.Leaving && state == StateDead {
			member.State = StateLeft
		}
	}
	return member
}

// metaDelegate publishes this node's metadata; Shoal sends nothing else
// over memberlist.
// memberlist calls it from its own goroutines.
type metaDelegate struct{ meta atomic.Pointer[[]byte] }

func (d *metaDelegate) set(meta []byte) { d.meta.Store(&meta) }

func (d *metaDelegate) NodeMeta(limit int) []byte {
	meta := *d.meta.Load()
	if len(meta) > limit {
		return nil
	}
	return meta
}
func (*metaDelegate) NotifyMsg([]byte)                           {}
func (*metaDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (*metaDelegate) LocalState(join bool) []byte                { return nil }
func (*metaDelegate) MergeRemoteState(buf []byte, join bool)     {}

// maxKindLen bounds Config.Kind, which rides in every alive message.
const maxKindLen = 128

// errOtherKind refuses a node of another cluster kind.
var errOtherKind = errors.New("cluster: node of another kind")

// kindCheck refuses nodes whose Kind differs from this node's: a join
// (memberlist's MergeDelegate, both ways of a push/pull) and any alive
// message about such a node (AliveDelegate), so one cannot slip in
// through a third node either. memberlist calls it from its own
// goroutines; it keeps no state.
type kindCheck struct {
	kind string
	log  *slog.Logger
}

func (k kindCheck) check(n *memberlist.Node) error {
	var meta nodeMeta
	if err := json.Unmarshal(n.Meta, &meta); err != nil || meta.Kind != k.kind {
		return fmt.Errorf("%w: %q is %q, this cluster %q", errOtherKind, n.Name, meta.Kind, k.kind)
	}
	return nil
}

func (k kindCheck) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if err := k.check(p); err != nil {
			k.log.Warn("refused a join from another cluster", "err", err)
			return err
		}
	}
	return nil
}

func (k kindCheck) NotifyAlive(n *memberlist.Node) error { return k.check(n) }

// eventDelegate receives memberlist's membership events. memberlist calls
// it from several goroutines but never concurrently, with its node lock
// held and the node consistent: it must neither block nor call back into
// memberlist, so it only updates the view and queues leave events for
// dispatch.
type eventDelegate struct{ m *Memberlist }

func (d eventDelegate) NotifyJoin(n *memberlist.Node)   { d.put(toMember(n, StateAlive)) }
func (d eventDelegate) NotifyUpdate(n *memberlist.Node) { d.put(toMember(n, StateAlive)) }

func (d eventDelegate) NotifyLeave(n *memberlist.Node) {
	member := toMember(n, StateDead)
	d.m.viewMu.Lock()
	delete(d.m.view, member.ID)
	d.m.viewMu.Unlock()
	if member.ID == d.m.self.ID {
		return // our own Leave
	}
	select {
	case d.m.events <- member:
	default:
		d.m.log.Error("leave event dropped: OnLeave callbacks are too slow", "member", member.ID)
	}
}

func (d eventDelegate) put(member Member) {
	d.m.viewMu.Lock()
	d.m.view[member.ID] = member
	d.m.viewMu.Unlock()
}

var logLevels = []struct {
	prefix string
	level  slog.Level
}{
	{"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo}, {"[WARN]", slog.LevelWarn},
	{"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError},
}

// slogWriter turns memberlist's "[LEVEL] memberlist: text" lines into slog
// records.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for _, p := range logLevels {
		if rest, ok := strings.CutPrefix(line, p.prefix); ok {
			level, line = p.level, strings.TrimSpace(rest)
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	w.l.Log(context.Background(), level, line)
	return len(p), nil
}

func splitHostPort(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}
