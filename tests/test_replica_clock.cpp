// ReplicaClock on its own: timestamps observed per region are folded into the hybrid clock
// when it stamps; the clock-offset guard; the tombstone purge cutoff. The physical clock is a
// variable the tests set.

#include <geo/detail/replica_clock.hpp>

#include "geo_test.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <random>

using geo::detail::ReplicaClock;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t max_ts = std::numeric_limits<std::uint64_t>::max();

/// A ReplicaClock reading `*physical` as its physical time.
std::unique_ptr<ReplicaClock> clock_at(const std::uint64_t* physical, std::size_t regions,
                                       std::chrono::nanoseconds grace = 0ns,
                                       std::chrono::nanoseconds offset = 0ns) {
    return std::make_unique<ReplicaClock>([physical] { return *physical; }, regions, grace, offset);
}

} // namespace

TEST_CASE("ReplicaClock stamps above every timestamp observed in any region", "[replica_clock]") {
    std::uint64_t physical = 1000;
    SECTION("each region on its own, the last one included") {
        constexpr std::size_t regions = 4;
        for (std::size_t r = 0; r < regions; ++r) {
            INFO("region " << r);
            auto clock = clock_at(&physical, regions);
            REQUIRE(clock->stamp() >= 1000);
            clock->observe(r, 5000);
            REQUIRE(clock->stamp() > 5000);
        }
    }
    SECTION("random observations across regions") {
        std::mt19937 rng(7);
        constexpr std::size_t regions = 3;
        auto clock = clock_at(&physical, regions);
        std::uint64_t highest = 0;
        std::uint64_t last_stamp = 0;
        for (int i = 0; i < 2000; ++i) {
            const std::size_t r = rng() % regions;
            const std::uint64_t ts = 500 + rng() % 100000;
            clock->observe(r, ts); // lower ones included: they must not lower anything
            highest = std::max(highest, ts);
            if (rng() % 4 == 0) {
                physical += rng() % 50;
                const std::uint64_t stamp = clock->stamp();
                INFO("step " << i);
                REQUIRE(stamp > highest);
                REQUIRE(stamp >= physical);
                REQUIRE(stamp >= last_stamp); // never backwards
                last_stamp = stamp;
            }
        }
    }
    SECTION("a timestamp at the maximum saturates instead of wrapping") {
        auto clock = clock_at(&physical, 2);
        clock->observe(1, max_ts);
        REQUIRE(clock->stamp() == max_ts);
    }
    SECTION("with nothing observed, stamps follow physical time") {
        auto clock = clock_at(&physical, 2);
        REQUIRE(clock->stamp() == 1000);
        physical = 1500;
        REQUIRE(clock->stamp() == 1500);
    }
}

TEST_CASE("ReplicaClock::check_offset counts only timestamps beyond physical + offset",
          "[replica_clock]") {
    std::uint64_t physical = 1000;
    auto clock = clock_at(&physical, 2, 0ns, 5ms);
    clock->check_offset(0);
    clock->check_offset(1000);
    clock->check_offset(1005); // exactly at the bound: allowed
    REQUIRE(clock->offset_violations() == 0);
    clock->check_offset(1006);
    REQUIRE(clock->offset_violations() == 1);
    clock->check_offset(max_ts);
    REQUIRE(clock->offset_violations() == 2);
    // The bound moves with physical time.
    physical = 2000;
    clock->check_offset(1006);
    clock->check_offset(2005);
    REQUIRE(clock->offset_violations() == 2);
    clock->check_offset(2006);
    REQUIRE(clock->offset_violations() == 3);
    // Checking observes nothing: stamps are unaffected.
    REQUIRE(clock->stamp() == 2000);
}

TEST_CASE("ReplicaClock::check_offset counts nothing when the offset is 0", "[replica_clock]") {
    std::uint64_t physical = 1000;
    auto clock = clock_at(&physical, 2, 0ns, 0ns);
    for (const std::uint64_t ts :
         {std::uint64_t{0}, std::uint64_t{1001}, std::uint64_t{1000 + 3'600'000}, max_ts}) {
        clock->check_offset(ts);
    }
    REQUIRE(clock->offset_violations() == 0);
}

TEST_CASE("ReplicaClock::check_offset does not overflow near the maximum", "[replica_clock]") {
    std::uint64_t physical = max_ts - 2;
    auto clock = clock_at(&physical, 1, 0ns, 10ms);
    clock->check_offset(max_ts); // physical + offset saturates at the maximum
    REQUIRE(clock->offset_violations() == 0);
    REQUIRE(ReplicaClock::saturating_add(max_ts - 2, 10) == max_ts);
    REQUIRE(ReplicaClock::saturating_add(max_ts - 10, 10) == max_ts);
    REQUIRE(ReplicaClock::saturating_add(5, 10) == 15);
}

TEST_CASE("ReplicaClock::purge_cutoff is the log time minus the grace, and none below the grace",
          "[replica_clock]") {
    std::uint64_t physical = 1000;
    auto clock = clock_at(&physical, 2, 10ms);
    REQUIRE(clock->purge_cutoff(1000) == std::optional<std::uint64_t>(990));
    REQUIRE(clock->purge_cutoff(10) == std::optional<std::uint64_t>(0));
    REQUIRE(clock->purge_cutoff(11) == std::optional<std::uint64_t>(1));
    // Below the grace period nothing is old enough: no cutoff at all, not a cutoff of 0 (which
    // would purge a tombstone stamped 0 at once) and not a wrapped-around huge one.
    REQUIRE_FALSE(clock->purge_cutoff(5).has_value());
    REQUIRE_FALSE(clock->purge_cutoff(0).has_value());
    // Neither the physical clock nor observed timestamps move it: it is the given time only.
    physical = 5;
    clock->observe(0, 1'000'000);
    REQUIRE(clock->purge_cutoff(1000) == std::optional<std::uint64_t>(990));

    auto no_grace = clock_at(&physical, 2, 0ns);
    REQUIRE(no_grace->purge_cutoff(1000) == std::optional<std::uint64_t>(1000));
    REQUIRE(no_grace->purge_cutoff(0) == std::optional<std::uint64_t>(0));
}

TEST_CASE("ReplicaClock rounds the grace and the offset up to whole milliseconds",
          "[replica_clock]") {
    std::uint64_t physical = 1000;
    SECTION("grace") {
        using cutoff = std::optional<std::uint64_t>;
        REQUIRE(clock_at(&physical, 1, 1ns)->purge_cutoff(1000) == cutoff(999));
        REQUIRE(clock_at(&physical, 1, 999'999ns)->purge_cutoff(1000) == cutoff(999));
        REQUIRE(clock_at(&physical, 1, 1ms)->purge_cutoff(1000) == cutoff(999));
        REQUIRE(clock_at(&physical, 1, 1ms + 1ns)->purge_cutoff(1000) == cutoff(998));
        REQUIRE(clock_at(&physical, 1, 2500us)->purge_cutoff(1000) == cutoff(997));
        REQUIRE(clock_at(&physical, 1, 1s)->purge_cutoff(1000) == cutoff(0));
    }
    SECTION("offset") {
        auto one_ns = clock_at(&physical, 1, 0ns, 1ns); // a whole millisecond, not 0 (off)
        one_ns->check_offset(1001);
        REQUIRE(one_ns->offset_violations() == 0);
        one_ns->check_offset(1002);
        REQUIRE(one_ns->offset_violations() == 1);

        auto partial = clock_at(&physical, 1, 0ns, 2500us); // 3 ms
        partial->check_offset(1003);
        REQUIRE(partial->offset_violations() == 0);
        partial->check_offset(1004);
        REQUIRE(partial->offset_violations() == 1);
    }
}
