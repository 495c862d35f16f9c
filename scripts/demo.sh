#!/usr/bin/env bash
# demo.sh — `make demo`: the main job on one machine. A private PostgreSQL,
# three rap-authority processes forming a Raft group, the owner's CLI, a cluster
# and a join token; each later stage (agents, roles, mesh) extends this script.
# Everything lives under .rap/demo; `make demo-stop` stops the processes.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
demo=.rap/demo
bin=$root/bin
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

scripts/demo-stop.sh >/dev/null 2>&1 || true
rm -rf "$demo"
mkdir -p "$demo"

say "PostgreSQL (private instance, loopback only)"
base=$(scripts/pg.sh url)
admin=${base%/*}/postgres?sslmode=disable
psql -q "$admin" -c "DROP DATABASE IF EXISTS rap_demo WITH (FORCE)" -c "CREATE DATABASE rap_demo" >/dev/null
db=${base%/*}/rap_demo?sslmode=disable
echo "database: $db"
"$bin/rap-authority" migrate --database-url "$db"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
declare -a RAFT API
for i in 1 2 3; do RAFT[$i]=127.0.0.1:$(free_port); API[$i]=127.0.0.1:$(free_port); done
declare -a METRICS
for i in 1 2 3; do METRICS[$i]=127.0.0.1:$(free_port); done # loopback Prometheus listeners (docs/monitoring.md)

start() { # start N [extra args…]: record authority N's command line in $demo/aN.sh, then run it
	local i=$1; shift
	mkdir -p "$demo/a$i"
	{
		echo '#!/usr/bin/env bash'
		echo "# auth-$i exactly as make demo started it. Run it again to restart auth-$i (after a crash,"
		echo "# kill or make demo-stop): a member that joined keeps its --join flags and never needs them again."
		printf 'cd %q && exec nohup' "$root"
		printf ' %q' "$bin/rap-authority" run --id "auth-$i" --data-dir "$demo/a$i" --database-url "$db" \
			--raft-bind "${RAFT[$i]}" --api-listen "${API[$i]}" \
			--metrics-listen "${METRICS[$i]}" \
			--heartbeat-timeout 500ms --election-timeout 500ms --leader-lease-timeout 250ms "$@"
		printf ' >>%q 2>&1\n' "$demo/a$i.log"
	} >"$demo/a$i.sh"
	chmod 700 "$demo/a$i.sh" # it holds the join token
	restart "$i"
}

restart() { # restart N: run authority N's recorded command line (the one start used)
	local i=$1
	"$demo/a$i.sh" &
	echo $! >"$demo/a$i.pid"
	disown
}

healthy_members() { # healthy members in the authority status (0 without a leader)
	"$bin/rapctl" -o json authority status 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(1 for m in d["members"] if m["healthy"]) if d.get("leader_id") else 0)' 2>/dev/null || echo 0
}

say "three authorities: auth-1 bootstraps the group, auth-2 and auth-3 join it"
start 1 --bootstrap
for _ in $(seq 1 100); do grep -q '"owner_token"' "$demo/a1.log" 2>/dev/null && break; sleep 0.2; done
bootline=$(grep -m1 '"owner_token"' "$demo/a1.log") || { echo "bootstrap failed:"; tail -20 "$demo/a1.log"; exit 1; }
token=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["owner_token"])' "$bootline")
pin=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["ca_pin"])' "$bootline")
echo "platform CA pin: $pin"
echo "owner API token: ${token:0:24}… (full token in $demo/rapctl.json, mode 0600)"
start 2 --join "${API[1]}" --join-token "$token" --ca-pin "$pin"
start 3 --join "${API[1]}" --join-token "$token" --ca-pin "$pin"

export RAPCTL_CONFIG=$root/$demo/rapctl.json
"$bin/rapctl" --server "${API[1]},${API[2]},${API[3]}" --token "$token" --ca-pin "$pin" config set >/dev/null
rapctl() { "$bin/rapctl" "$@"; }

for _ in $(seq 1 150); do
	[ "$(healthy_members)" = 3 ] && break
	sleep 0.2
done
say "authority status as seen by each member (one leader, one epoch)"
for i in 1 2 3; do
	"$bin/rapctl" --server "${API[$i]}" authority status | sed -n "$([ $i = 1 ] && echo 1,2p || echo 2p)"
done

say "a cluster with its own CA, and a short-lived join token"
rapctl cluster create "Demo Cluster" --slug demo
tokjson=$(rapctl -o json token create --cluster demo --ttl 30m --max-uses 5 --description "make demo agents")
jt=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' <<<"$tokjson")
cpin=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["ca_pin"])' <<<"$tokjson")
rapctl token list --cluster demo
echo
echo "enroll a host with:"
echo "  rap-node-agent enroll --authority ${API[1]},${API[2]},${API[3]} --token <join token> --ca-pin $cpin"
echo "$jt" >"$demo/join-token"
chmod 600 "$demo/join-token"

say "fencing at work: the leader is killed, a new leader with a higher epoch takes over"
leader=$(rapctl -o json authority status | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader_id"])')
old_epoch=$(rapctl -o json authority status | python3 -c 'import json,sys; print(json.load(sys.stdin)["epoch"])')
li=${leader#auth-}
kill -9 "$(cat "$demo/a$li.pid")"
t0=$(date +%s%N)
until rapctl cluster create "After Failover" --slug after-failover >/dev/null 2>&1; do sleep 0.05; done
t1=$(date +%s%N)
echo "killed $leader (epoch $old_epoch); first fenced write succeeded $(( (t1 - t0) / 1000000 )) ms later"
restart "$li"
sleep 1
rapctl authority status
rapctl audit list --limit 8

say "four agents enroll with the join token; the owner reviews and approves each request"
auths="${API[1]},${API[2]},${API[3]}"
caps=can_route_mesh,can_accept_node_ingress,can_accept_client_ingress,can_egress_private_network,can_run_config_storage,can_run_vpn_exit
for n in 1 2 3 4; do
	ad=$demo/agent$n
	mkdir -p "$ad"
	head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$ad/machine-id" # one host each
	nohup "$bin/rap-node-agent" enroll --authority "$auths" --token "$jt" --ca-pin "$cpin" --state "$ad/state.db" \
		--name "edge-$n" --machine-id-file "$ad/machine-id" --capability "$caps" >"$ad/enroll.log" 2>&1 &
	echo $! >"$ad/enroll.pid"
done
pending() { rapctl -o json join-request list --cluster demo --status pending | python3 -c 'import json,sys; print(" ".join(i["id"] for i in json.load(sys.stdin)["items"]))'; }
for _ in $(seq 1 100); do [ "$(pending | wc -w)" -ge 4 ] && break; sleep 0.2; done
rapctl join-request list --cluster demo --status pending
for id in $(pending); do rapctl join-request approve "$id" | tail -n +2; done
for n in 1 2 3 4; do
	while kill -0 "$(cat "$demo/agent$n/enroll.pid")" 2>/dev/null; do sleep 0.2; done
	tail -1 "$demo/agent$n/enroll.log"
done

say "the agents run: mTLS heartbeats, desired state, signed snapshots"
node_id() { rapctl -o json node list --cluster demo | python3 -c 'import json,sys; print([n["id"] for n in json.load(sys.stdin)["items"] if n["name"]==sys.argv[1]][0])' "$1"; }
edge4=$(node_id edge-4)
for n in 1 2 3 4; do
	ad=$demo/agent$n
	extra=()
	# edge-3 never links to edge-4 directly, so their traffic must cross a relay.
	[ "$n" = 3 ] && extra=(--mesh-no-direct "$edge4")
	# --no-vpn-tunnels: the demo's agents share the host's network namespace;
	# VPN tunnels (TUN, routes, nftables) run only in the drills' namespaces.
	nohup "$bin/rap-node-agent" run --state "$ad/state.db" --status-socket "$ad/agent.sock" --interval 2s \
		--capability "$caps" --no-vpn-tunnels "${extra[@]}" >"$ad/run.log" 2>&1 &
	echo $! >"$ad/run.pid"
	disown
done
sleep 3
rapctl node list --cluster demo
rapctl node heartbeat "$(node_id edge-1)"

say "roles: two relays, an entry node, a config-storage node, mesh on the edges (capabilities checked)"
rapctl role assign demo "$(node_id edge-1)" relay-node | tail -n +2
rapctl role assign demo "$(node_id edge-2)" relay-node | tail -n +2
rapctl role assign demo "$(node_id edge-3)" entry-node | tail -n +2
rapctl role assign demo "$(node_id edge-4)" config-storage | tail -n +2
rapctl role assign demo "$(node_id edge-3)" core-mesh | tail -n +2
rapctl role assign demo "$(node_id edge-4)" core-mesh | tail -n +2
echo "a role the node cannot run is refused:"
rapctl role assign demo "$(node_id edge-3)" rdp-worker || true
sleep 4
say "signed need-to-know snapshots: desired vs applied version per node"
rapctl snapshot status demo
for n in 1 3; do
	echo "-- rap-node-agent status (edge-$n)"
	"$bin/rap-node-agent" status --state "$demo/agent$n/state.db" --status-socket "$demo/agent$n/agent.sock" | sed -n "1,12p"
done

say "mesh: Noise links, an end-to-end echo across a relay, then a failover when that relay dies"
names=$(rapctl -o json node list --cluster demo | python3 -c 'import json,sys; print(json.dumps({n["id"]: n["name"] for n in json.load(sys.stdin)["items"]}))')
ping34() { "$bin/rap-node-agent" mesh ping "$edge4" -o json --state "$demo/agent3/state.db" --status-socket "$demo/agent3/agent.sock" 2>/dev/null; }
show() { python3 -c 'import json,sys; r=json.loads(sys.argv[1]); n=json.loads(sys.argv[2]); print("  path " + " → ".join(n.get(h,h) for h in r["path"]) + "   rtt %.2f ms" % r["rtt_ms"])' "$1" "$names"; }
relay=""
for _ in $(seq 1 60); do
	out=$(ping34) && relay=$(python3 -c 'import json,sys; p=json.loads(sys.argv[1])["path"]; print(p[1] if len(p)==3 else "")' "$out") && [ -n "$relay" ] && break
	sleep 0.5
done
if [ -z "$relay" ]; then
	echo "no relayed path from edge-3 to edge-4 yet (see .rap/demo/agent3/run.log)"
else
	echo "edge-3 → edge-4 (no direct link between them):"
	show "$out" 
	rname=$(python3 -c 'import json,sys; print(json.loads(sys.argv[2])[sys.argv[1]])' "$relay" "$names")
	echo "kill -9 the relay in use ($rname)"
	kill -9 "$(cat "$demo/agent${rname#edge-}/run.pid")"
	t0=$(date +%s%N)
	for _ in $(seq 1 100); do
		out=$(ping34) && python3 -c 'import json,sys; p=json.loads(sys.argv[1])["path"]; sys.exit(0 if len(p)==3 and p[1]!=sys.argv[2] else 1)' "$out" "$relay" && break
		sleep 0.2
	done
	echo "rerouted after $(( ($(date +%s%N) - t0) / 1000000 )) ms:"
	show "$out"
	ad=$demo/agent${rname#edge-}
	nohup "$bin/rap-node-agent" run --state "$ad/state.db" --status-socket "$ad/agent.sock" --interval 2s --capability "$caps" --no-vpn-tunnels >>"$ad/run.log" 2>&1 &
	echo $! >"$ad/run.pid"
	disown
	echo "($rname restarted)"
fi
rapctl mesh links --cluster demo | sed -n "1,8p"

say "partition decisions: only the owner can fence a cluster; a fenced cluster refuses changes, its nodes keep running"
rapctl partition fence demo --reason "make demo: suspected compromise drill"
echo "a role change while fenced is refused:"
rapctl role assign demo "$(node_id edge-1)" core-mesh || true
sleep 2
"$bin/rap-node-agent" status --state "$demo/agent1/state.db" --status-socket "$demo/agent1/agent.sock" | grep -m1 "partition state" || echo "  (edge-1 has not applied the fenced snapshot yet)"
rapctl partition recover demo --reason "make demo: drill over"

say "service workloads: the agent runs only what a role authorizes, pinned by sha256, supervised and reported"
if [ -x /bin/busybox ] || { scripts/install-podman.sh && [ -x /bin/busybox ]; }; then
	edge2=$(node_id edge-2)
	echo "a service no role of the node authorizes is refused:"
	rapctl service set demo "$edge2" vpn-exit --enable --instance web --service-config '{}' || true
	rapctl role assign demo "$edge2" vpn-exit | tail -n +2
	www=$root/$demo/www
	mkdir -p "$www" && echo "hello from a supervised workload" >"$www/index.html" && chmod -R o+rX "$www"
	wport=$(free_port)
	cfg=$(python3 -c 'import json,sys; print(json.dumps({"workload": {"driver": "native",
		"artifact": {"path": "/bin/busybox", "sha256": sys.argv[1], "version": "debian"}, "version_probe": ["--help"],
		"args": ["httpd", "-f", "-v", "-p", "127.0.0.1:" + sys.argv[2], "-h", sys.argv[3]], "stop_timeout": "3s",
		"limits": {"memory_bytes": 67108864, "pids": 32},
		"health": {"kind": "http", "url": "http://127.0.0.1:" + sys.argv[2] + "/", "interval": "1s", "failure_threshold": 3},
		"restart": {"initial_backoff": "500ms", "max_backoff": "10s"}}}))' "$(sha256sum /bin/busybox | cut -d' ' -f1)" "$wport" "$www")
	rapctl service set demo "$edge2" vpn-exit --enable --instance web --service-config "$cfg" | tail -n +2
	svc_state() { rapctl -o json service list demo --node "$edge2" | python3 -c 'import json,sys; s=[i for i in json.load(sys.stdin)["items"] if i["service_instance_id"]=="web"][0]; print(s["reported_state"], s["restarts"])'; }
	for _ in $(seq 1 100); do [ "$(svc_state | cut -d' ' -f1)" = healthy ] && break; sleep 0.2; done
	echo "-- assigned busybox httpd on edge-2, reported healthy in PostgreSQL:"
	rapctl service list demo --node "$edge2"
	echo "-- it answers: $(python3 -c 'import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).read().decode().strip())' "http://127.0.0.1:$wport/")"
	rec=$(ls "$demo"/agent2/workloads/*/*/instance.json | head -1)
	wpid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$rec")
	echo "-- kill -9 the workload (pid $wpid): the agent restarts it with backoff"
	kill -9 "$wpid"
	for _ in $(seq 1 150); do set -- $(svc_state); [ "$1" = healthy ] && [ "$2" -ge 1 ] && break; sleep 0.2; done
	rapctl service list demo --node "$edge2"
	echo "-- rap-node-agent logs web --tail 5 (on edge-2)"
	"$bin/rap-node-agent" logs web --state "$demo/agent2/state.db" --tail 5
else
	echo "(busybox-static is missing: apt-get install -y busybox-static to see a supervised service)"
fi

say "VPN control plane: one connection, two eligible exits, a single fenced lease that fails over"
rapctl role assign demo "$(node_id edge-1)" vpn-exit | tail -n +2
[ -n "${edge2:-}" ] || rapctl role assign demo "$(node_id edge-2)" vpn-exit | tail -n +2 # (the workload section gave edge-2 vpn-exit already)
rapctl vpn create demo office --family ipv4 --client-prefixes 100.64.0.0/24 --remote-prefixes 192.168.50.0/24 --dns 192.168.50.53 \
	--credential-ref vault:kv/vpn/office --lease-ttl 4 --enabled | tail -n +2
rapctl vpn allowed-nodes demo office "$(node_id edge-1)" "$(node_id edge-2)" | tail -n +2
rapctl vpn route-policy add demo office office-lan --prefixes 192.168.50.0/24 | tail -n +2
echo "a default route without allow-default-route is refused:"
rapctl vpn route-policy add demo office everything --prefixes 0.0.0.0/0 || true
holder() { rapctl -o json vpn lease demo office | python3 -c 'import json,sys; a=json.load(sys.stdin)["active"]; print(a["owner_node_id"] if a else "")'; }
h=""
for _ in $(seq 1 60); do h=$(holder) && [ -n "$h" ] && break; sleep 0.5; done
rapctl vpn list demo
if [ -z "$h" ]; then
	echo "no agent holds the lease yet (see .rap/demo/agent1/run.log)"
else
	hname=$(python3 -c 'import json,sys; print(json.loads(sys.argv[2])[sys.argv[1]])' "$h" "$names")
	echo "$hname holds the lease; kill -9 $hname: its renewals stop, the lease expires, the other exit takes it"
	kill -9 "$(cat "$demo/agent${hname#edge-}/run.pid")"
	t0=$(date +%s%N)
	for _ in $(seq 1 100); do n=$(holder) && [ -n "$n" ] && [ "$n" != "$h" ] && break; sleep 0.2; done
	nname=$(python3 -c 'import json,sys; print(json.loads(sys.argv[2]).get(sys.argv[1], sys.argv[1] or "nobody"))' "$n" "$names")
	echo "$nname holds the lease $(( ($(date +%s%N) - t0) / 1000000 )) ms after the kill"
	rapctl vpn list demo
	echo "lease history (newest first; no two holders overlap):"
	rapctl -o json vpn lease demo office | python3 -c '
import json, sys
names = json.loads(sys.argv[1])
for l in json.load(sys.stdin)["history"]:
    print("  generation %d  %-7s  %-8s epoch %d  %s → %s" % (l["generation"], names.get(l["owner_node_id"], l["owner_node_id"][:8]), l["status"], l["epoch"], l["acquired_at"][11:23], (l.get("ended_at") or l["expires_at"])[11:23]))' "$names"
	ad=$demo/agent${hname#edge-}
	nohup "$bin/rap-node-agent" run --state "$ad/state.db" --status-socket "$ad/agent.sock" --interval 2s --capability "$caps" --no-vpn-tunnels >>"$ad/run.log" 2>&1 &
	echo $! >"$ad/run.pid"
	disown
	echo "($hname restarted: it stands by)"
fi

# Signed releases and rollouts (scripts/demo-release.sh): before the console
# section, whose owner with MFA retires the bootstrap API token used here.
if [ "${RAP_DEMO_RELEASES:-1}" != 0 ]; then
	. scripts/demo-release.sh
else
	echo; echo "(RAP_DEMO_RELEASES=0: the signed release and rollout section is skipped)"
fi

say "an organization: logical endpoints it may use, never the nodes behind them"
rapctl org create Acme --slug acme | tail -n +2
cid=$(rapctl -o json cluster show demo | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
rapctl org endpoint publish acme eu-egress --kind egress --protocol tcp --region eu-central \
	--nodes "$cid:$(node_id edge-1),$cid:$(node_id edge-2)" | tail -n +2
rapctl org endpoint publish acme eu-entry --kind entry --protocol https --region eu-central --nodes "$cid:$(node_id edge-1)" | tail -n +2
rapctl -o json org invite acme admin >"$demo/org-acme.json"
chmod 600 "$demo/org-acme.json"
org_secret=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["setup_secret"])' "$demo/org-acme.json")
{
	echo "organization console: https://${API[1]}/org/login"
	echo "login:                admin@acme — first finish the setup at https://${API[1]}/console/setup"
	echo "                      with user admin@acme and the one-time setup secret $org_secret"
	echo "                      (password + TOTP), then log in at the organization console"
} | tee "$demo/org-acme.txt"
chmod 600 "$demo/org-acme.txt"

say "the Platform Admin Console"
pw=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
"$bin/rap-authority" bootstrap-owner --database-url "$db" --name owner --demo-password "$pw" --console-url "https://${API[1]}/console/" | tee "$demo/owner.txt"
chmod 600 "$demo/owner.txt"
echo "(the bootstrap owner API token stops working now that an owner has MFA; use 'rapctl login')"

say "a joined authority restarts with the command it was started with (its join token no longer works, and is not needed)"
a2=$(cat "$demo/a2.pid")
kill -TERM "$a2"
while kill -0 "$a2" 2>/dev/null; do sleep 0.1; done
restart 2
for _ in $(seq 1 150); do
	[ "$(healthy_members)" = 3 ] && break
	sleep 0.2
done
# (right after its start auth-2 may refuse TLS for a moment: ask until it answers)
for _ in $(seq 1 100); do a2out=$("$bin/rapctl" --server "${API[2]}" authority status 2>&1) && break; sleep 0.2; done
echo "$a2out" | sed -n 2p
[ "$(healthy_members)" = 3 ] || { echo "auth-2 did not come back:"; tail -20 "$demo/a2.log"; exit 1; }

say "demo is running"
echo "authorities: ${API[1]} ${API[2]} ${API[3]}   logs: $demo/a*.log"
echo "restart:     $demo/a1.sh  $demo/a2.sh  $demo/a3.sh  (each authority's own command line, exactly as started above)"
echo "CLI:         RAPCTL_CONFIG=$root/$demo/rapctl.json bin/rapctl cluster list"
echo "agents:      $demo/agent*/ (state.db, run.log; rap-node-agent status --state … --status-socket …)"
echo "VPN:         bin/rapctl vpn list demo; console page https://${API[1]}/console/vpn"
[ "${RAP_DEMO_RELEASES:-1}" = 0 ] || echo "releases:    bin/rapctl release list; bin/rapctl rollout list demo; console page https://${API[1]}/console/releases (agents run under bin/rap-node-agent-launcher)"
echo "metrics:     http://${METRICS[1]}/metrics  http://${METRICS[2]}/metrics  http://${METRICS[3]}/metrics  (loopback; health: https://${API[1]}/v1/health)"
echo "console:     https://${API[1]}/console/  (login in $demo/owner.txt; the platform CA is private: trust it or accept the warning)"
echo "org console: https://${API[1]}/org/login  (organization acme: setup and login in $demo/org-acme.txt)"
echo "stop with:   make demo-stop"
