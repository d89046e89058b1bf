#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "fanout_queue.hpp"
#include "spin_mutex.hpp"

namespace geo::detail {

/// Sequences stay below this: groups, snapshots and received entries at or above it are
/// refused. Only a corrupt or hostile value gets near it (2^63 commits).
inline constexpr std::uint64_t max_seq = std::uint64_t{1} << 63;

/// A region whose sequence reached this commits no more (instead of wrapping to 0, which
/// would put a write out of order in its queue and never ship it). The check runs before a
/// commit takes its seq, so the margin below max_seq covers commits on other threads that
/// passed it at the same time.
inline constexpr std::uint64_t max_commit_seq = max_seq - (std::uint64_t{1} << 32);

/// What this replica knows of one region's stream of writes: the last commit sequence of the
/// region (its own commits when it is written here, the highest seq applied from it when its
/// writes arrive from a peer).
///
/// `stream_mutex()` serializes the entries received from the region, so "at or below seq is
/// already applied" is decided and acted on atomically. `seq` is atomic because a local
/// commit takes it under the region's queue lock instead, and readers take no lock.
class RegionStream {
public:
    [[nodiscard]] SpinMutex& stream_mutex() noexcept { return stream_mu_; }

    [[nodiscard]] std::uint64_t seq() const noexcept {
        return seq_.load(std::memory_order_relaxed);
    }

    /// The region's next commit sequence (local commits: caller holds the region's queue lock,
    /// so seqs enter the queue in order).
    [[nodiscard]] std::uint64_t next_seq() noexcept {
        return seq_.fetch_add(1, std::memory_order_relaxed) + 1;
    }

    /// Never moves backwards.
    void raise_seq(std::uint64_t seq) noexcept {
        std::uint64_t current = seq_.load(std::memory_order_relaxed);
        while (seq > current &&
               !seq_.compare_exchange_weak(current, seq, std::memory_order_relaxed)) {
        }
    }

    /// Whether one more commit may be numbered (see max_commit_seq).
    [[nodiscard]] bool can_commit() const noexcept { return seq() < max_commit_seq; }

    /// Only before the replica is shared (construction).
    void reset_seq(std::uint64_t seq) noexcept { seq_.store(seq, std::memory_order_relaxed); }

private:
    SpinMutex stream_mu_;
    std::atomic<std::uint64_t> seq_{0};
};

/// Everything kept per configured region, on cache lines of its own so writers of different
/// regions do not share lines: the queue of its writes owed to peers, its stream, the id of
/// its Raft group (which keys its vector-clock entry), if one was given, and whether the host
/// reports it available for routing (a local view: not part of snapshots; no lock).
struct alignas(128) RegionState {
    RegionState(std::size_t self, std::size_t region_count) : queue(self, region_count) {}

    FanoutQueue queue;
    RegionStream stream;
    std::optional<std::uint64_t> group_id;
    std::atomic<bool> available{true};
};

} // namespace geo::detail
