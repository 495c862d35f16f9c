#!/usr/bin/env bash
# pg.sh — a private PostgreSQL for development, tests, benchmarks and the demo.
#
#   scripts/pg.sh start   start (or reuse) the private instance; print its URL on stdout
#   scripts/pg.sh url     same as start (idempotent)
#   scripts/pg.sh stop    stop it
#   scripts/pg.sh status  say whether it runs
#
# With DATABASE_URL set, start/url just print it and nothing is started.
# Otherwise the server binaries are found through pg_config --bindir or
# /usr/lib/postgresql/*/bin (Debian's postgresql package is installed when running
# as root and none are found). The cluster lives in .rap/pg (or, when the postgres
# user cannot reach the work tree, in /var/tmp/rap-pg-<hash>), listens on
# 127.0.0.1 only on a free port, and uses trust authentication: it is a private,
# loopback-only instance for this work tree, never a deployment.
set -euo pipefail

cmd=${1:-start}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { echo "pg.sh: $*" >&2; }

if [[ "$cmd" != stop && "$cmd" != status && -n "${DATABASE_URL:-}" ]]; then
	echo "$DATABASE_URL"
	exit 0
fi

find_bindir() {
	local d
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null || true)
		[[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && { echo "$d"; return 0; }
	fi
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -Vr); do
		[[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && { echo "$d"; return 0; }
	done
	return 1
}

bindir=$(find_bindir || true)
if [[ -z "$bindir" ]]; then
	if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
		log "PostgreSQL server binaries not found; installing Debian's postgresql package"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
		bindir=$(find_bindir || true)
	fi
	[[ -n "$bindir" ]] || { log "no PostgreSQL server binaries (initdb, pg_ctl) found; install PostgreSQL or set DATABASE_URL"; exit 1; }
fi

as_pg() { # run a server binary as the right user (initdb and postgres refuse root)
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

base="$root/.rap/pg"
if [[ $(id -u) -eq 0 ]]; then
	id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
	mkdir -p "$root/.rap"
	if ! runuser -u postgres -- test -x "$root/.rap"; then
		base="/var/tmp/rap-pg-$(echo -n "$root" | sha256sum | cut -c1-12)"
	fi
fi
data="$base/data"
portfile="$base/port"

running() { [[ -f "$data/postmaster.pid" ]] && as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; }

url() { echo "postgres://postgres@127.0.0.1:$(cat "$portfile")/rap?sslmode=disable"; }

free_port() {
	local p
	for p in $(seq 55432 55532) $(shuf -i 20000-60000 -n 50); do
		# A port is free when it can be bound: a connect test misses ports
		# held as the local end of other processes' connections.
		if python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.close()' "$p" 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

case "$cmd" in
stop)
	if running; then as_pg "$bindir/pg_ctl" -D "$data" -m fast -w stop >&2; log "stopped"; else log "not running"; fi
	exit 0 ;;
status)
	if running; then log "running: $(url)"; exit 0; else log "not running"; exit 3; fi ;;
start|url) ;;
*) log "usage: $0 start|url|stop|status"; exit 2 ;;
esac

if running; then url; exit 0; fi

mkdir -p "$base"
[[ $(id -u) -eq 0 ]] && chown postgres: "$base"
if [[ ! -f "$data/PG_VERSION" ]]; then
	log "initdb in $data"
	as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --no-locale >/dev/null
	cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$data'
max_connections = 300
shared_buffers = 128MB
fsync = on
synchronous_commit = on
log_min_messages = warning
CONF
fi
port=$(free_port)
echo "$port" >"$portfile"
log "starting PostgreSQL ($bindir) on 127.0.0.1:$port"
as_pg "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -o "-p $port" -w -t 60 start >/dev/null ||
	{ log "start failed; server log:"; tail -20 "$data/server.log" >&2; exit 1; }
for _ in $(seq 1 60); do
	"$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" && break
	sleep 0.5
done
"$bindir/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='rap'" | grep -q 1 ||
	"$bindir/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE rap" >/dev/null
url
