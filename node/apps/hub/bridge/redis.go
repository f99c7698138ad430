package bridge

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RedisConfig configures the Redis pub/sub bridge. Zero fields take
// defaults.
type RedisConfig struct {
	// Client is the Redis the backends PUBLISH on (--bridge-redis).
	Client redis.UniversalClient
	// Prefix starts every bridged Redis channel: PUBLISH <Prefix><channel>
	// reaches hub channel <channel>. Default "shoal:".
	Prefix string
	Options
}

// Redis bridges Redis pub/sub to hub channels. While its node holds the
// lease it PSUBSCRIBEs to <Prefix>*; every message is appended once, and
// messages of one Redis channel in the order Redis delivered them, which
// is the order each publisher sent them.
//
// What a failover costs: pub/sub keeps nothing, so what is published
// between the holder's death and the moment the next node's PSUBSCRIBE is
// in place is not bridged — at most the lease TTL (2 s) plus a retry
// interval (TTL/8) and one round trip — and so are messages the dead
// holder had read but not yet appended (its queues). Nothing is appended
// twice: the old holder stops acting before its lease can expire.
// Backends that need every message use the stream bridge.
type Redis struct {
	core
	cfg RedisConfig
}

// NewRedis returns a bridge that publishes into pub; Run starts it.
func NewRedis(pub Publisher, c RedisConfig) *Redis {
	if c.Prefix == "" {
		c.Prefix = "shoal:"
	}
	b := &Redis{cfg: c}
	b.init(pub, c.Options, logger(c.Log).With("bridge", "redis", "prefix", c.Prefix))
	return b
}

// Run bridges whenever this node holds the lease, until ctx ends.
func (b *Redis) Run(ctx context.Context) {
	runRetrying(ctx, b.lease, b.log, "redis subscription", b.bridge)
}

// bridge subscribes and appends until ctx ends or the subscription fails.
func (b *Redis) bridge(ctx context.Context, valid func() bool) error {
	ps := b.cfg.Client.PSubscribe(ctx, globEscape(b.cfg.Prefix)+"*")
	defer ps.Close()
	// A blocked receive does not watch ctx; closing the subscription ends it.
	stopWatch := context.AfterFunc(ctx, func() { ps.Close() })
	defer stopWatch()
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
		return fmt.Errorf("bridge: psubscribe: %w", err)
	}
	return b.bridging(func(work *shards) error {
		for {
			msg, err := ps.ReceiveMessage(ctx)
			if err != nil {
				return err
			}
			channel, ok := strings.CutPrefix(msg.Channel, b.cfg.Prefix)
			if !ok || channel == "" {
				continue
			}
			payload := []byte(msg.Payload)
			work.add(channel, func() { b.appendAtMostOnce(valid, channel, payload) })
		}
	})
}

// globEscape quotes the glob characters of a PSUBSCRIBE pattern.
func globEscape(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}
