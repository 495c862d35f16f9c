#!/usr/bin/env bash
# demo-stop.sh — stop the processes `make demo` started (PostgreSQL keeps running;
# `make pg-stop` stops it).
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for f in "$root"/.rap/demo/*.pid "$root"/.rap/demo/agent*/*.pid; do
	[ -f "$f" ] || continue
	kill "$(cat "$f")" 2>/dev/null && echo "stopped $(basename "$f" .pid)"
	rm -f "$f"
done
exit 0
