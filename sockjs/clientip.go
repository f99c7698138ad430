package sockjs

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Client addresses behind a balancer (NodeConfig.TrustedProxies). A
// request whose peer is a trusted proxy is from the address that proxy
// names in X-Forwarded-For: the list is read from its right end, past every
// trusted proxy, and the first address that is not one is the client's.
// Anyone else's X-Forwarded-For is ignored, so a client cannot choose its
// own address.

type clientIPKey struct{}

// withClientIP returns r carrying its client's address for newConnectionInfo
// and the per-IP limits, when it differs from the peer's.
func (n *Node) withClientIP(r *http.Request) *http.Request {
	if len(n.cfg.TrustedProxies) == 0 {
		return r
	}
	ip := n.clientIP(r)
	if ip == peerIP(r) {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), clientIPKey{}, ip))
}

// clientIP is the address of the client r comes from.
func (n *Node) clientIP(r *http.Request) string {
	if ip, ok := r.Context().Value(clientIPKey{}).(string); ok {
		return ip
	}
	peer := peerIP(r)
	addr, err := netip.ParseAddr(peer)
	if err != nil || !n.trusted(addr) {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return addr.String() // a malformed hop: trust nothing before it
			}
			hop = hop.Unmap()
			if !n.trusted(hop) {
				return hop.String()
			}
			addr = hop
		}
	}
	return addr.String()
}

func (n *Node) trusted(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range n.cfg.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// peerIP is the address of r's TCP peer.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
