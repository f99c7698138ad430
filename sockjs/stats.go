package sockjs

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Stats are a node's counters, named as sockjs-tornado's stats, so that
// tools written for it read them. In a cluster each node counts what it
// holds, so the cluster's figures are the sum over its live nodes (Add).
type Stats struct {
	// SessionsActive counts the sessions whose receiver lives on this
	// node now: open websockets, open streams and parked polls. A session
	// has at most one live receiver in the whole cluster, so the sum over
	// the nodes counts every attached session once; a polling session
	// between two polls is attached nowhere.
	SessionsActive int64
	// Transports splits SessionsActive by transport (Transport* names);
	// marshalled as transp_<name>.
	Transports map[string]int64
	// ConnectionsActive counts the client connections open to this node:
	// HTTP connections plus upgraded websockets. ConnectionsPS is how many
	// were accepted per second, averaged over the last RateWindow.
	ConnectionsActive int64
	ConnectionsPS     float64
	// PacketsSentPS and PacketsRecvPS are messages written to clients and
	// messages received from them per second, averaged over the last
	// RateWindow (a frame carrying three messages counts three).
	PacketsSentPS float64
	PacketsRecvPS float64

	// Totals since the node started (not in sockjs-tornado; counters for
	// exact accounting and Prometheus).
	SessionsOpened uint64 // OnOpen runs on this node
	SessionsClosed uint64 // OnClose runs on this node
	Connections    uint64 // connections accepted
	PacketsSent    uint64
	PacketsRecv    uint64
}

// RateWindow is the period the *_ps rates average over, sampled every
// second (sockjs-tornado's MovingAverage does the same over 10 s).
const RateWindow = 10 * time.Second

// statsTransports are the transports Stats reports, zero or not, so the
// shape of the report never changes.
var statsTransports = []string{
	TransportWebsocket, TransportRawWebsocket, TransportXHR, TransportXHRStreaming,
	TransportEventSource, TransportHTMLFile, TransportJSONP,
}

// Add returns the sum of s and o, rates included.
func (s Stats) Add(o Stats) Stats {
	sum := Stats{
		SessionsActive:    s.SessionsActive + o.SessionsActive,
		Transports:        make(map[string]int64, len(statsTransports)),
		ConnectionsActive: s.ConnectionsActive + o.ConnectionsActive,
		ConnectionsPS:     s.ConnectionsPS + o.ConnectionsPS,
		PacketsSentPS:     s.PacketsSentPS + o.PacketsSentPS,
		PacketsRecvPS:     s.PacketsRecvPS + o.PacketsRecvPS,
		SessionsOpened:    s.SessionsOpened + o.SessionsOpened,
		SessionsClosed:    s.SessionsClosed + o.SessionsClosed,
		Connections:       s.Connections + o.Connections,
		PacketsSent:       s.PacketsSent + o.PacketsSent,
		PacketsRecv:       s.PacketsRecv + o.PacketsRecv,
	}
	for _, t := range statsTransports {
		sum.Transports[t] = 0
	}
	for t, v := range s.Transports {
		sum.Transports[t] += v
	}
	for t, v := range o.Transports {
		sum.Transports[t] += v
	}
	return sum
}

// statsJSON is the wire form without the transports, which are flattened.
type statsJSON struct {
	SessionsActive    int64   `json:"sessions_active"`
	ConnectionsActive int64   `json:"connections_active"`
	ConnectionsPS     float64 `json:"connections_ps"`
	PacketsSentPS     float64 `json:"packets_sent_ps"`
	PacketsRecvPS     float64 `json:"packets_recv_ps"`
	SessionsOpened    uint64  `json:"sessions_opened"`
	SessionsClosed    uint64  `json:"sessions_closed"`
	Connections       uint64  `json:"connections"`
	PacketsSent       uint64  `json:"packets_sent"`
	PacketsRecv       uint64  `json:"packets_recv"`
}

const transpPrefix = "transp_"

// MarshalJSON writes sockjs-tornado's flat object: sessions_active,
// transp_<transport>, connections_active, connections_ps, packets_sent_ps,
// packets_recv_ps, then the totals.
func (s Stats) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, 16)
	b, err := json.Marshal(statsJSON(s.flat()))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for _, t := range statsTransports {
		m[transpPrefix+t] = s.Transports[t]
	}
	for t, v := range s.Transports {
		m[transpPrefix+t] = v
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads what MarshalJSON wrote (a member's stats).
func (s *Stats) UnmarshalJSON(b []byte) error {
	var flat statsJSON
	if err := json.Unmarshal(b, &flat); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	*s = Stats{
		SessionsActive: flat.SessionsActive, ConnectionsActive: flat.ConnectionsActive,
		ConnectionsPS: flat.ConnectionsPS, PacketsSentPS: flat.PacketsSentPS, PacketsRecvPS: flat.PacketsRecvPS,
		SessionsOpened: flat.SessionsOpened, SessionsClosed: flat.SessionsClosed,
		Connections: flat.Connections, PacketsSent: flat.PacketsSent, PacketsRecv: flat.PacketsRecv,
		Transports: make(map[string]int64),
	}
	for k, v := range all {
		if t, ok := strings.CutPrefix(k, transpPrefix); ok {
			var n int64
			if err := json.Unmarshal(v, &n); err != nil {
				return err
			}
			s.Transports[t] = n
		}
	}
	return nil
}

func (s Stats) flat() statsJSON {
	return statsJSON{
		SessionsActive: s.SessionsActive, ConnectionsActive: s.ConnectionsActive,
		ConnectionsPS: s.ConnectionsPS, PacketsSentPS: s.PacketsSentPS, PacketsRecvPS: s.PacketsRecvPS,
		SessionsOpened: s.SessionsOpened, SessionsClosed: s.SessionsClosed,
		Connections: s.Connections, PacketsSent: s.PacketsSent, PacketsRecv: s.PacketsRecv,
	}
}

// nodeStats are the live counters behind Node.Stats. The hot paths only
// touch atomics; the rate window is sampled once a second.
type nodeStats struct {
	receivers   sync.Map // transport name -> *atomic.Int64
	httpConns   atomic.Int64
	connections atomic.Uint64
	opened      atomic.Uint64
	closed      atomic.Uint64
	sent        atomic.Uint64
	recv        atomic.Uint64

	mu      sync.Mutex // guards samples
	samples []rateSample
}

// rateSample is the totals the rates are computed from, at one instant.
type rateSample struct {
	at                     time.Time
	connections, sent, rcv uint64
}

func (s *nodeStats) gauge(transport string) *atomic.Int64 {
	if g, ok := s.receivers.Load(transport); ok {
		return g.(*atomic.Int64)
	}
	g, _ := s.receivers.LoadOrStore(transport, new(atomic.Int64))
	return g.(*atomic.Int64)
}

// holding counts a live receiver of transport until the returned func is
// called.
func (s *nodeStats) holding(transport string) (release func()) {
	g := s.gauge(transport)
	g.Add(1)
	return func() { g.Add(-1) }
}

func (s *nodeStats) sample(now time.Time) rateSample {
	return rateSample{at: now, connections: s.connections.Load(), sent: s.sent.Load(), rcv: s.recv.Load()}
}

// tick records one sample, keeping RateWindow of them.
func (s *nodeStats) tick(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, s.sample(now))
	for len(s.samples) > 1 && now.Sub(s.samples[0].at) > RateWindow {
		s.samples = s.samples[1:]
	}
}

// rates averages over the samples of the window, up to the latest one.
func (s *nodeStats) rates() (conns, sent, recv float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) < 2 {
		return 0, 0, 0
	}
	first, last := s.samples[0], s.samples[len(s.samples)-1]
	secs := last.at.Sub(first.at).Seconds()
	if secs <= 0 {
		return 0, 0, 0
	}
	return float64(last.connections-first.connections) / secs,
		float64(last.sent-first.sent) / secs,
		float64(last.rcv-first.rcv) / secs
}

// statsLoop samples the counters every second until the node closes.
func (n *Node) statsLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	n.stats.tick(time.Now())
	for {
		select {
		case <-n.done:
			return
		case now := <-t.C:
			n.stats.tick(now)
		}
	}
}

// Stats returns this node's counters.
func (n *Node) Stats() Stats {
	s := &n.stats
	st := Stats{
		Transports:     make(map[string]int64, len(statsTransports)),
		Connections:    s.connections.Load(),
		SessionsOpened: s.opened.Load(),
		SessionsClosed: s.closed.Load(),
		PacketsSent:    s.sent.Load(),
		PacketsRecv:    s.recv.Load(),
	}
	for _, t := range statsTransports {
		st.Transports[t] = 0
	}
	s.receivers.Range(func(k, v any) bool {
		n := v.(*atomic.Int64).Load()
		st.Transports[k.(string)] = n
		st.SessionsActive += n
		return true
	})
	st.ConnectionsActive = s.httpConns.Load() + st.Transports[TransportWebsocket] + st.Transports[TransportRawWebsocket]
	st.ConnectionsPS, st.PacketsSentPS, st.PacketsRecvPS = s.rates()
	return st
}

// ConnState counts this node's client connections; set it as the
// http.Server's ConnState. An upgraded websocket leaves the server's
// accounting (hijacked) and is counted as a live receiver instead.
func (n *Node) ConnState(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		n.stats.httpConns.Add(1)
		n.stats.connections.Add(1)
	case http.StateHijacked, http.StateClosed:
		n.stats.httpConns.Add(-1)
	}
}
