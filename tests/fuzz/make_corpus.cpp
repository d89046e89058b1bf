// Writes the seed corpus of the fuzz targets (tests/fuzz/README.md):
//
//   <out>/fuzz_json/<type>-<n>      selector byte + JSON text (see fuzz_json.cpp)
//   <out>/fuzz_snapshot/<name>      mode byte + snapshot bytes or body (see fuzz_snapshot.cpp)
//
// Every JSON document is written by geo itself from real replicator state, except the ones the
// Rust module writes (records without seq/deleted, [key, record, seq] tuples, configs without
// geo's extra fields), which are spelled out here. Output is deterministic (frozen clocks,
// canonical snapshots): re-running it reproduces the committed files byte for byte.
//
//   geo_fuzz_make_corpus tests/fuzz/corpus [tests/fuzz/crashes]
//
// With a second directory it also writes there the inputs of known bugs not fixed yet
// (<dir>/<target>/<name>; see boundary_seeds), which must stay out of the corpus until then.

#include <geo/detail/snapshot_format.hpp>
#include <geo/json.hpp>
#include <geo/replicator.hpp>

#include "fuzz_support.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using geo::ConflictResolutionMode;
using geo_fuzz::ap;
using geo_fuzz::eu;
using geo_fuzz::frozen_ms;
using geo_fuzz::us;

std::string out_dir;
std::string crashes_dir; ///< empty: known-bug inputs are not written
std::map<std::string, int> counts;
int written = 0;

void write_file(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
        std::cerr << "make_corpus: cannot write " << path << "\n";
        std::exit(1);
    }
    ++written;
}

/// fuzz_json seed: selector character, then the text.
void json_seed(char selector, const std::string& type, const std::string& text) {
    const int n = ++counts[type];
    write_file(out_dir + "/fuzz_json/" + type + "-" + std::to_string(n), selector + text);
}

template <class T>
void json_seed_of(char selector, const std::string& type, const T& value) {
    json_seed(selector, type, geo::to_json_text(value));
}

void snapshot_seed(const std::string& name, std::uint8_t mode, const std::string& bytes) {
    write_file(out_dir + "/fuzz_snapshot/" + name, static_cast<char>(mode) + bytes);
}

std::string body_of(const std::string& snapshot) {
    std::istringstream in(snapshot);
    return std::string(geo::detail::read_chunks(in).view());
}

[[noreturn]] void die(const std::string& what) {
    std::cerr << "make_corpus: " << what << "\n";
    std::exit(1);
}

/// Where region `r`'s sequence is in the body of `rep`'s snapshot (docs/snapshot.md; the
/// code, include/geo/detail/snapshot_path.hpp, is the truth): magic, version, the identity
/// (region ids, local region, conflict mode, each region's group id), then per region its
/// sequence and its observed timestamp.
std::size_t sequence_offset(const geo::ActiveActiveReplicator& rep, std::size_t r) {
    const auto& config = rep.config();
    std::size_t at = 8 + 4 + 4;
    for (const auto& region : config.regions) {
        at += 8 + region.size();
    }
    at += 8 + config.local_region.size() + 1 + config.regions.size() * (1 + 8);
    return at + r * 16;
}

/// The body of `rep`'s snapshot with `region`'s sequence set to `seq`. Checked both ways, so
/// a format change that moves the field fails here instead of writing a meaningless seed:
/// the field read holds the region's sequence, and the patched snapshot restores with that
/// sequence (seq < 2^63) or is refused with ParseError (seq >= 2^63).
std::string body_with_sequence(const geo::ActiveActiveReplicator& rep, ConflictResolutionMode mode,
                               const std::string& region, std::uint64_t seq) {
    const auto& regions = rep.config().regions;
    const std::size_t r =
        static_cast<std::size_t>(std::find(regions.begin(), regions.end(), region) - regions.begin());
    std::string body = body_of(geo_fuzz::snapshot_bytes(rep));
    const std::size_t at = sequence_offset(rep, r);
    if (at + 8 > body.size() ||
        geo::detail::get_u64_at(body.data() + at) != rep.region_sequences().at(region)) {
        die("the snapshot format moved: " + region + "'s sequence is not at byte " +
            std::to_string(at) + " of the body (update sequence_offset)");
    }
    geo::detail::store_u64(body.data() + at, seq);

    std::ostringstream framed;
    geo::detail::ChunkWriter writer(framed);
    writer.buffer().append(body);
    writer.finish();
    auto fresh = geo_fuzz::empty_replica(mode);
    std::istringstream in(framed.str());
    try {
        fresh->restore(in);
        if (fresh->region_sequences().at(region) != seq) {
            die("a patched snapshot restored with another sequence for " + region);
        }
    } catch (const geo::ParseError&) {
        if (seq < (std::uint64_t{1} << 63)) {
            die("a snapshot with " + region + "'s sequence at " + std::to_string(seq) +
                " was refused");
        }
    }
    return body;
}

std::unique_ptr<geo::ActiveActiveReplicator> replica_of(const std::string& local,
                                                         ConflictResolutionMode mode) {
    geo::ActiveActiveGeoConfig config = geo::ActiveActiveGeoConfig::multi_region(local, {us, eu, ap});
    config.conflict_mode = mode;
    config.tombstone_grace = geo_fuzz::world_config(mode).tombstone_grace;
    return std::make_unique<geo::ActiveActiveReplicator>(config, geo_fuzz::world_groups(),
                                                         [] { return frozen_ms; });
}

void json_seeds() {
    // ---- configs (selector '0') ----
    auto lww = geo::ActiveActiveGeoConfig::multi_region(us, {us, eu, ap});
    json_seed_of('0', "config", lww);
    auto vc = lww;
    vc.conflict_mode = ConflictResolutionMode::VectorClock;
    vc.primary_tier["secondary"] = {eu, ap};
    vc.routing_rules.insert(vc.routing_rules.begin(),
                            geo::RegionRoutingRule{"orders", std::string("orders/"),
                                                   std::string("acme"), eu,
                                                   geo::ConsistencyLevel::EachQuorum});
    vc.max_clock_offset = std::chrono::milliseconds(250);
    vc.conflict_log_capacity = 16;
    json_seed('0', "config", geo::to_json_text(vc, 2));
    // As the Rust module writes it: none of geo's extra fields.
    json_seed('0', "config",
              R"({"regions":["us-east-1","eu-west-1"],"local_region":"us-east-1",)"
              R"("primary_tier":{"primary":["us-east-1"]},"routing_rules":[{"name":"default",)"
              R"("subject_prefix":null,"tenant_id":null,"target_region":"us-east-1",)"
              R"("consistency":"LocalQuorum"}],"conflict_mode":"LastWriterWins",)"
              R"("max_lag":{"secs":5,"nanos":0}})");
    // Durations as serde also reads them ([secs, nanos], nanos past a second), and an
    // impossible config that parses but does not validate.
    json_seed('0', "config",
              R"({"regions":["a","b"],"local_region":"c","primary_tier":{},"routing_rules":[],)"
              R"("conflict_mode":"VectorClock","max_lag":[1,1500000000],)"
              R"("tombstone_grace":{"secs":18446744073709551615,"nanos":0},)"
              R"("conflict_log_capacity":0})");

    // ---- records, clocks, events and outcomes from real replicators ----
    for (const auto mode : {ConflictResolutionMode::LastWriterWins, ConflictResolutionMode::VectorClock}) {
        const bool is_vc = mode == ConflictResolutionMode::VectorClock;
        auto a = replica_of(us, mode);
        auto b = replica_of(eu, mode);
        std::vector<geo::GeoWriteOutcome> outcomes;
        outcomes.push_back(a->put("user:1", "alice", frozen_ms));
        outcomes.push_back(b->put("user:1", "alice@eu", frozen_ms + 5)); // concurrent, later
        outcomes.push_back(b->put("cart:\xc3\xa9", "\xe2\x82\xac 12", frozen_ms + 6));
        outcomes.push_back(b->erase("cart:\xc3\xa9", frozen_ms + 7));
        const auto batch = b->peek_fanout(eu, us);
        for (const auto& outcome : a->apply_remote(eu, batch)) {
            outcomes.push_back(outcome);
        }
        outcomes.push_back(a->apply_remote(eu, batch.front())); // AlreadyApplied
        auto gap = geo_fuzz::make_entry(eu, "late", "v", frozen_ms + 9, 9);
        gap.prev_seq = 8;
        outcomes.push_back(a->apply_remote(eu, gap)); // OutOfOrder
        // An older remote write that loses: RejectedByConflict, and a conflict event.
        auto old = geo_fuzz::make_entry(ap, "user:1", "stale", frozen_ms - 1000, 1,
                                        is_vc ? geo::VectorClock{{300, 1}} : geo::VectorClock{});
        outcomes.push_back(a->apply_remote(ap, old));

        // Batches (selector '7' -> VectorClock apply, 'G' -> LastWriterWins apply).
        const char batch_selector = is_vc ? '7' : 'G';
        json_seed_of(batch_selector, "batch", batch);
        json_seed_of(batch_selector, "batch", std::vector<geo::FanoutEntry>{});
        for (const auto& entry : batch) {
            json_seed_of('6', "entry", entry);
            json_seed_of('1', "record", entry.record);
            json_seed_of('2', "clock", entry.record.clock);
        }
        for (const auto& outcome : outcomes) {
            json_seed_of('9', "outcome", outcome);
            std::visit(
                [&](const auto& alternative) {
                    using T = std::decay_t<decltype(alternative)>;
                    if constexpr (std::is_same_v<T, geo::Committed>) {
                        json_seed_of(':', "committed", alternative);
                    } else if constexpr (std::is_same_v<T, geo::RejectedByConflict>) {
                        json_seed_of(';', "rejected", alternative);
                    } else if constexpr (std::is_same_v<T, geo::AlreadyApplied>) {
                        json_seed_of('<', "already-applied", alternative);
                    } else {
                        json_seed_of('=', "out-of-order", alternative);
                    }
                },
                outcome);
        }
        const auto conflicts = a->recent_conflicts();
        for (const auto& event : conflicts) {
            json_seed_of('8', "conflict", event);
        }
        json_seed_of('?', "conflicts", conflicts);
        json_seed_of('>', "groups", a->groups());
        for (const auto& group : a->groups()) {
            json_seed_of('3', "group", group);
        }
        json_seed_of('5', "decision", a->config().route("user:1"));
    }

    // ---- as the Rust module writes them ----
    const std::string rust_record =
        R"({"region":"eu-west-1","timestamp_ms":1700000000100,"clock":{"clocks":{"200":3,"100":1}},"value":"v1"})";
    json_seed('1', "record", rust_record);
    // drain_fanout's Vec<(String, GeoRecord, u64)>: [key, record, seq] tuples, and a mixed batch.
    json_seed('7', "batch", R"([["k1",)" + rust_record + R"(,1],["k2",)" + rust_record + R"(,2]])");
    json_seed('G', "batch", R"([["k1",)" + rust_record + R"(,1],{"key":"k2","record":)" +
                                rust_record + R"(,"seq":2,"prev_seq":1}])");
    json_seed('6', "entry", R"(["k1",)" + rust_record + R"(,7])");
    json_seed('2', "clock", R"({"clocks":{}})");
    json_seed('2', "clock", R"({"clocks":{"7":1,"07":4,"18446744073709551615":2}})");
    json_seed('3', "group", R"({"region_id":"us-east-1","group_id":1,"members":[1,2,3],"committed_seq":0})");
    json_seed('4', "rule", R"({"name":"default","subject_prefix":null,"tenant_id":null,"target_region":"us-east-1","consistency":"LocalAsync"})");
    json_seed('4', "rule", R"({"name":"orders","subject_prefix":"orders/","tenant_id":"acme","target_region":"eu-west-1","consistency":"AllQuorum"})");
    json_seed('4', "rule", R"({"name":"no-options","target_region":"ap-south-1","consistency":"LocalQuorum"})");
    json_seed('5', "decision", R"({"primary_region":"us-east-1","fanout_regions":["eu-west-1","ap-south-1"],"consistency":"EachQuorum"})");
    json_seed('9', "outcome", R"({"RejectedByConflict":{"region":"us-east-1","winner_region":"eu-west-1","winner_timestamp_ms":5}})");
    json_seed('9', "outcome", R"({"OutOfOrder":{"region":"eu-west-1","seq":9,"applied_seq":3}})");

    // ---- the sequence limit (2^63): a group and entries at and past it ----
    // Parses; a replicator refuses the group (ConfigError) and the entries (ParseError).
    json_seed('3', "group", R"({"region_id":"us-east-1","group_id":1,"members":[1],"committed_seq":18446744073709551615})");
    json_seed('>', "groups", R"([{"region_id":"us-east-1","group_id":100,"members":[1,2,3],"committed_seq":9223372036854775807},)"
                             R"({"region_id":"eu-west-1","group_id":200,"members":[4,5,6],"committed_seq":9223372036854775808}])");
    const std::string top_record =
        R"({"region":"eu-west-1","timestamp_ms":1700000000100,"clock":{"clocks":{"200":1}},"value":"top","seq":9223372036854775807,"deleted":false})";
    // The last seq an entry may carry (applies), then one past it (the batch is refused).
    json_seed('7', "batch", R"([{"key":"k","record":)" + top_record +
                                R"(,"seq":9223372036854775807,"prev_seq":0}])");
    json_seed('G', "batch", R"([{"key":"k","record":)" + top_record +
                                R"(,"seq":9223372036854775807,"prev_seq":0},{"key":"k2","record":)" +
                                top_record + R"(,"seq":9223372036854775808,"prev_seq":9223372036854775807}])");
    json_seed('6', "entry", R"(["k",)" + top_record + R"(,18446744073709551615])");
}

void snapshot_seeds() {
    for (const auto mode : {ConflictResolutionMode::LastWriterWins, ConflictResolutionMode::VectorClock}) {
        const bool is_vc = mode == ConflictResolutionMode::VectorClock;
        const std::uint8_t flavor = is_vc ? 4 : 0;
        const std::string tag = is_vc ? "vc" : "lww";
        const std::string populated = geo_fuzz::snapshot_bytes(*geo_fuzz::populated_replica(mode));
        const std::string empty = geo_fuzz::snapshot_bytes(*geo_fuzz::empty_replica(mode));
        // A bigger state: a peer's stream applied, conflicts, several queued entries per region.
        auto big = geo_fuzz::populated_replica(mode);
        auto peer = replica_of(eu, mode);
        for (int i = 0; i < 6; ++i) {
            (void)peer->put("k" + std::to_string(i), std::string(static_cast<std::size_t>(i * 3), 'x'),
                            frozen_ms + 100 + static_cast<std::uint64_t>(i));
        }
        (void)peer->erase("k2", frozen_ms + 200);
        (void)big->apply_remote(eu, peer->peek_fanout(eu, us));
        (void)big->put("k1", "local wins later", frozen_ms + 300);
        const std::string larger = geo_fuzz::snapshot_bytes(*big);

        snapshot_seed("raw-populated-" + tag, flavor | 0, populated);
        snapshot_seed("raw-empty-" + tag, flavor | 0, empty);
        snapshot_seed("raw-larger-" + tag, flavor | 0, larger);
        snapshot_seed("body-populated-" + tag, flavor | 1, body_of(populated));
        snapshot_seed("body-empty-" + tag, flavor | 1, body_of(empty));
        snapshot_seed("body-larger-" + tag, flavor | 1, body_of(larger));
        snapshot_seed("small-chunks-populated-" + tag, static_cast<std::uint8_t>(flavor | 2 | (6 << 3)),
                      body_of(populated));
        snapshot_seed("prefixed-larger-" + tag, flavor | 3, body_of(larger));
    }
    // A snapshot of another configuration (two regions): ConfigError on restore.
    auto other = std::make_unique<geo::ActiveActiveReplicator>(
        geo::ActiveActiveGeoConfig::multi_region(us, {us, eu}), std::vector<geo::RegionRaftGroup>{},
        [] { return frozen_ms; });
    (void)other->put("user:1", "alice");
    const std::string other_bytes = geo_fuzz::snapshot_bytes(*other);
    snapshot_seed("raw-other-config", 0, other_bytes);
    snapshot_seed("body-other-config", 1, body_of(other_bytes));

    // The sequence limit (2^63), in the populated VectorClock state (framed body, mode 0x05).
    const std::uint64_t top = (std::uint64_t{1} << 63) - 1;
    const auto vc = ConflictResolutionMode::VectorClock;
    const auto populated = geo_fuzz::populated_replica(vc);
    // A peer region at the last sequence: restores, and the exercise goes on from there.
    snapshot_seed("body-seq-top-ap-vc", 1 | 4, body_with_sequence(*populated, vc, ap, top));
    // Regression input of the wrap to 0 (was crashes/fuzz_snapshot/local-seq-at-uint64-max,
    // in the format before group ids joined the identity): us-east-1's sequence at
    // UINT64_MAX, now refused with ParseError. And the first sequence refused, 2^63.
    snapshot_seed("body-seq-uint64-max-us-vc", 1 | 4,
                  body_with_sequence(*populated, vc, us, std::numeric_limits<std::uint64_t>::max()));
    snapshot_seed("body-seq-2p63-us-vc", 1 | 4, body_with_sequence(*populated, vc, us, top + 1));
}

/// Inputs that found bugs, kept as seeds so every run replays them. (An input of a bug not
/// fixed yet would be written to <crashes_dir>/<target>/ instead, when a second directory is
/// given; there is none now.)
void boundary_seeds() {
    const auto vc = ConflictResolutionMode::VectorClock;
    const auto populated = geo_fuzz::populated_replica(vc);
    // The local region at 2^63 - 1 (found by fuzz_snapshot: its next commit used to be
    // numbered 2^63, which restore, the constructor and peers all refuse): now it restores
    // and refuses further commits.
    const std::string body =
        body_with_sequence(*populated, vc, us, (std::uint64_t{1} << 63) - 1);
    write_file(out_dir + "/fuzz_snapshot/body-seq-top-us-vc", static_cast<char>(1 | 4) + body);
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2 && argc != 3) {
        std::cerr << "usage: " << argv[0]
                  << " <corpus-dir> [<crashes-dir>]  (e.g. tests/fuzz/corpus tests/fuzz/crashes)\n";
        return 2;
    }
    out_dir = argv[1];
    if (argc == 3) {
        crashes_dir = argv[2];
    }
    try {
        std::filesystem::create_directories(out_dir + "/fuzz_json");
        std::filesystem::create_directories(out_dir + "/fuzz_snapshot");
        json_seeds();
        snapshot_seeds();
        boundary_seeds();
    } catch (const std::exception& e) {
        std::cerr << "make_corpus: " << e.what() << "\n";
        return 1;
    }
    std::cout << "make_corpus: wrote " << written << " files under " << out_dir << "\n";
    return 0;
}
