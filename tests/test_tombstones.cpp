// Deletes (docs/design.md, section 3.4): a tombstone is purged only once every region has
// acknowledged it and the grace period has passed (a replica other than the origin relies on the
// grace period alone), and never as a side effect of a read.
#include <geo/replicator.hpp>

#include "geo_test.hpp"
#include "replication_fixtures.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace {

using geo::ActiveActiveReplicator;
using geo::Committed;
using geo::ConflictResolutionMode;
using geo_test::all_groups;
using geo_test::ap;
using geo_test::both_modes;
using geo_test::eu;
using geo_test::ship;
using geo_test::us;

constexpr std::uint64_t grace_ms = 60'000;
constexpr std::uint64_t start_ms = 1'700'000'000'000;

/// A replica whose physical clock is `now`, which the test moves.
std::unique_ptr<ActiveActiveReplicator>
replica(const std::string& local, const std::atomic<std::uint64_t>& now,
        ConflictResolutionMode mode = ConflictResolutionMode::LastWriterWins) {
    auto config = geo::ActiveActiveGeoConfig::multi_region(local, {us, eu, ap});
    config.conflict_mode = mode;
    config.tombstone_grace = std::chrono::milliseconds(grace_ms);
    return std::make_unique<ActiveActiveReplicator>(config, all_groups(),
                                                    [&now] { return now.load(); });
}

} // namespace

TEST_CASE("at the origin, a tombstone still owed to a peer is not purged even after the grace "
          "period",
          "[tombstone]") {
    for (auto mode : both_modes) {
        CAPTURE(std::string(geo::to_string(mode)));
        std::atomic<std::uint64_t> now{start_ms};
        auto origin = replica(us, now, mode);
        auto b = replica(eu, now, mode);
        auto c = replica(ap, now, mode);
        REQUIRE(std::holds_alternative<Committed>(origin->put("k", "v")));
        REQUIRE(std::holds_alternative<Committed>(origin->erase("k")));
        const std::uint64_t deleted_at = origin->get_record("k")->timestamp_ms;

        ship(*origin, *b); // eu acknowledges, ap does not
        now = deleted_at + 10 * grace_ms;
        REQUIRE(origin->purge_tombstones() == 0);
        REQUIRE(origin->record_count() == 1);
        REQUIRE(origin->get_record("k")->deleted);

        ship(*origin, *c); // now every peer has acknowledged it
        REQUIRE(origin->purge_tombstones() == 1);
        REQUIRE(origin->record_count() == 0);
        REQUIRE_FALSE(origin->get_record("k").has_value());
        REQUIRE(origin->purge_tombstones() == 0);
    }
}

TEST_CASE("at the origin, a tombstone acknowledged by every peer is not purged before the grace "
          "period has passed",
          "[tombstone]") {
    std::atomic<std::uint64_t> now{start_ms};
    auto origin = replica(us, now);
    auto b = replica(eu, now);
    auto c = replica(ap, now);
    REQUIRE(std::holds_alternative<Committed>(origin->erase("k")));
    const std::uint64_t deleted_at = origin->get_record("k")->timestamp_ms;
    ship(*origin, *b);
    ship(*origin, *c);
    REQUIRE(origin->pending_fanout_len(us) == 0);

    REQUIRE(origin->purge_tombstones() == 0);
    now = deleted_at + grace_ms - 1;
    REQUIRE(origin->purge_tombstones() == 0);
    REQUIRE(origin->get_record("k")->deleted);
    REQUIRE(origin->record_count() == 1);

    now = deleted_at + grace_ms + 1;
    REQUIRE(origin->purge_tombstones() == 1);
    REQUIRE(origin->record_count() == 0);
    REQUIRE_FALSE(origin->get_record("k").has_value());
}

TEST_CASE("a tombstone received from its origin is purged once the grace period has passed",
          "[tombstone]") {
    std::atomic<std::uint64_t> now{start_ms};
    auto origin = replica(us, now);
    auto receiver = replica(eu, now);
    REQUIRE(std::holds_alternative<Committed>(origin->put("k", "v")));
    ship(*origin, *receiver);
    REQUIRE(std::holds_alternative<Committed>(origin->erase("k")));
    ship(*origin, *receiver); // ap has not acknowledged: the origin keeps it
    const std::uint64_t deleted_at = receiver->get_record("k")->timestamp_ms;
    REQUIRE(receiver->get_record("k")->deleted);

    now = deleted_at + grace_ms - 1;
    REQUIRE(receiver->purge_tombstones() == 0);
    REQUIRE(receiver->record_count() == 1);

    now = deleted_at + grace_ms + 1;
    REQUIRE(receiver->purge_tombstones() == 1);
    REQUIRE(receiver->record_count() == 0);
    REQUIRE_FALSE(receiver->get_record("k").has_value());
    // The origin still owes it to ap.
    REQUIRE(origin->purge_tombstones() == 0);
    REQUIRE(origin->get_record("k")->deleted);
}

TEST_CASE("reads never purge a tombstone", "[tombstone]") {
    std::atomic<std::uint64_t> now{start_ms};
    auto origin = replica(us, now);
    auto b = replica(eu, now);
    auto c = replica(ap, now);
    REQUIRE(std::holds_alternative<Committed>(origin->put("k", "v")));
    REQUIRE(std::holds_alternative<Committed>(origin->erase("k")));
    ship(*origin, *b);
    ship(*origin, *c);
    now = origin->get_record("k")->timestamp_ms + 10 * grace_ms;

    for (auto* r : {origin.get(), b.get()}) {
        CAPTURE(r->config().local_region);
        for (int i = 0; i < 3; ++i) {
            REQUIRE_FALSE(r->get("k").has_value());
            REQUIRE(r->get_record("k").has_value());
            REQUIRE(r->get_record("k")->deleted);
            REQUIRE(r->record_count() == 1);
            REQUIRE(r->peek_fanout(us, eu).empty());
            REQUIRE(r->pending_fanout_len(us) == 0);
            (void)r->region_sequences();
            (void)r->recent_conflicts();
        }
        REQUIRE(r->purge_tombstones() == 1);
        REQUIRE(r->record_count() == 0);
    }
}

TEST_CASE("a live record is never purged", "[tombstone]") {
    std::atomic<std::uint64_t> now{start_ms};
    auto origin = replica(us, now);
    auto b = replica(eu, now);
    auto c = replica(ap, now);
    REQUIRE(std::holds_alternative<Committed>(origin->put("live", "v")));
    REQUIRE(std::holds_alternative<Committed>(origin->erase("revived")));
    REQUIRE(std::holds_alternative<Committed>(origin->put("revived", "back")));
    REQUIRE(std::holds_alternative<Committed>(origin->erase("dead")));
    ship(*origin, *b);
    ship(*origin, *c);
    REQUIRE(origin->pending_fanout_len(us) == 0);

    now = start_ms + 1000 * grace_ms;
    for (auto* r : {origin.get(), b.get(), c.get()}) {
        CAPTURE(r->config().local_region);
        REQUIRE(r->purge_tombstones() == 1); // "dead" only
        REQUIRE(r->record_count() == 2);
        REQUIRE(r->get("live") == "v");
        REQUIRE(r->get("revived") == "back");
        REQUIRE_FALSE(r->get_record("dead").has_value());
        REQUIRE(r->purge_tombstones() == 0);
    }
}

TEST_CASE("a purged key can be written again and replicates", "[tombstone]") {
    std::atomic<std::uint64_t> now{start_ms};
    auto origin = replica(us, now);
    auto b = replica(eu, now);
    auto c = replica(ap, now);
    REQUIRE(std::holds_alternative<Committed>(origin->erase("k")));
    ship(*origin, *b);
    ship(*origin, *c);
    now = start_ms + 2 * grace_ms;
    REQUIRE(origin->purge_tombstones() == 1);
    REQUIRE(b->purge_tombstones() == 1);

    REQUIRE(std::holds_alternative<Committed>(origin->put("k", "again")));
    ship(*origin, *b);
    REQUIRE(origin->get("k") == "again");
    REQUIRE(b->get("k") == "again");
    REQUIRE(*origin->get_record("k") == *b->get_record("k"));
}
