#!/usr/bin/env python3
"""Drives a geo cluster of geo_cluster_node processes (see README.md here).

  cluster_tool.py status   CONF [--skip REGION,...]        every node's STATUS line
  cluster_tool.py leader   CONF REGION                     the leader's node id (waits for one)
  cluster_tool.py proxy    CONF CUT_FILE                   the fault-injecting proxy of 'link' lines
  cluster_tool.py workload CONF --seconds S --history FILE [--clients N] [--seed N] [--stop FILE]
  cluster_tool.py bench    CONF [--seconds S] [--clients N] [--samples F] [--rates F]
  cluster_tool.py sample   CONF --out FILE                every leader's stream lag, 5 times a second
  cluster_tool.py plot     --lag F --history F --events F --png F
  cluster_tool.py settle   CONF --lost REGION,... [--timeout S]
  cluster_tool.py check    CONF --history FILE --lost REGION,...

Standard library only. The checker does not use geo: it applies the documented
last-writer-wins order (timestamp_ms, region, seq) itself.
"""

import argparse
import asyncio
import json
import os
import random
import socket
import sys
import threading
import time

LEVELS = ("LocalAsync", "LocalQuorum", "EachQuorum", "AllQuorum")


class Conf:
    def __init__(self, path):
        self.regions, self.nodes, self.rules, self.links = [], {}, [], {}
        self.default_level = "LocalQuorum"
        with open(path) as f:
            for line in f:
                w = line.split("#", 1)[0].split()
                if not w:
                    continue
                if w[0] == "region":
                    self.regions.append(w[1])
                elif w[0] == "node":
                    self.nodes[int(w[2])] = {"region": w[1], "raft": w[3], "client": w[4]}
                elif w[0] == "rule":
                    self.rules.append((w[2], w[3], w[4]))  # prefix, region, level
                elif w[0] == "default":
                    self.default_level = w[1]
                elif w[0] == "link":
                    self.links[(w[1], int(w[2]))] = w[3]

    def level(self, key):
        for prefix, _, level in self.rules:
            if key.startswith(prefix):
                return level
        return self.default_level

    def members(self, region):
        return [i for i, n in sorted(self.nodes.items()) if n["region"] == region]


def split_address(address):
    host, port = address.rsplit(":", 1)
    return host, int(port)


def ask(address, lines, timeout=3.0):
    """Sends each line on one connection and returns the answers (None when unreachable)."""
    try:
        with socket.create_connection(split_address(address), timeout=timeout) as s:
            f = s.makefile("rw")
            out = []
            for line in lines:
                f.write(line + "\n")
                f.flush()
                answer = f.readline()
                if not answer:
                    return None
                out.append(answer.rstrip("\n"))
            return out
    except OSError:
        return None


def parse_status(line):
    fields = dict(kv.split("=", 1) for kv in line.split()[1:])
    for name in ("owed", "lag", "available"):
        fields[name] = {r: int(n) for r, n in
                        (p.split(":") for p in fields[name].split(",") if p)}
    return fields


def statuses(conf, skip=(), streams_only=False):
    """Every reachable node's STATUS; streams_only leaves out the digest (samplers ask often,
    and the digest reads every record)."""
    out = {}
    for node_id, node in sorted(conf.nodes.items()):
        if node["region"] in skip:
            continue
        answer = ask(node["client"], ["STATUS streams" if streams_only else "STATUS"])
        if answer and answer[0].startswith("STATUS "):
            out[node_id] = parse_status(answer[0])
    return out


def cmd_status(args):
    conf = Conf(args.conf)
    skip = set(filter(None, args.skip.split(",")))
    for node_id, node in sorted(conf.nodes.items()):
        if node["region"] in skip:
            continue
        answer = ask(node["client"], ["STATUS"])
        print(answer[0] if answer else "node %d down" % node_id)


def cmd_leader(args):
    conf = Conf(args.conf)
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        for node_id in conf.members(args.region):
            answer = ask(conf.nodes[node_id]["client"], ["STATUS"], timeout=1)
            if answer and " role=leader " in answer[0]:
                print(node_id)
                return 0
        time.sleep(0.2)
    print("no leader in %s" % args.region, file=sys.stderr)
    return 1


# ---- the fault-injecting proxy ------------------------------------------------------------------

def cmd_proxy(args):
    """Every 'link FROM ID ADDR' line: listen on ADDR, forward to node ID's client address.
    A region named in CUT_FILE is partitioned: its links, both ways, stop listening (a connect
    is refused) and their open connections are dropped. A link whose node does not answer
    stops listening too until the node is back, so a dead node looks dead through the proxy.
    Clients and the Raft traffic inside a region never pass through here."""
    conf = Conf(args.conf)
    cut = set()
    servers = {}  # (from region, node id) -> listening server, absent while the link is down
    upstream_down = set()
    open_conns = []  # (link, writer, writer)

    def region_of(node_id):
        return conf.nodes[node_id]["region"]

    def wanted(link):
        src, node_id = link
        return src not in cut and region_of(node_id) not in cut and link not in upstream_down

    async def pipe(reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    def handler(link):
        host, port = split_address(conf.nodes[link[1]]["client"])

        async def on_client(reader, writer):
            if not wanted(link):
                writer.close()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(host, port)
            except OSError:
                upstream_down.add(link)
                writer.close()
                return
            entry = (link, writer, up_writer)
            open_conns.append(entry)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
            open_conns.remove(entry)
        return on_client

    async def reachable(link):
        try:
            _, w = await asyncio.open_connection(*split_address(conf.nodes[link[1]]["client"]))
            w.close()
            return True
        except OSError:
            return False

    async def main():
        last_probe = 0.0
        while True:
            try:
                with open(args.cut_file) as f:
                    now = set(f.read().split())
            except OSError:
                now = set()
            if now != cut:
                cut.clear()
                cut.update(now)
                print("proxy: partitioned %s" % (sorted(cut) or "nothing"), flush=True)
            if time.time() - last_probe > 0.5:
                last_probe = time.time()
                for link in list(upstream_down):
                    if await reachable(link):
                        upstream_down.discard(link)
            for link, address in sorted(conf.links.items()):
                if wanted(link) and link not in servers:
                    host, port = split_address(address)
                    servers[link] = await asyncio.start_server(handler(link), host, port)
                elif not wanted(link) and link in servers:
                    servers.pop(link).close()
                    for entry in list(open_conns):
                        if entry[0] == link:
                            entry[1].close()
                            entry[2].close()
            await asyncio.sleep(0.1)

    print("proxy: %d links" % len(conf.links), flush=True)
    asyncio.run(main())


# ---- the client workload ------------------------------------------------------------------------

def cmd_workload(args):
    """Clients write and delete overlapping keys through random nodes, one request at a time,
    and log every request with its answer (JSON lines)."""
    conf = Conf(args.conf)
    rng = random.Random(args.seed)
    # Each client keeps to one key class (one consistency level), so a client stuck waiting
    # for acknowledgements a partition withholds does not stall the other levels' clients.
    prefixes = ["k"] + [prefix for prefix, _, _ in conf.rules]
    classes = [["%s%d" % (p, i) for i in range(args.keys)] for p in prefixes]
    history = open(args.history, "w")
    lock = threading.Lock()
    stop_at = time.time() + args.seconds
    counts = {}

    def client(cid):
        r = random.Random(rng.random())
        keys = classes[cid % len(classes)]
        conn, node_id, n = None, None, 0
        while time.time() < stop_at and not (args.stop and os.path.exists(args.stop)):
            if conn is None:
                node_id = r.choice(sorted(conf.nodes))
                try:
                    s = socket.create_connection(split_address(conf.nodes[node_id]["client"]),
                                                 timeout=args.request_timeout)
                    conn = s.makefile("rw")
                except OSError:
                    time.sleep(0.05)
                    continue
            key = r.choice(keys)
            n += 1
            if r.random() < 0.2:
                op, value, line = "DEL", None, "DEL %s" % key
            else:
                value = "c%dn%d" % (cid, n)
                op, line = "PUT", "PUT %s %s" % (key, value)
            t0 = time.time()
            try:
                conn.write(line + "\n")
                conn.flush()
                answer = conn.readline().rstrip("\n") or "NOANSWER closed"
            except OSError:
                answer = "NOANSWER timeout"
            if answer.startswith("NOANSWER"):
                conn = None
            elif answer.startswith("ERR "):
                conn = None  # that node may have no leader: try another
            record = {"client": cid, "node": node_id, "op": op, "key": key, "value": value,
                      "level": conf.level(key), "answer": answer, "t0": t0, "t1": time.time()}
            with lock:
                history.write(json.dumps(record) + "\n")
                kind = answer.split()[0]
                counts[kind] = counts.get(kind, 0) + 1
            time.sleep(args.think_ms / 1000.0)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    history.close()
    print("workload: " + " ".join("%s=%d" % kv for kv in sorted(counts.items())), flush=True)


# ---- C1: throughput and lag --------------------------------------------------------------------

def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0


def cmd_bench(args):
    """Clients write local keys (LocalQuorum, so Raft commit is the only wait) as fast as they
    are answered, spread over every node; a sampler reads every leader's per-stream lag
    (stream_status) every 100 ms. Prints writes/s and the lag's p50/p99; --samples writes
    'time stream lag_ms' lines and --rates 'second writes' lines for plotting."""
    conf = Conf(args.conf)
    stop_at = time.time() + args.seconds
    start = time.time()
    ok = [0]
    per_second = {}
    lock = threading.Lock()
    samples = []

    def client(cid):
        ids = sorted(conf.nodes)
        node_id = ids[cid % len(ids)]
        conn, n = None, 0
        while time.time() < stop_at:
            if conn is None:
                try:
                    s = socket.create_connection(split_address(conf.nodes[node_id]["client"]),
                                                 timeout=10)
                    conn = s.makefile("rw")
                except OSError:
                    time.sleep(0.05)
                    continue
            n += 1
            try:
                conn.write("PUT k%d c%dn%d\n" % (n % args.keys, cid, n))
                conn.flush()
                answer = conn.readline()
            except OSError:
                answer = ""
            if not answer:
                conn = None
            elif answer.startswith("OK "):
                with lock:
                    ok[0] += 1
                    second = int(time.time() - start)
                    per_second[second] = per_second.get(second, 0) + 1

    def sampler():
        while time.time() < stop_at:
            t = time.time() - start
            for s in statuses(conf, streams_only=True).values():
                if s["role"] == "leader":
                    for target, lag in s["lag"].items():
                        samples.append((t, "%s->%s" % (s["region"], target), lag))
            time.sleep(0.1)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
    threads.append(threading.Thread(target=sampler))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lags = [lag for _, _, lag in samples]
    print("bench %s: writes/s=%.0f lag_ms p50=%d p99=%d max=%d (%d samples)" % (
        args.label, ok[0] / args.seconds, percentile(lags, 0.5), percentile(lags, 0.99),
        max(lags or [0]), len(lags)), flush=True)
    if args.samples:
        with open(args.samples, "w") as f:
            for t, stream, lag in samples:
                f.write("%.2f %s %d\n" % (t, stream, lag))
    if args.rates:
        with open(args.rates, "w") as f:
            for second in sorted(per_second):
                f.write("%d %d\n" % (second, per_second[second]))


def cmd_sample(args):
    """Every 200 ms, each reachable leader's per-stream lag and owed count, as
    'epoch_seconds source->target lag_ms owed' lines, until killed or --seconds pass."""
    conf = Conf(args.conf)
    end = time.time() + args.seconds
    with open(args.out, "w") as f:
        while time.time() < end:
            t = time.time()
            for s in statuses(conf, streams_only=True).values():
                if s["role"] == "leader":
                    for target, lag in s["lag"].items():
                        f.write("%.2f %s->%s %d %d\n" % (t, s["region"], target, lag,
                                                          s["owed"][target]))
            f.flush()
            time.sleep(max(0.0, 0.2 - (time.time() - t)))


def cmd_plot(args):
    """A PNG (gnuplot) of each stream's lag and the acknowledged writes per second over time,
    with the run's faults marked."""
    import subprocess
    lag = [line.split() for line in open(args.lag)]
    history = [json.loads(line) for line in open(args.history)]
    events = [line.rstrip("\n").split(" ", 1) for line in open(args.events)]
    t0 = min([float(e[0]) for e in events] + [float(r[0]) for r in lag])
    out_dir = os.path.dirname(os.path.abspath(args.png))
    streams = sorted({r[1] for r in lag})
    files = []
    for i, stream in enumerate(streams):
        path = os.path.join(out_dir, "plot-lag-%d.dat" % i)
        with open(path, "w") as f:
            for r in lag:
                if r[1] == stream:
                    f.write("%.2f %s\n" % (float(r[0]) - t0, r[2]))
        files.append((path, stream))
    rate = {}
    for h in history:
        if h["answer"].startswith("OK "):
            second = int(h["t1"] - t0)
            rate[(h["level"], second)] = rate.get((h["level"], second), 0) + 1
    last = max([sec for _, sec in rate] or [0])
    rate_path = os.path.join(out_dir, "plot-rate.dat")
    with open(rate_path, "w") as f:
        for second in range(0, last + 1):
            f.write("%d %s\n" % (second, " ".join(str(rate.get((lv, second), 0))
                                                  for lv in LEVELS)))
    marks = []
    for i, (t, what) in enumerate(events):
        x = float(t) - t0
        marks.append("set arrow from %.1f, graph 0 to %.1f, graph 1 nohead dt 2 lc rgb 'gray'"
                     % (x, x))
        marks.append("set label %d \"%s\" at %.1f, graph %.2f font ',8' tc rgb 'gray40'"
                     % (i + 1, what.replace('"', "'"), x + 0.5, 0.95 - 0.07 * (i % 6)))
    script = "\n".join([
        "set terminal pngcairo size 1200,800",
        "set output '%s'" % os.path.abspath(args.png),
        "set multiplot layout 2,1 title '%s'" % args.title.replace("'", ""),
        "set xlabel 'seconds'",
        "set ylabel 'stream lag (ms)'",
        "set key outside right",
        "set logscale y", "set yrange [1:*]",
    ] + marks + [
        "plot " + ", ".join("'%s' using 1:($2+1) with lines title '%s'" % (p, s)
                            for p, s in files),
        "unset logscale y", "set yrange [0:*]",
        "set ylabel 'acknowledged writes/s'",
        "plot " + ", ".join("'%s' using 1:%d with steps title '%s'" % (rate_path, i + 2, lv)
                            for i, lv in enumerate(LEVELS)),
        "unset multiplot",
    ])
    subprocess.run(["gnuplot"], input=script.encode(), check=True)
    print("plot: %s" % args.png)


# ---- settle and check ---------------------------------------------------------------------------

def cmd_settle(args):
    """Waits until every surviving leader owes nothing to the surviving regions and every
    surviving node reports the same digest."""
    conf = Conf(args.conf)
    lost = set(filter(None, args.lost.split(",")))
    alive = [r for r in conf.regions if r not in lost]
    deadline = time.time() + args.timeout
    last = None
    while time.time() < deadline:
        st = statuses(conf, skip=lost)
        leaders = {s["region"]: s for s in st.values() if s["role"] == "leader"}
        owed = {r: sum(n for t, n in leaders[r]["owed"].items() if t in alive)
                for r in leaders}
        digests = {s["digest"] for s in st.values()}
        expected = sum(len(conf.members(r)) for r in alive)
        last = "nodes=%d/%d leaders=%s owed=%s digests=%d" % (
            len(st), expected, sorted(leaders), owed, len(digests))
        if (len(st) == expected and len(leaders) == len(alive)
                and all(n == 0 for n in owed.values()) and len(digests) == 1):
            print("settle: every stream acknowledged, %s" % last, flush=True)
            return 0
        time.sleep(0.5)
    print("settle: timed out: %s" % last, flush=True)
    return 1


def lww_key(ts, region, seq):
    """The documented last-writer-wins order: timestamp, then region id, then seq."""
    return (int(ts), region.encode(), int(seq))


def cmd_check(args):
    conf = Conf(args.conf)
    lost_regions = set(filter(None, args.lost.split(",")))
    history = [json.loads(line) for line in open(args.history)]
    keys = sorted({h["key"] for h in history})
    written = {h["value"] for h in history if h["op"] == "PUT"}

    # Final state of every surviving node.
    finals, digests, unreachable = {}, {}, []
    for node_id, node in sorted(conf.nodes.items()):
        if node["region"] in lost_regions:
            continue
        answers = ask(node["client"], ["STATUS"] + ["GET " + k for k in keys], timeout=10)
        if answers is None:
            unreachable.append(node_id)
            continue
        digests[node_id] = parse_status(answers[0])["digest"]
        state = {}
        for key, answer in zip(keys, answers[1:]):
            if answer != "NONE":
                _, region, seq, ts, deleted, value = (answer.split(" ", 5) + [""])[:6]
                state[key] = (region, int(seq), int(ts), deleted == "1", value)
        finals[node_id] = state
    converged = (not unreachable and len(set(digests.values())) == 1
                 and len({json.dumps(s, sort_keys=True) for s in finals.values()}) == 1)
    final = next(iter(finals.values()), {})

    counts = dict.fromkeys(["acknowledged", "present", "superseded", "lost",
                            "lost_with_region", "timed_out", "timed_out_missing", "rejected",
                            "indeterminate", "failed", "phantom"], 0)
    by_level = {}
    examples = []
    for h in history:
        words = h["answer"].split()
        kind = words[0]
        if kind in ("OK", "TIMEOUT"):
            region, seq, ts = words[1], int(words[2]), int(words[3])
            rec = final.get(h["key"])
            if rec and rec[0] == region and rec[1] == seq:
                ok = rec[3] if h["op"] == "DEL" else (not rec[3] and rec[4] == h["value"])
                state = "present" if ok else "mismatch"
            elif rec and lww_key(rec[2], rec[0], rec[1]) > lww_key(ts, region, seq):
                state = "superseded"
            else:
                state = "missing"
            if kind == "TIMEOUT":
                counts["timed_out"] += 1
                if state not in ("present", "superseded") and region not in lost_regions:
                    counts["timed_out_missing"] += 1
                continue
            counts["acknowledged"] += 1
            by_level[h["level"]] = by_level.get(h["level"], 0) + 1
            if state in ("present", "superseded"):
                counts[state] += 1
            elif region in lost_regions and h["level"] in ("LocalAsync", "LocalQuorum"):
                counts["lost_with_region"] += 1  # never promised to outlive its region
            else:
                counts["lost"] += 1
                if len(examples) < 5:
                    examples.append((h, rec))
        elif kind == "REJECTED":
            counts["rejected"] += 1
        elif kind in ("UNKNOWN", "NOANSWER"):
            counts["indeterminate"] += 1
        else:
            counts["failed"] += 1
    for key, rec in sorted(final.items()):
        if not rec[3] and rec[4] not in written:
            counts["phantom"] += 1
            if len(examples) < 10:
                examples.append(({"phantom": key}, rec))

    print("checker: %d requests over %d keys; surviving nodes %s, lost regions %s" % (
        len(history), len(keys), sorted(finals), sorted(lost_regions) or "none"))
    print("checker: digests %s%s" % (sorted(set(digests.values())),
                                     " unreachable %s" % unreachable if unreachable else ""))
    print("checker: acknowledged by level " +
          " ".join("%s=%d" % (lv, by_level.get(lv, 0)) for lv in LEVELS))
    print("checker: " + " ".join("%s=%d" % (k, counts[k]) for k in
                                 ["present", "superseded", "lost_with_region", "timed_out",
                                  "timed_out_missing", "rejected", "indeterminate", "failed"]))
    for h, rec in examples:
        print("checker: example %s final=%s" % (json.dumps(h), rec))
    print("checker: acknowledged=%d lost=%d phantom=%d converged=%s" % (
        counts["acknowledged"], counts["lost"], counts["phantom"], "yes" if converged else "no"))
    return 0 if counts["lost"] == 0 and counts["phantom"] == 0 and converged else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("status")
    p.add_argument("conf")
    p.add_argument("--skip", default="")
    p = sub.add_parser("leader")
    p.add_argument("conf")
    p.add_argument("region")
    p.add_argument("--timeout", type=float, default=15)
    p = sub.add_parser("proxy")
    p.add_argument("conf")
    p.add_argument("cut_file")
    p = sub.add_parser("workload")
    p.add_argument("conf")
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--history", required=True)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--keys", type=int, default=25, help="keys per routing class")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--think-ms", type=float, default=5)
    p.add_argument("--request-timeout", type=float, default=15)
    p.add_argument("--stop", default="")
    p = sub.add_parser("bench")
    p.add_argument("conf")
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--clients", type=int, default=9)
    p.add_argument("--keys", type=int, default=1000)
    p.add_argument("--label", default="")
    p.add_argument("--samples", default="")
    p.add_argument("--rates", default="")
    p = sub.add_parser("sample")
    p.add_argument("conf")
    p.add_argument("--out", required=True)
    p.add_argument("--seconds", type=float, default=3600)
    p = sub.add_parser("plot")
    p.add_argument("--lag", required=True)
    p.add_argument("--history", required=True)
    p.add_argument("--events", required=True)
    p.add_argument("--png", required=True)
    p.add_argument("--title", default="geo cluster: lag per stream and throughput")
    p = sub.add_parser("settle")
    p.add_argument("conf")
    p.add_argument("--lost", default="")
    p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("check")
    p.add_argument("conf")
    p.add_argument("--history", required=True)
    p.add_argument("--lost", default="")
    args = parser.parse_args()
    handler = {"status": cmd_status, "leader": cmd_leader, "proxy": cmd_proxy,
               "workload": cmd_workload, "bench": cmd_bench, "sample": cmd_sample,
               "plot": cmd_plot, "settle": cmd_settle, "check": cmd_check}
    sys.exit(handler[args.command](args) or 0)


if __name__ == "__main__":
    main()
