// Package haproxy holds the HAProxy configuration of a Shoal cluster:
// haproxy.cfg, which docker-compose.yml mounts as is, and Derive, which
// gives the same configuration for nodes at other addresses (tests, and
// scripts/cluster does the same in awk), so that every balancer Shoal is
// tested behind balances exactly as the deployed one.
package haproxy

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"strings"
)

// Config is haproxy.cfg: round robin on every request, no stickiness,
// health checks on GET /readyz, servers node1..node3 on port 8080.
//
//go:embed haproxy.cfg
var Config string

// Environment variables the configuration reads; unset, HAProxy listens on
// :8080 and its statistics page on 127.0.0.1:8404.
const (
	EnvBind      = "SHOAL_LB_BIND"
	EnvStatsBind = "SHOAL_STATS_BIND"
)

// MallocTunables is the environment HAProxy runs with everywhere Shoal
// starts it (docker-compose.yml, scripts/cluster, tests, loadtest): glibc
// keeps up to 128 MiB of freed heap and grows it 16 MiB at a time. With
// glibc's defaults, every burst of traffic (a publish to a thousand
// websockets: a buffer per connection) grew the heap with brk and page
// faults and trimmed it back after: 15% of HAProxy's CPU on the cluster's
// broadcast, 13.2 -> 11.0 µs per delivered message without it.
const MallocTunables = "GLIBC_TUNABLES=glibc.malloc.trim_threshold=134217728:glibc.malloc.top_pad=16777216"

// Env is the environment an HAProxy on Config runs with: where it listens
// (EnvBind, EnvStatsBind) and MallocTunables.
func Env(bind, stats string) []string {
	return []string{EnvBind + "=" + bind, EnvStatsBind + "=" + stats, MallocTunables}
}

// Backend is the name of the backend that holds the nodes; the statistics
// page reports its servers under it.
const Backend = "shoal_nodes"

// serverPrefix starts every server line of the backend, and nothing else.
const serverPrefix = "    server "

// Server is one node behind the balancer.
type Server struct {
	Name string // HAProxy's name for it, also sent back in X-Shoal-Server
	Addr string // host:port of the node's HTTP listener
}

// Derive returns Config with its server lines replaced by servers, in
// order, and every other line (balancing, timeouts, health checks) kept.
func Derive(servers []Server) (string, error) {
	if len(servers) == 0 {
		return "", errors.New("haproxy: no servers")
	}
	seen := make(map[string]bool, len(servers))
	var block strings.Builder
	for _, s := range servers {
		if s.Name == "" || strings.ContainsAny(s.Name, " \t\r\n#\"'\\") {
			return "", fmt.Errorf("haproxy: bad server name %q", s.Name)
		}
		if seen[s.Name] {
			return "", fmt.Errorf("haproxy: duplicate server name %q", s.Name)
		}
		seen[s.Name] = true
		host, port, err := net.SplitHostPort(s.Addr)
		if err != nil || host == "" || port == "" || strings.ContainsAny(s.Addr, " \t\r\n#\"'\\") {
			return "", fmt.Errorf("haproxy: bad address %q for server %s", s.Addr, s.Name)
		}
		fmt.Fprintf(&block, "%s%s %s\n", serverPrefix, s.Name, s.Addr)
	}
	var out strings.Builder
	replaced := false
	for _, line := range strings.SplitAfter(Config, "\n") {
		if !strings.HasPrefix(line, serverPrefix) {
			out.WriteString(line)
			continue
		}
		if !replaced {
			out.WriteString(block.String())
			replaced = true
		}
	}
	if !replaced {
		return "", errors.New("haproxy: haproxy.cfg has no server lines to replace")
	}
	return out.String(), nil
}
