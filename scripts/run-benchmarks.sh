#!/usr/bin/env bash
# Builds the `release` preset (Release, benchmarks only) and runs every
# benchmark executable in it. Extra arguments go to each benchmark, e.g.
#   bash scripts/run-benchmarks.sh --reps 7     # bench_replicator: 7 repetitions, min kept
#   bash scripts/run-benchmarks.sh --quick      # smoke run, a few seconds
# bench_replicator prints a table of its results and writes them as one JSON
# object to build/release/bench_replicator.json (unless the arguments give their
# own --json PATH; --json - prints the JSON instead of the table); flags: see its
# --help. It ignores --benchmark_* flags meant for Google Benchmark executables.
# The workloads, the floor they are measured against and their targets:
# docs/benchmarks.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh libbenchmark-dev

cmake --preset release
cmake --build --preset release -j "$(nproc 2>/dev/null || echo 2)"

bench_dir="build/release/tests/benchmarks"
json_out="build/release/bench_replicator.json"
user_json=0
for arg in "$@"; do
    case "$arg" in
        --json | --json=*) user_json=1 ;;
    esac
done

found=0
for exe in "$bench_dir"/*; do
    if [ -f "$exe" ] && [ -x "$exe" ]; then
        found=1
        echo "== $exe ($(uname -m), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ))"
        if [ "$(basename "$exe")" = bench_replicator ] && [ "$user_json" -eq 0 ]; then
            rm -f "$json_out"
            status=0
            "$exe" --json "$json_out" "$@" || status=$?
            if [ -s "$json_out" ]; then
                echo "run-benchmarks: JSON results in $PWD/$json_out"
            fi
            [ "$status" -eq 0 ] || exit "$status"
        else
            "$exe" "$@"
        fi
    fi
done
if [ "$found" -eq 0 ]; then
    echo "run-benchmarks: no benchmark executables in $bench_dir" >&2
    exit 1
fi
