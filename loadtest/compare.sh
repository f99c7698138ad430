#!/usr/bin/env bash
# Side-by-side comparison: builds the load generator and runs every scenario
# against sockjs-node 0.3.24, sockjs-go v3.0.3, Shoal on one node and Shoal
# as three nodes with Redis, NATS and round-robin HAProxy, on this machine.
# Extra arguments go to shoal-load, e.g. --scenarios ws-echo,idle
# --duration 20s --scale 4. Reports land in loadtest/results/compare-*/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="$root/loadtest/results/bin"
mkdir -p "$bin"
go build -o "$bin/shoal-load" ./loadtest/cmd/shoal-load
exec "$bin/shoal-load" --compare --repo "$root" --out "$root/loadtest/results" "$@"
