package ops

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Prometheus metrics of one node. Every node is scraped on its own; sum
// over the instances for the cluster (sum(shoal_sessions_active)).
var (
	descSessionsActive = prometheus.NewDesc("shoal_sessions_active",
		"Sessions whose receiver (websocket, stream, parked poll) lives on this node, by transport.", []string{"transport"}, nil)
	descConnectionsActive = prometheus.NewDesc("shoal_connections_active",
		"Client connections open to this node: HTTP connections plus upgraded websockets.", nil, nil)
	descConnections = prometheus.NewDesc("shoal_connections_total",
		"Client connections accepted.", nil, nil)
	descOpened = prometheus.NewDesc("shoal_sessions_opened_total",
		"Sessions opened here (OnOpen ran on this node).", nil, nil)
	descClosed = prometheus.NewDesc("shoal_sessions_closed_total",
		"Sessions closed or expired here (OnClose ran on this node).", nil, nil)
	descSent = prometheus.NewDesc("shoal_packets_sent_total",
		"Messages written to clients.", nil, nil)
	descRecv = prometheus.NewDesc("shoal_packets_received_total",
		"Messages received from clients.", nil, nil)
	descReady = prometheus.NewDesc("shoal_ready",
		"1 when the node is ready for requests (not draining, backends reachable).", nil, nil)
	descDraining = prometheus.NewDesc("shoal_draining",
		"1 while the node drains after SIGTERM.", nil, nil)
	descBackendUp = prometheus.NewDesc("shoal_backend_up",
		"1 when the backend answered its last ping.", []string{"backend"}, nil)
	descMembers = prometheus.NewDesc("shoal_cluster_members",
		"Members this node sees alive, itself included.", nil, nil)
	descCleanups = prometheus.NewDesc("shoal_dead_node_cleanups_total",
		"Cleanups after dead or departed nodes this node ran.", nil, nil)
	descCleanupFailures = prometheus.NewDesc("shoal_dead_node_cleanup_failures_total",
		"Cleanup attempts that failed (store errors).", nil, nil)
	descReleased = prometheus.NewDesc("shoal_dead_node_leases_released_total",
		"Receiver leases of dead nodes this node released.", nil, nil)
	descReleasedClosed = prometheus.NewDesc("shoal_dead_node_sessions_closed_total",
		"Websocket sessions of dead nodes this node closed (OnClose ran here).", nil, nil)
	descBuild = prometheus.NewDesc("shoal_build_info",
		"Always 1; labels name the node and its build.", []string{"node", "version"}, nil)
)

// opsCollector turns the node's counters into metrics when scraped, so the
// hot paths only ever touch their own atomics.
type opsCollector struct {
	o *Ops
}

var _ prometheus.Collector = opsCollector{}

func (c opsCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c opsCollector) Collect(ch chan<- prometheus.Metric) {
	o := c.o
	st := o.node.Stats()
	for t, n := range st.Transports {
		ch <- prometheus.MustNewConstMetric(descSessionsActive, prometheus.GaugeValue, float64(n), t)
	}
	ch <- prometheus.MustNewConstMetric(descConnectionsActive, prometheus.GaugeValue, float64(st.ConnectionsActive))
	ch <- prometheus.MustNewConstMetric(descConnections, prometheus.CounterValue, float64(st.Connections))
	ch <- prometheus.MustNewConstMetric(descOpened, prometheus.CounterValue, float64(st.SessionsOpened))
	ch <- prometheus.MustNewConstMetric(descClosed, prometheus.CounterValue, float64(st.SessionsClosed))
	ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(st.PacketsSent))
	ch <- prometheus.MustNewConstMetric(descRecv, prometheus.CounterValue, float64(st.PacketsRecv))
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, boolValue(o.NotReady() == ""))
	ch <- prometheus.MustNewConstMetric(descDraining, prometheus.GaugeValue, boolValue(o.draining.Load()))
	for name, err := range o.backendHealth() {
		ch <- prometheus.MustNewConstMetric(descBackendUp, prometheus.GaugeValue, boolValue(err == nil), name)
	}
	ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(len(o.membership.Members())))
	cl := o.cleaner
	ch <- prometheus.MustNewConstMetric(descCleanups, prometheus.CounterValue, float64(cl.runs.Load()))
	ch <- prometheus.MustNewConstMetric(descCleanupFailures, prometheus.CounterValue, float64(cl.failures.Load()))
	ch <- prometheus.MustNewConstMetric(descReleased, prometheus.CounterValue, float64(cl.released.Load()))
	ch <- prometheus.MustNewConstMetric(descReleasedClosed, prometheus.CounterValue, float64(cl.closed.Load()))
	ch <- prometheus.MustNewConstMetric(descBuild, prometheus.GaugeValue, 1, o.node.ID(), o.cfg.Version)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// newRegistry returns a registry with the node's metrics, the Go
// runtime's and the process's.
func newRegistry(o *Ops) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		opsCollector{o: o},
	)
	return reg
}

// metricsHandler serves the registry.
func (o *Ops) metricsHandler() http.Handler {
	return promhttp.HandlerFor(o.registry, promhttp.HandlerOpts{})
}
