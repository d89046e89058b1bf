// Tests of the replicator's internal building blocks whose mistakes would not always show
// through the public API: region lookup and ranking, the compact conflict log.
// Plus the public behaviour that depends on them: LWW ties broken by region id whatever the
// configured order of the regions.

#include <geo/detail/conflict_log.hpp>
#include <geo/detail/region_names.hpp>
#include <geo/detail/spin_mutex.hpp>
#include <geo/replicator.hpp>

#include "geo_test.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

using geo::detail::RegionNames;

namespace {

// Ids that share 8-byte prefixes or suffixes, differ only in length, straddle the 8- and
// 16-byte word boundaries, or are longer than 16 bytes: every case of the packed comparison.
const std::vector<std::string> tricky_ids{
    "",
    "a",
    "us",
    "us-east",
    "us-east-",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "eu-west-1",
    "ap-northeast-1",
    "ap-northeast-10",
    "ap-northeast-1000",
    "ap-northeast-1001",
    "xx-prefix-shared-middle-A-end",
    "xx-prefix-shared-middle-B-end",
    std::string("nul\0byte", 8),
    std::string("nul\0bytf", 8),
};

} // namespace

TEST_CASE("RegionNames finds exactly the configured ids", "[internals]") {
    const RegionNames names(tricky_ids);
    REQUIRE(names.size() == tricky_ids.size());
    for (std::size_t i = 0; i < tricky_ids.size(); ++i) {
        INFO("id #" << i << " '" << tricky_ids[i] << "'");
        REQUIRE(names.find(tricky_ids[i]) == i);
        // A copy at another address is found too (no pointer identity).
        const std::string copy = tricky_ids[i];
        REQUIRE(names.find(copy) == i);
    }
    for (const std::string missing : {"us-east-3", "US-EAST-1", "us-east-1 ", "ap-northeast-1002",
                                      "xx-prefix-shared-middle-C-end", "ap-northeast", "b"}) {
        INFO("missing '" << missing << "'");
        REQUIRE(names.find(missing) == names.size());
    }
}

TEST_CASE("RegionNames ranks ids in string order", "[internals]") {
    const RegionNames names(tricky_ids);
    for (std::size_t i = 0; i < tricky_ids.size(); ++i) {
        for (std::size_t j = 0; j < tricky_ids.size(); ++j) {
            INFO("'" << tricky_ids[i] << "' vs '" << tricky_ids[j] << "'");
            REQUIRE((names.rank(i) < names.rank(j)) == (tricky_ids[i] < tricky_ids[j]));
        }
    }
}

TEST_CASE("LWW ties go to the greater region id whatever the configured order", "[internals]") {
    // Regions configured against their string order, with ids that share prefixes.
    const std::vector<std::string> ids{"zz", "us-east-1", "us-east", "a", "us-east-10"};
    geo::ActiveActiveGeoConfig config;
    config.regions = ids;
    config.local_region = "a";
    geo::ActiveActiveReplicator rep(config, {});
    const std::string greatest = *std::max_element(ids.begin(), ids.end());
    for (const auto& first : ids) {
        for (const auto& second : ids) {
            const std::string key = first + "|" + second;
            REQUIRE(std::holds_alternative<geo::Committed>(
                rep.apply_remote_write(first, key, "from " + first, 1000)));
            const geo::GeoWriteOutcome outcome =
                rep.apply_remote_write(second, key, "from " + second, 1000);
            const std::string expected_winner = std::max(first, second);
            INFO(first << " then " << second);
            REQUIRE(rep.get_record(key)->region == expected_winner);
            if (second > first) {
                REQUIRE(std::holds_alternative<geo::Committed>(outcome));
            } else if (second < first) {
                const auto* rejected = std::get_if<geo::RejectedByConflict>(&outcome);
                REQUIRE(rejected != nullptr);
                REQUIRE(rejected->region == second);
                REQUIRE(rejected->winner_region == first);
                REQUIRE(rejected->winner_timestamp_ms == 1000);
            }
        }
        // And a later timestamp beats every id.
        REQUIRE(std::holds_alternative<geo::Committed>(
            rep.apply_remote_write("a", first + "|" + greatest, "later", 1001)));
    }
}

TEST_CASE("SpinMutex excludes, including waiters that had to yield and sleep",
          "[internals][threads]") {
    geo::detail::SpinMutex mu;
    long counter = 0; // plain: only the lock makes the increments safe (TSan checks)
    constexpr int threads = 4;
    constexpr int rounds = 20000;
    std::atomic<bool> holder_in{false};
    std::vector<std::thread> workers;
    // One holder keeps the lock for milliseconds, long enough for waiters to pass spinning
    // and yielding and go to sleep.
    workers.emplace_back([&] {
        std::lock_guard<geo::detail::SpinMutex> lock(mu);
        holder_in = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        ++counter;
    });
    while (!holder_in) {
        std::this_thread::yield();
    }
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&] {
            for (int i = 0; i < rounds; ++i) {
                std::lock_guard<geo::detail::SpinMutex> lock(mu);
                ++counter;
            }
        });
    }
    for (auto& worker : workers) {
        worker.join();
    }
    REQUIRE(counter == 1 + static_cast<long>(threads) * rounds);
    REQUIRE(mu.try_lock());
    REQUIRE_FALSE(mu.try_lock());
    mu.unlock();
}
