#!/usr/bin/env bash
# Runs the benchmarks and writes BENCHMARKS.md: the ratios to baselines
# measured in the same run first, then absolute figures, with the machine
# named. Sets up Postgres as scripts/test.sh does.
#
#   scripts/bench.sh                 # 3 runs each
#   BENCH_COUNT=5 scripts/bench.sh   # more runs
#
# Run it on a quiet machine: the ratios hold up under load better than the
# absolute figures, but neither is free of it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
# shellcheck source=scripts/pg.sh
source scripts/pg.sh
ensure_test_database

count=${BENCH_COUNT:-3}
raw=$(mktemp -t freemium-bench.XXXXXX)
trap 'rm -f "$raw"' EXIT

# MemoryStore operations take nanoseconds: a second each. Postgres ones take
# a round trip or more: a fixed count, so each run takes seconds.
go test -run '^$' -bench '^BenchmarkMemory' -benchtime 1s -count "$count" . | tee -a "$raw"
go test -run '^$' -bench '^Benchmark(Postgres|Dispatch)' -benchtime 3000x -count "$count" -timeout 60m ./pgstore | tee -a "$raw"
# The cost of an Observer (otelfreemium): on MemoryStore by time, on
# Postgres by count, as above.
go test -run '^$' -bench '^BenchmarkObservedCheck$' -benchtime 1s -count "$count" ./otelfreemium | tee -a "$raw"
go test -run '^$' -bench '^BenchmarkObservedCheckPostgres$' -benchtime 3000x -count "$count" ./otelfreemium | tee -a "$raw"

pg_version=$(psql "$FREEMIUM_TEST_DATABASE_URL" -XAtc 'SHOW server_version' 2>/dev/null || echo unknown)
machine="$(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(go env GOOS)/$(go env GOARCH), $(go version | awk '{print $3}'), Postgres ${pg_version%% *} on loopback"
go run ./internal/benchreport -machine "$machine" <"$raw" >BENCHMARKS.md
echo "wrote BENCHMARKS.md"
