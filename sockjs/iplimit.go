package sockjs

import (
	"errors"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// errTooManyNewSessions: the client's address opened NewSessionsPerIP
// sessions on this node within the last minute.
var errTooManyNewSessions = errors.New("sockjs: too many new sessions from this address")

// tooManyNewSessions answers a request refused by the per-IP limit.
func tooManyNewSessions(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "60")
	httpError(w, http.StatusTooManyRequests, "Too many new sessions from your address.")
}

// ipLimiterMaxAddrs bounds the addresses one window tracks, so a flood
// from many addresses costs bounded memory; past it, new addresses are not
// limited in that window (the limit is against one address's flood).
const ipLimiterMaxAddrs = 1 << 16

// ipLimiter counts new sessions per client address (an IPv6 address by
// its /64) in fixed one-minute windows. It is per node: behind a balancer
// spreading over k nodes one address may open up to k times the limit.
// Safe for concurrent use.
type ipLimiter struct {
	perMinute int // <= 0: no limit

	mu     sync.Mutex // guards window and counts
	window time.Time
	counts map[netip.Addr]int
}

// allow counts one new session from ip and reports whether it is within
// the limit.
func (l *ipLimiter) allow(ip string, now time.Time) bool {
	if l.perMinute <= 0 {
		return true
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return true // not an IP (a unix socket peer): nothing to count by
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		addr = p.Addr()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := now.Truncate(time.Minute); !w.Equal(l.window) || l.counts == nil {
		l.window, l.counts = w, make(map[netip.Addr]int)
	}
	c, seen := l.counts[addr]
	if !seen && len(l.counts) >= ipLimiterMaxAddrs {
		return true
	}
	if c >= l.perMinute {
		return false
	}
	l.counts[addr] = c + 1
	return true
}
