// SpinMutex: the lock every part of the replicator guards its fields with.

#include <geo/detail/spin_mutex.hpp>

#include "geo_test.hpp"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

TEST_CASE("SpinMutex excludes, including waiters that had to yield and sleep",
          "[spin_mutex][threads]") {
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
