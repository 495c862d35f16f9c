#!/usr/bin/env python3
"""benchjson.py — turn `make bench` output (out/bench.txt) into out/bench.json.

Every figure a benchmark prints becomes one result: name, figure, unit, the
same-run baseline it is compared with (when the benchmark measures one), the
ratio, the aim (docs/BENCHMARKS.md) and whether it is met, the machine load
when the package ran (the "== load" line bench.sh writes before it) and the
commit. Usage: benchjson.py bench.txt bench.json
"""
import json
import os
import re
import subprocess
import sys
import time

# Aims: (benchmark name regex, figure unit, baseline unit, ratio unit, op, aim).
# A result whose benchmark and unit match carries its baseline, ratio and aim.
AIMS = [
    (r"^BenchmarkFencedMutation/clients=64$", "fenced_ops/s", "insert_ops/s", "fenced/insert_throughput", ">=", 0.5),
    (r"^BenchmarkFencedMutation/clients=(1|32)$", "fenced_ops/s", "insert_ops/s", "fenced/insert_throughput", None, None),
    # The same against the mutation's own row inserted unfenced (a table
    # shaped like organizations): how much of the gap is the row itself.
    (r"^BenchmarkFencedMutation/clients=\d+$", "fenced_ops/s", "org_insert_ops/s", "fenced/org_insert_throughput", None, None),
    (r"^BenchmarkFencedMutation/clients=1$", "fenced_p50_us", "ungrouped_p50_us", None, "<=", 2000),
    # Group commit with a savepoint per mutation from the start, same runs.
    (r"^BenchmarkFencedMutation/clients=\d+$", "savepoints_ops/s", "insert_ops/s", "savepoints/insert_throughput", None, None),
    # Group commit with the audit chain paused, same runs: what chaining
    # costs, and the ceiling of the fenced mutation without it.
    (r"^BenchmarkFencedMutation/clients=\d+$", "chain_paused_ops/s", "insert_ops/s", "chain_paused/insert_throughput", None, None),
    (r"^BenchmarkVerify$", "verify_us", "ed25519_verify_us", "verify/ed25519", "<=", 1.3),
    # The heartbeat route's certificate cache refresh when nothing was
    # revoked, beside the full re-check every refresh did before.
    (r"^BenchmarkAuthRefresh$", "skipped_refresh_ms", "full_refresh_ms", "skipped/full", None, None),
    # 1,000 Noise links to one node, each from its own address.
    (r"^BenchmarkLinksUp$", "links_up_max_ms", None, None, "<=", 1000),
    # Noise vs raw UDP with the same batching: sendmmsg/recvmmsg, and with
    # UDP GSO/GRO on both sides (raw then runs at memory speed).
    (r"^BenchmarkBatchedNoiseVsRawUDP/(sendmmsg|gso)$", "noise_MB/s", "raw_MB/s", "noise/raw", ">=", 0.8),
    # Fleet (issue #24 item 5): absolute aims; the first agent's apply time
    # is the same-run figure of one agent.
    (r"^BenchmarkFleet$", "applied_max_s", "first_agent_applied_s", None, "<=", 10),
    # Each authority in its own process (a1: the leader, with the harness).
    (r"^BenchmarkFleet$", "a1_peak_rss_MiB", None, None, "<=", 1024),
    (r"^BenchmarkFleet$", "a2_peak_rss_MiB", None, None, "<=", 1024),
    (r"^BenchmarkFleet$", "a3_peak_rss_MiB", None, None, "<=", 1024),
    (r"^BenchmarkFleet$", "hb_lost", "hb_acked", None, "<=", 0),
    # Heartbeat path (issue #24 item 2): the authority's own CPU per heartbeat
    # on the stream, beside the old POST path in the same run (the ratio is
    # computed), aim ≤ 30 µs; and halved (stream/old ≤ 0.5).
    (r"^BenchmarkHeartbeatPaths$", "authority_us/hb_stream", "authority_us/hb_old", None, "<=", 30),
    (r"^BenchmarkHeartbeatPaths$", "stream/old", None, None, "<=", 0.5),
    # Heartbeat ingest over the stream at 25,000/s offered (1,000 agents):
    # sustained, and visible in PostgreSQL within 250 ms at p99 (the figures
    # PERFORMANCE.md gives for a 16-core machine).
    (r"^BenchmarkHeartbeatIngest/agents=1000/offered=25000/s/path=stream$", "heartbeats/s", None, None, ">=", 25000),
    (r"^BenchmarkHeartbeatIngest/agents=1000/offered=25000/s/path=stream$", "visible_p99_ms", None, None, "<=", 250),
    # Enrollment: the last tenth's rate beside the first tenth's in the same
    # run; it should not fall as the fleet grows.
    (r"^BenchmarkEnrollment$", "last_tenth/s", "first_tenth/s", "last/first", ">=", 0.8),
    # Responder handshakes on one core.
    (r"^BenchmarkResponderHandshakes$", "handshakes/s", None, None, ">=", 1500),
    # Flush throughput (4 flushers) beside a plain batched upsert, aim ≥ 0.8.
    (r"^BenchmarkHeartbeatFlush$", "rows/s_4_flushers", "rows/s_plain_upsert", "parallel/plain_upsert", ">=", 0.8),
    # Gossip at 200 members: beside plain memberlist seeded the same way.
    (r"^BenchmarkGossip200$", "dead_by_all_max_s", "ml_dead_by_all_max_s", "dead_max/ml", None, None),
    (r"^BenchmarkGossip200$", "join_all_max_s", "ml_join_all_max_s", "join_max/ml", None, None),
]

LINE = re.compile(r"^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$")


def git(*args):
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return ""


def parse(path):
    load, pkg, out = None, None, []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("== load "):
                load = line[len("== load "):].strip()
                continue
            if line.startswith("== go test"):
                pkg = line.split()[-1]
                continue
            m = LINE.match(line)
            if not m:
                continue
            name, iters, rest = m.group(1), int(m.group(2)), m.group(3).split()
            metrics = {}
            for i in range(0, len(rest) - 1, 2):
                try:
                    metrics[rest[i + 1]] = float(rest[i])
                except ValueError:
                    pass
            out.append((pkg, name, iters, metrics, load))
    return out


def main():
    src, dst = sys.argv[1], sys.argv[2]
    commit = git("rev-parse", "HEAD")
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += "-dirty"
    results = []
    for pkg, name, iters, metrics, load in parse(src):
        used = set()
        for rx, fig, base, ratio, op, aim in AIMS:
            if not re.search(rx, name) or fig not in metrics:
                continue
            b = metrics.get(base)
            r = metrics.get(ratio) if ratio else None
            if r is None and b:
                r = metrics[fig] / b
            met = None
            if op and (r is not None or not ratio):
                v = r if ratio else metrics[fig]
                met = v >= aim if op == ">=" else v <= aim
            results.append({"name": f"{name}:{fig}", "package": pkg, "figure": metrics[fig], "unit": fig,
                            "baseline": b, "baseline_unit": base, "ratio": r,
                            "aim": f"{ratio or fig} {op} {aim}" if op else None, "met": met,
                            "machine_load": load, "commit": commit, "iterations": iters})
            used.update({fig, base} | ({ratio} if ratio else set()))
        for unit, v in metrics.items():
            if unit in used:
                continue
            results.append({"name": f"{name}:{unit}", "package": pkg, "figure": v, "unit": unit,
                            "baseline": None, "baseline_unit": None, "ratio": None, "aim": None, "met": None,
                            "machine_load": load, "commit": commit, "iterations": iters})
    doc = {"commit": commit, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "cpus": os.cpu_count(), "source": src, "results": results}
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"{len(results)} figures written to {dst}")


if __name__ == "__main__":
    main()
