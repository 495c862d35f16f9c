#!/usr/bin/env bash
# install-tools.sh — make the Debian tools the network-namespace drills and
# benchmarks use available: install-tools.sh BINARY:PACKAGE ... (default:
# ping:iputils-ping, used by the tunnel drills in integration/chaos). Binaries
# already on PATH are skipped. As root it runs apt-get install -y for the
# missing packages; as another user it says what to run. Under CI=true a tool
# still missing is an error (exit 1); otherwise a warning (exit 0) and the
# tests that need it fail with a clear message.
set -euo pipefail
specs=("$@")
if [[ ${#specs[@]} -eq 0 ]]; then
	specs=(ping:iputils-ping)
fi
missing=()
for s in "${specs[@]}"; do
	bin=${s%%:*}
	pkg=${s#*:}
	command -v "$bin" >/dev/null 2>&1 || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
	echo "install-tools.sh: installing ${missing[*]}" >&2
	if DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
		{ apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }; then
		exit 0
	fi
fi
msg="install-tools.sh: missing ${missing[*]} (as root: apt-get install -y ${missing[*]})"
if [[ -n "${CI:-}" ]]; then
	echo "$msg" >&2
	exit 1
fi
echo "$msg; the tests that need them will fail" >&2
exit 0
