package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	natsbus "github.com/shoal-rt/shoal/bus/nats"
	"github.com/shoal-rt/shoal/cluster"
	"github.com/shoal-rt/shoal/node/apps/hub"
	"github.com/shoal-rt/shoal/node/apps/hub/api"
	"github.com/shoal-rt/shoal/node/apps/hub/bridge"
	"github.com/shoal-rt/shoal/node/apps/hub/webhook"
)

// backendFlags are the flags of the paths backends reach the hub by (the
// bridges, the HTTP API) and of the webhooks the hub calls them with
// (docs/backends.md).
type backendFlags struct {
	APIKey      string
	APIMaxBody  int64
	BridgeRedis string
	BridgePref  string
	Stream      string
	BridgeNATS  string
	NATSPrefix  string
	WebhookURL  string
	WebhookKey  string
	WebhookTime time.Duration
}

// off disables a bridge whose URL would otherwise default to --redis or
// --nats.
const off = "off"

func (f *backendFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.APIKey, "api-key", "", "enables the HTTP API (/api/...) for backends, which send 'Authorization: apikey <key>'")
	fs.Int64Var(&f.APIMaxBody, "api-max-body", 1<<20, "largest HTTP API request body, in bytes")
	fs.StringVar(&f.BridgeRedis, "bridge-redis", "", "Redis whose PUBLISH on <bridge-prefix><channel> reaches hub subscribers (default: --redis; 'off' disables)")
	fs.StringVar(&f.BridgePref, "bridge-prefix", "shoal:", "Redis channel prefix of the Redis bridge")
	fs.StringVar(&f.Stream, "bridge-stream", "", "Redis stream key (on --bridge-redis) the durable bridge reads entries {channel, data} from; empty: off")
	fs.StringVar(&f.BridgeNATS, "bridge-nats", "", "NATS whose messages on <bridge-nats-prefix>.<channel> reach hub subscribers (default: --nats; 'off' disables)")
	fs.StringVar(&f.NATSPrefix, "bridge-nats-prefix", "shoal.bridge", "subject prefix of the NATS bridge")
	fs.StringVar(&f.WebhookURL, "webhook-url", "", "backend URL the hub POSTs connect, subscribe, publish, event and disconnect webhooks to; empty: off")
	fs.StringVar(&f.WebhookKey, "webhook-secret", "", "secret that signs webhook requests (HMAC-SHA256, header X-Shoal-Signature)")
	fs.DurationVar(&f.WebhookTime, "webhook-timeout", 3*time.Second, "bound on one webhook request")
}

func (f *backendFlags) check() error {
	if f.WebhookURL != "" && f.WebhookKey == "" {
		return errors.New("--webhook-url needs --webhook-secret")
	}
	if f.APIMaxBody <= 0 {
		return errors.New("--api-max-body must be positive")
	}
	return nil
}

// backendSide is what the flags turn on around one node's hub.
type backendSide struct {
	flags   backendFlags
	cfg     config
	members cluster.Membership
	log     *slog.Logger

	webhook *webhook.Webhook
	closers []func()

	mu      sync.Mutex
	bridges map[string]func() bool // name -> bridging on this node now
	stop    context.CancelFunc     // ends the bridges; nil before ready
	wg      sync.WaitGroup
}

// newBackendSide sets up the webhook backend into hubCfg; the bridges and
// the API wait for the hub (ready).
func newBackendSide(cfg config, hubCfg *hub.Config, members cluster.Membership, log *slog.Logger) (*backendSide, error) {
	b := &backendSide{flags: cfg.Backend, cfg: cfg, members: members, log: log, bridges: map[string]func() bool{}}
	if f := cfg.Backend; f.WebhookURL != "" {
		w, err := webhook.New(webhook.Config{URL: f.WebhookURL, Secret: f.WebhookKey, Timeout: f.WebhookTime, Log: log})
		if err != nil {
			return nil, err
		}
		b.webhook = w
		b.closers = append(b.closers, w.Close)
		hubCfg.Backend = w
	}
	return b, nil
}

// ready mounts the API on mux and starts the bridges, until ctx ends.
func (b *backendSide) ready(ctx context.Context, h *hub.Hub, mux *http.ServeMux) error {
	ctx, b.stop = context.WithCancel(ctx)
	f := b.flags
	if f.APIKey != "" {
		mux.Handle("/api/", api.New(h, api.Config{Key: f.APIKey, MaxBody: f.APIMaxBody, Log: b.log, Info: b.info}))
	}
	redisURL := orDefault(f.BridgeRedis, b.cfg.Redis)
	var leaseRedis redis.UniversalClient // the lease lives in the store's Redis
	if b.cfg.Redis != "" {
		c, err := redisClient(b.cfg.Redis, b.cfg.RedisOutageWait)
		if err != nil {
			return fmt.Errorf("--redis: %w", err)
		}
		leaseRedis = c
		b.closers = append(b.closers, func() { c.Close() })
	}
	lease := func(name string) bridge.Lease {
		if leaseRedis == nil {
			return bridge.Local{}
		}
		return &bridge.RedisLease{Client: leaseRedis, Key: b.cfg.RedisPrefix + ":bridge-lease:" + name, Owner: b.cfg.NodeID, Log: b.log}
	}
	if redisURL != "" {
		c, err := redisClient(redisURL, b.cfg.RedisOutageWait)
		if err != nil {
			return fmt.Errorf("--bridge-redis %s: %w", redactURL(redisURL), err)
		}
		b.closers = append(b.closers, func() { c.Close() })
		rb := bridge.NewRedis(h, bridge.RedisConfig{Client: c, Prefix: f.BridgePref, Options: bridge.Options{Lease: lease("redis"), Log: b.log}})
		b.start(ctx, "redis", rb.Run, rb.Live)
		if f.Stream != "" {
			sb := bridge.NewStream(h, bridge.StreamConfig{Client: c, Stream: f.Stream, Consumer: b.cfg.NodeID, Options: bridge.Options{Lease: lease("stream"), Log: b.log}})
			b.start(ctx, "stream", sb.Run, sb.Live)
		}
	} else if f.Stream != "" {
		return errors.New("--bridge-stream needs --bridge-redis or --redis")
	}
	if natsURL := orDefault(f.BridgeNATS, b.cfg.NATS); natsURL != "" {
		nc, err := natsbus.Connect(natsURL, nats.Name("shoal-bridge-"+b.cfg.NodeID))
		if err != nil {
			return fmt.Errorf("--bridge-nats %s: %w", redactURL(natsURL), err)
		}
		b.closers = append(b.closers, nc.Close)
		nb := bridge.NewNATS(h, bridge.NATSConfig{Conn: nc, Prefix: f.NATSPrefix, Options: bridge.Options{Lease: lease("nats"), Log: b.log}})
		b.start(ctx, "nats", nb.Run, nb.Live)
	}
	return nil
}

func orDefault(v, def string) string {
	switch v {
	case off:
		return ""
	case "":
		return def
	}
	return v
}

func (b *backendSide) start(ctx context.Context, name string, run func(context.Context), live func() bool) {
	b.mu.Lock()
	b.bridges[name] = live
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		run(ctx)
	}()
}

// close ends the bridges (releasing their leases) and the rest.
func (b *backendSide) close() {
	if b.stop != nil {
		b.stop()
	}
	b.wg.Wait()
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
}

// info answers /api/info.
func (b *backendSide) info(ctx context.Context) any {
	type member struct {
		ID       string `json:"id"`
		HTTPAddr string `json:"http_addr"`
		Version  string `json:"version"`
		State    string `json:"state"`
	}
	bridging := map[string]bool{}
	b.mu.Lock()
	for name, live := range b.bridges {
		bridging[name] = live()
	}
	b.mu.Unlock()
	members := []member{}
	for _, m := range b.members.Members() {
		members = append(members, member{m.ID, m.HTTPAddr, m.Version, m.State.String()})
	}
	return map[string]any{
		"node":    map[string]any{"id": b.cfg.NodeID, "version": buildVersion(), "bridging": bridging},
		"cluster": map[string]any{"members": members},
	}
}
