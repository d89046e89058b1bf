// Losers are accounted for (docs/design.md, section 3.5): every write that loses a conflict is
// reported through recent_conflicts() and the on_conflict listeners, and listeners can neither
// deadlock nor corrupt the replicator.
#include <geo/replicator.hpp>

#include "geo_test.hpp"
#include "replication_fixtures.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace {

using geo::ActiveActiveReplicator;
using geo::AlreadyApplied;
using geo::Committed;
using geo::ConflictEvent;
using geo::ConflictResolutionMode;
using geo::FanoutEntry;
using geo::GeoRecord;
using geo::GeoWriteOutcome;
using geo::RejectedByConflict;
using geo::VectorClock;
using geo_test::all_groups;
using geo_test::ap;
using geo_test::both_modes;
using geo_test::entry;
using geo_test::eu;
using geo_test::mode_name;
using geo_test::us;

constexpr std::uint64_t t0 = 1'700'000'000'000;

geo::ActiveActiveGeoConfig config_for(const std::string& local, ConflictResolutionMode mode) {
    auto config = geo::ActiveActiveGeoConfig::multi_region(local, {us, eu, ap});
    config.conflict_mode = mode;
    return config;
}

std::unique_ptr<ActiveActiveReplicator> replica(const std::string& local,
                                                ConflictResolutionMode mode,
                                                std::uint64_t physical_ms = t0,
                                                std::size_t log_capacity = 1024) {
    auto config = config_for(local, mode);
    config.conflict_log_capacity = log_capacity;
    return std::make_unique<ActiveActiveReplicator>(config, all_groups(),
                                                    [physical_ms] { return physical_ms; });
}

} // namespace

TEST_CASE("an incoming write rejected by resolution is reported as the loser", "[conflicts]") {
    for (auto mode : both_modes) {
        CAPTURE(mode_name(mode));
        auto r = replica(ap, mode);
        std::vector<ConflictEvent> heard;
        (void)r->on_conflict([&heard](const ConflictEvent& e) { heard.push_back(e); });

        const FanoutEntry newer = entry(eu, "k", "eu wins", t0 + 500, 1, {{200, 1}});
        const FanoutEntry older = entry(us, "k", "us loses", t0 + 100, 1, {{100, 1}});
        REQUIRE(r->apply_remote(eu, newer) == GeoWriteOutcome{Committed{eu, 1}});
        REQUIRE(r->conflict_count() == 0);

        REQUIRE(r->apply_remote(us, older) ==
                GeoWriteOutcome{RejectedByConflict{us, eu, t0 + 500}});
        const ConflictEvent expected{"k", newer.record, older.record};
        REQUIRE(r->conflict_count() == 1);
        REQUIRE(r->recent_conflicts() == std::vector<ConflictEvent>{expected});
        REQUIRE(heard == std::vector<ConflictEvent>{expected});
        REQUIRE(*r->get_record("k") == newer.record);
    }
}

TEST_CASE("a rejected delete is reported with the tombstone as the loser", "[conflicts]") {
    auto r = replica(ap, ConflictResolutionMode::LastWriterWins);
    const FanoutEntry newer = entry(eu, "k", "kept", t0 + 500, 7);
    const FanoutEntry erase = entry(us, "k", "", t0 + 100, 3, {}, true);
    REQUIRE(std::holds_alternative<Committed>(r->apply_remote(eu, newer)));
    REQUIRE(std::holds_alternative<RejectedByConflict>(r->apply_remote(us, erase)));
    REQUIRE(r->recent_conflicts() ==
            std::vector<ConflictEvent>{ConflictEvent{"k", newer.record, erase.record}});
    REQUIRE(r->get("k") == "kept");
}

TEST_CASE("a local write rejected by resolution is reported as the loser", "[conflicts]") {
    for (auto mode : both_modes) {
        CAPTURE(mode_name(mode));
        auto r = replica(us, mode);
        const FanoutEntry newer = entry(eu, "k", "eu wins", t0 + 500, 1, {{200, 1}});
        REQUIRE(std::holds_alternative<Committed>(r->apply_remote(eu, newer)));
        REQUIRE(r->apply_local_write(us, "k", "too late", t0 + 100, VectorClock{{100, 1}}) ==
                GeoWriteOutcome{RejectedByConflict{us, eu, t0 + 500}});
        const auto conflicts = r->recent_conflicts();
        REQUIRE(conflicts.size() == 1);
        const ConflictEvent& e = conflicts.front();
        REQUIRE(e.key == "k");
        REQUIRE(e.winner == newer.record);
        REQUIRE(e.loser.region == us);
        REQUIRE(e.loser.timestamp_ms == t0 + 100);
        REQUIRE(e.loser.value == "too late");
        REQUIRE(e.loser.clock == VectorClock{{100, 1}});
        REQUIRE_FALSE(e.loser.deleted);
        REQUIRE(r->region_sequences().at(us) == 0); // nothing was committed
    }
}

TEST_CASE("in vector-clock mode, a concurrent write that displaces the stored record reports "
          "the stored record as the loser",
          "[conflicts]") {
    auto r = replica(ap, ConflictResolutionMode::VectorClock);
    std::vector<ConflictEvent> heard;
    (void)r->on_conflict([&heard](const ConflictEvent& e) { heard.push_back(e); });

    const FanoutEntry older = entry(us, "k", "us, displaced", t0 + 100, 1, {{100, 1}});
    const FanoutEntry newer = entry(eu, "k", "eu, concurrent", t0 + 500, 1, {{200, 1}});
    REQUIRE(std::holds_alternative<Committed>(r->apply_remote(us, older)));
    REQUIRE(r->apply_remote(eu, newer) == GeoWriteOutcome{Committed{eu, 1}});

    const ConflictEvent expected{"k", newer.record, older.record};
    REQUIRE(r->recent_conflicts() == std::vector<ConflictEvent>{expected});
    REQUIRE(heard == std::vector<ConflictEvent>{expected});
    REQUIRE(r->conflict_count() == 1);
    REQUIRE(*r->get_record("k") == newer.record);
}

TEST_CASE("a write that follows the stored one is not a conflict", "[conflicts]") {
    SECTION("last-writer-wins: a newer write displacing the stored one") {
        auto r = replica(ap, ConflictResolutionMode::LastWriterWins);
        int heard = 0;
        (void)r->on_conflict([&heard](const ConflictEvent&) { ++heard; });
        REQUIRE(std::holds_alternative<Committed>(
            r->apply_remote(us, entry(us, "k", "old", t0 + 100, 1, {{100, 1}}))));
        // Concurrent clocks, but LWW mode has no notion of a lost concurrent update.
        REQUIRE(std::holds_alternative<Committed>(
            r->apply_remote(eu, entry(eu, "k", "new", t0 + 500, 1, {{200, 1}}))));
        REQUIRE(r->get("k") == "new");
        REQUIRE(r->conflict_count() == 0);
        REQUIRE(r->recent_conflicts().empty());
        REQUIRE(heard == 0);
    }
    SECTION("vector clock: a causally later write") {
        auto r = replica(ap, ConflictResolutionMode::VectorClock);
        int heard = 0;
        (void)r->on_conflict([&heard](const ConflictEvent&) { ++heard; });
        REQUIRE(std::holds_alternative<Committed>(
            r->apply_remote(us, entry(us, "k", "old", t0 + 100, 1, {{100, 1}}))));
        REQUIRE(std::holds_alternative<Committed>(
            r->apply_remote(eu, entry(eu, "k", "new", t0 + 500, 1, {{100, 1}, {200, 1}}))));
        REQUIRE(std::holds_alternative<Committed>(r->put("k", "newest")));
        REQUIRE(r->get("k") == "newest");
        REQUIRE(r->conflict_count() == 0);
        REQUIRE(heard == 0);
    }
}

TEST_CASE("the same write re-applied is not a conflict with itself", "[conflicts]") {
    for (auto mode : both_modes) {
        CAPTURE(mode_name(mode));
        {
            INFO("re-delivered through apply_remote");
            auto r = replica(ap, mode);
            const FanoutEntry e = entry(us, "k", "v", t0 + 100, 1, {{100, 1}});
            REQUIRE(std::holds_alternative<Committed>(r->apply_remote(us, e)));
            REQUIRE(r->apply_remote(us, e) == GeoWriteOutcome{AlreadyApplied{us, 1}});
            REQUIRE(r->conflict_count() == 0);
        }
        {
            INFO("re-delivered through apply_remote_write, the Rust module's remote write");
            auto r = replica(ap, mode);
            int heard = 0;
            (void)r->on_conflict([&heard](const ConflictEvent&) { ++heard; });
            const VectorClock clock{{100, 1}};
            REQUIRE(std::holds_alternative<Committed>(
                r->apply_remote_write(us, "k", "v", t0 + 100, clock)));
            (void)r->apply_remote_write(us, "k", "v", t0 + 100, clock);
            REQUIRE(r->get("k") == "v");
            REQUIRE(r->conflict_count() == 0);
            REQUIRE(r->recent_conflicts().empty());
            REQUIRE(heard == 0);
        }
    }
}

namespace {

/// A replica holding eu's write of "k" at t0 + 1000, and a way to make it reject one more
/// write of us: each call is a new conflict whose loser carries `value`.
struct Loser {
    ActiveActiveReplicator& r;
    std::uint64_t seq = 0;
    GeoWriteOutcome lose(const std::string& value) {
        ++seq;
        return r.apply_remote(us, entry(us, "k", value, t0 + seq, seq));
    }
};

void store_winner(ActiveActiveReplicator& r) {
    REQUIRE(std::holds_alternative<Committed>(
        r.apply_remote(eu, entry(eu, "k", "winner", t0 + 1000, 1))));
}

} // namespace

TEST_CASE("recent_conflicts keeps the latest conflict_log_capacity conflicts, oldest first",
          "[conflicts]") {
    auto r = replica(ap, ConflictResolutionMode::LastWriterWins, t0, 3);
    store_winner(*r);
    Loser loser{*r};
    for (int i = 0; i < 5; ++i) {
        REQUIRE(
            std::holds_alternative<RejectedByConflict>(loser.lose("loser-" + std::to_string(i))));
        const auto conflicts = r->recent_conflicts();
        REQUIRE(conflicts.size() == std::min<std::size_t>(static_cast<std::size_t>(i) + 1, 3));
        REQUIRE(conflicts.back().loser.value == "loser-" + std::to_string(i));
    }
    const auto conflicts = r->recent_conflicts();
    REQUIRE(conflicts.size() == 3);
    REQUIRE(conflicts[0].loser.value == "loser-2");
    REQUIRE(conflicts[1].loser.value == "loser-3");
    REQUIRE(conflicts[2].loser.value == "loser-4");
    for (const auto& e : conflicts) {
        REQUIRE(e.key == "k");
        REQUIRE(e.winner.value == "winner");
    }
    REQUIRE(r->conflict_count() == 5);
}

TEST_CASE("a conflict log of capacity 0 keeps nothing, but listeners still run", "[conflicts]") {
    auto r = replica(ap, ConflictResolutionMode::LastWriterWins, t0, 0);
    std::vector<std::string> heard;
    (void)r->on_conflict([&heard](const ConflictEvent& e) { heard.push_back(e.loser.value); });
    store_winner(*r);
    Loser loser{*r};
    REQUIRE(std::holds_alternative<RejectedByConflict>(loser.lose("a")));
    REQUIRE(std::holds_alternative<RejectedByConflict>(loser.lose("b")));
    REQUIRE(r->recent_conflicts().empty());
    REQUIRE(r->conflict_count() == 2);
    REQUIRE(heard == std::vector<std::string>{"a", "b"});
}

TEST_CASE("listeners hear every conflict from registration until removal", "[conflicts]") {
    auto r = replica(ap, ConflictResolutionMode::LastWriterWins);
    store_winner(*r);
    Loser loser{*r};
    REQUIRE(std::holds_alternative<RejectedByConflict>(loser.lose("before")));

    std::vector<std::string> first;
    std::vector<std::string> second;
    const auto id1 =
        r->on_conflict([&first](const ConflictEvent& e) { first.push_back(e.loser.value); });
    const auto id2 =
        r->on_conflict([&second](const ConflictEvent& e) { second.push_back(e.loser.value); });
    REQUIRE(id1 != id2);

    REQUIRE(std::holds_alternative<RejectedByConflict>(loser.lose("both")));
    REQUIRE(r->remove_conflict_listener(id1));
    REQUIRE(std::holds_alternative<RejectedByConflict>(loser.lose("second only")));
    REQUIRE_FALSE(r->remove_conflict_listener(id1));
    REQUIRE(r->remove_conflict_listener(id2));
    REQUIRE(std::holds_alternative<RejectedByConflict>(loser.lose("nobody")));
    REQUIRE_FALSE(r->remove_conflict_listener(id2 + 1000));

    REQUIRE(first == std::vector<std::string>{"both"});
    REQUIRE(second == std::vector<std::string>{"both", "second only"});
    REQUIRE(r->conflict_count() == 4);
}

TEST_CASE("a listener may call back into the replicator without deadlocking", "[conflicts]") {
    auto r = replica(ap, ConflictResolutionMode::VectorClock);
    // eu's writes of k1 and k2 are later than us's concurrent ones, which will lose.
    REQUIRE(std::holds_alternative<Committed>(
        r->apply_remote(eu, entry(eu, "k1", "eu", t0 + 1000, 1, {{200, 1}}))));
    REQUIRE(std::holds_alternative<Committed>(
        r->apply_remote(eu, entry(eu, "k2", "eu", t0 + 1000, 2, {{200, 2}}))));
    const FanoutEntry us1 = entry(us, "k1", "us", t0 + 10, 1, {{100, 1}});
    const FanoutEntry us2 = entry(us, "k2", "us", t0 + 20, 2, {{100, 2}});

    int depth = 0;
    int calls = 0;
    int late_listener_calls = 0;
    std::vector<std::optional<GeoRecord>> seen_records;
    std::vector<GeoRecord> winners;
    std::vector<GeoWriteOutcome> nested_outcomes;
    std::vector<GeoWriteOutcome> nested_puts;
    std::uint64_t seen_count = 0;
    (void)r->on_conflict([&](const ConflictEvent& e) {
        ++calls;
        ++depth;
        seen_records.push_back(r->get_record(e.key));
        winners.push_back(e.winner);
        seen_count = r->conflict_count();
        (void)r->recent_conflicts();
        if (depth == 1 && e.key == "k1") {
            // Same origin as the write being applied, from inside its listener.
            nested_outcomes.push_back(r->apply_remote(us, us2));
            nested_puts.push_back(r->put("side", "written by a listener"));
            (void)r->on_conflict([&](const ConflictEvent&) { ++late_listener_calls; });
        }
        --depth;
    });

    REQUIRE(std::holds_alternative<RejectedByConflict>(r->apply_remote(us, us1)));
    REQUIRE(calls == 2); // k1, and k2 from inside the first call
    REQUIRE(seen_records.size() == 2);
    REQUIRE(seen_records[0] == winners[0]);
    REQUIRE(seen_records[1] == winners[1]);
    REQUIRE(seen_count == 2);
    REQUIRE(nested_outcomes.size() == 1);
    REQUIRE(std::holds_alternative<RejectedByConflict>(nested_outcomes[0]));
    REQUIRE(nested_puts.size() == 1);
    REQUIRE(std::holds_alternative<Committed>(nested_puts[0]));
    REQUIRE(r->get("side") == "written by a listener");
    REQUIRE(r->apply_remote(us, us2) == GeoWriteOutcome{AlreadyApplied{us, 2}});
    REQUIRE(r->region_sequences().at(us) == 2);

    // The listener registered from inside a listener hears the next conflict.
    REQUIRE(std::holds_alternative<RejectedByConflict>(
        r->apply_remote(us, entry(us, "k1", "us again", t0 + 30, 3, {{100, 3}}))));
    REQUIRE(late_listener_calls == 1);
    REQUIRE(calls == 3);
    REQUIRE(r->conflict_count() == 3);
}

TEST_CASE("a throwing listener does not corrupt state", "[conflicts]") {
    for (auto mode : both_modes) {
        CAPTURE(mode_name(mode));
        auto r = replica(ap, mode);
        int before = 0;
        int after = 0;
        (void)r->on_conflict([&before](const ConflictEvent&) { ++before; });
        (void)r->on_conflict([](const ConflictEvent&) { throw std::runtime_error("listener"); });
        (void)r->on_conflict([](const ConflictEvent&) { throw 42; });
        (void)r->on_conflict([&after](const ConflictEvent&) { ++after; });

        const FanoutEntry older = entry(us, "k", "us", t0 + 100, 1, {{100, 1}});
        const FanoutEntry newer = entry(eu, "k", "eu", t0 + 500, 1, {{200, 1}});
        REQUIRE(std::holds_alternative<Committed>(r->apply_remote(us, older)));
        const GeoWriteOutcome displaced = r->apply_remote(eu, newer);
        REQUIRE(displaced == GeoWriteOutcome{Committed{eu, 1}});
        REQUIRE(*r->get_record("k") == newer.record);

        // A rejected write: the outcome is still returned and nothing changes.
        const GeoWriteOutcome rejected =
            r->apply_remote(us, entry(us, "k", "us again", t0 + 200, 2, {{100, 2}}));
        REQUIRE(rejected == GeoWriteOutcome{RejectedByConflict{us, eu, t0 + 500}});
        REQUIRE(*r->get_record("k") == newer.record);

        const int conflicts = mode == ConflictResolutionMode::VectorClock ? 2 : 1;
        REQUIRE(r->conflict_count() == static_cast<std::uint64_t>(conflicts));
        REQUIRE(before == conflicts);
        REQUIRE(after == conflicts);
        REQUIRE(r->listener_errors() == static_cast<std::uint64_t>(2 * conflicts));

        // Nothing is left locked or half-done.
        REQUIRE(std::holds_alternative<Committed>(r->put("other", "v")));
        REQUIRE(r->region_sequences().at(us) == 2);
        REQUIRE(r->region_sequences().at(eu) == 1);
        REQUIRE(r->apply_remote(us, older) == GeoWriteOutcome{AlreadyApplied{us, 1}});
        REQUIRE(r->pending_fanout_len(ap) == 1);
    }
}
