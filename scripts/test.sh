#!/usr/bin/env bash
# test.sh — `make test`: every test against a real, private PostgreSQL.
# Starts the instance (scripts/pg.sh) unless DATABASE_URL is set, checks
# formatting and vet, then runs all packages with the race detector; `go test`
# runs every fuzz target's committed seed corpus (testdata/fuzz) as ordinary
# tests. It never explores with the fuzzer: that is `make fuzz`
# (the script behind it), whose findings are fixed and committed as seeds. Under
# CI=true a missing dependency is an error. It ends by checking that the run
# left the work tree as it found it (no new untracked or modified files).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

step() { printf '\n== %s\n' "$*"; }

before=$(git status --porcelain --untracked-files=all 2>/dev/null || true)

step "PostgreSQL"
DATABASE_URL=$(scripts/pg.sh url)
export DATABASE_URL
echo "using $DATABASE_URL"

scripts/install-chromium.sh # console browser test (chromedp) needs Debian's chromium; fails under CI when missing
scripts/install-podman.sh # container workload test needs podman, runc and busybox-static; fails under CI when missing
scripts/install-tools.sh ping:iputils-ping # tunnel drills (integration/chaos) ping through the tunnel; fails under CI when missing

step "gofmt and go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.rap/*'))
if [[ -n "$unformatted" ]]; then echo "gofmt needed:"; echo "$unformatted"; exit 1; fi
go vet ./...

step "build binaries"
make --no-print-directory build

step "go test -race ./..."
go test -race -count=1 -timeout 20m ${GOTESTFLAGS:-} ./...

step "work tree unchanged by the run"
after=$(git status --porcelain --untracked-files=all 2>/dev/null || true)
if [[ "$after" != "$before" ]]; then
	echo "the test run changed the work tree (tests must write only to temporary directories):"
	diff <(echo "$before") <(echo "$after") || true
	exit 1
fi
echo "ok"
