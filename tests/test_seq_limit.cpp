// Region sequences stay below 2^63 (geo::detail::max_seq): a configured, restored or received
// sequence at or above it is refused, and a region whose sequence reached it commits no more.
// Each refusal leaves the replicator exactly as it was. Regression tests of the wrap to 0 the
// fuzzer found (a sequence at UINT64_MAX: the next commit got seq 0 and was never shipped).
#include <geo/detail/snapshot_format.hpp>
#include <geo/json.hpp>
#include <geo/replicator.hpp>

#include "geo_test.hpp"
#include "replication_fixtures.hpp"
#include "state_machine_fixtures.hpp"

#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace {

using geo::ActiveActiveReplicator;
using geo::Committed;
using geo::ConflictResolutionMode;
using geo::FanoutEntry;
using geo::RegionRaftGroup;
using geo::VectorClock;
using geo_test::ap;
using geo_test::both_modes;
using geo_test::eu;
using geo_test::us;
using geo_test::sm::is;
using geo_test::sm::replicated_state;
using geo_test::sm::restore_from;
using geo_test::sm::snapshot_bytes;
using geo_test::sm::start_ms;
using geo_test::sm::text;

// Spelled out rather than taken from geo::detail::max_seq, so the tests state the contract.
constexpr std::uint64_t limit = std::uint64_t{1} << 63;
constexpr std::uint64_t top = limit - 1; ///< the highest sequence that may be configured
/// The last seq a commit may take (a margin below the limit covers racing commits).
constexpr std::uint64_t commit_limit = geo::detail::max_commit_seq;
constexpr std::uint64_t max_u64 = std::numeric_limits<std::uint64_t>::max();

/// The three-region groups (ids 100, 200, 300) with `region`'s committed_seq set to `seq`.
std::vector<RegionRaftGroup> groups_with(const std::string& region, std::uint64_t seq) {
    auto groups = geo_test::all_groups();
    for (auto& group : groups) {
        if (group.region_id == region) {
            group.committed_seq = seq;
        }
    }
    return groups;
}

std::unique_ptr<ActiveActiveReplicator> replica(ConflictResolutionMode mode,
                                                std::vector<RegionRaftGroup> groups,
                                                const std::string& local = us) {
    auto config = geo::ActiveActiveGeoConfig::multi_region(local, geo_test::all_regions());
    config.conflict_mode = mode;
    return std::make_unique<ActiveActiveReplicator>(config, std::move(groups),
                                                    [] { return start_ms; });
}

VectorClock clock_of(ConflictResolutionMode mode, std::uint64_t node, std::uint64_t counter) {
    return mode == ConflictResolutionMode::VectorClock ? VectorClock{{node, counter}} : VectorClock{};
}

/// us-east-1 with a little of everything: local writes (one acknowledged by eu), a tombstone
/// and remote writes of both peers.
void populate(ActiveActiveReplicator& r, ConflictResolutionMode mode) {
    REQUIRE(is<Committed>(r.put("a", "1", start_ms + 10)));
    REQUIRE(is<Committed>(r.put("b", "2", start_ms + 20)));
    REQUIRE(is<Committed>(r.erase("c", start_ms + 30)));
    REQUIRE(is<Committed>(
        r.apply_remote(eu, geo_test::entry(eu, "e", "5", start_ms + 40, 1, clock_of(mode, 200, 1)))));
    REQUIRE(is<Committed>(
        r.apply_remote(ap, geo_test::entry(ap, "f", "6", start_ms + 50, 1, clock_of(mode, 300, 1)))));
    REQUIRE(r.acknowledge_fanout(us, eu, 1) == 1);
}

/// Everything a refused call must leave alone: the snapshot bytes (records, queues,
/// acknowledgements, sequences, observed timestamps) and, readably, digest, sequences and
/// every batch owed.
struct State {
    std::string bytes;
    std::string replicated;

    static State of(const ActiveActiveReplicator& r) { return {snapshot_bytes(r), replicated_state(r)}; }
};

void require_unchanged(const State& before, const ActiveActiveReplicator& r) {
    const State after = State::of(r);
    REQUIRE(after.replicated == before.replicated);
    GEO_REQUIRE_SAME_BYTES(after.bytes, before.bytes);
}

std::string encode_u64(std::uint64_t v) {
    std::string out(8, '\0');
    geo::detail::store_u64(out.data(), v);
    return out;
}

/// `snapshot` with the one 8-byte field holding `marker` set to `value`, framed and
/// checksummed again as snapshot() frames it: a snapshot that is intact but for that value.
std::string with_field(const std::string& snapshot, std::uint64_t marker, std::uint64_t value) {
    std::istringstream in(snapshot);
    const geo::detail::ByteBuffer read = geo::detail::read_chunks(in);
    std::string body(read.view());
    const std::string needle = encode_u64(marker);
    const std::size_t at = body.find(needle);
    REQUIRE(at != std::string::npos);
    REQUIRE(body.find(needle, at + 1) == std::string::npos); // the marker is that field alone
    body.replace(at, 8, encode_u64(value));
    std::ostringstream out;
    geo::detail::ChunkWriter writer(out);
    writer.buffer().append(body); // one chunk: test snapshots are small
    writer.finish();
    return out.str();
}

/// A snapshot, restorable into a replica of `all_groups()`, in which `region`'s sequence is
/// `seq`: taken at a sequence no state holds (a marker), then that field is rewritten.
std::string snapshot_with_sequence(ConflictResolutionMode mode, const std::string& region,
                                   std::uint64_t seq) {
    constexpr std::uint64_t marker = 0x0123'4567'89ab'cdefULL; // below 2^63
    auto source = replica(mode, groups_with(region, marker));
    REQUIRE(source->region_sequences().at(region) == marker);
    return with_field(snapshot_bytes(*source), marker, seq);
}

} // namespace

TEST_CASE("seq limit: a Raft group whose committed_seq is at or above 2^63 is a ConfigError",
          "[seq_limit][config]") {
    for (const auto mode : both_modes) {
        for (const std::string& region : {us, eu}) { // the local region and a peer
            for (const std::uint64_t seq : {limit, limit + 1, max_u64}) {
                CAPTURE(geo_test::mode_name(mode), region, seq);
                REQUIRE_THROWS_AS(replica(mode, groups_with(region, seq)), geo::ConfigError);
            }
            CAPTURE(geo_test::mode_name(mode), region);
            const auto ok = replica(mode, groups_with(region, top));
            REQUIRE(ok->region_sequences().at(region) == top);
            REQUIRE(ok->groups() == groups_with(region, top));
        }
    }
}

TEST_CASE("seq limit: a snapshot with a region sequence at or above 2^63 is a ParseError and "
          "changes nothing",
          "[seq_limit][snapshot]") {
    for (const auto mode : both_modes) {
        auto live = replica(mode, geo_test::all_groups());
        populate(*live, mode);
        const State before = State::of(*live);
        for (const std::string& region : {us, eu, ap}) {
            for (const std::uint64_t seq : {limit, limit + 1, max_u64}) {
                CAPTURE(geo_test::mode_name(mode), region, seq);
                const std::string bad = snapshot_with_sequence(mode, region, seq);
                REQUIRE_THROWS_AS(restore_from(*live, bad), geo::ParseError);
                require_unchanged(before, *live);
                // A fresh replicator refuses it too, and stays empty.
                auto fresh = replica(mode, geo_test::all_groups());
                const State empty = State::of(*fresh);
                REQUIRE_THROWS_AS(restore_from(*fresh, bad), geo::ParseError);
                require_unchanged(empty, *fresh);
            }
            // The boundary itself restores: 2^63 - 1 is a sequence like any other.
            CAPTURE(geo_test::mode_name(mode), region);
            const std::string ok = snapshot_with_sequence(mode, region, top);
            auto fresh = replica(mode, geo_test::all_groups());
            restore_from(*fresh, ok);
            REQUIRE(fresh->region_sequences().at(region) == top);
            GEO_REQUIRE_SAME_BYTES(snapshot_bytes(*fresh), ok);
        }
    }
}

TEST_CASE("seq limit: apply_remote refuses an entry whose seq is at or above 2^63 with a "
          "ParseError and changes nothing",
          "[seq_limit][apply_remote]") {
    for (const auto mode : both_modes) {
        auto r = replica(mode, geo_test::all_groups());
        populate(*r, mode);
        const State before = State::of(*r);
        for (const std::uint64_t seq : {limit, limit + 1, max_u64}) {
            CAPTURE(geo_test::mode_name(mode), seq);
            // The next entry of eu-west-1's stream (it follows seq 1), numbered past the limit.
            FanoutEntry bad = geo_test::entry(eu, "x", "big", start_ms + 60, seq, clock_of(mode, 200, 2));
            bad.prev_seq = 1;
            REQUIRE_THROWS_AS(r->apply_remote(eu, bad), geo::ParseError);
            require_unchanged(before, *r);
            // In a batch, after a good entry: the batch is checked first, so nothing applies.
            FanoutEntry good = geo_test::entry(eu, "y", "ok", start_ms + 55, 2, clock_of(mode, 200, 2));
            good.prev_seq = 1;
            bad.prev_seq = 2;
            REQUIRE_THROWS_AS(r->apply_remote(eu, std::vector<FanoutEntry>{good, bad}), geo::ParseError);
            require_unchanged(before, *r);
            // An entry already applied by seq (the origin's counter is 1) is refused all the same.
            FanoutEntry stale = geo_test::entry(ap, "f", "6", start_ms + 50, seq, clock_of(mode, 300, 1));
            REQUIRE_THROWS_AS(r->apply_remote(ap, stale), geo::ParseError);
            require_unchanged(before, *r);
        }
        // 2^63 - 1 is the last seq an entry may carry.
        FanoutEntry last = geo_test::entry(eu, "x", "top", start_ms + 60, top, clock_of(mode, 200, 2));
        last.prev_seq = 1;
        const auto outcome = r->apply_remote(eu, last);
        INFO(text(outcome));
        REQUIRE(is<Committed>(outcome));
        REQUIRE(std::get<Committed>(outcome).seq == top);
        REQUIRE(r->region_sequences().at(eu) == top);
    }
}

TEST_CASE("seq limit: a region one below the commit limit commits exactly once more, then refuses every local "
          "commit and changes nothing",
          "[seq_limit][local]") {
    for (const auto mode : both_modes) {
        // The local region, and a peer whose Raft log this host applies (apply_local_write).
        for (const std::string& region : {us, ap}) {
            CAPTURE(geo_test::mode_name(mode), region);
            auto r = replica(mode, groups_with(region, commit_limit - 1));
            REQUIRE(is<Committed>(r->apply_remote(
                eu, geo_test::entry(eu, "e", "5", start_ms + 40, 1, clock_of(mode, 200, 1)))));
            const std::size_t owed = r->pending_fanout_len(region);

            // The one commit left: numbered at the limit, queued like any other.
            const auto last = r->apply_local_write(region, "k", "last", start_ms + 50,
                                                   clock_of(mode, region == us ? 100 : 300, 1));
            INFO(text(last));
            REQUIRE(is<Committed>(last));
            REQUIRE(std::get<Committed>(last).region == region);
            REQUIRE(std::get<Committed>(last).seq == commit_limit);
            REQUIRE(r->region_sequences().at(region) == commit_limit);
            REQUIRE(r->pending_fanout_len(region) == owed + 1);
            REQUIRE(r->get("k") == std::optional<std::string>("last"));

            const State before = State::of(*r);
            const auto refused = [&](const char* what, auto&& call) {
                CAPTURE(what);
                REQUIRE_THROWS_AS(call(), geo::Error);
                require_unchanged(before, *r);
            };
            refused("apply_local_write, a new key", [&] {
                return r->apply_local_write(region, "new", "v", start_ms + 60,
                                            clock_of(mode, region == us ? 100 : 300, 2));
            });
            refused("apply_local_write, the same key", [&] {
                return r->apply_local_write(region, "k", "again", start_ms + 60,
                                            clock_of(mode, region == us ? 100 : 300, 2));
            });
            refused("apply_local_delete", [&] {
                return r->apply_local_delete(region, "k", start_ms + 60,
                                             clock_of(mode, region == us ? 100 : 300, 2));
            });
            if (region == us) {
                refused("put", [&] { return r->put("new", "v"); });
                refused("put with a log timestamp", [&] { return r->put("k", "v", start_ms + 70); });
                refused("erase", [&] { return r->erase("k"); });
                refused("erase with a log timestamp", [&] { return r->erase("e", start_ms + 70); });
            }
            // The other regions are not affected: eu-west-1's stream goes on.
            REQUIRE(is<Committed>(r->apply_remote(
                eu, geo_test::entry(eu, "e2", "6", start_ms + 80, 2, clock_of(mode, 200, 2)))));
            REQUIRE(r->region_sequences().at(region) == commit_limit);
        }
    }
}

TEST_CASE("seq limit: apply_remote_write refuses once the origin's counter reached the commit limit",
          "[seq_limit][apply_remote_write]") {
    for (const auto mode : both_modes) {
        CAPTURE(geo_test::mode_name(mode));
        auto r = replica(mode, groups_with(eu, commit_limit - 2));
        REQUIRE(is<Committed>(r->put("a", "1", start_ms + 10)));
        const auto first = r->apply_remote_write(eu, "x", "1", start_ms + 20, clock_of(mode, 200, 1));
        const auto second = r->apply_remote_write(eu, "y", "2", start_ms + 30, clock_of(mode, 200, 2));
        INFO(text(first) << " " << text(second));
        REQUIRE(is<Committed>(first));
        REQUIRE(std::get<Committed>(first).seq == commit_limit - 1);
        REQUIRE(is<Committed>(second));
        REQUIRE(std::get<Committed>(second).seq == commit_limit);
        REQUIRE(r->region_sequences().at(eu) == commit_limit);

        const State before = State::of(*r);
        REQUIRE_THROWS_AS(r->apply_remote_write(eu, "z", "3", start_ms + 40, clock_of(mode, 200, 3)),
                          geo::Error);
        require_unchanged(before, *r);
        // A write that would lose its conflict is refused the same way: no seq to give it.
        REQUIRE_THROWS_AS(r->apply_remote_write(eu, "x", "old", start_ms, clock_of(mode, 200, 3)),
                          geo::Error);
        require_unchanged(before, *r);
        // Other origins and the local region go on.
        REQUIRE(is<Committed>(r->apply_remote_write(ap, "w", "4", start_ms + 50, clock_of(mode, 300, 1))));
        REQUIRE(is<Committed>(r->put("b", "2", start_ms + 60)));
        REQUIRE(r->region_sequences().at(eu) == commit_limit);
    }
}

TEST_CASE("seq limit: JSON committed_seq 18446744073709551615 parses, the replicator refuses it",
          "[seq_limit][json]") {
    const std::string group_json = R"({"region_id":"us-east-1","group_id":100,"members":[1,2,3],)"
                                   R"("committed_seq":18446744073709551615})";
    const auto group = geo::from_json_text<RegionRaftGroup>(group_json);
    REQUIRE(group.committed_seq == max_u64);
    REQUIRE(geo::from_json_text<RegionRaftGroup>(geo::to_json_text(group)) == group);

    const auto groups = geo::from_json_text<std::vector<RegionRaftGroup>>(
        "[" + group_json +
        R"(,{"region_id":"eu-west-1","group_id":200,"members":[4,5,6],"committed_seq":0},)"
        R"({"region_id":"ap-northeast-1","group_id":300,"members":[7,8,9],"committed_seq":9223372036854775808}])");
    REQUIRE(groups.size() == 3);
    REQUIRE(groups[2].committed_seq == limit);

    const std::string config_json = geo::to_json_text(
        geo::ActiveActiveGeoConfig::multi_region(us, geo_test::all_regions()));
    const auto config = geo::parse_config(config_json);
    for (const auto mode : both_modes) {
        CAPTURE(geo_test::mode_name(mode));
        auto c = config;
        c.conflict_mode = mode;
        REQUIRE_THROWS_AS(ActiveActiveReplicator(c, {group}), geo::ConfigError);
        REQUIRE_THROWS_AS(ActiveActiveReplicator(c, groups), geo::ConfigError);
        // The same groups below the limit build a replicator.
        auto ok = groups;
        ok[0].committed_seq = top;
        ok[2].committed_seq = top;
        const ActiveActiveReplicator r(c, ok);
        REQUIRE(r.region_sequences().at(us) == top);
        REQUIRE(r.region_sequences().at(ap) == top);
    }

    // A fanout entry whose seq is UINT64_MAX parses too; apply_remote refuses it.
    const std::string entry_json =
        R"({"key":"k","record":{"region":"eu-west-1","timestamp_ms":1700000000100,)"
        R"("clock":{"clocks":{"200":1}},"value":"v","seq":18446744073709551615,"deleted":false},)"
        R"("seq":18446744073709551615,"prev_seq":0})";
    const auto entry = geo::from_json_text<FanoutEntry>(entry_json);
    REQUIRE(entry.seq == max_u64);
    auto r = replica(ConflictResolutionMode::LastWriterWins, geo_test::all_groups());
    const State before = State::of(*r);
    REQUIRE_THROWS_AS(r->apply_remote(eu, entry), geo::ParseError);
    require_unchanged(before, *r);
}

// Found by fuzz_snapshot: the last commit used to be numbered 2^63, a sequence every other path
// refuses (the replicator's own snapshot did not restore, groups() did not rebuild, peers
// refused the entry, so the write was never delivered).
TEST_CASE("seq limit: the state a region at 2^63 - 1 reaches restores, rebuilds and ships",
          "[seq_limit]") {
    auto r = replica(ConflictResolutionMode::LastWriterWins, groups_with(us, top));
    REQUIRE_THROWS_AS(r->put("k", "v", start_ms + 10), geo::Error); // no seq left to give
    REQUIRE(is<Committed>(r->apply_remote(
        eu, geo_test::entry(eu, "k", "from eu", start_ms + 20, 1, geo::VectorClock{}))));
    auto fresh = replica(ConflictResolutionMode::LastWriterWins, geo_test::all_groups());
    const std::string bytes = snapshot_bytes(*r);
    REQUIRE_NOTHROW(restore_from(*fresh, bytes));
    GEO_REQUIRE_SAME_BYTES(snapshot_bytes(*fresh), bytes);
    REQUIRE_NOTHROW(ActiveActiveReplicator(r->config(), r->groups()));
    auto peer = replica(ConflictResolutionMode::LastWriterWins, geo_test::all_groups(), eu);
    const auto batch = r->peek_fanout(us, eu);
    REQUIRE(batch.empty()); // the refused write was never queued
    REQUIRE_NOTHROW(peer->apply_remote(us, batch));
    REQUIRE(r->get("k") == std::optional<std::string>("from eu"));
}
