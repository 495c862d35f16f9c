#!/usr/bin/env bash
# bench.sh — `make bench`: every benchmark, each printing its figures beside a
# baseline measured in the same run (raw UDP vs Noise, bare veth vs the
# VPN tunnel vs wireguard-go and Nebula, plain INSERT vs fenced mutation, raw
# Raft apply vs ours, Ed25519 vs snapshot signing, service assignment →
# healthy in PostgreSQL vs the heartbeat interval, agent CPU and memory with
# 50 native workloads vs idle, …).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
DATABASE_URL=$(scripts/pg.sh url)
export DATABASE_URL
out=${BENCH_OUT:-out/bench.txt}
json=${BENCH_JSON:-${out%.txt}.json}
mkdir -p "$(dirname "$out")"
: >"$out"
# Steps to run: the arguments (e.g. `scripts/bench.sh fenced snapshot`), or all;
# BENCH_FILTER narrows the benchmarks of each step (a -bench pattern).
steps=" ${*:-fenced raft snapshot mesh gossip heartbeat fleet enroll update tunnel vpn} "
want() { [[ $steps == *" $1 "* ]]; }
# Every package run is preceded by the machine load (figures on a shared
# machine are only comparable with their same-run baselines).
runb() {
	echo "== load $(cat /proc/loadavg)" | tee -a "$out"
	echo "== go test -bench ${BENCH_FILTER:-.} $*" | tee -a "$out"
	go test -run '^$' -bench "${BENCH_FILTER:-.}" "$@" 2>&1 | grep -E '^(Benchmark|ok|FAIL|PASS|goos|cpu|gossip |fleet |heartbeat )' | tee -a "$out"
}
# out/bench.json is written from out/bench.txt however the run ends.
trap 'python3 scripts/benchjson.py "$out" "$json"' EXIT
# bench/'s b.N-driven benchmarks (and the one-shot ones without a step of
# their own); the heartbeat, fleet and update steps run the others.
# BenchmarkFencedMutation at 20,000 operations per client count: each of its
# eight alternating phases then runs 10,000 mutations (at 1,000 the 64-writer
# phases last ~50 ms each and their ratio is noise).
# With BENCH_FILTER set, the step runs that filter once at 1,000x.
if want fenced; then
	if [[ -z ${BENCH_FILTER:-} ]]; then
		BENCH_FILTER='BenchmarkFencedMutation$' runb -benchtime 20000x ./bench/
		BENCH_FILTER='Benchmark(Failover|MeshEchoRTT|MeshFailover|ArtifactServing|ServiceWorkloads|HeartbeatRoute)$' runb -benchtime 1000x ./bench/
	else
		runb -benchtime 1000x ./bench/
	fi
fi
want raft && runb -benchtime 2000x ./authority/raftnode/
want snapshot && runb ./snapshot/
# mesh/gossip's BenchmarkGossip50 is one ~1-minute run (50 members, join
# burst, kill trials, plain memberlist baselines): once, not for 2 s.
want mesh && runb -benchtime 2s $(go list ./mesh/... | grep -v '/mesh/gossip$')
# BenchmarkGossip200 (200 members, ours vs plain memberlist) runs with it.
want gossip && runb -benchtime 1x -timeout 30m ./mesh/gossip/
# Heartbeats: the authority's own CPU per heartbeat, stream vs POST (agents
# in a child process, two rounds of the six alternating phases), and one
# run of the ingest at offered rates beside a plain batched upsert (HB_PATH=stream for
# the stream).
want heartbeat && BENCH_FILTER=${BENCH_FILTER:-'BenchmarkHeartbeatPaths$'} runb -benchtime 2x -timeout 20m ./bench/
want heartbeat && BENCH_FILTER=${BENCH_FILTER:-'BenchmarkHeartbeatIngest$'} runb -benchtime 1x -timeout 20m ./bench/
# The batcher's flush throughput (1 and 4 flushers, A B B A) beside a plain
# batched upsert of the same rows, in one run.
want heartbeat && BENCH_FILTER=${BENCH_FILTER:-'BenchmarkHeartbeatFlush$'} runb -benchtime 2x -timeout 20m ./authority/
# The heartbeat route's certificate cache refresh with 10,000 cached
# certificates: skipped (revocation counter unmoved) beside a full re-check
# of every serial, alternating in one run.
want heartbeat && BENCH_FILTER=${BENCH_FILTER:-'BenchmarkAuthRefresh$'} runb -benchtime 20x -timeout 10m ./authority/
# The fleet: FLEET_AGENTS (here 10,000, the aim's fleet; the benchmark's own
# default is 2,000) simulated mTLS agents in a child process, 3 authorities
# (one process each), a route intent → every agent applied (one run).
want fleet && FLEET_AGENTS=${FLEET_AGENTS:-10000} BENCH_FILTER=${BENCH_FILTER:-BenchmarkFleet} runb -benchtime 1x -timeout 60m ./bench/
# Enrollment of ENROLL_AGENTS (here 8,000) auto-approved agents on a
# 3-authority group: the rate over the last tenth beside the first tenth of
# the same run (an enrollment whose cost grows with the fleet shows below 1).
want enroll && ENROLL_AGENTS=${ENROLL_AGENTS:-8000} BENCH_FILTER=${BENCH_FILTER:-BenchmarkEnrollment} runb -benchtime 1x -timeout 30m ./bench/
# One agent self-update end to end with real processes (launcher, agent
# 1.0.0 → 2.0.0 by a rollout) and its phases, beside the artifact's raw
# download time in the same run.
want update && BENCH_FILTER=${BENCH_FILTER:-BenchmarkAgentUpdate} runb -benchtime 1x -timeout 10m ./bench/
# Tunnel vs wireguard-go vs Nebula vs bare veth, same run, same namespaces
# (needs root; iperf3, wireguard-go, wireguard-tools, nebula from Debian).
if want tunnel || want vpn; then
	scripts/install-tools.sh ping:iputils-ping iperf3:iperf3 wireguard-go:wireguard-go wg:wireguard-tools nebula:nebula
fi
want tunnel && runb -bench TunnelVsPeers -benchtime 1x -timeout 10m ./integration/chaos/
# Lease-driven VPN failover between real agents: gap p50/max over 10 kill -9 trials.
want vpn && runb -bench VPNLeaseFailover -benchtime 1x -timeout 10m ./integration/chaos/
echo "figures saved in $out and $json"
