// RegionStream (a region's commit sequence: next_seq hands out seqs, raise_seq records the
// highest applied, neither ever moves it backwards) and RegionState.

#include <geo/detail/regions.hpp>

#include "geo_test.hpp"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

using geo::detail::RegionState;
using geo::detail::RegionStream;

TEST_CASE("RegionStream::next_seq counts up from the reset seq", "[regions]") {
    RegionStream stream;
    REQUIRE(stream.seq() == 0);
    REQUIRE(stream.next_seq() == 1);
    REQUIRE(stream.next_seq() == 2);
    REQUIRE(stream.seq() == 2);
    RegionStream recovered;
    recovered.reset_seq(41); // a Raft group's committed seq, at construction
    REQUIRE(recovered.seq() == 41);
    REQUIRE(recovered.next_seq() == 42);
}

TEST_CASE("RegionStream::raise_seq never moves the seq backwards", "[regions]") {
    RegionStream stream;
    stream.raise_seq(10);
    REQUIRE(stream.seq() == 10);
    stream.raise_seq(5);
    REQUIRE(stream.seq() == 10);
    stream.raise_seq(10);
    REQUIRE(stream.seq() == 10);
    REQUIRE(stream.next_seq() == 11); // a seq applied from a peer is never handed out again
    stream.raise_seq(11);
    REQUIRE(stream.seq() == 11);
    stream.raise_seq(0);
    REQUIRE(stream.seq() == 11);
}

TEST_CASE("RegionStream from several threads: raise_seq keeps the maximum, next_seq hands "
          "out distinct seqs",
          "[regions][threads]") {
    constexpr int threads = 4;
    constexpr int rounds = 5000;
    RegionStream stream;
    std::atomic<int> ready{0};
    std::vector<std::vector<std::uint64_t>> handed(threads);
    std::vector<int> went_back(threads, 0);
    std::vector<std::thread> workers;
    workers.reserve(threads);
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            const auto ti = static_cast<std::size_t>(t);
            ready.fetch_add(1);
            while (ready.load() < threads) {
                std::this_thread::yield();
            }
            std::uint64_t last_read = 0;
            for (int i = 0; i < rounds; ++i) {
                if (i % 4 == 0) {
                    handed[ti].push_back(stream.next_seq());
                } else {
                    // Raises interleaved across threads, some below what others raised.
                    stream.raise_seq(static_cast<std::uint64_t>(i * threads + t) * 3);
                }
                const std::uint64_t now = stream.seq();
                went_back[ti] += now < last_read ? 1 : 0;
                last_read = now;
            }
        });
    }
    for (auto& worker : workers) {
        worker.join();
    }
    std::set<std::uint64_t> distinct;
    std::size_t count = 0;
    for (std::size_t t = 0; t < threads; ++t) {
        REQUIRE(went_back[t] == 0);
        REQUIRE(std::is_sorted(handed[t].begin(), handed[t].end()));
        distinct.insert(handed[t].begin(), handed[t].end());
        count += handed[t].size();
    }
    REQUIRE(distinct.size() == count);
    // The last raise is the largest value raised; next_seq may have gone past it.
    const std::uint64_t largest_raise = static_cast<std::uint64_t>((rounds - 1) * threads + 3) * 3;
    REQUIRE(stream.seq() >= largest_raise);
    REQUIRE(stream.seq() >= *distinct.rbegin());
    REQUIRE(stream.seq() <= largest_raise + count);
}

TEST_CASE("RegionState holds the region's queue, stream and group", "[regions]") {
    RegionState state(1, 3);
    REQUIRE(state.stream.seq() == 0);
    REQUIRE_FALSE(state.group_id.has_value());
    REQUIRE(state.queue.queued() == 0);
    for (std::size_t t = 0; t < 3; ++t) {
        REQUIRE(state.queue.owed(t) == 0);
    }
    REQUIRE(reinterpret_cast<std::uintptr_t>(&state) % 128 == 0);
}
