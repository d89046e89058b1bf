#!/usr/bin/env bash
# Runs three regions of three geo_cluster_node processes (canonical raft, one Raft group per
# region) on this machine, drives a client workload over overlapping keys, injects faults,
# heals, waits until every stream is acknowledged, and runs the checker:
#
#   bash scripts/run-cluster.sh            # the default run (several fault rounds)
#   bash scripts/run-cluster.sh --quick    # one fault round, under 3 minutes on 2 cores
#   bash scripts/run-cluster.sh --quick --plot  # also draws build-cluster/run/cluster.png
#   bash scripts/run-cluster.sh --c1       # no faults: writes/s with geo vs a no-op state
#                                          # machine (and geo without shipping), and the lag
#                                          # between regions (C1 in docs/benchmarks.md)
#
# Faults: kill -9 of leaders and followers with restart from their data directories; a
# partition of one region from the others (through a fault-injecting TCP proxy, see
# examples/cluster/README.md for why not network namespaces); clock skew of seconds on three
# nodes (--clock-offset-ms); and the permanent loss of a whole region at the end.
# The last line is the checker's: checker: acknowledged=<n> lost=<n> phantom=<n> converged=<yes|no>
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds=5
workload_seconds=170
c1=false
plot=false
if [ "${2:-}" = "--plot" ] || [ "${1:-}" = "--plot" ]; then
    plot=true # also sample every stream's lag and draw build-cluster/run/cluster.png
    [ "${1:-}" != "--plot" ] || shift
fi
case "${1:-}" in
--quick)
    rounds=1
    workload_seconds=55
    ;;
--c1) c1=true ;;
"") ;;
*)
    echo "usage: $0 [--quick | --c1] [--plot]" >&2
    exit 2
    ;;
esac

extra=()
! $plot || extra=(gnuplot-nox)
bash scripts/install-deps.sh libraft-dev libuv1-dev pkg-config python3 ${extra[@]+"${extra[@]}"}

build="build-cluster/run-cluster-build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGEO_BUILD_TESTS=OFF \
    -DGEO_BUILD_EXAMPLES=ON -DGEO_BUILD_BENCHMARKS=OFF -DGEO_INSTALL=OFF >/dev/null
cmake --build "$build" --target geo_cluster_node -j 2 >/dev/null
node_bin="$build/examples/cluster/geo_cluster_node"
tool=(python3 examples/cluster/cluster_tool.py)

work="build-cluster/run"
rm -rf "$work"
mkdir -p "$work/logs" "$work/data"
conf="$work/cluster.conf"
cut="$work/partitioned"
: >"$cut"

base="${GEO_CLUSTER_PORT_BASE:-17100}"
regions=(us-east eu-west ap-south)
{
    for r in "${regions[@]}"; do echo "region $r"; done
    for id in 1 2 3 4 5 6 7 8 9; do
        r="${regions[$(((id - 1) / 3))]}"
        echo "node $r $id 127.0.0.1:$((base + id)) 127.0.0.1:$((base + 100 + id))"
    done
    # One routing class per consistency level; unmatched keys stay where they are written.
    echo "rule async a: us-east LocalAsync"
    echo "rule each e: eu-west EachQuorum"
    echo "rule all q: ap-south AllQuorum"
    echo "default LocalQuorum"
    # Every region reaches the other regions' nodes through the proxy (none for C1).
    $c1 || for ri in 0 1 2; do
        for id in 1 2 3 4 5 6 7 8 9; do
            if [ $(((id - 1) / 3)) -ne "$ri" ]; then
                echo "link ${regions[$ri]} $id 127.0.0.1:$((base + 200 + ri * 10 + id))"
            fi
        done
    done
} >"$conf"

# Clock skew: these nodes' clocks are seconds off (the hybrid clock must keep order anyway).
declare -A offset=([2]=4000 [6]=-3000 [8]=2500)
declare -A pid=()

log() { echo "[$(date +%T)] $*"; }
# A fault, logged and kept with its time for the plot.
event() {
    log "$1"
    echo "$(date +%s.%N) $2" >>"$work/events.txt"
}

start_node() {
    "$node_bin" --cluster "$conf" --id "$1" --data "$work/data/n$1" \
        --clock-offset-ms "${offset[$1]:-0}" >>"$work/logs/n$1.log" 2>&1 &
    pid[$1]=$!
}

kill_node() {
    if [ -n "${pid[$1]:-}" ]; then
        kill -9 "${pid[$1]}" 2>/dev/null || true
        wait "${pid[$1]}" 2>/dev/null || true
        unset "pid[$1]"
    fi
}

proxy_pid=""
workload_pid=""
sampler_pid=""
cleanup() {
    [ -z "$sampler_pid" ] || kill "$sampler_pid" 2>/dev/null || true
    for id in "${!pid[@]}"; do kill_node "$id"; done
    [ -z "$proxy_pid" ] || kill "$proxy_pid" 2>/dev/null || true
    [ -z "$workload_pid" ] || kill "$workload_pid" 2>/dev/null || true
}
trap cleanup EXIT

leader_of() { "${tool[@]}" leader "$conf" "$1"; }
follower_of() {
    local leader
    leader="$(leader_of "$1")"
    for id in 1 2 3 4 5 6 7 8 9; do
        if [ "${regions[$(((id - 1) / 3))]}" = "$1" ] && [ "$id" != "$leader" ]; then
            echo "$id"
            return
        fi
    done
}

if $c1; then
    # The same cluster and clients: geo in the apply path, then a state machine that ignores
    # every command (so nothing is shipped either). Five rounds, alternating, as this machine's
    # load moves between runs (one round's ratio varies by several percent); the figure is the
    # ratio of the totals.
    : >"$work/c1.txt"
    for round in 1 2 3 4 5; do
        # geo-noship: geo applies every write but never ships, which separates geo's apply
        # path from the inter-region traffic.
        for mode in geo geo-noship noop; do
            rm -rf "$work/data"
            for id in 1 2 3 4 5 6 7 8 9; do
                # raft's default snapshot threshold, not the fault runs' small one.
                args=(--cluster "$conf" --id "$id" --data "$work/data/n$id" --snapshot-threshold 1024)
                [ "$mode" != noop ] || args+=(--noop)
                [ "$mode" != geo-noship ] || args+=(--no-ship)
                "$node_bin" "${args[@]}" >>"$work/logs/n$id.log" 2>&1 &
                pid[$id]=$!
            done
            for r in "${regions[@]}"; do leader_of "$r" >/dev/null; done
            "${tool[@]}" bench "$conf" --seconds 15 --label "$mode" \
                --samples "$work/lag-$mode-$round.txt" --rates "$work/rate-$mode-$round.txt" |
                tee -a "$work/c1.txt"
            for id in 1 2 3 4 5 6 7 8 9; do kill_node "$id"; done
        done
    done
    # "bench <mode>: writes/s=<n> ...": the totals per mode and their ratios to the no-op's.
    awk '{ sub(":", "", $2); split($3, w, "="); total[$2] += w[2] }
        END { for (m in total) if (m != "noop")
                  printf "C1: %s %.0f writes/s, noop %.0f: %.3f\n", m, total[m] / 5,
                         total["noop"] / 5, total[m] / total["noop"] }' "$work/c1.txt" | sort
    exit 0
fi

start_time=$SECONDS
"${tool[@]}" proxy "$conf" "$cut" >"$work/logs/proxy.log" 2>&1 &
proxy_pid=$!
for id in 1 2 3 4 5 6 7 8 9; do start_node "$id"; done
for r in "${regions[@]}"; do log "$r: leader is node $(leader_of "$r")"; done

if $plot; then
    "${tool[@]}" sample "$conf" --out "$work/lag.txt" &
    sampler_pid=$!
fi
: >"$work/events.txt"
event "workload: ${workload_seconds}s, 8 clients (2 per consistency level)" "start"
"${tool[@]}" workload "$conf" --seconds "$workload_seconds" --history "$work/history.jsonl" &
workload_pid=$!

faults=()
for ((round = 1; round <= rounds; round++)); do
    sleep 5
    r="${regions[$((round % 2))]}" # us-east and eu-west take turns
    id="$(leader_of "$r")"
    event "kill -9 leader node $id of $r" "kill leader $id"
    kill_node "$id"
    sleep 3
    event "restart node $id from its data directory" "restart $id"
    start_node "$id"
    faults+=("kill -9 leader $id ($r)")

    sleep 3
    r="${regions[$(((round + 1) % 2))]}"
    id="$(follower_of "$r")"
    event "kill -9 follower node $id of $r" "kill follower $id"
    kill_node "$id"
    sleep 3
    event "restart node $id" "restart $id"
    start_node "$id"
    faults+=("kill -9 follower $id ($r)")

    sleep 2
    event "partition ap-south from the other regions" "partition ap-south"
    echo ap-south >"$cut"
    sleep 10
    event "heal the partition" "heal"
    : >"$cut"
    faults+=("partition ap-south 10s")
done

# The region is lost while cut off, so it dies holding writes it never shipped: those
# acknowledged at LocalAsync/LocalQuorum are counted apart; EachQuorum/AllQuorum ones must not
# have been acknowledged at all.
sleep 4
event "partition ap-south again" "partition ap-south"
echo ap-south >"$cut"
sleep 6
event "lose region ap-south for good while partitioned (kill -9 of its three nodes)" "lose ap-south"
for id in 7 8 9; do kill_node "$id"; done
: >"$cut"
faults+=("loss of region ap-south while partitioned")

wait "$workload_pid"
workload_pid=""
log "workload done; waiting until every stream between surviving regions is acknowledged"
settle_status=0
"${tool[@]}" settle "$conf" --lost ap-south --timeout 90 || settle_status=$?
log "faults: $(printf '%s; ' "${faults[@]}")clock skew on nodes 2 (+4s), 6 (-3s), 8 (+2.5s)"
log "run took $((SECONDS - start_time))s"
if $plot; then
    kill "$sampler_pid" 2>/dev/null || true
    sampler_pid=""
    "${tool[@]}" plot --lag "$work/lag.txt" --history "$work/history.jsonl" \
        --events "$work/events.txt" --png "$work/cluster.png"
fi
"${tool[@]}" check "$conf" --history "$work/history.jsonl" --lost ap-south
