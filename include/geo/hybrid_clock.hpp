#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <utility>

namespace geo {

/// Wall clock, milliseconds since the Unix epoch.
[[nodiscard]] inline std::uint64_t current_timestamp_ms() {
    using namespace std::chrono;
    return static_cast<std::uint64_t>(
        duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

/// A hybrid logical clock in milliseconds: physical time, pushed forward past every timestamp
/// this replica has seen, so a write that follows another in causal order also follows it in
/// timestamp order even when wall clocks are skewed. Thread-safe.
class HybridClock {
public:
    HybridClock() : HybridClock(&current_timestamp_ms) {}
    /// `physical_ms` replaces the wall clock, e.g. a skewed or frozen clock in a test.
    explicit HybridClock(std::function<std::uint64_t()> physical_ms)
        : physical_ms_(physical_ms ? std::move(physical_ms)
                                   : std::function<std::uint64_t()>(&current_timestamp_ms)) {}

    HybridClock(const HybridClock&) = delete;
    HybridClock& operator=(const HybridClock&) = delete;

    /// Strictly greater than every value returned before and every timestamp observed.
    [[nodiscard]] std::uint64_t now() { return issue(1, 0); }

    /// Greater than every timestamp observed and not below any value returned before, but not
    /// necessarily strictly above the last one: a writer that also orders by a per-writer
    /// sequence needs no more, and this way the clock does not run ahead of physical time when
    /// more than one write a millisecond is stamped.
    [[nodiscard]] std::uint64_t stamp() { return issue(0, 0); }

    /// stamp(), and not below `at_least`: for timestamps that need not be exceeded (a region's
    /// own earlier writes, which its sequence orders), where observe() would push past them.
    [[nodiscard]] std::uint64_t stamp(std::uint64_t at_least) { return issue(0, at_least); }

    /// Remember a timestamp seen on an applied write; later readings are above it.
    void observe(std::uint64_t timestamp_ms) noexcept {
        std::uint64_t seen = observed_.load(std::memory_order_relaxed);
        while (timestamp_ms > seen &&
               !observed_.compare_exchange_weak(seen, timestamp_ms, std::memory_order_relaxed)) {
        }
    }

    /// The largest timestamp observed so far (0 if none).
    [[nodiscard]] std::uint64_t max_observed() const noexcept {
        return observed_.load(std::memory_order_relaxed);
    }

    /// The physical reading, without advancing anything.
    [[nodiscard]] std::uint64_t physical_ms() const { return physical_ms_(); }

private:
    std::uint64_t issue(std::uint64_t past_last, std::uint64_t at_least) {
        const std::uint64_t physical = physical_ms_();
        std::uint64_t last = issued_.load(std::memory_order_relaxed);
        std::uint64_t next = 0;
        do {
            // Saturating: a corrupt timestamp near the maximum must not wrap the clock to 0.
            next = std::max({physical, at_least, saturating_inc(last, past_last),
                             saturating_inc(observed_.load(std::memory_order_relaxed), 1)});
        } while (!issued_.compare_exchange_weak(last, next, std::memory_order_relaxed));
        return next;
    }

    static std::uint64_t saturating_inc(std::uint64_t v, std::uint64_t by) noexcept {
        return v > std::numeric_limits<std::uint64_t>::max() - by
                   ? std::numeric_limits<std::uint64_t>::max()
                   : v + by;
    }

    std::function<std::uint64_t()> physical_ms_;
    std::atomic<std::uint64_t> issued_{0};
    std::atomic<std::uint64_t> observed_{0};
};

} // namespace geo
