#!/usr/bin/env bash
# test.sh — `make test`: every test against a real, private PostgreSQL.
# Starts the instance (scripts/pg.sh) unless DATABASE_URL is set, checks
# formatting and vet, then runs all packages with the race detector and every
# fuzz target's seed corpus. Under CI=true a missing dependency is an error.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

step() { printf '\n== %s\n' "$*"; }

step "PostgreSQL"
DATABASE_URL=$(scripts/pg.sh url)
export DATABASE_URL
echo "using $DATABASE_URL"

scripts/install-chromium.sh # console browser test (chromedp) needs Debian's chromium; fails under CI when missing
scripts/install-podman.sh # container workload test needs podman, runc and busybox-static; fails under CI when missing

step "gofmt and go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.rap/*'))
if [[ -n "$unformatted" ]]; then echo "gofmt needed:"; echo "$unformatted"; exit 1; fi
go vet ./...

step "build binaries"
make --no-print-directory build

step "go test -race ./..."
go test -race -count=1 -timeout 20m ${GOTESTFLAGS:-} ./...

step "fuzz targets, briefly (${FUZZTIME:-3s} each)"
FUZZTIME=${FUZZTIME:-3s} scripts/fuzz.sh
