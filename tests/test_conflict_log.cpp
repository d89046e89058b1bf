// The conflict log: LoggedConflict (one conflict in a buffer it reuses, regions as indices) and
// ConflictLog (a bounded ring of the latest conflicts, with the total raised).

#include <geo/detail/conflict_log.hpp>

#include "geo_test.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

using geo::ConflictEvent;
using geo::GeoRecord;
using geo::VectorClock;
using geo::detail::ConflictLog;
using geo::detail::LoggedConflict;
using geo::detail::WriteRef;

namespace {

const std::vector<std::string> regions{"us-east-1", "eu-west-1", "ap-northeast-1"};

/// Conflict number `i`, with fields that all differ from one number to the next: key and
/// value lengths, regions, timestamps, seqs, clocks (some empty) and deleted flags.
struct Sample {
    std::string key;
    VectorClock winner_clock;
    VectorClock loser_clock;
    std::string winner_value;
    std::string loser_value;
    std::size_t winner_region;
    std::size_t loser_region;
    std::uint64_t i;

    explicit Sample(std::uint64_t n)
        : key("key-" + std::to_string(n) + std::string(n % 5, 'x')),
          winner_clock(n % 2 == 0 ? VectorClock{} : VectorClock{{1, n}, {n + 2, 3}}),
          loser_clock(n % 3 == 0 ? VectorClock{} : VectorClock{{2, n * 10}}),
          winner_value(std::string(n % 7, 'w') + std::to_string(n)),
          loser_value(n % 4 == 0 ? std::string() : std::string(30 + n, 'l')), winner_region(n % 3),
          loser_region((n + 1) % 3), i(n) {}

    [[nodiscard]] WriteRef winner() const {
        return WriteRef{winner_region, 1000 + i, 2 * i + 1, winner_clock, winner_value, false};
    }
    [[nodiscard]] WriteRef loser() const {
        return WriteRef{loser_region, 999 + i, 2 * i, loser_clock, loser_value, i % 2 == 1};
    }
    [[nodiscard]] ConflictEvent event() const {
        return ConflictEvent{
            key,
            GeoRecord{regions[winner_region], 1000 + i, winner_clock, winner_value, 2 * i + 1,
                      false},
            GeoRecord{regions[loser_region], 999 + i, loser_clock, loser_value, 2 * i, i % 2 == 1}};
    }
};

std::vector<ConflictEvent> events(std::uint64_t first, std::uint64_t last) {
    std::vector<ConflictEvent> out;
    for (std::uint64_t n = first; n <= last; ++n) {
        out.push_back(Sample(n).event());
    }
    return out;
}

} // namespace

TEST_CASE("LoggedConflict round-trips both writes and reuses its memory", "[conflict_log]") {
    const std::vector<std::string> regions{"us-east-1", "eu-west-1", "ap-northeast-1"};
    geo::detail::LoggedConflict entry;

    const geo::VectorClock winner_clock{{1, 4}, {7, 2}};
    const geo::VectorClock loser_clock{{2, 9}};
    entry.assign("key-with-a-long-name-000000000001",
                 geo::detail::WriteRef{2, 500, 11, winner_clock, std::string(40, 'w'), false},
                 geo::detail::WriteRef{0, 499, 3, loser_clock, "", true});
    geo::ConflictEvent event = entry.to_event(regions);
    REQUIRE(event.key == "key-with-a-long-name-000000000001");
    REQUIRE(event.winner ==
            geo::GeoRecord{"ap-northeast-1", 500, winner_clock, std::string(40, 'w'), 11, false});
    REQUIRE(event.loser == geo::GeoRecord{"us-east-1", 499, loser_clock, "", 3, true});

    // Overwritten by a smaller conflict: nothing of the first one shows through.
    const geo::VectorClock empty;
    entry.assign("k", geo::detail::WriteRef{1, 7, 1, empty, "v", false},
                 geo::detail::WriteRef{0, 6, 2, empty, "old", false});
    entry.set_winner_seq(42);
    event = entry.to_event(regions);
    REQUIRE(event.key == "k");
    REQUIRE(event.winner == geo::GeoRecord{"eu-west-1", 7, {}, "v", 42, false});
    REQUIRE(event.loser == geo::GeoRecord{"us-east-1", 6, {}, "old", 2, false});

    geo::detail::LoggedConflict other;
    swap(entry, other);
    REQUIRE(other.to_event(regions) == event);
}

TEST_CASE("ConflictLog::recent returns what was logged: key, both records, clocks, values, "
          "deleted, seqs and regions",
          "[conflict_log]") {
    ConflictLog log(8);
    REQUIRE(log.recent(regions).empty());
    for (std::uint64_t n = 1; n <= 6; ++n) {
        const Sample s(n);
        log.log(s.key, s.winner(), s.loser());
    }
    REQUIRE(log.total() == 6);
    const auto recent = log.recent(regions);
    REQUIRE(recent.size() == 6);
    for (std::size_t i = 0; i < recent.size(); ++i) {
        INFO("conflict " << i + 1);
        const ConflictEvent expected = Sample(i + 1).event();
        REQUIRE(recent[i].key == expected.key);
        REQUIRE(recent[i].winner == expected.winner);
        REQUIRE(recent[i].loser == expected.loser);
        REQUIRE(recent[i].winner.clock == expected.winner.clock);
        REQUIRE(recent[i].loser.clock == expected.loser.clock);
    }
}

TEST_CASE("ConflictLog wraps around, keeping the latest `capacity` conflicts oldest first",
          "[conflict_log]") {
    const std::size_t capacity = GENERATE(1, 3, 4);
    ConflictLog log(capacity);
    for (std::uint64_t n = 1; n <= 11; ++n) {
        const Sample s(n);
        log.log(s.key, s.winner(), s.loser());
        INFO("capacity " << capacity << ", after " << n << " conflicts");
        REQUIRE(log.total() == n);
        const std::uint64_t first = n > capacity ? n - capacity + 1 : 1;
        REQUIRE(log.recent(regions) == events(first, n));
    }
}

TEST_CASE("ConflictLog with capacity 0 counts conflicts and keeps none", "[conflict_log]") {
    ConflictLog log(0);
    const Sample s(1);
    log.log(s.key, s.winner(), s.loser());
    log.log(s.key, s.winner(), s.loser());
    LoggedConflict prepared;
    prepared.assign(s.key, s.winner(), s.loser());
    log.publish(prepared);
    REQUIRE(log.total() == 3);
    REQUIRE(log.recent(regions).empty());
    // The prepared conflict was not taken.
    REQUIRE(prepared.to_event(regions) == s.event());
}

TEST_CASE("ConflictLog publishes a prepared conflict in turn with logged ones", "[conflict_log]") {
    ConflictLog log(3);
    for (std::uint64_t n = 1; n <= 8; ++n) {
        const Sample s(n);
        if (n % 3 == 0) {
            // Prepared before its winner had a seq, as the write path does.
            LoggedConflict prepared;
            prepared.assign(
                s.key,
                WriteRef{s.winner_region, 1000 + n, 0, s.winner_clock, s.winner_value, false},
                s.loser());
            prepared.set_winner_seq(2 * n + 1);
            log.publish(prepared);
            // Whatever memory it holds now, it can be prepared again.
            prepared.assign("again", s.winner(), s.loser());
            REQUIRE(prepared.to_event(regions).key == "again");
        } else {
            log.log(s.key, s.winner(), s.loser());
        }
        INFO("after " << n << " conflicts");
        REQUIRE(log.total() == n);
        REQUIRE(log.recent(regions) == events(n > 3 ? n - 2 : 1, n));
    }
}
