#include <geo/hybrid_clock.hpp>

#include "geo_test.hpp"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <thread>
#include <vector>

using geo::HybridClock;

namespace {

/// A physical clock the test moves by hand.
struct ManualClock {
    std::shared_ptr<std::atomic<std::uint64_t>> ms =
        std::make_shared<std::atomic<std::uint64_t>>(0);

    explicit ManualClock(std::uint64_t start) { ms->store(start); }
    void set(std::uint64_t value) const { ms->store(value); }
    [[nodiscard]] std::function<std::uint64_t()> source() const {
        auto shared = ms;
        return [shared] { return shared->load(); };
    }
};

constexpr std::uint64_t far_future = 4'102'444'800'000; // 2100-01-01, in ms

} // namespace

TEST_CASE("now is strictly increasing even when the physical clock is frozen") {
    const ManualClock physical(1'000);
    HybridClock clock(physical.source());
    std::uint64_t last = clock.now();
    CHECK(last >= 1'000);
    for (int i = 0; i < 1000; ++i) {
        const std::uint64_t next = clock.now();
        REQUIRE(next > last);
        last = next;
    }
}

TEST_CASE("now is strictly increasing when the physical clock goes backwards") {
    const ManualClock physical(50'000);
    HybridClock clock(physical.source());
    const std::uint64_t first = clock.now();
    physical.set(10'000);
    const std::uint64_t second = clock.now();
    CHECK(second > first);
    physical.set(0);
    CHECK(clock.now() > second);
}

TEST_CASE("now is above every observed timestamp") {
    const ManualClock physical(1'000);
    HybridClock clock(physical.source());
    clock.observe(far_future);
    CHECK(clock.now() > far_future);
    CHECK(clock.max_observed() == far_future);
}

TEST_CASE("now of the wall clock is above a far-future observed timestamp") {
    HybridClock clock;
    clock.observe(far_future);
    const std::uint64_t first = clock.now();
    CHECK(first > far_future);
    CHECK(clock.now() > first);
}

TEST_CASE("observing an older timestamp does not move the clock back") {
    const ManualClock physical(1'000);
    HybridClock clock(physical.source());
    clock.observe(9'000);
    clock.observe(5'000);
    CHECK(clock.max_observed() == 9'000);
    CHECK(clock.now() > 9'000);
}

TEST_CASE("a fresh clock has observed nothing") {
    HybridClock clock;
    CHECK(clock.max_observed() == 0);
}

TEST_CASE("stamp never decreases and is above observed and at or above physical") {
    const ManualClock physical(1'000);
    HybridClock clock(physical.source());
    std::uint64_t last = clock.stamp();
    CHECK(last >= 1'000);

    const std::uint64_t frozen = clock.stamp(); // frozen physical: may repeat, never decreases
    CHECK(frozen >= last);
    last = frozen;

    clock.observe(7'000);
    const std::uint64_t after_observe = clock.stamp();
    CHECK(after_observe > 7'000);
    CHECK(after_observe >= last);
    last = after_observe;

    physical.set(20'000);
    const std::uint64_t after_jump = clock.stamp();
    CHECK(after_jump >= 20'000);
    CHECK(after_jump >= last);
    last = after_jump;

    physical.set(3'000); // physical goes backwards
    const std::uint64_t after_backwards = clock.stamp();
    CHECK(after_backwards >= last);

    clock.observe(far_future);
    CHECK(clock.stamp() > far_future);
}

TEST_CASE("stamp does not run ahead of a frozen physical clock") {
    const ManualClock physical(1'000);
    HybridClock clock(physical.source());
    for (int i = 0; i < 10; ++i) {
        CHECK(clock.stamp() == 1'000);
    }
}

TEST_CASE("stamp(at_least) reaches at_least without passing it, and never goes back") {
    const ManualClock physical(1'000);
    HybridClock clock(physical.source());
    CHECK(clock.stamp(5'000) == 5'000); // a floor, not a timestamp to exceed
    CHECK(clock.stamp(5'000) == 5'000);
    CHECK(clock.stamp(10) == 5'000); // not back below what it returned
    clock.observe(7'000);
    CHECK(clock.stamp(7'000) == 7'001); // observed timestamps are still exceeded
    physical.set(9'000);
    CHECK(clock.stamp(8'000) == 9'000);
    CHECK(clock.now() == 9'001);
}

TEST_CASE("now after stamp is strictly above it") {
    const ManualClock physical(1'000);
    HybridClock clock(physical.source());
    const std::uint64_t s = clock.stamp();
    CHECK(clock.now() > s);
    const std::uint64_t n = clock.now();
    CHECK(clock.stamp() >= n);
}

TEST_CASE("a default-constructed clock reads the wall clock") {
    HybridClock clock;
    const std::uint64_t before = geo::current_timestamp_ms();
    const std::uint64_t reading = clock.now();
    const std::uint64_t after = geo::current_timestamp_ms();
    CHECK(reading >= before);
    CHECK(reading <= after);

    const std::uint64_t physical_before = geo::current_timestamp_ms();
    const std::uint64_t physical = clock.physical_ms();
    const std::uint64_t physical_after = geo::current_timestamp_ms();
    CHECK(physical >= physical_before);
    CHECK(physical <= physical_after);
}

TEST_CASE("current_timestamp_ms is milliseconds since the epoch") {
    const std::uint64_t ms = geo::current_timestamp_ms();
    CHECK(ms > 1'600'000'000'000); // after September 2020
    CHECK(ms < far_future);
}

TEST_CASE("an injected physical clock is used instead of the wall clock") {
    const ManualClock physical(5'000'000);
    HybridClock clock(physical.source());
    CHECK(clock.physical_ms() == 5'000'000);
    CHECK(clock.now() == 5'000'000);
    physical.set(6'000'000);
    CHECK(clock.physical_ms() == 6'000'000);
    CHECK(clock.now() == 6'000'000);
    CHECK(clock.now() == 6'000'001);
}

TEST_CASE("an empty physical source falls back to the wall clock") {
    HybridClock clock{std::function<std::uint64_t()>{}};
    const std::uint64_t before = geo::current_timestamp_ms();
    const std::uint64_t reading = clock.now();
    const std::uint64_t after = geo::current_timestamp_ms();
    CHECK(reading >= before);
    CHECK(reading <= after);
}

TEST_CASE("concurrent now calls return distinct values") {
    const ManualClock physical(1'000); // frozen: every value comes from the logical part
    HybridClock clock(physical.source());
    constexpr std::size_t threads = 4;
    constexpr std::size_t per_thread = 20'000;
    std::vector<std::vector<std::uint64_t>> readings(threads);
    std::vector<std::thread> workers;
    std::atomic<bool> go{false};
    for (std::size_t t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            readings[t].reserve(per_thread);
            while (!go.load()) {
                std::this_thread::yield();
            }
            for (std::size_t i = 0; i < per_thread; ++i) {
                readings[t].push_back(clock.now());
            }
        });
    }
    go.store(true);
    for (auto& worker : workers) {
        worker.join();
    }
    std::set<std::uint64_t> distinct;
    for (const auto& mine : readings) {
        REQUIRE(mine.size() == per_thread);
        CHECK(std::is_sorted(mine.begin(), mine.end()));
        CHECK(std::adjacent_find(mine.begin(), mine.end()) == mine.end());
        distinct.insert(mine.begin(), mine.end());
    }
    CHECK(distinct.size() == threads * per_thread);
}

TEST_CASE("concurrent now calls on the wall clock return distinct values") {
    HybridClock clock;
    constexpr std::size_t threads = 4;
    constexpr std::size_t per_thread = 20'000;
    std::vector<std::vector<std::uint64_t>> readings(threads);
    std::vector<std::thread> workers;
    for (std::size_t t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            for (std::size_t i = 0; i < per_thread; ++i) {
                readings[t].push_back(clock.now());
                if (i % 1000 == 0) {
                    clock.observe(readings[t].back() + 5);
                }
            }
        });
    }
    for (auto& worker : workers) {
        worker.join();
    }
    std::set<std::uint64_t> distinct;
    for (const auto& mine : readings) {
        CHECK(std::adjacent_find(mine.begin(), mine.end(), [](std::uint64_t a, std::uint64_t b) {
                  return a >= b;
              }) == mine.end());
        distinct.insert(mine.begin(), mine.end());
    }
    CHECK(distinct.size() == threads * per_thread);
}
