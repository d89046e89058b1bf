#pragma once

#include <chrono>
#include <cstdint>
#include <limits>

namespace geo::detail {

/// What one target misses of one key's queued writes besides the entry's own write.
///
/// A queue keeps one entry per key: a newer commit of the key replaces the entry (coalescing).
/// A target that had not acknowledged the replaced entry still misses that write, and every
/// write of the key after it: `from` is the seq of the first write of the key it misses and
/// `since_ms` that write's timestamp. `from == 0` means the target misses nothing before the
/// entry itself. This is the arithmetic of stream lag and durability, kept free of the queue so
/// that it can be checked against a model that remembers every write.
struct Missed {
    std::uint64_t from{};
    std::uint64_t since_ms{};

    [[nodiscard]] constexpr bool pinned() const noexcept { return from != 0; }
    friend constexpr bool operator==(Missed a, Missed b) noexcept {
        return a.from == b.from && a.since_ms == b.since_ms;
    }
    friend constexpr bool operator!=(Missed a, Missed b) noexcept { return !(a == b); }
};

/// The first write of the key a target misses when the entry (seq `seq`, stamped `ts`) is owed
/// to it: the pinned one, or the entry's own write.
[[nodiscard]] constexpr Missed first_missed(Missed missed, std::uint64_t seq,
                                            std::uint64_t ts) noexcept {
    return missed.pinned() ? missed : Missed{seq, ts};
}

/// A newer commit replaces an entry: a target that had acknowledged the replaced entry misses
/// only the new write; one that had not misses from where it did (`old_first`, see
/// first_missed). A replacing write stamped earlier than the write it pins (hosts may pick
/// timestamps) keeps its own stamp as `since`: the lag then reads longer, never shorter.
[[nodiscard]] constexpr Missed after_replace(bool acknowledged_old, Missed old_first,
                                             std::uint64_t new_ts) noexcept {
    if (acknowledged_old) {
        return Missed{};
    }
    return Missed{old_first.from, old_first.since_ms < new_ts ? old_first.since_ms : new_ts};
}

/// Whether a target holds write `seq` of a key whose queued entry it owes (`owes`) or has
/// acknowledged; `first` is the first write of the key it misses (see first_missed).
[[nodiscard]] constexpr bool holds(std::uint64_t seq, bool owes, Missed first) noexcept {
    return !owes || seq < first.from;
}

/// How long a write stamped `since_ms` has been missing at `now_ms`; never negative.
[[nodiscard]] constexpr std::uint64_t lag_ms(std::uint64_t now_ms,
                                             std::uint64_t since_ms) noexcept {
    return now_ms > since_ms ? now_ms - since_ms : 0;
}

/// `lag > max_lag`, exact at every magnitude (no conversion that could overflow).
[[nodiscard]] constexpr bool is_stale(std::uint64_t lag,
                                      std::chrono::nanoseconds max_lag) noexcept {
    if (max_lag.count() < 0) {
        return true;
    }
    // lag * 10^6 > max_lag  <=>  lag > floor(max_lag / 10^6), lag being whole milliseconds.
    return lag > static_cast<std::uint64_t>(max_lag.count() / 1'000'000);
}

/// A lag in milliseconds as the public type holds it (saturating at its maximum).
[[nodiscard]] constexpr std::chrono::milliseconds to_lag(std::uint64_t lag) noexcept {
    constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    return std::chrono::milliseconds(static_cast<std::int64_t>(lag < max ? lag : max));
}

} // namespace geo::detail
