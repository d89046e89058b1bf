// Benchmarks of docs/benchmarks.md for geo::ActiveActiveReplicator: a plain std::chrono harness.
//
// Every figure is a ratio against a floor measured in the same run, over the same pre-built
// keys, the same key sequence and the same timestamps: std::unordered_map<std::string, Record>
// doing, per operation, one try_emplace and, when the new timestamp is greater, one value
// assignment. Each timing is repeated (--reps) and the minimum kept; geo and the floor
// alternate within each repetition. "ratio" is min(geo) / min(floor) in wall time;
// "paired_median_ratio" is the median over repetitions of geo / floor of the same repetition
// (robust when the machine's load changes during the run); "cpu_ratio" uses the thread's CPU
// time (immune to preemption, not to cache interference). Results are checked (same final
// state as the floor, same win count, all fanout drained) outside the clock; "check" says
// whether they held.
//
// Output: when every workload has run, a table on stdout (one row per result: both values,
// their ratio, the target and whether it is met, whether the check held) and one JSON object,
// {"meta": {...}, "results": [{...}, ...]}, written to --json PATH (default
// bench_replicator.json in the current directory; "--json -" writes it to stdout instead of the
// table). "meta" describes the build and the machine; each result has "workload", "check" and
// its figures (null where a figure is not finite). Progress goes to stderr. Exit status: 0; 1
// when a result's check failed or the JSON could not be written; 2 on a usage error or when
// the --json file cannot be opened (checked before the run).
//
//   bench_replicator [--n N] [--k K] [--reps R]
//                    [--only W1,W2,W3,W3c,W3h,W4,W4n,M1,S1,D1,SN1,SN2,SN3,WIRE]
//                    [--w3-concurrent PCT] [--json PATH|-] [--quick] [--verbose]
//
// Defaults: N = 10^6, K = 10^5, 5 repetitions; SN1, SN2 and SN3 use K = 10^6 unless --k is
// given (or --quick). --quick is a smoke run (N = 20000, K = 2000, 2 repetitions);
// --n/--k/--reps still override it. --verbose prints every repetition's time on stderr. The
// timed loops are never-inlined functions (geo_w1_writes, floor_w1_writes, geo_drain,
// geo_w2_writes, floor_w2_writes, geo_w3_writes, geo_w3h_writes, geo_sn1_snapshot,
// floor_sn1_dump, geo_sn2_restore, floor_sn2_parse, geo_wire_roundtrip, floor_wire_roundtrip),
// so a profiler can select them, e.g.
//   valgrind --tool=callgrind --toggle-collect='*geo_w1_writes*' bench_replicator --only W1
//
// What is timed. Outside the clock everywhere: building keys and values, random numbers and
// vector clocks (all pre-generated; only W3h builds clocks in its loop, as that is what it
// measures), constructing and destroying the replicator or the map, destroying drained
// batches, and the checks.
//   W1  N apply_local_write(us-east-1, key i % K, value, kT0 + i), then drain_fanout from
//       us-east-1 to each of the two peers. geo_ns_per_op = (writes + drains) / N; the drain
//       is also reported on its own. Floor: the same N writes (it has nothing to drain).
//   W2  N apply_remote_write(origin, key i % K, value, ts) with origin a random peer
//       (eu-west-1 or ap-northeast-1: a replica receives remote writes from its peers) and ts
//       pre-generated per key so that about half the writes lose (each write after a key's
//       first is, with probability 1/2, above or below the key's current winner by 1..1000).
//   W3  VectorClock mode: N apply_local_write(us-east-1, key i % K, value, kT0 + i, clock_i),
//       clock_i moved in from a pre-generated vector (the per-rep copy of that vector is made
//       before the clock starts). clock_i is the key's last clock with one increment on one of
//       3 nodes, so it follows the stored clock. W3c: the same, but --w3-concurrent percent of
//       the writes (default 25) instead increment a different node on the clock before the
//       key's last one, so they are concurrent with the stored record, win by timestamp and
//       raise a conflict. No drain.
//   W3h W3 with host-built clocks: the host keeps each key's last clock (a vector indexed by
//       key, empty before the first write, outside the clock) and, inside the timed loop,
//       increments on it the node W3's pre-generated sequence picks for the write and passes
//       a copy to apply_local_write (the copy and the increment are timed). Floor: as W3's.
//       Checked: every write wins, no conflict, the host's clocks and the stored clock of each
//       key equal W3's pre-generated final clocks, and the values equal the floor's.
//   W4  W1 split in two: us-east-1 writes N/2 over keys [0, K/2), eu-west-1 writes N/2 over
//       keys [K/2, K), each then drains its fanout to its two peers, on ONE replicator. Timed
//       on 1 thread (one part after the other) and on 2 threads (one part each, wall clock
//       from the first start to the last finish, after a spin barrier). speedup = t(1) / t(2).
//       floor_speedup is the same split over two private unordered_maps: what this machine
//       gives to two threads that share nothing.
//   W4n W4's speedup over floor_speedup, from the same measurement (selecting W4n alone runs
//       W4 and reports only W4n): how much of what the machine gives two threads geo keeps,
//       with the machine's own scaling factored out. paired_median_ratio is the median over
//       repetitions of that quotient computed within each repetition.
//   M1  Not a timing: in a fresh process (fork + exec of this binary), RSS before the first
//       write (replicator or map already constructed, keys built) and peak RSS (VmHWM, reset
//       through /proc/self/clear_refs when allowed) after W1's writes, without draining.
//   S1  W1 at K = N/100, N/10, N (10^4, 10^5, 10^6 at the default N = 10^6).
//   D1  Drain cost against queue length: with Q keys pending (Q = N/100 and N), the time of
//       peek_fanout(us-east-1, eu-west-1, 100) + acknowledge_fanout of that batch, per entry,
//       over min(N/100, 10000) entries. Must not grow with Q.
//   SN  Setup shared by SN1-SN3 (outside every clock): K local writes in us-east-1 of W1's
//       keys, values and timestamps (kT0 + i) on K distinct keys, not drained, so the queue
//       holds all K entries owed to both peers; a floor map holds the same K records.
//   SN1 snapshot(std::ostream&) of that replicator into memory: an ostream over a streambuf
//       that appends to a std::string (no reserve; std::ostringstream would add a copy in
//       str()). ns per key. Floor: nlohmann::json built from the floor map as an array (reserved)
//       of {"key", "value", "timestamp_ms"} objects, then dump() to a string; building and
//       dumping are timed, destroying the document is not. Checked: every repetition writes
//       the same bytes, the digest is unchanged, and the floor's text parses back to its map.
//   SN2 restore(std::istream&) of SN1's snapshot into a fresh replicator of the same
//       configuration (constructed outside the clock), from an istream over a streambuf that
//       reads the snapshot's bytes in place (no copy). ns per key. Floor: nlohmann::json::parse
//       of the floor's SN1 text (the spec's floor; the document is destroyed outside the clock).
//       Also reported, not the target's ratio: parse plus materializing the document into the
//       floor's unordered_map<string, Record> (floor_parse_map_ns_per_op,
//       ratio_vs_parse_and_map), since restore rebuilds a queryable state. Checked: the
//       restored records_digest() equals the original's, both queues hold K entries, and a
//       snapshot of the restored replicator is byte-identical to SN1's.
//   SN3 The writer pause (runs after SN1 and SN2: it changes the replicator). Per repetition:
//       one snapshot alone (SN1's total time, "snapshot_ms"), then a writer thread doing
//       apply_local_write(us-east-1) on pre-drawn random keys with increasing timestamps,
//       steady_clock before and after each write, while the main thread takes a snapshot
//       (after the writer's first 1000 writes). max_pause_ms: the longest write that overlaps
//       the snapshot; median_write_ns: the median of those writes. ratio = max pause /
//       snapshot alone; the repetition with the lowest ratio is reported, paired_median_ratio
//       is the median over repetitions. Checked: the snapshot taken next to the writer
//       restores into a fresh replicator with K records.
//   WIRE A batch of 10,000 FanoutEntry (W1's keys and values, region us-east-1, timestamps
//       kT0 + i, seq i + 1, prev_seq i, a clock of 3 nodes, every 50th a tombstone):
//       geo::to_json_text, then geo::from_json_text, both on the batch fast path (no DOM;
//       detail/batch_json.hpp). ns per entry. Floor: nlohmann doing the same with a flat struct of the same fields (key,
//       region, timestamp_ms, clock as a std::map, value, seq, deleted, prev_seq) and
//       hand-written to_json/from_json (the clock as an object keyed by decimal node ids, as
//       geo writes it). The decoded batch is destroyed outside the clock. Checked: both decode
//       to what they encoded.

#include <geo/geo.hpp>
#include <geo/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <istream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#if defined(__linux__)
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#define GEO_BENCH_LINUX 1
#else
#define GEO_BENCH_LINUX 0
#endif

namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr std::string_view kUs = "us-east-1";
constexpr std::string_view kEu = "eu-west-1";
constexpr std::string_view kAp = "ap-northeast-1";
constexpr std::array<std::string_view, 3> kRegions{kUs, kEu, kAp};
constexpr std::uint64_t kT0 = 1'700'000'000'000ULL; // ms; fixed so runs are reproducible
constexpr std::size_t kValuePool = 61;              // distinct values, cycled
constexpr std::size_t kValueSize = 32;
constexpr double kInf = std::numeric_limits<double>::infinity();

double ns_between(SteadyClock::time_point a, SteadyClock::time_point b) {
    return std::chrono::duration<double, std::nano>(b - a).count();
}

// CPU time of the calling thread, in ns (NaN where unsupported). On a shared machine a thread
// that is preempted keeps its wall clock running but not its CPU time, so single-thread
// workloads also report CPU-time figures; cache interference from neighbours shows in both.
double thread_cpu_ns() {
#if defined(CLOCK_THREAD_CPUTIME_ID)
    timespec ts{};
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0) {
        return 1e9 * static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec);
    }
#endif
    return std::numeric_limits<double>::quiet_NaN();
}

struct Stamp {
    SteadyClock::time_point wall;
    double cpu_ns;
};

Stamp stamp() {
    return Stamp{SteadyClock::now(), thread_cpu_ns()};
}

struct Span {
    double wall = 0;
    double cpu = 0;
};

Span between(const Stamp& a, const Stamp& b) {
    return Span{ns_between(a.wall, b.wall), b.cpu_ns - a.cpu_ns};
}

// Minimum over repetitions, of wall and CPU time independently; every wall time is kept too.
struct Best {
    double wall = kInf;
    double cpu = kInf;
    std::vector<double> walls;
    void add(const Span& s) {
        wall = std::min(wall, s.wall);
        cpu = std::min(cpu, s.cpu); // stays NaN-free: min(inf, NaN) is inf
        walls.push_back(s.wall);
    }
};

// Median over repetitions of geo's wall time over the floor's in the same repetition (they run
// back to back, so they share the machine's state of the moment): a second, noise-robust ratio.
double median(std::vector<double> values) {
    if (values.empty()) {
        return kInf;
    }
    std::sort(values.begin(), values.end());
    const std::size_t mid = values.size() / 2;
    return values.size() % 2 != 0 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

double paired_median_ratio(const Best& geo, const Best& floor) {
    std::vector<double> ratios;
    for (std::size_t i = 0; i < std::min(geo.walls.size(), floor.walls.size()); ++i) {
        ratios.push_back(geo.walls[i] / floor.walls[i]);
    }
    return median(std::move(ratios));
}

bool g_verbose = false; // --verbose

void note_rep(std::string_view workload, const char* who, int rep, const Span& s, std::size_t ops) {
    if (g_verbose) {
        const double nn = static_cast<double>(ops);
        std::fprintf(stderr, "  %.*s %s rep %d: %.2f ns/op wall, %.2f ns/op cpu\n",
                     static_cast<int>(workload.size()), workload.data(), who, rep, s.wall / nn,
                     s.cpu / nn);
    }
}

// ---- options ------------------------------------------------------------------------------

// SN1-SN3's K when --k is not given (nor --quick): the size docs/benchmarks.md defines SN at.
constexpr std::size_t kSnDefaultKeys = 1'000'000;

struct Options {
    std::size_t n = 1'000'000;
    std::size_t k = 100'000;
    std::size_t sn_k = kSnDefaultKeys; // SN1/SN2/SN3: --k when given (or --quick)
    int reps = 5;
    int w3_concurrent_pct = 25;
    bool verbose = false;                       // every repetition's time on stderr
    std::string only;                           // comma-separated workload ids; empty: all
    std::string json = "bench_replicator.json"; // where the JSON goes; "-": stdout, no table
    std::string m1_child; // internal: "geo" or "floor", run one M1 measurement and exit
};

bool selected(const Options& o, std::string_view id) {
    if (o.only.empty()) {
        return true;
    }
    std::string_view rest = o.only;
    for (;;) {
        const std::size_t comma = rest.find(',');
        if (rest.substr(0, comma) == id) {
            return true;
        }
        if (comma == std::string_view::npos) {
            return false;
        }
        rest.remove_prefix(comma + 1);
    }
}

bool parse_count(const std::string& text, std::size_t& out) {
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end); // accepts 1e6
    if (end == text.c_str() || *end != '\0' || !(v >= 1) || v > 1e12 ||
        v != static_cast<double>(static_cast<std::uint64_t>(v))) {
        return false;
    }
    out = static_cast<std::size_t>(v);
    return true;
}

[[noreturn]] void usage(const char* why, int status = 2) {
    std::fprintf(
        status == 0 ? stdout : stderr,
        "%s%s%s"
        "usage: bench_replicator [--n N] [--k K] [--reps R]\n"
        "                        [--only W1,W2,W3,W3c,W3h,W4,W4n,M1,S1,D1,SN1,SN2,SN3,WIRE]\n"
        "                        [--w3-concurrent PCT] [--json PATH|-] [--quick] [--verbose]\n"
        "Prints a table of the results on stdout and writes them as one JSON object to PATH\n"
        "(default bench_replicator.json; with --json -, to stdout instead of the table).\n"
        "SN1, SN2, SN3 use K = --k when it is given (or --quick), else 10^6.\n"
        "Exits 1 if a result's check failed. Details: the comment atop bench_replicator.cpp.\n",
        why[0] != '\0' ? "bench_replicator: " : "", why, why[0] != '\0' ? "\n" : "");
    std::exit(status);
}

Options parse_options(int argc, char** argv) {
    Options o;
    std::optional<std::size_t> n, k, reps, pct;
    bool quick = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        std::string value;
        bool has_value = false;
        if (const std::size_t eq = arg.find('=');
            arg.rfind("--", 0) == 0 && eq != std::string::npos) {
            value = arg.substr(eq + 1);
            arg.resize(eq);
            has_value = true;
        }
        auto take = [&]() -> std::string {
            if (has_value) {
                return value;
            }
            if (i + 1 >= argc) {
                usage(("missing value for " + arg).c_str());
            }
            return argv[++i];
        };
        auto take_count = [&](std::optional<std::size_t>& into) {
            std::size_t v = 0;
            if (!parse_count(take(), v)) {
                usage(("bad value for " + arg).c_str());
            }
            into = v;
        };
        if (arg == "--n") {
            take_count(n);
        } else if (arg == "--k") {
            take_count(k);
        } else if (arg == "--reps") {
            take_count(reps);
        } else if (arg == "--w3-concurrent") {
            take_count(pct);
        } else if (arg == "--only") {
            o.only = take();
        } else if (arg == "--json") {
            o.json = take();
            if (o.json.empty()) {
                usage("empty path for --json");
            }
        } else if (arg == "--verbose" || arg == "-v") {
            o.verbose = true;
        } else if (arg == "--quick") {
            quick = true;
        } else if (arg == "--m1-child") {
            o.m1_child = take();
        } else if (arg.rfind("--benchmark_", 0) == 0) {
            // Google Benchmark flags, passed to every benchmark by scripts/run-benchmarks.sh.
            std::fprintf(stderr, "bench_replicator: ignoring %s\n", argv[i]);
        } else if (arg == "--help" || arg == "-h") {
            usage("", 0);
        } else {
            usage(("unknown argument " + arg).c_str());
        }
    }
    if (quick) {
        o.n = 20'000;
        o.k = 2'000;
        o.reps = 2;
    }
    o.n = n.value_or(o.n);
    o.k = k.value_or(o.k);
    o.sn_k = k || quick ? o.k : o.sn_k;
    o.reps = static_cast<int>(
        std::min<std::size_t>(reps.value_or(static_cast<std::size_t>(o.reps)), 1000));
    o.w3_concurrent_pct = static_cast<int>(std::min<std::size_t>(pct.value_or(25), 100));
    return o;
}

// ---- results ------------------------------------------------------------------------------

// One result, or the "meta" description of the run: named fields, each kept as its JSON text.
// A finished line is collect()ed; main prints them all as a table and writes them as JSON.
class JsonLine {
public:
    explicit JsonLine(std::string_view workload) { str("workload", workload); }

    JsonLine& str(std::string_view key, std::string_view value) {
        std::string json = "\"";
        for (const char c : value) {
            if (c == '"' || c == '\\') {
                json += '\\';
            }
            json += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
        }
        json += '"';
        return add(key, std::move(json), std::string(value));
    }
    /// The fields every geo-vs-floor timing reports, `ops` operations per repetition.
    JsonLine& timing(const Best& geo, const Best& floor, double ops, std::optional<double> target) {
        num("geo_ns_per_op", geo.wall / ops);
        num("floor_ns_per_op", floor.wall / ops);
        num("ratio", geo.wall / floor.wall, 3);
        num("paired_median_ratio", paired_median_ratio(geo, floor), 3);
        if (target) {
            num("target", *target, 1);
        }
        num("geo_cpu_ns_per_op", geo.cpu / ops);
        num("floor_cpu_ns_per_op", floor.cpu / ops);
        return num("cpu_ratio", geo.cpu / floor.cpu, 3);
    }
    JsonLine& count(std::string_view key, std::uint64_t value) {
        return add(key, std::to_string(value));
    }
    JsonLine& num(std::string_view key, double value, int decimals = 2) {
        if (value != value || value == kInf || value == -kInf) {
            return add(key, "null");
        }
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
        return add(key, buf);
    }
    JsonLine& flag(std::string_view key, bool value) { return add(key, value ? "true" : "false"); }

    // Appends this line to the run's results (g_lines).
    void collect();

    bool has(std::string_view key) const { return find(key) != nullptr; }
    // A string field's value, any other field's JSON text; "" when absent.
    std::string text(std::string_view key) const {
        const Field* f = find(key);
        return f == nullptr ? std::string() : f->text;
    }
    // A number field's value as written (rounded); nullopt when absent, null or not a number.
    std::optional<double> number(std::string_view key) const {
        const Field* f = find(key);
        if (f == nullptr || f->json.empty() || f->json[0] == '"') {
            return std::nullopt;
        }
        char* end = nullptr;
        const double v = std::strtod(f->json.c_str(), &end);
        if (end == f->json.c_str() || *end != '\0') {
            return std::nullopt; // null, true, false
        }
        return v;
    }
    // The field as it is in the JSON when it is a number, "-" otherwise: a table cell.
    std::string cell(std::string_view key) const {
        return number(key) ? find(key)->json : std::string("-");
    }
    bool check_failed() const { return text("check") == "false"; }
    // The JSON object: {"workload":...,...}.
    std::string object() const {
        std::string out = "{";
        for (const Field& f : fields_) {
            if (out.size() > 1) {
                out += ',';
            }
            out += '"';
            out += f.key;
            out += "\":";
            out += f.json;
        }
        out += '}';
        return out;
    }

private:
    struct Field {
        std::string key;
        std::string json; // the value's JSON text
        std::string text; // a string's value unquoted, else the JSON text
    };

    JsonLine& add(std::string_view key, std::string json, std::optional<std::string> text = {}) {
        Field f{std::string(key), std::move(json), {}};
        f.text = text ? std::move(*text) : f.json;
        fields_.push_back(std::move(f));
        return *this;
    }
    const Field* find(std::string_view key) const {
        for (const Field& f : fields_) {
            if (f.key == key) {
                return &f;
            }
        }
        return nullptr;
    }

    std::vector<Field> fields_;
};

std::vector<JsonLine> g_lines; // every collected line, in order: "meta" first, then the results

void JsonLine::collect() {
    g_lines.push_back(std::move(*this));
}

// ---- data, floor, replicator --------------------------------------------------------------

struct Data {
    std::vector<std::string> keys;
    std::vector<std::string> values; // kValuePool values of kValueSize bytes
};

Data make_data(std::size_t key_count) {
    Data d;
    d.keys.reserve(key_count);
    for (std::size_t i = 0; i < key_count; ++i) {
        d.keys.push_back("http://example.org/resource/" + std::to_string(i));
    }
    d.values.reserve(kValuePool);
    for (std::size_t i = 0; i < kValuePool; ++i) {
        std::string v = "value-" + std::to_string(i) + "-";
        v.resize(kValueSize, 'x');
        d.values.push_back(std::move(v));
    }
    return d;
}

struct Record {
    std::string value;
    std::uint64_t ts{};
};
using FloorMap = std::unordered_map<std::string, Record>;

// The floor's operation: one lookup-or-insert, one assignment when the timestamp is greater.
inline bool floor_write(FloorMap& map, const std::string& key, const std::string& value,
                        std::uint64_t ts) {
    Record& rec = map.try_emplace(key).first->second;
    if (ts > rec.ts) {
        rec.value = value;
        rec.ts = ts;
        return true;
    }
    return false;
}

std::unique_ptr<geo::ActiveActiveReplicator> make_geo(geo::ConflictResolutionMode mode) {
    auto config = geo::ActiveActiveGeoConfig::multi_region(
        std::string(kUs), {std::string(kUs), std::string(kEu), std::string(kAp)});
    config.conflict_mode = mode;
    std::vector<geo::RegionRaftGroup> groups;
    for (std::size_t i = 0; i < kRegions.size(); ++i) {
        const geo::NodeId first = 3 * i + 1;
        groups.emplace_back(std::string(kRegions[i]), i + 1,
                            std::vector<geo::NodeId>{first, first + 1, first + 2});
    }
    return std::make_unique<geo::ActiveActiveReplicator>(std::move(config), std::move(groups));
}

// The timed loops are separate, never-inlined functions, so a profiler can select them by name
// (e.g. valgrind --tool=callgrind --toggle-collect='*geo_w1_writes*').
#define GEO_BENCH_NOINLINE __attribute__((noinline))

// Op i of a W1-style stream writes key (i % k) with value (i % kValuePool), timestamp kT0 + i.
template <class Write>
inline void round_robin(std::size_t n, std::size_t k, Write&& write) {
    std::size_t key = 0;
    for (std::size_t i = 0; i < n; ++i) {
        write(key, i);
        if (++key == k) {
            key = 0;
        }
    }
}

GEO_BENCH_NOINLINE void geo_w1_writes(geo::ActiveActiveReplicator& geo, std::string_view region,
                                      const Data& d, std::size_t key_base, std::size_t n,
                                      std::size_t k) {
    const std::string* keys = d.keys.data() + key_base;
    const std::string* values = d.values.data();
    round_robin(n, k, [&](std::size_t key, std::size_t i) {
        geo.apply_local_write(region, keys[key], values[i % kValuePool], kT0 + i);
    });
}

GEO_BENCH_NOINLINE void floor_w1_writes(FloorMap& map, const Data& d, std::size_t key_base,
                                        std::size_t n, std::size_t k) {
    const std::string* keys = d.keys.data() + key_base;
    const std::string* values = d.values.data();
    round_robin(n, k, [&](std::size_t key, std::size_t i) {
        floor_write(map, keys[key], values[i % kValuePool], kT0 + i);
    });
}

using Batches = std::vector<std::vector<geo::FanoutEntry>>;

// Drains `source`'s fanout to both peers; batches are kept so they die outside the clock.
GEO_BENCH_NOINLINE std::size_t geo_drain(geo::ActiveActiveReplicator& geo, std::string_view source,
                                         Batches& out) {
    std::size_t entries = 0;
    for (const std::string_view target : kRegions) {
        if (target != source) {
            out.push_back(geo.drain_fanout(source, target));
            entries += out.back().size();
        }
    }
    return entries;
}

bool same_state(const FloorMap& floor, const geo::ActiveActiveReplicator& geo) {
    if (geo.record_count() != floor.size()) {
        return false;
    }
    for (const auto& [key, rec] : floor) {
        const std::optional<std::string> value = geo.get(key);
        if (!value || *value != rec.value) {
            return false;
        }
    }
    return true;
}

// Runs floor and geo once per repetition, alternating which goes first.
template <class Floor, class Geo>
void alternate(int reps, Floor&& floor, Geo&& geo) {
    for (int rep = 0; rep < reps; ++rep) {
        if (rep % 2 == 0) {
            floor(rep);
            geo(rep);
        } else {
            geo(rep);
            floor(rep);
        }
    }
}

// ---- W1 / S1 ------------------------------------------------------------------------------

struct W1Figures {
    Best floor;
    Best geo;                   // writes + drains
    double geo_write_ns = kInf; // wall, of the repetition with the fastest geo wall time
    double geo_drain_ns = kInf;
    std::size_t drained = 0;
    bool ok = true;
};

W1Figures measure_w1(std::string_view id, const Data& d, std::size_t n, std::size_t k, int reps) {
    W1Figures fig;
    std::optional<FloorMap> floor_state; // first repetition's, for the check
    alternate(
        reps,
        [&](int rep) {
            FloorMap map;
            const Stamp t0 = stamp();
            floor_w1_writes(map, d, 0, n, k);
            const Stamp t1 = stamp();
            fig.floor.add(between(t0, t1));
            note_rep(id, "floor", rep, between(t0, t1), n);
            if (rep == 0) {
                floor_state = std::move(map);
            }
        },
        [&](int rep) {
            auto geo = make_geo(geo::ConflictResolutionMode::LastWriterWins);
            Batches batches;
            batches.reserve(2);
            const Stamp t0 = stamp();
            geo_w1_writes(*geo, kUs, d, 0, n, k);
            const Stamp t1 = stamp();
            const std::size_t drained = geo_drain(*geo, kUs, batches);
            const Stamp t2 = stamp();
            note_rep(id, "geo", rep, between(t0, t2), n);
            if (between(t0, t2).wall < fig.geo.wall) {
                fig.geo_write_ns = between(t0, t1).wall;
                fig.geo_drain_ns = between(t1, t2).wall;
            }
            fig.geo.add(between(t0, t2));
            fig.drained = drained;
            fig.ok = fig.ok && drained == 2 * std::min(n, k) && geo->pending_fanout_len(kUs) == 0;
            if (rep == 0) {
                // Checked after the floor's first run (rep 0 runs the floor first).
                fig.ok = fig.ok && floor_state && same_state(*floor_state, *geo);
                floor_state.reset();
            }
        });
    return fig;
}

void report_w1(const char* id, const Data& d, std::size_t n, std::size_t k, int reps,
               std::optional<double> target) {
    std::fprintf(stderr, "bench: %s n=%zu k=%zu\n", id, n, k);
    const W1Figures f = measure_w1(id, d, n, k, reps);
    const double nn = static_cast<double>(n);
    JsonLine line(id);
    line.count("n", n).count("k", k);
    line.timing(f.geo, f.floor, nn, target);
    line.num("geo_write_ns_per_op", f.geo_write_ns / nn)
        .num("write_ratio", f.geo_write_ns / f.floor.wall, 3)
        .num("drain_ms", f.geo_drain_ns / 1e6, 3)
        .count("drained_entries", f.drained)
        .num("drain_ns_per_entry",
             f.drained ? f.geo_drain_ns / static_cast<double>(f.drained) : 0.0)
        .flag("check", f.ok)
        .collect();
}

// ---- W2 -----------------------------------------------------------------------------------

struct RemoteOp {
    std::uint64_t ts;
    std::uint32_t origin; // index into kRegions, a peer of us-east-1
};

std::vector<RemoteOp> make_w2_ops(std::size_t n, std::size_t k, std::size_t& wins) {
    std::mt19937_64 rng(0x5eed'0002);
    std::vector<std::uint64_t> best(k, 0);
    std::vector<RemoteOp> ops;
    ops.reserve(n);
    wins = 0;
    round_robin(n, k, [&](std::size_t key, std::size_t) {
        const auto origin = static_cast<std::uint32_t>(1 + rng() % 2);
        std::uint64_t ts = 0;
        if (best[key] == 0) {
            ts = kT0 + rng() % 1'000'000;
        } else {
            const std::uint64_t delta = 1 + rng() % 1000;
            ts = (rng() & 1) != 0 ? best[key] + delta : best[key] - delta;
        }
        if (ts > best[key]) {
            best[key] = ts;
            ++wins;
        }
        ops.push_back(RemoteOp{ts, origin});
    });
    return ops;
}

GEO_BENCH_NOINLINE std::size_t floor_w2_writes(FloorMap& map, const Data& d,
                                               const std::vector<RemoteOp>& ops, std::size_t n,
                                               std::size_t k) {
    const std::string* keys = d.keys.data();
    const std::string* values = d.values.data();
    std::size_t wins = 0;
    round_robin(n, k, [&](std::size_t key, std::size_t i) {
        wins += floor_write(map, keys[key], values[i % kValuePool], ops[i].ts) ? 1 : 0;
    });
    return wins;
}

GEO_BENCH_NOINLINE std::size_t geo_w2_writes(geo::ActiveActiveReplicator& geo, const Data& d,
                                             const std::vector<RemoteOp>& ops, std::size_t n,
                                             std::size_t k) {
    const std::string* keys = d.keys.data();
    const std::string* values = d.values.data();
    std::size_t wins = 0;
    round_robin(n, k, [&](std::size_t key, std::size_t i) {
        const RemoteOp& op = ops[i];
        const geo::GeoWriteOutcome out =
            geo.apply_remote_write(kRegions[op.origin], keys[key], values[i % kValuePool], op.ts);
        wins += std::holds_alternative<geo::Committed>(out) ? 1 : 0;
    });
    return wins;
}

void report_w2(const Data& d, std::size_t n, std::size_t k, int reps) {
    std::fprintf(stderr, "bench: W2 n=%zu k=%zu\n", n, k);
    std::size_t expected_wins = 0;
    const std::vector<RemoteOp> ops = make_w2_ops(n, k, expected_wins);
    Best floor_t;
    Best geo_t;
    bool ok = true;
    std::optional<FloorMap> floor_state;
    alternate(
        reps,
        [&](int rep) {
            FloorMap map;
            const Stamp t0 = stamp();
            const std::size_t wins = floor_w2_writes(map, d, ops, n, k);
            const Stamp t1 = stamp();
            floor_t.add(between(t0, t1));
            note_rep("W2", "floor", rep, between(t0, t1), n);
            ok = ok && wins == expected_wins;
            if (rep == 0) {
                floor_state = std::move(map);
            }
        },
        [&](int rep) {
            auto geo = make_geo(geo::ConflictResolutionMode::LastWriterWins);
            const Stamp t0 = stamp();
            const std::size_t wins = geo_w2_writes(*geo, d, ops, n, k);
            const Stamp t1 = stamp();
            geo_t.add(between(t0, t1));
            note_rep("W2", "geo", rep, between(t0, t1), n);
            ok = ok && wins == expected_wins && geo->conflict_count() == n - expected_wins;
            if (rep == 0) {
                ok = ok && floor_state && same_state(*floor_state, *geo);
                floor_state.reset();
            }
        });
    const double nn = static_cast<double>(n);
    JsonLine("W2")
        .count("n", n)
        .count("k", k)
        .timing(geo_t, floor_t, nn, 1.5)
        .num("lose_fraction", static_cast<double>(n - expected_wins) / nn, 3)
        .flag("check", ok)
        .collect();
}

// ---- W3 -----------------------------------------------------------------------------------

// Clock of each write: the key's last clock plus one increment on node 1, 2 or 3 (random).
// With `concurrent_pct` > 0, that share of writes (after a key's first) instead increments a
// node other than the last writer's on the clock before the key's last one: concurrent with
// the stored clock (checked here), so it wins by its larger timestamp and raises a conflict.
// `nodes`, when given, receives the node each write increments (W3h replays them).
std::vector<geo::VectorClock> make_w3_clocks(std::size_t n, std::size_t k, int concurrent_pct,
                                             std::size_t& concurrent,
                                             std::vector<std::uint8_t>* nodes = nullptr) {
    std::mt19937_64 rng(0x5eed'0003);
    std::vector<geo::VectorClock> last(k);
    std::vector<geo::VectorClock> before_last(k);
    std::vector<geo::NodeId> last_node(k, 0);
    std::vector<geo::VectorClock> clocks;
    clocks.reserve(n);
    if (nodes != nullptr) {
        nodes->clear();
        nodes->reserve(n);
    }
    concurrent = 0;
    round_robin(n, k, [&](std::size_t key, std::size_t) {
        geo::VectorClock clock;
        geo::NodeId node = 1 + rng() % 3;
        bool is_concurrent = false;
        if (concurrent_pct > 0 && last_node[key] != 0 &&
            static_cast<int>(rng() % 100) < concurrent_pct) {
            geo::NodeId other = 1 + rng() % 2;
            other = other >= last_node[key] ? other + 1 : other; // any node but the last one
            clock = before_last[key];
            clock.increment(other);
            if (clock.compare(last[key]) == geo::ClockOrder::Concurrent) {
                is_concurrent = true;
                node = other;
            }
        }
        if (!is_concurrent) {
            clock = last[key];
            clock.increment(node);
        } else {
            ++concurrent;
        }
        before_last[key] = std::move(last[key]);
        last[key] = clock;
        last_node[key] = node;
        if (nodes != nullptr) {
            nodes->push_back(static_cast<std::uint8_t>(node));
        }
        clocks.push_back(std::move(clock));
    });
    return clocks;
}

// Moves clocks[i] into write i (the caller copies the pre-generated clocks before timing).
GEO_BENCH_NOINLINE std::size_t geo_w3_writes(geo::ActiveActiveReplicator& geo, const Data& d,
                                             std::vector<geo::VectorClock>& clocks, std::size_t n,
                                             std::size_t k) {
    const std::string* keys = d.keys.data();
    const std::string* values = d.values.data();
    std::size_t wins = 0;
    round_robin(n, k, [&](std::size_t key, std::size_t i) {
        const geo::GeoWriteOutcome out = geo.apply_local_write(
            kUs, keys[key], values[i % kValuePool], kT0 + i, std::move(clocks[i]));
        wins += std::holds_alternative<geo::Committed>(out) ? 1 : 0;
    });
    return wins;
}

void report_w3(const char* id, const Data& d, std::size_t n, std::size_t k, int reps,
               int concurrent_pct) {
    std::fprintf(stderr, "bench: %s n=%zu k=%zu concurrent=%d%%\n", id, n, k, concurrent_pct);
    std::size_t concurrent = 0;
    const std::vector<geo::VectorClock> clocks = make_w3_clocks(n, k, concurrent_pct, concurrent);
    Best floor_t;
    Best geo_t;
    bool ok = true;
    std::optional<FloorMap> floor_state;
    alternate(
        reps,
        [&](int rep) {
            FloorMap map;
            const Stamp t0 = stamp();
            floor_w1_writes(map, d, 0, n, k);
            const Stamp t1 = stamp();
            floor_t.add(between(t0, t1));
            note_rep(id, "floor", rep, between(t0, t1), n);
            if (rep == 0) {
                floor_state = std::move(map);
            }
        },
        [&](int rep) {
            auto geo = make_geo(geo::ConflictResolutionMode::VectorClock);
            std::vector<geo::VectorClock> work = clocks; // copied before the clock starts
            const Stamp t0 = stamp();
            const std::size_t wins = geo_w3_writes(*geo, d, work, n, k);
            const Stamp t1 = stamp();
            geo_t.add(between(t0, t1));
            note_rep(id, "geo", rep, between(t0, t1), n);
            ok = ok && wins == n && geo->conflict_count() == concurrent;
            if (rep == 0) {
                ok = ok && floor_state && same_state(*floor_state, *geo);
                floor_state.reset();
            }
        });
    const double nn = static_cast<double>(n);
    JsonLine(id)
        .count("n", n)
        .count("k", k)
        .timing(geo_t, floor_t, nn, std::string_view(id) == "W3" ? 2.0 : 3.0)
        .count("concurrent_pct", static_cast<std::uint64_t>(concurrent_pct))
        .num("concurrent_fraction", static_cast<double>(concurrent) / nn, 3)
        .flag("check", ok)
        .collect();
}

// ---- W3h ----------------------------------------------------------------------------------

// W3 with the clocks built by the host in the loop: `last[key]` is the key's last clock (empty
// before its first write); write i increments nodes[i] on it in place, keeping it for the key's
// next write, and passes a copy (apply_local_write takes the clock by value). One copy and one
// increment per write: what a host that keeps its keys' clocks pays. Copying first and
// incrementing the copy would need a second copy to keep the new clock.
GEO_BENCH_NOINLINE std::size_t geo_w3h_writes(geo::ActiveActiveReplicator& geo, const Data& d,
                                              const std::vector<std::uint8_t>& nodes,
                                              std::vector<geo::VectorClock>& last, std::size_t n,
                                              std::size_t k) {
    const std::string* keys = d.keys.data();
    const std::string* values = d.values.data();
    std::size_t wins = 0;
    round_robin(n, k, [&](std::size_t key, std::size_t i) {
        geo::VectorClock& clock = last[key];
        clock.increment(nodes[i]);
        const geo::GeoWriteOutcome out =
            geo.apply_local_write(kUs, keys[key], values[i % kValuePool], kT0 + i, clock);
        wins += std::holds_alternative<geo::Committed>(out) ? 1 : 0;
    });
    return wins;
}

void report_w3h(const Data& d, std::size_t n, std::size_t k, int reps) {
    std::fprintf(stderr, "bench: W3h n=%zu k=%zu\n", n, k);
    // W3's node sequence, and each key's final clock as W3 pre-generates it (empty if unwritten).
    std::vector<std::uint8_t> nodes;
    std::vector<geo::VectorClock> expected(k);
    {
        std::size_t concurrent = 0;
        std::vector<geo::VectorClock> clocks = make_w3_clocks(n, k, 0, concurrent, &nodes);
        round_robin(n, k,
                    [&](std::size_t key, std::size_t i) { expected[key] = std::move(clocks[i]); });
    }
    Best floor_t;
    Best geo_t;
    bool ok = true;
    std::optional<FloorMap> floor_state;
    alternate(
        reps,
        [&](int rep) {
            FloorMap map;
            const Stamp t0 = stamp();
            floor_w1_writes(map, d, 0, n, k);
            const Stamp t1 = stamp();
            floor_t.add(between(t0, t1));
            note_rep("W3h", "floor", rep, between(t0, t1), n);
            if (rep == 0) {
                floor_state = std::move(map);
            }
        },
        [&](int rep) {
            auto geo = make_geo(geo::ConflictResolutionMode::VectorClock);
            std::vector<geo::VectorClock> last(k); // the host's clocks, empty before the clock
            const Stamp t0 = stamp();
            const std::size_t wins = geo_w3h_writes(*geo, d, nodes, last, n, k);
            const Stamp t1 = stamp();
            geo_t.add(between(t0, t1));
            note_rep("W3h", "geo", rep, between(t0, t1), n);
            // Every write follows the stored clock: all win, none conflicts, and the host's
            // clocks end as W3's.
            ok = ok && wins == n && geo->conflict_count() == 0 && last == expected;
            if (rep == 0) {
                // The replicator stored the values of the floor and, for each key, the clock
                // of its last write.
                ok = ok && floor_state && same_state(*floor_state, *geo);
                floor_state.reset();
                for (std::size_t key = 0; ok && key < std::min(n, k); ++key) {
                    const std::optional<geo::GeoRecord> rec = geo->get_record(d.keys[key]);
                    ok = rec && rec->clock == expected[key];
                }
            }
        });
    const double nn = static_cast<double>(n);
    JsonLine("W3h")
        .count("n", n)
        .count("k", k)
        .timing(geo_t, floor_t, nn, 2.0)
        .flag("check", ok)
        .collect();
}

// ---- W4 -----------------------------------------------------------------------------------

struct Part {
    std::string_view region;
    std::size_t key_base;
    std::size_t k;
    std::size_t n;
};

// Wall time from the first thread's start to the last one's finish; the threads start together
// after a spin barrier, so thread creation is not timed.
template <class Work0, class Work1>
double run_two_threads(Work0&& work0, Work1&& work1) {
    std::atomic<int> ready{0};
    std::array<SteadyClock::time_point, 2> start{};
    std::array<SteadyClock::time_point, 2> end{};
    auto body = [&](std::size_t id, auto& work) {
        ready.fetch_add(1);
        while (ready.load() < 2) {
            std::this_thread::yield();
        }
        start[id] = SteadyClock::now();
        work();
        end[id] = SteadyClock::now();
    };
    std::thread t0([&] { body(0, work0); });
    std::thread t1([&] { body(1, work1); });
    t0.join();
    t1.join();
    return ns_between(std::min(start[0], start[1]), std::max(end[0], end[1]));
}

struct W4Figures {
    Best geo_1t; // wall times only: a thread's CPU time says nothing of a 2-thread wall clock
    Best geo_2t;
    Best floor_1t;
    Best floor_2t;
    bool ok = true;
};

W4Figures measure_w4(const Data& d, std::size_t n, std::size_t k, int reps) {
    const std::array<Part, 2> parts{Part{kUs, 0, k / 2, n / 2},
                                    Part{kEu, k / 2, k - k / 2, n - n / 2}};
    W4Figures fig;
    fig.ok = k >= 2;
    auto geo_part = [&](geo::ActiveActiveReplicator& geo, const Part& p, Batches& batches) {
        geo_w1_writes(geo, p.region, d, p.key_base, p.n, p.k);
        return geo_drain(geo, p.region, batches);
    };
    auto geo_check = [&](const geo::ActiveActiveReplicator& geo, std::size_t drained) {
        const std::size_t keys =
            std::min(parts[0].n, parts[0].k) + std::min(parts[1].n, parts[1].k);
        return geo.record_count() == keys && drained == 2 * keys &&
               geo.pending_fanout_len(kUs) == 0 && geo.pending_fanout_len(kEu) == 0;
    };
    auto add = [&](Best& into, const char* who, int rep, double wall) {
        into.add(Span{wall, kInf});
        note_rep("W4", who, rep, Span{wall, kInf}, n);
    };
    for (int rep = 0; rep < reps && fig.ok; ++rep) {
        {
            auto geo = make_geo(geo::ConflictResolutionMode::LastWriterWins);
            Batches batches;
            batches.reserve(4);
            const auto t0 = SteadyClock::now();
            std::size_t drained = geo_part(*geo, parts[0], batches);
            drained += geo_part(*geo, parts[1], batches);
            const auto t1 = SteadyClock::now();
            add(fig.geo_1t, "geo 1 thread", rep, ns_between(t0, t1));
            fig.ok = fig.ok && geo_check(*geo, drained);
        }
        {
            auto geo = make_geo(geo::ConflictResolutionMode::LastWriterWins);
            std::array<Batches, 2> batches;
            std::array<std::size_t, 2> drained{};
            batches[0].reserve(2);
            batches[1].reserve(2);
            const double wall =
                run_two_threads([&] { drained[0] = geo_part(*geo, parts[0], batches[0]); },
                                [&] { drained[1] = geo_part(*geo, parts[1], batches[1]); });
            add(fig.geo_2t, "geo 2 threads", rep, wall);
            fig.ok = fig.ok && geo_check(*geo, drained[0] + drained[1]);
        }
        {
            std::array<FloorMap, 2> maps;
            const auto t0 = SteadyClock::now();
            floor_w1_writes(maps[0], d, parts[0].key_base, parts[0].n, parts[0].k);
            floor_w1_writes(maps[1], d, parts[1].key_base, parts[1].n, parts[1].k);
            const auto t1 = SteadyClock::now();
            add(fig.floor_1t, "floor 1 thread", rep, ns_between(t0, t1));
        }
        {
            std::array<FloorMap, 2> maps;
            const double wall = run_two_threads(
                [&] { floor_w1_writes(maps[0], d, parts[0].key_base, parts[0].n, parts[0].k); },
                [&] { floor_w1_writes(maps[1], d, parts[1].key_base, parts[1].n, parts[1].k); });
            add(fig.floor_2t, "floor 2 threads", rep, wall);
        }
    }
    return fig;
}

// W4 (geo's speedup) and W4n (geo's speedup over the floor's), from one measurement.
void report_w4(const Data& d, std::size_t n, std::size_t k, int reps, bool w4, bool w4n) {
    std::fprintf(stderr, "bench: W4 n=%zu k=%zu\n", n, k);
    const W4Figures f = measure_w4(d, n, k, reps);
    const double nn = static_cast<double>(n);
    const double speedup = f.geo_1t.wall / f.geo_2t.wall;
    const double floor_speedup = f.floor_1t.wall / f.floor_2t.wall;
    if (w4) {
        JsonLine("W4")
            .count("n", n)
            .count("k", k)
            .count("threads", 2)
            .num("geo_1t_ns_per_op", f.geo_1t.wall / nn)
            .num("geo_2t_ns_per_op", f.geo_2t.wall / nn)
            .num("speedup", speedup, 3)
            .num("floor_1t_ns_per_op", f.floor_1t.wall / nn)
            .num("floor_2t_ns_per_op", f.floor_2t.wall / nn)
            .num("floor_speedup", floor_speedup, 3)
            .count("hardware_threads", std::thread::hardware_concurrency())
            .flag("check", f.ok)
            .collect();
    }
    if (w4n) {
        // Each repetition times all four back to back: the median of its own normalized
        // speedup is robust to the machine's load changing between repetitions.
        std::vector<double> normalized;
        for (std::size_t i = 0; i < f.floor_2t.walls.size(); ++i) {
            normalized.push_back((f.geo_1t.walls[i] / f.geo_2t.walls[i]) /
                                 (f.floor_1t.walls[i] / f.floor_2t.walls[i]));
        }
        JsonLine("W4n")
            .count("n", n)
            .count("k", k)
            .count("threads", 2)
            .num("speedup", speedup, 3)
            .num("floor_speedup", floor_speedup, 3)
            .num("ratio", speedup / floor_speedup, 3)
            .num("paired_median_ratio", median(std::move(normalized)), 3)
            .num("target", 0.85, 2)
            .count("hardware_threads", std::thread::hardware_concurrency())
            .flag("check", f.ok)
            .collect();
    }
}

// ---- D1 -----------------------------------------------------------------------------------

// ns per entry of peek_fanout(us-east-1, eu-west-1, batch) + acknowledge_fanout of it, over
// `entries` entries, with `queued` keys pending.
double measure_d1(const Data& d, std::size_t queued, std::size_t entries, int reps, bool& ok) {
    constexpr std::size_t batch = 100;
    double best = kInf;
    for (int rep = 0; rep < reps; ++rep) {
        auto geo = make_geo(geo::ConflictResolutionMode::LastWriterWins);
        geo_w1_writes(*geo, kUs, d, 0, queued, queued);
        std::size_t done = 0;
        const auto t0 = SteadyClock::now();
        while (done < entries) {
            const std::vector<geo::FanoutEntry> got =
                geo->peek_fanout(kUs, kEu, std::min(batch, entries - done));
            if (got.empty()) {
                break;
            }
            done += geo->acknowledge_fanout(kUs, kEu, got.back().seq);
        }
        const auto t1 = SteadyClock::now();
        ok = ok && done == entries && geo->pending_fanout_len(kUs, kEu) == queued - entries;
        best = std::min(best, ns_between(t0, t1) / static_cast<double>(entries));
    }
    return best;
}

void report_d1(const Data& d, std::size_t n, int reps) {
    const std::size_t small = std::max<std::size_t>(n / 100, 1);
    const std::size_t large = n;
    const std::size_t entries = std::min<std::size_t>(small, 10'000);
    std::fprintf(stderr, "bench: D1 queue=%zu and %zu, %zu entries\n", small, large, entries);
    bool ok = true;
    const double at_small = measure_d1(d, small, entries, reps, ok);
    const double at_large = measure_d1(d, large, entries, reps, ok);
    JsonLine("D1")
        .count("entries", entries)
        .count("queue_small", small)
        .count("queue_large", large)
        .num("ns_per_entry_small_queue", at_small)
        .num("ns_per_entry_large_queue", at_large)
        .num("large_over_small", at_large / at_small, 3)
        .flag("check", ok)
        .collect();
}

// ---- SN1 / SN2 / SN3: snapshots -----------------------------------------------------------

// Where SN1's snapshot goes: an output streambuf that appends to a std::string, which grows as
// std::string does (no reserve), like the string nlohmann's dump() writes into. Used instead
// of std::ostringstream, whose str() would add a copy of the whole snapshot.
class StringSink : public std::streambuf {
public:
    explicit StringSink(std::string& out) : out_(out) {}

protected:
    std::streamsize xsputn(const char* s, std::streamsize n) override {
        out_.append(s, static_cast<std::size_t>(n));
        return n;
    }
    int_type overflow(int_type c) override {
        if (!traits_type::eq_int_type(c, traits_type::eof())) {
            out_.push_back(traits_type::to_char_type(c));
        }
        return traits_type::not_eof(c);
    }

private:
    std::string& out_;
};

// Where SN2's restore reads from: an input streambuf over bytes held elsewhere, without a copy
// (std::istringstream would copy the snapshot into itself first).
class MemorySource : public std::streambuf {
public:
    explicit MemorySource(std::string_view bytes) {
        char* p = const_cast<char*>(bytes.data()); // only ever read
        setg(p, p, p + bytes.size());
    }
};

// The state SN1, SN2 and SN3 start from: K keys written once in us-east-1 (W1's keys, values
// and timestamps kT0 + i), not drained, so the queue holds all K entries owed to both peers;
// the floor map holds the same K records.
struct SnSetup {
    std::size_t k = 0;
    std::unique_ptr<geo::ActiveActiveReplicator> geo;
    FloorMap floor;
    std::uint64_t digest = 0;
    std::string snapshot;   // a snapshot of `geo` (SN1's first, or taken for SN2 alone)
    std::string floor_json; // the floor's dump of the same records
    bool ok = true;
};

GEO_BENCH_NOINLINE void geo_sn1_snapshot(const geo::ActiveActiveReplicator& geo,
                                         std::string& out) {
    StringSink sink(out);
    std::ostream stream(&sink);
    geo.snapshot(stream);
}

// The floor of SN1: an array of {"key", "value", "timestamp_ms"} objects, built and dumped.
// The document is returned through `doc` so that it is destroyed outside the clock.
GEO_BENCH_NOINLINE std::string floor_sn1_dump(const FloorMap& map, nlohmann::json& doc) {
    doc = nlohmann::json::array();
    auto& array = doc.get_ref<nlohmann::json::array_t&>();
    array.reserve(map.size());
    for (const auto& [key, rec] : map) {
        nlohmann::json object = nlohmann::json::object();
        object["key"] = key;
        object["value"] = rec.value;
        object["timestamp_ms"] = rec.ts;
        array.push_back(std::move(object));
    }
    return doc.dump();
}

GEO_BENCH_NOINLINE void geo_sn2_restore(geo::ActiveActiveReplicator& fresh,
                                        std::string_view bytes) {
    MemorySource source(bytes);
    std::istream stream(&source);
    fresh.restore(stream);
}

GEO_BENCH_NOINLINE nlohmann::json floor_sn2_parse(const std::string& text) {
    return nlohmann::json::parse(text);
}

// SN2's second floor figure: the parsed document materialized into the floor's map.
GEO_BENCH_NOINLINE void floor_sn2_materialize(const nlohmann::json& doc, FloorMap& map) {
    for (const nlohmann::json& object : doc) {
        map.try_emplace(object.at("key").get_ref<const std::string&>(),
                        Record{object.at("value").get_ref<const std::string&>(),
                               object.at("timestamp_ms").get<std::uint64_t>()});
    }
}

SnSetup make_sn_setup(const Data& d, std::size_t k) {
    SnSetup s;
    s.k = k;
    s.geo = make_geo(geo::ConflictResolutionMode::LastWriterWins);
    geo_w1_writes(*s.geo, kUs, d, 0, k, k);
    floor_w1_writes(s.floor, d, 0, k, k);
    s.digest = s.geo->records_digest();
    s.ok = s.geo->record_count() == k && s.geo->pending_fanout_len(kUs, kEu) == k &&
           s.geo->pending_fanout_len(kUs, kAp) == k && same_state(s.floor, *s.geo);
    return s;
}

// The floor's JSON text holds exactly the floor's records.
bool floor_json_matches(const SnSetup& s, const nlohmann::json& doc) {
    FloorMap back;
    floor_sn2_materialize(doc, back);
    if (doc.size() != s.floor.size() || back.size() != s.floor.size()) {
        return false;
    }
    for (const auto& [key, rec] : s.floor) {
        const auto it = back.find(key);
        if (it == back.end() || it->second.value != rec.value || it->second.ts != rec.ts) {
            return false;
        }
    }
    return true;
}

void report_sn1(SnSetup& s, int reps) {
    std::fprintf(stderr, "bench: SN1 k=%zu\n", s.k);
    Best floor_t;
    Best geo_t;
    bool ok = s.ok;
    std::string first_snapshot;
    std::string first_json;
    alternate(
        reps,
        [&](int rep) {
            nlohmann::json doc;
            const Stamp t0 = stamp();
            std::string text = floor_sn1_dump(s.floor, doc);
            const Stamp t1 = stamp();
            floor_t.add(between(t0, t1));
            note_rep("SN1", "floor", rep, between(t0, t1), s.k);
            if (first_json.empty()) {
                ok = ok && doc.size() == s.k;
                first_json = std::move(text);
            }
        },
        [&](int rep) {
            std::string out;
            const Stamp t0 = stamp();
            geo_sn1_snapshot(*s.geo, out);
            const Stamp t1 = stamp();
            geo_t.add(between(t0, t1));
            note_rep("SN1", "geo", rep, between(t0, t1), s.k);
            // Canonical bytes: every repetition writes the same snapshot.
            if (first_snapshot.empty()) {
                first_snapshot = std::move(out);
            } else {
                ok = ok && out == first_snapshot;
            }
        });
    ok = ok && !first_snapshot.empty() && s.geo->records_digest() == s.digest &&
         floor_json_matches(s, nlohmann::json::parse(first_json));
    const double kk = static_cast<double>(s.k);
    JsonLine("SN1")
        .count("k", s.k)
        .timing(geo_t, floor_t, kk, 1.0)
        .str("sink", "std::streambuf appending to a std::string (no reserve)")
        .count("snapshot_bytes", first_snapshot.size())
        .count("floor_json_bytes", first_json.size())
        .num("geo_ms", geo_t.wall / 1e6, 3)
        .flag("check", ok)
        .collect();
    s.snapshot = std::move(first_snapshot);
    s.floor_json = std::move(first_json);
}

void report_sn2(SnSetup& s, int reps) {
    std::fprintf(stderr, "bench: SN2 k=%zu\n", s.k);
    if (s.snapshot.empty()) { // SN1 did not run: take the inputs outside any clock
        geo_sn1_snapshot(*s.geo, s.snapshot);
        nlohmann::json doc;
        s.floor_json = floor_sn1_dump(s.floor, doc);
    }
    Best floor_t;     // parse
    Best floor_map_t; // parse + materialize into an unordered_map<string, Record>
    Best geo_t;
    bool ok = s.ok;
    alternate(
        reps,
        [&](int rep) {
            FloorMap map;
            const Stamp t0 = stamp();
            const nlohmann::json doc = floor_sn2_parse(s.floor_json);
            const Stamp t1 = stamp();
            floor_sn2_materialize(doc, map);
            const Stamp t2 = stamp();
            floor_t.add(between(t0, t1));
            floor_map_t.add(between(t0, t2));
            note_rep("SN2", "floor parse", rep, between(t0, t1), s.k);
            note_rep("SN2", "floor parse+map", rep, between(t0, t2), s.k);
            ok = ok && doc.size() == s.k && map.size() == s.k;
        },
        [&](int rep) {
            auto fresh = make_geo(geo::ConflictResolutionMode::LastWriterWins);
            const Stamp t0 = stamp();
            geo_sn2_restore(*fresh, s.snapshot);
            const Stamp t1 = stamp();
            geo_t.add(between(t0, t1));
            note_rep("SN2", "geo", rep, between(t0, t1), s.k);
            // The restored replicator holds the same records and snapshots to the same bytes.
            ok = ok && fresh->record_count() == s.k && fresh->records_digest() == s.digest &&
                 fresh->pending_fanout_len(kUs, kEu) == s.k &&
                 fresh->pending_fanout_len(kUs, kAp) == s.k;
            if (rep == 0) {
                std::string again;
                geo_sn1_snapshot(*fresh, again);
                ok = ok && again == s.snapshot;
            }
        });
    const double kk = static_cast<double>(s.k);
    JsonLine("SN2")
        .count("k", s.k)
        .timing(geo_t, floor_t, kk, 1.0)
        .str("source", "std::streambuf over the snapshot's bytes (no copy)")
        .num("floor_parse_map_ns_per_op", floor_map_t.wall / kk)
        .num("ratio_vs_parse_and_map", geo_t.wall / floor_map_t.wall, 3)
        .num("geo_ms", geo_t.wall / 1e6, 3)
        .flag("check", ok)
        .collect();
}

// One SN3 run: a writer thread writes random keys while the main thread takes a snapshot.
struct PauseRun {
    double max_ns = 0;    // the longest write that overlapped the snapshot
    double median_ns = 0; // the median of those writes
    std::size_t writes = 0;
    double snapshot_ns = 0;
};

// Latencies (ns) of the writes that overlap the snapshot, at most kPauseSamples of them kept
// for the median (the buffer is allocated before the run: no reallocation in the writer's
// loop); the maximum covers every write.
constexpr std::size_t kPauseSamples = std::size_t{1} << 22;

PauseRun run_pause(geo::ActiveActiveReplicator& geo, const Data& d,
                   const std::vector<std::uint32_t>& picks, std::uint64_t& next_ts,
                   std::vector<std::uint32_t>& samples, std::string& snapshot_out) {
    auto now_ns = [] {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(
                   SteadyClock::now().time_since_epoch())
            .count();
    };
    std::atomic<std::int64_t> snap_start{0}; // 0: not yet started
    std::atomic<std::int64_t> snap_end{0};   // 0: not yet finished
    std::atomic<bool> warm{false};
    samples.clear();
    PauseRun run;
    std::size_t done = 0;
    const std::uint64_t ts0 = next_ts;
    std::thread writer([&] {
        std::int64_t max_ns = 0;
        std::size_t overlapping = 0;
        for (std::size_t i = 0;; ++i) {
            const std::string& key = d.keys[picks[i % picks.size()]];
            const std::int64_t a = now_ns();
            geo.apply_local_write(kUs, key, d.values[i % kValuePool], ts0 + i);
            const std::int64_t b = now_ns();
            if (i == 1000) {
                warm.store(true, std::memory_order_release);
            }
            const std::int64_t end = snap_end.load(std::memory_order_acquire);
            if (end != 0 && a > end) {
                done = i + 1;
                break;
            }
            const std::int64_t start = snap_start.load(std::memory_order_acquire);
            if (start != 0 && b >= start) { // overlaps [start, end]
                ++overlapping;
                max_ns = std::max(max_ns, b - a);
                if (samples.size() < kPauseSamples) {
                    samples.push_back(static_cast<std::uint32_t>(
                        std::min<std::int64_t>(b - a, std::numeric_limits<std::uint32_t>::max())));
                }
            }
        }
        run.max_ns = static_cast<double>(max_ns);
        run.writes = overlapping;
    });
    while (!warm.load(std::memory_order_acquire)) {
        std::this_thread::yield();
    }
    const std::int64_t s0 = now_ns();
    snap_start.store(s0, std::memory_order_release);
    geo_sn1_snapshot(geo, snapshot_out);
    const std::int64_t s1 = now_ns();
    snap_end.store(s1, std::memory_order_release);
    writer.join();
    next_ts += done;
    run.snapshot_ns = static_cast<double>(s1 - s0);
    std::vector<double> latencies(samples.begin(), samples.end());
    run.median_ns = median(std::move(latencies));
    return run;
}

// SN3 modifies the replicator (its writer overwrites existing keys): it runs after SN1 and SN2.
void report_sn3(SnSetup& s, const Data& d, int reps) {
    std::fprintf(stderr, "bench: SN3 k=%zu\n", s.k);
    std::vector<std::uint32_t> picks(std::size_t{1} << 20);
    std::mt19937_64 rng(0x5eed'0053);
    for (auto& p : picks) {
        p = static_cast<std::uint32_t>(rng() % s.k);
    }
    std::vector<std::uint32_t> samples;
    samples.reserve(kPauseSamples);
    std::uint64_t next_ts = kT0 + s.k; // above every timestamp written so far: writes win
    bool ok = s.ok;
    std::optional<PauseRun> best;
    double best_quiet_ns = kInf;
    double best_ratio = kInf;
    std::vector<double> ratios;
    double quiet_min_ns = kInf;
    for (int rep = 0; rep < reps; ++rep) {
        std::string quiet;
        const Stamp t0 = stamp();
        geo_sn1_snapshot(*s.geo, quiet); // the same snapshot with no writer: SN1's total time
        const Stamp t1 = stamp();
        const double quiet_ns = between(t0, t1).wall;
        quiet_min_ns = std::min(quiet_min_ns, quiet_ns);
        std::string concurrent;
        const PauseRun run = run_pause(*s.geo, d, picks, next_ts, samples, concurrent);
        // A repetition where no write overlapped the snapshot measured nothing: skipped.
        const double ratio = run.writes > 0 ? run.max_ns / quiet_ns : kInf;
        if (run.writes > 0) {
            ratios.push_back(ratio);
        }
        if (g_verbose) {
            std::fprintf(stderr,
                         "  SN3 rep %d: snapshot %.3f ms quiet, %.3f ms with the writer; max "
                         "pause %.3f ms, median write %.0f ns over %zu writes\n",
                         rep, quiet_ns / 1e6, run.snapshot_ns / 1e6, run.max_ns / 1e6,
                         run.median_ns, run.writes);
        }
        // Not checked: that a write overlapped the snapshot (at a tiny K, a writer preempted
        // for the whole snapshot overlaps none; writes_during_snapshot says so).
        ok = ok && s.geo->record_count() == s.k;
        if (rep == 0) {
            // What the snapshot taken next to the writer holds is a consistent state.
            auto fresh = make_geo(geo::ConflictResolutionMode::LastWriterWins);
            try {
                geo_sn2_restore(*fresh, concurrent);
                ok = ok && fresh->record_count() == s.k;
            } catch (const std::exception& e) {
                std::fprintf(stderr, "bench: SN3 restore failed: %s\n", e.what());
                ok = false;
            }
        }
        if (ratio < best_ratio) {
            best_ratio = ratio;
            best = run;
            best_quiet_ns = quiet_ns;
        }
    }
    JsonLine line("SN3");
    line.count("k", s.k);
    if (!best) { // no repetition had a write overlap the snapshot (a tiny K): no figure
        line.num("snapshot_ms", quiet_min_ns / 1e6, 3)
            .count("writes_during_snapshot", 0)
            .flag("check", ok)
            .collect();
        return;
    }
    line.num("max_pause_ms", best->max_ns / 1e6, 3)
        .num("snapshot_ms", best_quiet_ns / 1e6, 3)
        .num("ratio", best_ratio, 3)
        .num("paired_median_ratio", median(ratios), 3)
        .num("target", 0.25, 2)
        .num("concurrent_snapshot_ms", best->snapshot_ns / 1e6, 3)
        .num("median_write_ns", best->median_ns, 0)
        .count("writes_during_snapshot", best->writes)
        .num("min_quiet_snapshot_ms", quiet_min_ns / 1e6, 3)
        .flag("check", ok)
        .collect();
}

// ---- WIRE ---------------------------------------------------------------------------------

constexpr std::size_t kWireEntries = 10'000;

// The floor's entry: FanoutEntry's fields, flat, with the clock as a map, and hand-written
// conversions (the clock as an object keyed by decimal node ids, as geo writes it).
struct PlainEntry {
    std::string key;
    std::string region;
    std::uint64_t timestamp_ms{};
    std::map<std::uint64_t, std::uint64_t> clock;
    std::string value;
    std::uint64_t seq{};
    bool deleted{};
    std::uint64_t prev_seq{};
    friend bool operator==(const PlainEntry& a, const PlainEntry& b) {
        return a.key == b.key && a.region == b.region && a.timestamp_ms == b.timestamp_ms &&
               a.clock == b.clock && a.value == b.value && a.seq == b.seq &&
               a.deleted == b.deleted && a.prev_seq == b.prev_seq;
    }
};

void to_json(nlohmann::json& j, const PlainEntry& e) {
    nlohmann::json clock = nlohmann::json::object();
    for (const auto& [node, counter] : e.clock) {
        clock[std::to_string(node)] = counter;
    }
    j = nlohmann::json::object();
    j["key"] = e.key;
    j["region"] = e.region;
    j["timestamp_ms"] = e.timestamp_ms;
    j["clock"] = std::move(clock);
    j["value"] = e.value;
    j["seq"] = e.seq;
    j["deleted"] = e.deleted;
    j["prev_seq"] = e.prev_seq;
}

void from_json(const nlohmann::json& j, PlainEntry& e) {
    j.at("key").get_to(e.key);
    j.at("region").get_to(e.region);
    j.at("timestamp_ms").get_to(e.timestamp_ms);
    e.clock.clear();
    for (const auto& [node, counter] : j.at("clock").items()) {
        e.clock[std::stoull(node)] = counter.get<std::uint64_t>();
    }
    j.at("value").get_to(e.value);
    j.at("seq").get_to(e.seq);
    j.at("deleted").get_to(e.deleted);
    j.at("prev_seq").get_to(e.prev_seq);
}

// Entry i: W1's key i and value, written in us-east-1 at kT0 + i with seq i + 1 (following
// seq i), a clock of 3 nodes; every 50th is a tombstone (empty value).
std::vector<geo::FanoutEntry> make_wire_entries(const Data& d, std::size_t count) {
    std::vector<geo::FanoutEntry> entries(count);
    for (std::size_t i = 0; i < count; ++i) {
        geo::FanoutEntry& e = entries[i];
        e.key = d.keys[i % d.keys.size()];
        e.seq = i + 1;
        e.prev_seq = i;
        e.record.region = std::string(kUs);
        e.record.timestamp_ms = kT0 + i;
        e.record.seq = e.seq;
        e.record.deleted = i % 50 == 49;
        e.record.value = e.record.deleted ? std::string() : d.values[i % kValuePool];
        e.record.clock = geo::VectorClock{{1, 1 + i % 7}, {2, 1 + i % 5}, {3, 1 + i % 3}};
    }
    return entries;
}

PlainEntry plain_of(const geo::FanoutEntry& e) {
    PlainEntry p;
    p.key = e.key;
    p.region = e.record.region;
    p.timestamp_ms = e.record.timestamp_ms;
    for (const auto& [node, counter] : e.record.clock.entries()) {
        p.clock[node] = counter;
    }
    p.value = e.record.value;
    p.seq = e.seq;
    p.deleted = e.record.deleted;
    p.prev_seq = e.prev_seq;
    return p;
}

// Returns the text's size; `out` receives the decoded batch (destroyed by the caller, outside
// the clock). The text and the intermediate documents die inside, for geo and floor alike.
GEO_BENCH_NOINLINE std::size_t geo_wire_roundtrip(const std::vector<geo::FanoutEntry>& in,
                                                  std::vector<geo::FanoutEntry>& out) {
    const std::string text = geo::to_json_text(in);
    out = geo::from_json_text<std::vector<geo::FanoutEntry>>(text);
    return text.size();
}

GEO_BENCH_NOINLINE std::size_t floor_wire_roundtrip(const std::vector<PlainEntry>& in,
                                                    std::vector<PlainEntry>& out) {
    const std::string text = nlohmann::json(in).dump();
    out = nlohmann::json::parse(text).get<std::vector<PlainEntry>>();
    return text.size();
}

void report_wire(const Data& d, int reps) {
    std::fprintf(stderr, "bench: WIRE entries=%zu\n", kWireEntries);
    const std::vector<geo::FanoutEntry> entries = make_wire_entries(d, kWireEntries);
    std::vector<PlainEntry> plain;
    plain.reserve(entries.size());
    for (const geo::FanoutEntry& e : entries) {
        plain.push_back(plain_of(e));
    }
    Best floor_t;
    Best geo_t;
    bool ok = true;
    std::size_t geo_bytes = 0;
    std::size_t floor_bytes = 0;
    alternate(
        reps,
        [&](int rep) {
            std::vector<PlainEntry> out;
            const Stamp t0 = stamp();
            floor_bytes = floor_wire_roundtrip(plain, out);
            const Stamp t1 = stamp();
            floor_t.add(between(t0, t1));
            note_rep("WIRE", "floor", rep, between(t0, t1), kWireEntries);
            ok = ok && out == plain;
        },
        [&](int rep) {
            std::vector<geo::FanoutEntry> out;
            const Stamp t0 = stamp();
            geo_bytes = geo_wire_roundtrip(entries, out);
            const Stamp t1 = stamp();
            geo_t.add(between(t0, t1));
            note_rep("WIRE", "geo", rep, between(t0, t1), kWireEntries);
            ok = ok && out == entries;
        });
    const double nn = static_cast<double>(kWireEntries);
    JsonLine("WIRE")
        .count("entries", kWireEntries)
        .timing(geo_t, floor_t, nn, 1.5)
        .num("geo_bytes_per_entry", static_cast<double>(geo_bytes) / nn, 1)
        .num("floor_bytes_per_entry", static_cast<double>(floor_bytes) / nn, 1)
        .flag("check", ok)
        .collect();
}

// ---- M1 -----------------------------------------------------------------------------------

#if GEO_BENCH_LINUX
long status_kb(const char* field) {
    std::ifstream in("/proc/self/status");
    std::string line;
    const std::string_view name(field);
    while (std::getline(in, line)) {
        if (line.compare(0, name.size(), name) == 0) {
            return std::strtol(line.c_str() + name.size(), nullptr, 10);
        }
    }
    return -1;
}

// The child: prints "<rss before> <peak rss> <rss after>" in kB.
int m1_child(const Options& o) {
    const bool use_geo = o.m1_child == "geo";
    if (!use_geo && o.m1_child != "floor") {
        return 2;
    }
    const Data d = make_data(o.k);
    FloorMap map;
    std::unique_ptr<geo::ActiveActiveReplicator> geo;
    if (use_geo) {
        geo = make_geo(geo::ConflictResolutionMode::LastWriterWins);
    }
    {
        std::ofstream clear("/proc/self/clear_refs");
        clear << "5"; // resets VmHWM to the current RSS (Linux >= 4.0); harmless if refused
    }
    const long before = status_kb("VmRSS:");
    if (use_geo) {
        geo_w1_writes(*geo, kUs, d, 0, o.n, o.k);
    } else {
        floor_w1_writes(map, d, 0, o.n, o.k);
    }
    const long peak = status_kb("VmHWM:");
    const long after = status_kb("VmRSS:");
    std::printf("%ld %ld %ld\n", before, std::max(peak, after), after);
    const std::size_t stored = use_geo ? geo->record_count() : map.size();
    return stored == std::min(o.n, o.k) ? 0 : 3;
}

struct ChildMemory {
    long before_kb = 0;
    long peak_kb = 0;
    long after_kb = 0;
};

std::optional<ChildMemory> spawn_m1(const Options& o, const char* mode) {
    std::vector<std::string> args{
        "bench_replicator", "--m1-child", mode, "--n", std::to_string(o.n), "--k",
        std::to_string(o.k)};
    std::vector<char*> argv;
    for (auto& arg : args) {
        argv.push_back(arg.data());
    }
    argv.push_back(nullptr);
    int fds[2];
    if (pipe(fds) != 0) {
        return std::nullopt;
    }
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return std::nullopt;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv("/proc/self/exe", argv.data());
        _exit(127);
    }
    close(fds[1]);
    std::string out;
    char buf[256];
    for (ssize_t got; (got = read(fds[0], buf, sizeof buf)) > 0;) {
        out.append(buf, static_cast<std::size_t>(got));
    }
    close(fds[0]);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return std::nullopt;
    }
    ChildMemory m;
    if (std::sscanf(out.c_str(), "%ld %ld %ld", &m.before_kb, &m.peak_kb, &m.after_kb) != 3) {
        return std::nullopt;
    }
    return m;
}
#endif

void report_m1(const Options& o) {
    std::fprintf(stderr, "bench: M1 n=%zu k=%zu\n", o.n, o.k);
#if GEO_BENCH_LINUX
    const std::optional<ChildMemory> g = spawn_m1(o, "geo");
    const std::optional<ChildMemory> f = spawn_m1(o, "floor");
    JsonLine line("M1");
    line.count("n", o.n).count("k", o.k);
    if (!g || !f) {
        line.flag("check", false).str("error", "child process failed").collect();
        return;
    }
    const double geo_bytes = 1024.0 * static_cast<double>(g->peak_kb - g->before_kb);
    const double floor_bytes = 1024.0 * static_cast<double>(f->peak_kb - f->before_kb);
    const double keys = static_cast<double>(std::min(o.n, o.k));
    line.num("geo_bytes", geo_bytes, 0)
        .num("floor_bytes", floor_bytes, 0)
        .num("ratio", geo_bytes / floor_bytes, 3)
        .num("target", 1.5, 1)
        .num("geo_bytes_per_key", geo_bytes / keys, 1)
        .num("floor_bytes_per_key", floor_bytes / keys, 1)
        .num("geo_retained_bytes", 1024.0 * static_cast<double>(g->after_kb - g->before_kb), 0)
        .num("floor_retained_bytes", 1024.0 * static_cast<double>(f->after_kb - f->before_kb), 0)
        .flag("check", true)
        .collect();
#else
    JsonLine("M1").str("error", "needs /proc (Linux)").flag("check", false).collect();
#endif
}

// ---- main ---------------------------------------------------------------------------------

std::string cpu_model() {
#if GEO_BENCH_LINUX
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("model name", 0) == 0) {
            const std::size_t colon = line.find(':');
            return colon == std::string::npos ? line : line.substr(colon + 2);
        }
    }
#endif
    return "unknown";
}

// ---- output: table and JSON ---------------------------------------------------------------

// Which fields of a result fill the table's value and ratio columns, and which way its target
// points. Most workloads compare geo with the floor in ns per op, lower is better.
struct TableView {
    std::string_view geo;   // under "geo ns/op"
    std::string_view floor; // under "floor ns/op"
    std::string_view ratio;
    bool higher_is_better;
};

TableView table_view(std::string_view workload) {
    if (workload == "W4") { // 1 thread vs 2 threads; the ratio is the speedup
        return {"geo_1t_ns_per_op", "geo_2t_ns_per_op", "speedup", true};
    }
    if (workload == "W4n") { // geo's speedup vs the floor's; the ratio is geo's over the floor's
        return {"speedup", "floor_speedup", "ratio", true};
    }
    if (workload == "M1") {
        return {"geo_bytes_per_key", "floor_bytes_per_key", "ratio", false};
    }
    if (workload == "D1") { // short queue vs long queue; no target
        return {"ns_per_entry_small_queue", "ns_per_entry_large_queue", "large_over_small", false};
    }
    if (workload == "SN3") { // the writer's longest pause vs the snapshot's time, in ms
        return {"max_pause_ms", "snapshot_ms", "ratio", false};
    }
    return {"geo_ns_per_op", "floor_ns_per_op", "ratio", false};
}

std::string table_note(const JsonLine& r) {
    const std::string w = r.text("workload");
    if (r.has("error")) {
        return "error: " + r.text("error");
    }
    if (w == "W1" || w == "S1") {
        return "drain " + r.cell("drain_ns_per_entry") + " ns/entry";
    }
    if (w == "W2") {
        return "lose_fraction " + r.cell("lose_fraction");
    }
    if (w == "W3c") {
        return "concurrent " + r.cell("concurrent_fraction");
    }
    if (w == "W4") {
        return "floor_speedup " + r.cell("floor_speedup");
    }
    if (w == "W4n") {
        return "paired_median " + r.cell("paired_median_ratio");
    }
    if (w == "M1") {
        return "bytes per key";
    }
    if (w == "D1") {
        return "queue " + r.cell("queue_small") + " | " + r.cell("queue_large");
    }
    if (w == "SN1") {
        return "bytes " + r.cell("snapshot_bytes") + " | " + r.cell("floor_json_bytes");
    }
    if (w == "SN2") {
        return "vs parse+map " + r.cell("ratio_vs_parse_and_map");
    }
    if (w == "SN3") {
        if (r.number("writes_during_snapshot") == 0.0) {
            return "no write overlapped the snapshot";
        }
        return "median write " + r.cell("median_write_ns") + " ns";
    }
    if (w == "WIRE") {
        return r.cell("entries") + " entries, bytes/entry " + r.cell("geo_bytes_per_entry") +
               " | " + r.cell("floor_bytes_per_entry");
    }
    return {};
}

std::vector<std::string> table_row(const JsonLine& r) {
    const std::string workload = r.text("workload");
    const TableView v = table_view(workload);
    const std::optional<double> ratio = r.number(v.ratio);
    const std::optional<double> target = r.number("target");
    std::string target_cell = "-";
    std::string met = "-";
    if (target) {
        target_cell = (v.higher_is_better ? ">= " : "<= ") + r.cell("target");
        if (ratio) {
            met = (v.higher_is_better ? *ratio >= *target : *ratio <= *target) ? "yes" : "NO";
        }
    }
    return {workload,
            r.cell("n"),
            r.cell("k"),
            r.cell(v.geo),
            r.cell(v.floor),
            r.cell(v.ratio),
            target_cell,
            met,
            r.check_failed() ? "FAILED" : (r.has("check") ? "ok" : "-"),
            table_note(r)};
}

void print_table(const JsonLine& meta, const std::vector<JsonLine>& results) {
    std::printf("bench_replicator: %s, %s hardware threads; compiler %s, C++ %s%s\n",
                meta.text("cpu").c_str(), meta.text("hardware_threads").c_str(),
                meta.text("compiler").c_str(), meta.text("cplusplus").c_str(),
                meta.text("ndebug") == "true" ? ", NDEBUG" : ", assertions on");
    std::printf("n = %s writes over k = %s keys; reps = %s, minimum wall time kept\n\n",
                meta.text("n").c_str(), meta.text("k").c_str(), meta.text("reps").c_str());

    const std::vector<std::string> header{"workload", "n",      "k",   "geo ns/op", "floor ns/op",
                                          "ratio",    "target", "met", "check",     "note"};
    constexpr std::array<bool, 10> right_aligned{false, true, true,  true,  true,
                                                 true,  true, false, false, false};
    std::vector<std::vector<std::string>> rows{header};
    for (const JsonLine& r : results) {
        rows.push_back(table_row(r));
    }
    std::array<std::size_t, 10> width{};
    for (const auto& row : rows) {
        for (std::size_t c = 0; c < width.size(); ++c) {
            width[c] = std::max(width[c], row[c].size());
        }
    }
    std::vector<std::string> lines;
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t c = 0; c < width.size(); ++c) {
            const std::string pad(width[c] - row[c].size(), ' ');
            line += c == 0 ? "" : "  ";
            line += right_aligned[c] ? pad + row[c] : row[c] + pad;
        }
        while (!line.empty() && line.back() == ' ') {
            line.pop_back();
        }
        lines.push_back(std::move(line));
    }
    std::size_t rule = 0;
    for (const std::string& line : lines) {
        rule = std::max(rule, line.size());
    }
    lines.insert(lines.begin() + 1, std::string(rule, '-'));
    for (const std::string& line : lines) {
        std::printf("%s\n", line.c_str());
    }

    auto present = [&](std::string_view workload) {
        return std::any_of(results.begin(), results.end(),
                           [&](const JsonLine& r) { return r.text("workload") == workload; });
    };
    std::printf("\nratio = geo / floor, met if ratio <= target; check: the result was verified.\n");
    if (present("W4")) {
        std::printf("W4: ns/op on 1 thread | 2 threads, ratio = speedup, met if >= target.\n");
    }
    if (present("W4n")) {
        std::printf("W4n: 2-thread speedup, geo | floor, ratio = geo's / floor's, met if >= "
                    "target.\n");
    }
    if (present("M1")) {
        std::printf("M1: peak bytes per key, geo | floor.\n");
    }
    if (present("D1")) {
        std::printf(
            "D1: ns per entry drained with a short | long queue pending; ratio = long / short,"
            "\n    which should not grow with the queue.\n");
    }
    if (present("SN1") || present("SN2")) {
        std::printf("SN1, SN2: ns per key; floor = nlohmann::json dump | parse of the same "
                    "records.\n");
    }
    if (present("SN3")) {
        std::printf("SN3: the longest write held during a snapshot | the snapshot alone, in ms;"
                    "\n    ratio = pause / snapshot.\n");
    }
    if (present("WIRE")) {
        std::printf("WIRE: ns per FanoutEntry, to JSON text and back.\n");
    }
    std::fflush(stdout);
}

// {"meta": {...}, "results": [{...}, ...]}, one result per line.
std::string results_json(const JsonLine& meta, const std::vector<JsonLine>& results) {
    std::string out = "{\n  \"meta\": " + meta.object() + ",\n  \"results\": [";
    for (std::size_t i = 0; i < results.size(); ++i) {
        out += i == 0 ? "\n    " : ",\n    ";
        out += results[i].object();
    }
    out += results.empty() ? "]\n}\n" : "\n  ]\n}\n";
    return out;
}

bool write_file(const std::string& path, const std::string& text) {
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) {
        return false;
    }
    const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    return std::fclose(f) == 0 && written;
}

} // namespace

int main(int argc, char** argv) {
    const Options o = parse_options(argc, argv);
    g_verbose = o.verbose;
#if GEO_BENCH_LINUX
    if (!o.m1_child.empty()) {
        return m1_child(o);
    }
#endif
    // Fail before the run, not after it, when the JSON file cannot be written (mode "a" does not
    // truncate an existing file; it is rewritten at the end).
    const bool to_stdout = o.json == "-";
    if (!to_stdout) {
        std::FILE* f = std::fopen(o.json.c_str(), "a");
        if (f == nullptr) {
            std::fprintf(stderr, "bench_replicator: cannot write %s: %s\n", o.json.c_str(),
                         std::strerror(errno));
            return 2;
        }
        std::fclose(f);
    }
#ifdef NDEBUG
    constexpr bool ndebug = true;
#else
    constexpr bool ndebug = false;
#endif
    JsonLine("meta")
        .str("compiler", __VERSION__)
        .count("cplusplus", static_cast<std::uint64_t>(__cplusplus))
        .flag("ndebug", ndebug)
        .str("cpu", cpu_model())
        .count("hardware_threads", std::thread::hardware_concurrency())
        .count("n", o.n)
        .count("k", o.k)
        .count("reps", static_cast<std::uint64_t>(o.reps))
        .str("timing", "min over reps, ns per op; ratio = geo / floor")
        .collect();

    const std::size_t s1_keys = std::max<std::size_t>(o.n, 1);
    const bool sn = selected(o, "SN1") || selected(o, "SN2") || selected(o, "SN3");
    std::size_t data_keys = o.k;
    if (selected(o, "S1") || selected(o, "D1")) {
        data_keys = std::max(data_keys, s1_keys);
    }
    if (sn) {
        data_keys = std::max(data_keys, o.sn_k);
    }
    const Data d = make_data(data_keys);

    if (selected(o, "W1")) {
        report_w1("W1", d, o.n, o.k, o.reps, 1.5);
    }
    if (selected(o, "W2")) {
        report_w2(d, o.n, o.k, o.reps);
    }
    if (selected(o, "W3")) {
        report_w3("W3", d, o.n, o.k, o.reps, 0);
    }
    if (selected(o, "W3c") && o.w3_concurrent_pct > 0) {
        report_w3("W3c", d, o.n, o.k, o.reps, o.w3_concurrent_pct);
    }
    if (selected(o, "W3h")) {
        report_w3h(d, o.n, o.k, o.reps);
    }
    if (selected(o, "W4") || selected(o, "W4n")) {
        report_w4(d, o.n, o.k, o.reps, selected(o, "W4"), selected(o, "W4n"));
    }
    if (selected(o, "M1")) {
        report_m1(o);
    }
    if (selected(o, "S1")) {
        for (const std::size_t k : {o.n / 100, o.n / 10, o.n}) {
            report_w1("S1", d, o.n, std::max<std::size_t>(k, 1), o.reps, std::nullopt);
        }
    }
    if (selected(o, "D1")) {
        report_d1(d, o.n, o.reps);
    }
    if (sn) {
        std::fprintf(stderr, "bench: SN setup k=%zu\n", o.sn_k);
        SnSetup setup = make_sn_setup(d, o.sn_k);
        if (selected(o, "SN1")) {
            report_sn1(setup, o.reps);
        }
        if (selected(o, "SN2")) {
            report_sn2(setup, o.reps);
        }
        if (selected(o, "SN3")) { // last: its writer changes the replicator
            report_sn3(setup, d, o.reps);
        }
    }
    if (selected(o, "WIRE")) {
        report_wire(d, o.reps);
    }

    const JsonLine& meta = g_lines.front();
    const std::vector<JsonLine> results(g_lines.begin() + 1, g_lines.end());
    int status = 0;
    if (to_stdout) {
        std::fputs(results_json(meta, results).c_str(), stdout);
        std::fflush(stdout);
    } else {
        print_table(meta, results);
        if (write_file(o.json, results_json(meta, results))) {
            std::fprintf(stderr, "bench_replicator: wrote %s\n", o.json.c_str());
        } else {
            std::fprintf(stderr, "bench_replicator: cannot write %s: %s\n", o.json.c_str(),
                         std::strerror(errno));
            status = 1;
        }
    }
    std::string failed;
    for (const JsonLine& r : results) {
        if (r.check_failed()) {
            failed += (failed.empty() ? "" : ", ") + r.text("workload");
        }
    }
    if (!failed.empty()) {
        std::fprintf(stderr, "bench_replicator: check FAILED: %s\n", failed.c_str());
        status = 1;
    }
    return status;
}
