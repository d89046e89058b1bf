#!/usr/bin/env bash
# Runs every test configuration: for each CMake test preset, configure, build
# and run ctest; then build the benchmarks of the `release` preset so they keep
# compiling, and run bench_replicator once at a tiny size as a smoke test (a
# few seconds; it fails if a result's check fails); then build the libFuzzer
# targets of the `fuzz` preset and run each over its seed corpus for a fixed
# number of executions (scripts/run-fuzz.sh; it fails on a crash, leak or
# failed property); then run the cluster example's quick fault run
# (scripts/run-cluster.sh --quick: real Raft nodes, kill -9, a partition, clock
# skew, the loss of a region, and the checker). Prints a per-preset timing table
# and exits non-zero if any step failed.
#
#   bash scripts/run-tests.sh                 # all presets below + benchmark and fuzz smoke runs
#   bash scripts/run-tests.sh gcc-cxx17 tsan  # just these test presets
#   bash scripts/run-tests.sh fuzz            # just the fuzz smoke run
#   bash scripts/run-tests.sh cluster         # just the cluster quick run
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

default_presets=(gcc-cxx17 gcc-cxx20 clang-cxx17 clang-cxx20 asan-ubsan tsan)
build_only_presets=()
if [ "$#" -gt 0 ]; then
    presets=("$@")
else
    presets=("${default_presets[@]}")
    build_only_presets=(release)
fi
fuzz_presets=()
test_presets=()
cluster_run=false
for preset in "${presets[@]}"; do
    if [ "$preset" = fuzz ]; then
        fuzz_presets=(fuzz)
    elif [ "$preset" = cluster ]; then
        cluster_run=true
    else
        test_presets+=("$preset")
    fi
done
if [ "$#" -eq 0 ]; then
    fuzz_presets=(fuzz)
    cluster_run=true
fi

extra_deps=()
# clang's libFuzzer runtime is a separate Debian package.
[ "${#fuzz_presets[@]}" -eq 0 ] || extra_deps+=(libclang-rt-14-dev)
bash scripts/install-deps.sh ${extra_deps[@]+"${extra_deps[@]}"}

jobs="$(nproc 2>/dev/null || echo 2)"
log_dir="build/logs"
mkdir -p "$log_dir"

summary=()
failed_presets=()
total_passed=0
total_failed=0
run_start=$SECONDS

# run_preset <preset> <test|build-only|fuzz-smoke>
run_preset() {
    local preset="$1" mode="$2"
    local start=$SECONDS configured built tested status="ok" timing counts
    echo
    echo "=================================================================="
    echo "== preset: $preset ($mode)"
    echo "=================================================================="
    if ! cmake --preset "$preset"; then
        status="FAILED (configure)"
        timing="configure failed after $((SECONDS - start))s"
    else
        configured=$SECONDS
        if ! cmake --build --preset "$preset" -j "$jobs"; then
            status="FAILED (build)"
            timing="configure $((configured - start))s, build failed after $((SECONDS - configured))s"
        else
            built=$SECONDS
            timing="configure $((configured - start))s, build $((built - configured))s"
            if [ "$mode" = "test" ]; then
                local test_log="$log_dir/ctest-$preset.log"
                if ! ctest --preset "$preset" 2>&1 | tee "$test_log"; then
                    status="FAILED (test)"
                fi
                # "NN% tests passed, F tests failed out of T"
                counts="$(sed -n 's/^[0-9]*% tests passed, \([0-9]*\) tests\{0,1\} failed out of \([0-9]*\).*/\1 \2/p' "$test_log" | tail -n 1)"
                if [ -n "$counts" ]; then
                    local failed_count total_count
                    read -r failed_count total_count <<<"$counts"
                    total_passed=$((total_passed + total_count - failed_count))
                    total_failed=$((total_failed + failed_count))
                elif [ "$status" = "ok" ]; then
                    status="FAILED (no ctest summary)"
                fi
                tested=$SECONDS
                timing="$timing, test $((tested - built))s"
            elif [ "$preset" = release ]; then
                local smoke_log="$log_dir/bench-smoke-$preset.log"
                if ! "build/$preset/tests/benchmarks/bench_replicator" --n 2000 --k 200 --reps 1 \
                    --json "build/$preset/bench_smoke.json" 2>&1 | tee "$smoke_log"; then
                    status="FAILED (benchmark smoke)"
                fi
                timing="$timing, benchmark smoke $((SECONDS - built))s"
            elif [ "$mode" = fuzz-smoke ]; then
                local fuzz_log="$log_dir/fuzz-smoke.log"
                if ! bash scripts/run-fuzz.sh --no-build 2>&1 | tee "$fuzz_log"; then
                    status="FAILED (fuzz)"
                fi
                local execs
                execs="$(sed -n 's/^fuzz executions: //p' "$fuzz_log" | tail -n 1)"
                timing="$timing, fuzz smoke $((SECONDS - built))s, ${execs:-?} executions"
            fi
        fi
    fi
    local label="$preset"
    [ "$mode" = "test" ] || label="$preset ($mode)"
    [ "$mode" != "fuzz-smoke" ] || label="$preset (smoke)"
    summary+=("$(printf '%-22s %-26s %5ss  (%s)' "$label" "$status" "$((SECONDS - start))" "$timing")")
    if [ "$status" != "ok" ]; then
        failed_presets+=("$label")
    fi
}

for preset in ${test_presets[@]+"${test_presets[@]}"}; do
    run_preset "$preset" test
done
for preset in ${build_only_presets[@]+"${build_only_presets[@]}"}; do
    run_preset "$preset" build-only
done
for preset in ${fuzz_presets[@]+"${fuzz_presets[@]}"}; do
    run_preset "$preset" fuzz-smoke
done
if $cluster_run; then
    echo
    echo "=================================================================="
    echo "== cluster: scripts/run-cluster.sh --quick"
    echo "=================================================================="
    cluster_start=$SECONDS
    cluster_log="$log_dir/cluster-quick.log"
    cluster_status="ok"
    if ! bash scripts/run-cluster.sh --quick 2>&1 | tee "$cluster_log"; then
        cluster_status="FAILED (checker or run)"
        failed_presets+=("cluster")
    fi
    checker="$(grep '^checker: acknowledged=' "$cluster_log" | tail -n 1)"
    summary+=("$(printf '%-22s %-26s %5ss  (%s)' "cluster (quick)" "$cluster_status" \
        "$((SECONDS - cluster_start))" "${checker:-no checker line}")")
fi

echo
echo "=================================================================="
echo "== summary ($((SECONDS - run_start))s total, $jobs build jobs)"
echo "=================================================================="
for line in "${summary[@]}"; do
    echo "$line"
done
if [ "${#failed_presets[@]}" -gt 0 ]; then
    echo "failed: ${failed_presets[*]}"
fi
echo "tests: $total_passed passed, $total_failed failed"

[ "${#failed_presets[@]}" -eq 0 ]
