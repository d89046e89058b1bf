#!/usr/bin/env bash
# Builds the `release` preset (Release, benchmarks only) and runs every
# benchmark executable in it. Extra arguments go to each benchmark, e.g.
#   bash scripts/run-benchmarks.sh --reps 7     # bench_replicator: 7 repetitions, min kept
#   bash scripts/run-benchmarks.sh --quick      # smoke run, a few seconds
# bench_replicator prints one JSON object per workload line (flags: see its --help);
# it ignores --benchmark_* flags meant for Google Benchmark executables.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh libbenchmark-dev

cmake --preset release
cmake --build --preset release -j "$(nproc 2>/dev/null || echo 2)"

bench_dir="build/release/tests/benchmarks"
found=0
for exe in "$bench_dir"/*; do
    if [ -f "$exe" ] && [ -x "$exe" ]; then
        found=1
        echo "== $exe ($(uname -m), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ))"
        "$exe" "$@"
    fi
done
if [ "$found" -eq 0 ]; then
    echo "run-benchmarks: no benchmark executables in $bench_dir" >&2
    exit 1
fi
