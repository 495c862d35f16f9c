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
mkdir -p "$(dirname "$out")"
: >"$out"
runb() { echo "== go test -bench $*" | tee -a "$out"; go test -run '^$' -bench . "$@" 2>&1 | grep -E '^(Benchmark|ok|FAIL|PASS|goos|cpu|gossip )' | tee -a "$out"; }
runb -benchtime 1000x ./bench/
runb -benchtime 2000x ./authority/raftnode/
runb ./snapshot/
# mesh/gossip's BenchmarkGossip50 is one ~1-minute run (50 members, join
# burst, kill trials, plain memberlist baselines): once, not for 2 s.
runb -benchtime 2s $(go list ./mesh/... | grep -v '/mesh/gossip$')
runb -benchtime 1x ./mesh/gossip/
# Tunnel vs wireguard-go vs Nebula vs bare veth, same run, same namespaces
# (needs root; iperf3, wireguard-go, wireguard-tools, nebula from Debian).
scripts/install-tools.sh ping:iputils-ping iperf3:iperf3 wireguard-go:wireguard-go wg:wireguard-tools nebula:nebula
runb -bench TunnelVsPeers -benchtime 1x -timeout 10m ./integration/chaos/
# Lease-driven VPN failover between real agents: gap p50/max over 10 kill -9 trials.
runb -bench VPNLeaseFailover -benchtime 1x -timeout 10m ./integration/chaos/
echo "figures saved in $out"
