#!/usr/bin/env bash
# demo-stop.sh — stop the processes `make demo` started (PostgreSQL keeps running;
# `make pg-stop` stops it).
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for f in "$root"/.rap/demo/*.pid "$root"/.rap/demo/agent*/*.pid; do
	[ -f "$f" ] || continue
	kill "$(cat "$f")" 2>/dev/null && echo "stopped $(basename "$f" .pid)"
	rm -f "$f"
done
# Service workloads outlive their agent by design (a restarted agent re-adopts
# them); the demo's are stopped here by their recorded process group.
for rec in "$root"/.rap/demo/agent*/workloads/*/*/instance.json; do
	[ -f "$rec" ] || continue
	pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("pid", 0))' "$rec" 2>/dev/null || echo 0)
	[ "$pid" -gt 1 ] && kill -TERM -- "-$pid" 2>/dev/null && echo "stopped workload $pid"
	rm -f "$rec"
done
exit 0
