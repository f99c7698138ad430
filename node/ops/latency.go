package ops

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-rt/shoal/bus"
)

// latencyBuckets span 100 µs (an in-memory call) to 10 s (a request that
// waited out a Redis restart).
var latencyBuckets = prometheus.ExponentialBucketsRange(0.0001, 10, 16)

// Latency holds the node's latency histograms: store operations, bus
// operations, and bus publish→deliver. The application feeds the store's
// (the shoal program does it with a go-redis hook, by script name) and
// wraps its bus with Bus; New registers them and runs the delivery probe
// when Config.Latency is set. Safe for concurrent use.
type Latency struct {
	store   *prometheus.HistogramVec
	bus     *prometheus.HistogramVec
	deliver prometheus.Histogram
	// The bus's two sends, one per wake-up and per publish, have their
	// series looked up once, here, not at every send.
	sendNode, publish busOp
}

// busOp is one bus operation's two series, by result.
type busOp struct{ ok, failed prometheus.Observer }

func newBusOp(vec *prometheus.HistogramVec, op string) busOp {
	return busOp{vec.WithLabelValues(op, resultOK), vec.WithLabelValues(op, resultError)}
}

// observe records one send that started at start.
func (o busOp) observe(start time.Time, err error) {
	if err != nil {
		o.failed.Observe(time.Since(start).Seconds())
		return
	}
	o.ok.Observe(time.Since(start).Seconds())
}

// NewLatency returns empty histograms.
func NewLatency() *Latency {
	l := &Latency{
		store: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shoal_store_op_duration_seconds", Buckets: latencyBuckets,
			Help: "Store operations (one Redis script or command each), by operation and result.",
		}, []string{"op", "result"}),
		bus: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shoal_bus_op_duration_seconds", Buckets: latencyBuckets,
			Help: "Bus sends (send_node: wake-ups and websocket frames to a node; publish: channel fan-out), by operation and result.",
		}, []string{"op", "result"}),
		deliver: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "shoal_bus_publish_deliver_seconds", Buckets: latencyBuckets,
			Help: "From a publish on the bus to its delivery on this node, measured by a probe every node publishes every few seconds (clocks of different hosts must agree).",
		}),
	}
	l.sendNode, l.publish = newBusOp(l.bus, "send_node"), newBusOp(l.bus, "publish")
	return l
}

func (l *Latency) collectors() []prometheus.Collector {
	return []prometheus.Collector{l.store, l.bus, l.deliver}
}

// The values of the result label.
const (
	resultOK    = "ok"
	resultError = "error"
)

func result(err error) string {
	if err != nil {
		return resultError
	}
	return resultOK
}

// ObserveStore records one store operation that took d.
func (l *Latency) ObserveStore(op string, d time.Duration, err error) {
	l.store.WithLabelValues(op, result(err)).Observe(d.Seconds())
}

// Bus returns b with its sends timed. The result keeps b's Connected
// method, if it has one (sockjs asks it before taking over a lease), and
// its Losses (bus.LossCounter: sockjs re-checks the store less often while
// the bus lost nothing).
func (l *Latency) Bus(b bus.Bus) bus.Bus {
	tb := timedBus{Bus: b, l: l}
	if cb, ok := b.(interface{ Connected() bool }); ok {
		return timedConnectedBus{tb, cb}
	}
	return tb
}

type timedBus struct {
	bus.Bus
	l *Latency
}

// Losses forwards bus.LossCounter; a bus without it never vouches.
func (t timedBus) Losses() (n uint64, up bool) {
	if lc, ok := t.Bus.(bus.LossCounter); ok {
		return lc.Losses()
	}
	return 0, false
}

func (t timedBus) SendNode(ctx context.Context, node string, msg []byte) error {
	start := time.Now()
	err := t.Bus.SendNode(ctx, node, msg)
	t.l.sendNode.observe(start, err)
	return err
}

func (t timedBus) Publish(ctx context.Context, channel string, msg []byte) error {
	start := time.Now()
	err := t.Bus.Publish(ctx, channel, msg)
	t.l.publish.observe(start, err)
	return err
}

type timedConnectedBus struct {
	timedBus
	cb interface{ Connected() bool }
}

func (t timedConnectedBus) Connected() bool { return t.cb.Connected() }

// probeChannel is the bus channel of the delivery probe; sockjs channels
// are published under names of their own, so it meets none of them.
const probeChannel = "_shoal.probe"

// probeInterval is how often each node publishes a probe.
const probeInterval = 5 * time.Second

// runProbe publishes a timestamp on the bus every probeInterval and
// records, for every probe any node published, how long it took to arrive,
// until ctx ends.
func (l *Latency) runProbe(ctx context.Context, b bus.Bus) {
	cancel, err := b.ListenChannel(probeChannel, func(msg []byte) {
		if len(msg) != 8 {
			return
		}
		sent := time.Unix(0, int64(binary.BigEndian.Uint64(msg)))
		if d := time.Since(sent); d >= 0 && d < time.Minute {
			l.deliver.Observe(d.Seconds())
		}
	})
	if err != nil {
		return
	}
	defer cancel()
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		msg := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		b.Publish(pctx, probeChannel, msg)
		pcancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
