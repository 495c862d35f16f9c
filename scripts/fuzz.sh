#!/usr/bin/env bash
# fuzz.sh — run every Go fuzz target for FUZZTIME (default 10s) each.
# Crashers are written to the package's testdata/fuzz and fail the run.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
t=${FUZZTIME:-10s}
grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./.rap' | sort | while read -r f; do
	dir=$(dirname "$f")
	for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
		echo "== $dir $fn ($t)"
		timeout 600 go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$t" "$dir"
	done
done
