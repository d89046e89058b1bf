#pragma once

#include <cstdint>
#include <string_view>

#include "record.hpp"
#include "types.hpp"
#include "vector_clock.hpp"

namespace geo {

/// What resolving an incoming write against the stored record decided.
struct Resolution {
    bool incoming_wins{};
    /// Both are the same write (same place in the LWW order): a re-delivery, never a conflict.
    bool same_write{};
    /// Vector-clock mode only: neither clock happens before the other (or they are equal on two
    /// different writes), so the LWW fallback decided and the loser is a lost update to report.
    bool concurrent{};
};

// The last-writer-wins order is `(timestamp_ms, region, seq)`, compared left to right. It is
// total on writes (a region never reuses a seq), so every replica picks the same winner.

namespace detail {

/// The parts of a write that resolution reads, so a write can be resolved before it is built.
struct WriteView {
    std::uint64_t timestamp_ms;
    std::string_view region;
    std::uint64_t seq;
    const VectorClock& clock;

    explicit WriteView(const GeoRecord& r) noexcept
        : timestamp_ms(r.timestamp_ms), region(r.region), seq(r.seq), clock(r.clock) {}
    WriteView(std::uint64_t ts, std::string_view reg, std::uint64_t s,
              const VectorClock& c) noexcept
        : timestamp_ms(ts), region(reg), seq(s), clock(c) {}
};

[[nodiscard]] inline bool lww_less(const WriteView& a, const WriteView& b) noexcept {
    if (a.timestamp_ms != b.timestamp_ms) {
        return a.timestamp_ms < b.timestamp_ms;
    }
    if (int c = a.region.compare(b.region); c != 0) {
        return c < 0;
    }
    return a.seq < b.seq;
}

[[nodiscard]] inline bool same_write(const WriteView& a, const WriteView& b) noexcept {
    return a.timestamp_ms == b.timestamp_ms && a.seq == b.seq && a.region == b.region;
}

} // namespace detail

/// Resolves `incoming` against `existing`. LWW: the incoming write wins only if strictly greater
/// in `lww_less`. Vector clock: causal order decides; concurrent or equal clocks fall back to LWW.
[[nodiscard]] inline Resolution resolve(const detail::WriteView& incoming,
                                        const detail::WriteView& existing,
                                        ConflictResolutionMode mode) noexcept {
    using detail::lww_less;
    const bool same = detail::same_write(existing, incoming);
    if (mode == ConflictResolutionMode::VectorClock) {
        switch (existing.clock.compare(incoming.clock)) {
        case ClockOrder::Before:
            return {true, same, false};
        case ClockOrder::After:
            return {false, same, false};
        case ClockOrder::Equal:
            // Same history: a re-application of the same write (possibly under a new seq) is
            // not a lost update; only a different write with an identical clock is.
            return {lww_less(existing, incoming), same,
                    existing.timestamp_ms != incoming.timestamp_ms ||
                        existing.region != incoming.region};
        case ClockOrder::Concurrent:
            return {lww_less(existing, incoming), same, true};
        }
    }
    return {lww_less(existing, incoming), same, false};
}

[[nodiscard]] inline Resolution resolve(const GeoRecord& incoming, const GeoRecord& existing,
                                        ConflictResolutionMode mode) noexcept {
    return resolve(detail::WriteView(incoming), detail::WriteView(existing), mode);
}

/// True when `a` sorts before `b` in the LWW order.
[[nodiscard]] inline bool lww_less(const GeoRecord& a, const GeoRecord& b) noexcept {
    return detail::lww_less(detail::WriteView(a), detail::WriteView(b));
}

/// Same position in the LWW order: the same write, seen again.
[[nodiscard]] inline bool same_write(const GeoRecord& a, const GeoRecord& b) noexcept {
    return detail::same_write(detail::WriteView(a), detail::WriteView(b));
}

} // namespace geo
