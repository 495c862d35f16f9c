# demo-release.sh — the release section of `make demo` (sourced by demo.sh, which
# provides $demo, $bin, $root, $caps, $edge4, say, rapctl and node_id). An offline
# key ceremony signs a release of rap-node-agent; it is published, rolled out in
# waves to the demo's agents (now under their launcher), then a broken release is
# rolled out: the canary rolls itself back and the rollout halts.
# RAP_DEMO_RELEASES=0 make demo skips it.

rel_t0=$(date +%s)
say "signed releases: an offline key ceremony, two agent versions and a broken one (-ldflags -X)"
rel=$root/$demo/release
mkdir -p "$rel"
goos=$(go env GOOS)
goarch=$(go env GOARCH)
go build -ldflags "-X main.version=1.0.0" -o "$rel/rap-node-agent-1.0.0" ./cmd/rap-node-agent
go build -ldflags "-X main.version=1.1.0" -o "$rel/rap-node-agent-1.1.0" ./cmd/rap-node-agent
# 1.2.0 is broken: it exits with status 3 as soon as it starts.
go build -ldflags "-X main.version=1.2.0 -X main.mode=exit" -o "$rel/rap-node-agent-1.2.0" ./integration/testdata/brokenagent
ls -l "$rel" | awk 'NR>1 {printf "  %-22s %9d bytes\n", $9, $5}'
(
	cd "$rel"
	for k in root1 root2 root3; do rapctl release keygen --role root --out "$k" | head -1; done
	rapctl release keygen --role signing --out sign1 | head -1
	rapctl release keyset create --version 1 --signing-key sign1.pub --out keyset.json
	rapctl release sign --key root1 keyset.json # any 2 of the 3 root holders
	rapctl release sign --key root3 keyset.json
	for v in 1.1.0 1.2.0; do
		rapctl release manifest create --version "$v" --channels candidate,current,stable \
			--artifact "$goos/$goarch=rap-node-agent-$v" --min-upgrade-from 1.0.0 \
			--source-revision "$(git -C "$root" rev-parse --short HEAD)" --builder "make demo" --ttl 24h --out "m-$v.json"
		rapctl release sign --key sign1 "m-$v.json"
	done
	echo "-- offline check before anything is published (release verify):"
	rapctl release verify --roots root1.pub,root2.pub,root3.pub --threshold 2 --keyset keyset.json \
		--manifest m-1.1.0.json --os "$goos" --arch "$goarch" --current 1.0.0 rap-node-agent-1.1.0
	echo "private keys stay here, mode 0600: $(stat -c '%a %n' root1 sign1 | tr '\n' ' ')"
)

say "the authorities learn the root keys (Raft), the root-signed key set, and store the release (chunked, verified)"
rapctl release roots set "$rel/root1.pub" "$rel/root2.pub" "$rel/root3.pub" --threshold 2 --reason "make demo: release roots" | tail -n +2
rapctl release keyset publish "$rel/keyset.json" | tail -n +2
rapctl release publish "$rel/m-1.1.0.json" "$rel/rap-node-agent-1.1.0" 2>&1 | tr '\r' '\n' | grep -v '^$' | sed -n '1p;$p'
rapctl release publish "$rel/m-1.2.0.json" "$rel/rap-node-agent-1.2.0" 2>&1 | tr '\r' '\n' | grep -v '^$' | sed -n '1p;$p'
rapctl release list

say "the agents move under rap-node-agent-launcher (the watchdog that switches, promotes or rolls back), at 1.0.0"
launch() { # launch N: agent N under its launcher; the first start installs 1.0.0 into its slots
	local n=$1 ad=$demo/agent$1 extra=()
	[ "$n" = 3 ] && extra=(--mesh-no-direct "$edge4")
	nohup "$bin/rap-node-agent-launcher" --slots "$ad/slots" --state "$ad/state.db" --status-socket "$ad/agent.sock" \
		--deadline 30s --install "1.0.0=$rel/rap-node-agent-1.0.0" -- \
		--interval 2s --desired-every 2s --capability "$caps" --no-vpn-tunnels "${extra[@]}" >>"$ad/run.log" 2>&1 &
	echo $! >"$ad/run.pid"
	disown
}
for n in 1 2 3 4; do
	ad=$demo/agent$n
	p=$(cat "$ad/run.pid" 2>/dev/null || echo 0)
	kill -TERM "$p" 2>/dev/null || true
	while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
	launch "$n"
done
agent_version() { "$bin/rap-node-agent" status -o json --state "$demo/agent$1/state.db" --status-socket "$demo/agent$1/agent.sock" 2>/dev/null |
	python3 -c 'import json,sys; r=json.load(sys.stdin); print(r.get("agent_version","") if r.get("source")=="agent" else "")' 2>/dev/null || true; }
versions() { for n in 1 2 3 4; do printf 'edge-%s=%s ' "$n" "$(agent_version "$n")"; done; }
for _ in $(seq 1 100); do
	[ "$(versions)" = "edge-1=1.0.0 edge-2=1.0.0 edge-3=1.0.0 edge-4=1.0.0 " ] && break
	sleep 0.3
done
echo "running: $(versions)"

# progress CLUSTER ROLLOUT UNTIL…: print the rollout's waves whenever they change, until its state is one of UNTIL.
progress() {
	local cl=$1 id=$2 last="" out st
	shift 2
	for _ in $(seq 1 300); do
		out=$(rapctl -o json rollout status "$cl" "$id" | python3 -c '
import json, sys
names = json.loads(sys.argv[1])
v = json.load(sys.stdin)
print(v["state"])
for w in v["waves"]:
    n = len(w["nodes"])
    bar = "#" * (w["succeeded"] * 20 // max(n, 1)) + "x" * (w["failed"] * 20 // max(n, 1))
    label = "canary" if w["canary"] else "wave %d" % w["index"]
    who = ", ".join("%s %s%s" % (names.get(p["node_id"], p["node_id"][:8]), p["outcome"],
        (" (" + p["update_state"] + " " + p.get("current_version", "") + ")") if p.get("update_state") else "") for p in w["nodes"])
    print("  %-7s [%-20s] %d/%d ok %d failed   %s" % (label, bar, w["succeeded"], n, w["failed"], who))
print("  state %s, wave %d; next: %s" % (v["state"], v["current_wave"], v["next"] or v["decision"]))' "$names") || { sleep 0.5; continue; }
		st=${out%%$'\n'*}
		# a new frame when anything but the soak deadline's clock changed
		key=$(sed 's/soaking until [0-9TZ:.-]*/soaking/' <<<"${out#*$'\n'}")
		if [ "$key" != "$last" ]; then
			last=$key
			echo "[$(date +%T)]"
			echo "${out#*$'\n'}"
		fi
		for u in "$@"; do [ "$st" = "$u" ] && return 0; done
		sleep 0.5
	done
	echo "rollout $id did not reach $* (see $demo/agent*/run.log)"
	return 1
}

say "roll out 1.1.0: a canary, then waves of 50% (soak 3 s; one failure halts)"
t0=$(date +%s)
r1=$(rapctl -o json rollout start demo rap-node-agent 1.1.0 --canary 1 --wave-percent 50 --soak 3s --failure-threshold 1 --deadline 45s \
	--reason "make demo: good release" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
progress demo "$r1" completed halted
echo "rollout of 1.1.0 finished in $(($(date +%s) - t0)) s; running: $(versions)"
rapctl rollout status demo "$r1"

say "roll out 1.2.0, which is broken: the canary's launcher rolls it back to 1.1.0, the rollout halts before the next wave"
t0=$(date +%s)
r2=$(rapctl -o json rollout start demo rap-node-agent 1.2.0 --canary 1 --wave-percent 50 --soak 3s --failure-threshold 1 --deadline 45s \
	--reason "make demo: broken release" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
progress demo "$r2" halted completed
echo "rollout of 1.2.0 halted after $(($(date +%s) - t0)) s; running: $(versions)"
canary=$(rapctl -o json rollout status demo "$r2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["waves"][0]["nodes"][0]["node_id"])')
for _ in $(seq 1 30); do
	us=$(rapctl -o json node heartbeat "$canary" | python3 -c 'import json,sys; i=json.load(sys.stdin)["items"]; print(i[0].get("update_state","") if i else "")' 2>/dev/null || true)
	case "$us" in rolled_back*) break ;; esac
	sleep 0.5
done
echo "the canary's heartbeat: update state \"$us\""
cname=$(python3 -c 'import json,sys; print(json.loads(sys.argv[2]).get(sys.argv[1], sys.argv[1]))' "$canary" "$names")
echo "-- its launcher's log:"
grep -h 'rap-node-agent-launcher' "$demo/agent${cname#edge-}/run.log" | grep -i '1.2.0' | tail -4 | cut -c1-220
echo "-- the owner closes the halted rollout (every node back to the last known good, 1.1.0) and blocklists 1.2.0:"
rapctl rollout rollback demo "$r2" --reason "make demo: 1.2.0 is broken" | tail -n +2
rapctl rollout blocklist rap-node-agent@1.2.0 --reason "make demo: exits at start" | tail -n +2
rapctl rollout list demo
echo "(release section: $(($(date +%s) - rel_t0)) s, builds included)"
