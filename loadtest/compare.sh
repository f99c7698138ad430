#!/usr/bin/env bash
# Side-by-side comparison: runs every scenario against sockjs-node 0.3.24,
# sockjs-go v3.0.3, Shoal on one node, Shoal as three nodes with Redis,
# NATS and round-robin HAProxy, and what that cluster replaces: three sticky
# sockjs-node processes behind the same HAProxy; on this machine, and writes
# loadtest/results/compare-*/compare.{html,json,md}.
#
# Shoal's node program is built from the committed HEAD (not from
# uncommitted changes), so a result names the commit it measured; set
# SHOAL_BIN to measure another build. Extra arguments go to shoal-load,
# e.g. --scenarios ws-echo,idle --duration 20s --scale 4.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="$root/loadtest/results"
bin="$out/bin"
mkdir -p "$bin"
go build -o "$bin/shoal-load" ./loadtest/cmd/shoal-load

note=""
if [ -z "${SHOAL_BIN:-}" ]; then
	commit="$(git rev-parse --short HEAD)"
	src="$(mktemp -d)"
	trap 'rm -rf "$src"' EXIT
	git archive HEAD | tar -x -C "$src"
	(cd "$src" && go build -o "$bin/shoal-node" ./node)
	SHOAL_BIN="$bin/shoal-node"
	note="Shoal built from commit $commit"
	dirty=""
	git diff --quiet HEAD -- . ':!loadtest/results' || dirty=" (the working tree had uncommitted changes, not measured)"
	note="$note$dirty"
fi
"$bin/shoal-load" --compare --repo "$root" --out "$out" --shoal-bin "$SHOAL_BIN" --note "$note" "$@"
