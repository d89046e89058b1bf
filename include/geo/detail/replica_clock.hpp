#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <utility>

#include "../hybrid_clock.hpp"

namespace geo::detail {

/// The replica's sense of time: the hybrid clock that stamps local writes, the timestamps
/// applied so far (kept per region, one cache line each, so writers of different regions do
/// not contend; folded into the hybrid clock only when it stamps), the clock-offset guard and
/// the purge cutoff.
class ReplicaClock {
public:
    ReplicaClock(std::function<std::uint64_t()> physical_ms, std::size_t region_count,
                 std::chrono::nanoseconds tombstone_grace, std::chrono::nanoseconds max_offset)
        : clock_(std::move(physical_ms)), observed_(new Observed[region_count]),
          region_count_(region_count), tombstone_grace_ms_(ceil_ms(tombstone_grace)),
          max_offset_ms_(ceil_ms(max_offset)) {}

    /// A timestamp applied in (or received from) `region`: later stamps are above it.
    void observe(std::size_t region, std::uint64_t timestamp_ms) noexcept {
        auto& max_ts = observed_[region].max_ts;
        std::uint64_t seen = max_ts.load(std::memory_order_relaxed);
        while (timestamp_ms > seen &&
               !max_ts.compare_exchange_weak(seen, timestamp_ms, std::memory_order_relaxed)) {
        }
    }

    /// The hybrid clock's stamp for a local write: above every timestamp observed.
    [[nodiscard]] std::uint64_t stamp() {
        fold_observed();
        return clock_.stamp();
    }

    /// Strictly above every value it returned before and every timestamp observed (saturating
    /// at the top of the range): what a proposer stamps a log entry with.
    [[nodiscard]] std::uint64_t next() {
        fold_observed();
        return clock_.now();
    }

    /// A proposer's stamp: not below any value returned before or any timestamp applied in
    /// `local` (its sequence orders equal stamps), above every other region's, so a proposer of
    /// more than one write a millisecond keeps to physical time.
    [[nodiscard]] std::uint64_t proposal(std::size_t local) {
        fold_observed(local);
        return clock_.stamp(observed_[local].max_ts.load(std::memory_order_relaxed));
    }

    /// The largest timestamp observed in `region` (0 if none).
    [[nodiscard]] std::uint64_t observed(std::size_t region) const noexcept {
        return observed_[region].max_ts.load(std::memory_order_relaxed);
    }

    /// Only before the clock is shared, or with every writer held (restore).
    void reset_observed(std::size_t region, std::uint64_t timestamp_ms) noexcept {
        observed_[region].max_ts.store(timestamp_ms, std::memory_order_relaxed);
    }

    /// Counts a remote timestamp further ahead of the physical clock than the configured
    /// offset (0: no check).
    void check_offset(std::uint64_t timestamp_ms) {
        if (max_offset_ms_ != 0 &&
            timestamp_ms > saturating_add(clock_.physical_ms(), max_offset_ms_)) {
            offset_violations_.fetch_add(1, std::memory_order_relaxed);
        }
    }

    [[nodiscard]] std::uint64_t offset_violations() const noexcept {
        return offset_violations_.load(std::memory_order_relaxed);
    }

    /// Tombstones stamped at or below this are past their grace period at `now_ms`; none
    /// when `now_ms` is below the grace period itself.
    [[nodiscard]] std::optional<std::uint64_t> purge_cutoff(std::uint64_t now_ms) const noexcept {
        if (now_ms < tombstone_grace_ms_) {
            return std::nullopt;
        }
        return now_ms - tombstone_grace_ms_;
    }

    [[nodiscard]] std::uint64_t physical_ms() const { return clock_.physical_ms(); }

    static std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) noexcept {
        return a > std::numeric_limits<std::uint64_t>::max() - b
                   ? std::numeric_limits<std::uint64_t>::max()
                   : a + b;
    }

private:
    /// Makes later stamps exceed every region's largest timestamp, but `except`'s.
    void fold_observed(std::size_t except = static_cast<std::size_t>(-1)) noexcept {
        for (std::size_t r = 0; r < region_count_; ++r) {
            if (r != except) {
                clock_.observe(observed_[r].max_ts.load(std::memory_order_relaxed));
            }
        }
    }

    struct alignas(128) Observed {
        std::atomic<std::uint64_t> max_ts{0};
    };

    static std::uint64_t ceil_ms(std::chrono::nanoseconds d) noexcept {
        const auto ns = static_cast<std::uint64_t>(d.count()); // validate() rejects negatives
        return ns / 1'000'000 + (ns % 1'000'000 != 0 ? 1 : 0);
    }

    HybridClock clock_;
    std::unique_ptr<Observed[]> observed_;
    std::size_t region_count_;
    std::uint64_t tombstone_grace_ms_;
    std::uint64_t max_offset_ms_;
    std::atomic<std::uint64_t> offset_violations_{0};
};

} // namespace geo::detail
