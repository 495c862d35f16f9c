#!/usr/bin/env bash
# install-podman.sh — make Debian's podman, runc and busybox-static available
# for the container workload tests (agent/workload/container_test.go builds a
# local image from busybox-static and runs it with podman --runtime runc).
# Does nothing when all three are present. As root it runs apt-get install -y;
# as another user it says what to run. Under CI=true failing to provide them is
# an error (exit 1); otherwise a warning (exit 0) and the container test skips.
set -euo pipefail
have() { command -v podman >/dev/null 2>&1 && command -v runc >/dev/null 2>&1 && [[ -x /bin/busybox ]]; }
if have; then
	exit 0
fi
pkgs=(podman runc busybox-static)
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
	echo "install-podman.sh: installing Debian's ${pkgs[*]}" >&2
	if DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null ||
		{ apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null; }; then
		have && exit 0
	fi
fi
msg="install-podman.sh: podman, runc or busybox-static is missing (as root: apt-get install -y ${pkgs[*]})"
if [[ -n "${CI:-}" ]]; then
	echo "$msg" >&2
	exit 1
fi
echo "$msg; the container workload test will be skipped" >&2
exit 0
