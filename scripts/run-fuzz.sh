#!/usr/bin/env bash
# Builds the `fuzz` preset (clang, libFuzzer + ASan + UBSan; tests/fuzz/README.md) and runs
# every fuzz target over its seed corpus (tests/fuzz/corpus/<target>):
#
#   bash scripts/run-fuzz.sh                    # short deterministic run: 50000 executions per
#                                               # target, -seed=1 (what CI runs, ~5-15 s each)
#   bash scripts/run-fuzz.sh --runs 200000      # another fixed number of executions
#   bash scripts/run-fuzz.sh --time 300         # 300 s per target, random seed
#   bash scripts/run-fuzz.sh --time 300 fuzz_snapshot   # one target
#
# Options: --runs N, --time SECONDS, --seed N (0: random), --keep (keep the inputs found by
# earlier runs in build/fuzz/work/<target> instead of starting from the seed corpus alone),
# --no-build (use the targets already built), --crashes (only replay the inputs of
# tests/fuzz/crashes/<target>/, bugs found and not fixed yet: exits non-zero while any still
# fails; the default run leaves them out so CI stays green until the fix lands).
#
# New inputs go to build/fuzz/work/<target>, never into the repository's corpus; a crash,
# leak, timeout or failed property writes the input to build/fuzz/artifacts/<target>/ and
# makes the script exit non-zero. Logs: build/logs/fuzz-<target>.log. Prints executions per
# target.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

all_targets=(fuzz_json fuzz_snapshot)
runs=50000
max_time=""
seed=""
keep=0
build=1
crashes_only=0
targets=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --time) max_time="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        --no-build) build=0; shift ;;
        --crashes) crashes_only=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        fuzz_*) targets+=("$1"); shift ;;
        *) echo "run-fuzz: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[ "${#targets[@]}" -gt 0 ] || targets=("${all_targets[@]}")
if [ -z "$seed" ]; then
    if [ -n "$max_time" ]; then seed=0; else seed=1; fi
fi

build_dir="build/fuzz"
fuzz_dir="$build_dir/tests/fuzz"
log_dir="build/logs"
mkdir -p "$log_dir"

if [ "$build" -eq 1 ]; then
    # clang's libFuzzer runtime is a separate Debian package.
    bash scripts/install-deps.sh libclang-rt-14-dev
    cmake --preset fuzz
    cmake --build --preset fuzz -j "$(nproc 2>/dev/null || echo 2)"
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

summary=()
failed=()
for target in "${targets[@]}"; do
    exe="$fuzz_dir/$target"
    if [ ! -x "$exe" ]; then
        echo "run-fuzz: $exe is not built" >&2
        failed+=("$target")
        summary+=("$(printf '%-16s %-22s' "$target" "FAILED (not built)")")
        continue
    fi
    corpus="tests/fuzz/corpus/$target"
    work="$build_dir/work/$target"
    artifacts="$build_dir/artifacts/$target"
    log="$log_dir/fuzz-$target.log"
    [ "$keep" -eq 1 ] || rm -rf "$work"
    mkdir -p "$work" "$artifacts"
    : >"$log"
    start=$SECONDS
    status="ok"

    # --crashes: each known crashing input is run once, and nothing else.
    crashes=()
    if [ "$crashes_only" -eq 1 ] && [ -d "tests/fuzz/crashes/$target" ]; then
        while IFS= read -r -d '' file; do
            crashes+=("$file")
        done < <(find "tests/fuzz/crashes/$target" -type f ! -name '*.md' -print0 | sort -z)
    fi
    if [ "${#crashes[@]}" -gt 0 ]; then
        echo "== $target: replaying ${#crashes[@]} input(s) of tests/fuzz/crashes/$target"
        for file in "${crashes[@]}"; do
            if ! "$exe" -artifact_prefix="$artifacts/" "$file" >>"$log" 2>&1; then
                status="FAILED (crashes/ input)"
                echo "   still fails: $file"
            fi
        done
    fi
    if [ "$crashes_only" -eq 1 ]; then
        summary+=("$(printf '%-16s %-24s %4s crashes/ inputs replayed' "$target" "$status" "${#crashes[@]}")")
        [ "$status" = ok ] || failed+=("$target")
        continue
    fi

    args=(-seed="$seed" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$artifacts/")
    if [ -n "$max_time" ]; then
        args+=(-max_total_time="$max_time")
    else
        args+=(-runs="$runs")
    fi
    [ -f "tests/fuzz/$target.dict" ] && args+=(-dict="tests/fuzz/$target.dict")
    echo "== $target: ${args[*]} $work $corpus"
    if [ "$status" = ok ] && ! "$exe" "${args[@]}" "$work" "$corpus" >>"$log" 2>&1; then
        status="FAILED"
    fi
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    added="$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n 1)"
    if [ "$status" != ok ]; then
        failed+=("$target")
        echo "-- $target failed; the end of $log:"
        grep -v -e '^#[0-9]' -e '^\s*"' "$log" | tail -n 60 || true
        ls -1 "$artifacts" 2>/dev/null | sed "s|^|   artifact: $artifacts/|" || true
    fi
    summary+=("$(printf '%-16s %-24s %10s execs %7s/s %6s new inputs %5ss' "$target" "$status" \
        "${execs:-?}" "${rate:-?}" "${added:-?}" "$((SECONDS - start))")")
done

echo
echo "== fuzz summary (seed $seed, $([ -n "$max_time" ] && echo "${max_time}s" || echo "$runs runs") per target)"
for line in "${summary[@]}"; do
    echo "$line"
done
total="$(for t in "${targets[@]}"; do sed -n 's/^stat::number_of_executed_units: *//p' "$log_dir/fuzz-$t.log" | tail -n 1; done | awk '{s += $1} END {print s + 0}')"
echo "fuzz executions: $total"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz failed: ${failed[*]}"
    exit 1
fi
