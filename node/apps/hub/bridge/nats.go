package bridge

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// NATSConfig configures the NATS bridge. Zero fields take defaults.
type NATSConfig struct {
	Conn *nats.Conn
	// Prefix is the subject prefix: a message on <Prefix>.<channel>
	// reaches hub channel <channel> (default "shoal.bridge"). A channel
	// name with dots spans several subject tokens, which is fine; one with
	// spaces or wildcards cannot be reached this way.
	Prefix string
	Options
}

// NATS bridges core NATS messages to hub channels. Only the lease holder
// subscribes: a queue group would bridge each message once too, but it
// hands consecutive messages of one publisher to different nodes, which
// then append them in any order. A failover costs what it costs the Redis
// bridge (core NATS keeps nothing either).
type NATS struct {
	core
	cfg NATSConfig
}

// NewNATS returns a NATS bridge into pub; Run starts it.
func NewNATS(pub Publisher, c NATSConfig) *NATS {
	if c.Prefix == "" {
		c.Prefix = "shoal.bridge"
	}
	c.Prefix = strings.TrimSuffix(c.Prefix, ".")
	b := &NATS{cfg: c}
	b.init(pub, c.Options, logger(c.Log).With("bridge", "nats", "prefix", c.Prefix))
	return b
}

// Run bridges whenever this node holds the lease, until ctx ends.
func (b *NATS) Run(ctx context.Context) {
	b.lease.Run(ctx, func(ctx context.Context, valid func() bool) {
		if err := b.bridge(ctx, valid); err != nil {
			b.log.Warn("bridge: nats subscription failed", "err", err)
		}
	})
}

func (b *NATS) bridge(ctx context.Context, valid func() bool) error {
	msgs := make(chan *nats.Msg, b.depth)
	sub, err := b.cfg.Conn.ChanSubscribe(b.cfg.Prefix+".>", msgs)
	if err != nil {
		return fmt.Errorf("bridge: nats subscribe: %w", err)
	}
	// Let the subscription reach the server before reporting live.
	if err := b.cfg.Conn.FlushTimeout(5 * time.Second); err != nil {
		sub.Unsubscribe()
		return fmt.Errorf("bridge: nats flush: %w", err)
	}
	return b.bridging(func(work *shards) error {
		defer sub.Unsubscribe()
		for {
			select {
			case <-ctx.Done():
				return nil
			case m := <-msgs:
				channel := strings.TrimPrefix(m.Subject, b.cfg.Prefix+".")
				payload := m.Data
				work.add(channel, func() { b.appendAtMostOnce(valid, channel, payload) })
			}
		}
	})
}
