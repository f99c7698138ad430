package sockjs

import (
	"net/http"
	"strings"
)

// Origin checks (Settings.AllowedOrigins). SockJS serves every origin by
// default: its CORS answers echo the Origin with credentials allowed, and
// any page may open a websocket. With a list, a request that carries an
// Origin outside it is refused with 403 before it reaches a transport, so
// neither a CORS answer nor a websocket goes to a page the list does not
// name; requests without an Origin (not sent by a browser page) and
// same-origin requests (the iframe transports) pass. The iframe page then
// names the allowed origins as its frame-ancestors, so a page elsewhere
// cannot drive the iframe transports either.

// originAllowed reports whether r may be served under the endpoint's
// AllowedOrigins.
func (e *Endpoint) originAllowed(r *http.Request) bool {
	if len(e.settings.AllowedOrigins) == 0 {
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if _, host, ok := strings.Cut(origin, "://"); ok && strings.EqualFold(host, r.Host) {
		return true // same origin
	}
	for _, pattern := range e.settings.AllowedOrigins {
		if originMatches(pattern, origin) {
			return true
		}
	}
	return false
}

// originMatches matches an Origin ("scheme://host[:port]", or "null")
// against one AllowedOrigins entry: "*"; "scheme://host[:port]"; a host
// without scheme (any scheme); either with a leading "*." on the host for
// its subdomains. Case-insensitive, ports exact.
func originMatches(pattern, origin string) bool {
	pattern, origin = strings.ToLower(pattern), strings.ToLower(origin)
	if pattern == "*" || pattern == origin {
		return true
	}
	scheme, host, ok := strings.Cut(origin, "://")
	if !ok {
		return false
	}
	if ps, ph, ok := strings.Cut(pattern, "://"); ok {
		if ps != scheme {
			return false
		}
		pattern = ph
	}
	if sub, ok := strings.CutPrefix(pattern, "*."); ok {
		return strings.HasSuffix(host, "."+sub)
	}
	return pattern == host
}

// frameAncestors is the Content-Security-Policy of the iframe page under
// AllowedOrigins, or "" when every origin is allowed.
func (e *Endpoint) frameAncestors() string {
	if len(e.settings.AllowedOrigins) == 0 {
		return ""
	}
	b := []byte("frame-ancestors 'self'")
	for _, o := range e.settings.AllowedOrigins {
		if o == "*" {
			return ""
		}
		if o == "null" || strings.ContainsAny(o, " ;,'") {
			continue // not a CSP source; such a page cannot frame the iframe
		}
		b = append(b, ' ')
		b = append(b, o...)
	}
	return string(b)
}
