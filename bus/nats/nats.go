// Package natsbus is the bus.Bus of a Shoal cluster, carried by NATS core
// (no JetStream: the bus is at most once, what must survive is in the store).
//
// Subjects are <prefix>.node.<node> and <prefix>.ch.<channel>, where the
// node or channel name is base64url-encoded without padding (RFC 4648 §5).
// Names come from applications and clients and may hold anything, while a
// NATS token must not contain '.', '*', '>' or whitespace; the base64url
// alphabet (A-Z a-z 0-9 - _) is safe in a token, and the encoding is
// one-to-one, so two names never share a subject.
package natsbus

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shoal-rt/shoal/bus"
)

var (
	_ bus.Bus         = (*Bus)(nil)
	_ bus.LossCounter = (*Bus)(nil)
)

// Config tunes a Bus. The zero value is usable.
type Config struct {
	// Prefix is the first subject token(s), so several clusters or tests
	// can share a NATS server. Default "shoal". Characters a subject cannot
	// hold ('*', '>', whitespace) become '_', empty tokens are dropped.
	Prefix string
	// PendingMsgs and PendingBytes bound each listener's queue in the
	// client; beyond them NATS drops messages for that listener (a slow
	// consumer) and Dropped counts them. Defaults 65536 and 64 MiB.
	PendingMsgs  int
	PendingBytes int
	// SubscribeTimeout bounds how long ListenNode and ListenChannel wait
	// for the server to confirm a subscription. Default 2 s.
	SubscribeTimeout time.Duration
}

// Bus is a bus.Bus over one NATS connection. Each listener is its own NATS
// subscription, so nats.go gives it its own goroutine and pending queue:
// handlers of one listener run one at a time, in order, and a slow one
// delays nobody else. nats.go re-sends every subscription after a
// reconnect, so listeners survive a NATS restart; messages sent while a
// node is disconnected are lost or delivered late, which the bus contract
// allows.
type Bus struct {
	nc     *nats.Conn
	prefix string
	cfg    Config

	mu      sync.Mutex // guards subs and the setting of closed.
	closed  atomic.Bool
	subs    map[*nats.Subscription]struct{}
	dropped atomic.Uint64 // drops of listeners already cancelled
	// nodeSubs are the subs of ListenNode (wake-ups travel there) and
	// nodeDropped the drops of those already cancelled, for Losses.
	nodeSubs    map[*nats.Subscription]struct{}
	nodeDropped atomic.Uint64
}

// New returns a Bus over nc and takes ownership of it: Close closes nc.
// Connect makes a connection with suitable reconnect settings.
func New(nc *nats.Conn, c Config) *Bus {
	if c.PendingMsgs <= 0 {
		c.PendingMsgs = 65536
	}
	if c.PendingBytes <= 0 {
		c.PendingBytes = 64 << 20
	}
	if c.SubscribeTimeout <= 0 {
		c.SubscribeTimeout = 2 * time.Second
	}
	return &Bus{
		nc:       nc,
		prefix:   cleanPrefix(c.Prefix),
		cfg:      c,
		subs:     make(map[*nats.Subscription]struct{}),
		nodeSubs: make(map[*nats.Subscription]struct{}),
	}
}

// Connect dials url (a comma-separated list is allowed) with settings for a
// bus that must outlive NATS restarts: it never gives up reconnecting (also
// when the first connect fails, so nodes may start before NATS), retries
// every 250 ms plus jitter, notices a dead server within about 15 s (pings
// every 5 s, 3 outstanding), and buffers at most 4 MiB of sends while
// disconnected; beyond that a send fails with nats.ErrReconnectBufExceeded
// instead of blocking. Connection events (not those of Close) are logged
// to slog.Default().
// opts are applied after these defaults and override them.
func Connect(url string, opts ...nats.Option) (*nats.Conn, error) {
	log := slog.Default().With("component", "natsbus")
	base := []nats.Option{
		nats.Name("shoal"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.ReconnectBufSize(4 << 20),
		nats.RetryOnFailedConnect(true),
		nats.Timeout(2 * time.Second),
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(3),
		// A Close of ours is no outage: no "disconnected" warning for it.
		nats.NoCallbacksAfterClientClose(),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("NATS disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("NATS async error", "subject", subject, "err", err)
		}),
	}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("natsbus: connect %s: %w", url, err)
	}
	return nc, nil
}

// SendNode implements bus.Bus. It does not wait for the server: while NATS
// is unreachable the message is buffered (bounded, see Connect) or an error
// is returned.
func (b *Bus) SendNode(ctx context.Context, node string, msg []byte) error {
	return b.publish(ctx, "node", node, msg)
}

// Publish implements bus.Bus, with the same buffering as SendNode.
func (b *Bus) Publish(ctx context.Context, channel string, msg []byte) error {
	return b.publish(ctx, "ch", channel, msg)
}

// ListenNode implements bus.Bus.
func (b *Bus) ListenNode(node string, h bus.Handler) (func(), error) {
	return b.listen("node", node, h)
}

// ListenChannel implements bus.Bus.
func (b *Bus) ListenChannel(channel string, h bus.Handler) (func(), error) {
	return b.listen("ch", channel, h)
}

// Connected reports whether the connection to NATS is up right now; while
// it is not, sends are buffered (see Connect) and may reach nobody.
func (b *Bus) Connected() bool { return b.nc.IsConnected() }

// Losses implements bus.LossCounter for what is sent to this node
// (ListenNode): reconnects plus drops of its node listeners; up while the
// connection is. A disconnect loses what was sent to this node meanwhile
// (NATS keeps nothing for a subscriber that is away), and the reconnect
// that ends it changes the count. Channel listeners are left out: a
// channel's fan-out finds its gaps in the channel's log.
func (b *Bus) Losses() (n uint64, up bool) {
	b.mu.Lock()
	n = b.nodeDropped.Load()
	for sub := range b.nodeSubs {
		if d, err := sub.Dropped(); err == nil && d > 0 {
			n += uint64(d)
		}
	}
	b.mu.Unlock()
	return n + b.nc.Stats().Reconnects, b.nc.IsConnected()
}

// Dropped reports how many messages NATS dropped because a listener of this
// Bus fell behind (slow consumer).
func (b *Bus) Dropped() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.dropped.Load()
	for sub := range b.subs {
		if d, err := sub.Dropped(); err == nil && d > 0 {
			n += uint64(d)
		}
	}
	return n
}

// Close stops every listener and closes the connection. It does not wait
// for handlers: a call under way (or one nats.go was just starting) may
// still finish after Close returns. Calls after the first return nil.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return nil
	}
	b.closed.Store(true)
	for sub := range b.subs {
		b.retire(sub)
	}
	b.mu.Unlock()
	b.nc.Close()
	return nil
}

func (b *Bus) subject(kind, name string) string {
	return b.prefix + "." + kind + "." + base64.RawURLEncoding.EncodeToString([]byte(name))
}

func (b *Bus) publish(ctx context.Context, kind, name string, msg []byte) (err error) {
	if err := bus.CheckName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.closed.Load() {
		return bus.ErrClosed
	}
	if err := b.nc.Publish(b.subject(kind, name), msg); err != nil {
		if err == nats.ErrConnectionClosed {
			return fmt.Errorf("natsbus: publish to %s %q: %w", kind, name, bus.ErrClosed)
		}
		return fmt.Errorf("natsbus: publish to %s %q: %w", kind, name, err)
	}
	return nil
}

func (b *Bus) listen(kind, name string, h bus.Handler) (func(), error) {
	if err := bus.CheckName(name); err != nil {
		return nil, err
	}
	if b.closed.Load() {
		return nil, bus.ErrClosed
	}
	fail := func(err error) (func(), error) {
		if err == nats.ErrConnectionClosed {
			err = bus.ErrClosed
		}
		return nil, fmt.Errorf("natsbus: listen to %s %q: %w", kind, name, err)
	}
	// nats.go copies each message's payload per subscription, so the
	// handler owns msg.Data as bus.Handler promises.
	sub, err := b.nc.Subscribe(b.subject(kind, name), func(m *nats.Msg) { h(m.Data) })
	if err != nil {
		return fail(err)
	}
	if err := sub.SetPendingLimits(b.cfg.PendingMsgs, b.cfg.PendingBytes); err != nil {
		_ = sub.Unsubscribe()
		return fail(err)
	}
	// Wait until the server has the subscription, so a message sent by
	// another node after Listen returns is delivered. While disconnected
	// there is nothing to wait for (Listen may run in a request path and
	// must not stall on an outage): the subscription stays, and nats.go
	// sends it on reconnect. b.mu is not held here, senders must not wait.
	if !b.nc.IsReconnecting() {
		if err := b.nc.FlushTimeout(b.cfg.SubscribeTimeout); err != nil && !b.nc.IsReconnecting() {
			_ = sub.Unsubscribe()
			return fail(err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		_ = sub.Unsubscribe()
		return nil, bus.ErrClosed
	}
	b.subs[sub] = struct{}{}
	if kind == "node" {
		b.nodeSubs[sub] = struct{}{}
	}
	var once sync.Once
	cancel := func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if _, ok := b.subs[sub]; ok {
				b.retire(sub)
			}
		})
	}
	return cancel, nil
}

// retire unsubscribes sub and keeps its drop count. b.mu must be held.
func (b *Bus) retire(sub *nats.Subscription) {
	if d, err := sub.Dropped(); err == nil && d > 0 {
		b.dropped.Add(uint64(d))
		if _, ok := b.nodeSubs[sub]; ok {
			b.nodeDropped.Add(uint64(d))
		}
	}
	delete(b.nodeSubs, sub)
	// Unsubscribe fails only when the connection is already closed, and
	// then the subscription is gone anyway.
	_ = sub.Unsubscribe()
	delete(b.subs, sub)
}

// cleanPrefix makes prefix a valid sequence of subject tokens.
func cleanPrefix(prefix string) string {
	var tokens []string
	for _, tok := range strings.Split(prefix, ".") {
		tok = strings.Map(func(r rune) rune {
			switch {
			case r == '*' || r == '>' || r <= ' ' || r == 0x7f:
				return '_'
			}
			return r
		}, tok)
		if tok != "" {
			tokens = append(tokens, tok)
		}
	}
	if len(tokens) == 0 {
		return "shoal"
	}
	return strings.Join(tokens, ".")
}
