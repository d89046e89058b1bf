#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace geo {

using RegionId = std::string;
using NodeId = std::uint64_t;

/// How many remote regions must confirm a write before the host reports it durable.
enum class ConsistencyLevel { LocalAsync, LocalQuorum, EachQuorum, AllQuorum };

enum class ConflictResolutionMode { LastWriterWins, VectorClock };

/// Remote acknowledgements a write at `level` needs when `total_remote_regions` peers exist.
[[nodiscard]] constexpr std::size_t min_remote_acks(ConsistencyLevel level,
                                                    std::size_t total_remote_regions) noexcept {
    switch (level) {
    case ConsistencyLevel::EachQuorum:
        return std::min<std::size_t>(1, total_remote_regions);
    case ConsistencyLevel::AllQuorum:
        return total_remote_regions;
    case ConsistencyLevel::LocalAsync:
    case ConsistencyLevel::LocalQuorum:
        break;
    }
    return 0;
}

/// The variant name, as the wire format spells it.
[[nodiscard]] constexpr std::string_view to_string(ConsistencyLevel level) noexcept {
    switch (level) {
    case ConsistencyLevel::LocalAsync:
        return "LocalAsync";
    case ConsistencyLevel::LocalQuorum:
        return "LocalQuorum";
    case ConsistencyLevel::EachQuorum:
        return "EachQuorum";
    case ConsistencyLevel::AllQuorum:
        return "AllQuorum";
    }
    return "LocalAsync";
}

[[nodiscard]] constexpr std::string_view to_string(ConflictResolutionMode mode) noexcept {
    return mode == ConflictResolutionMode::VectorClock ? "VectorClock" : "LastWriterWins";
}

/// Inverse of `to_string`; nullopt for a name that is not a variant.
[[nodiscard]] constexpr std::optional<ConsistencyLevel>
consistency_level_from_string(std::string_view name) noexcept {
    for (auto level : {ConsistencyLevel::LocalAsync, ConsistencyLevel::LocalQuorum,
                       ConsistencyLevel::EachQuorum, ConsistencyLevel::AllQuorum}) {
        if (to_string(level) == name) {
            return level;
        }
    }
    return std::nullopt;
}

[[nodiscard]] constexpr std::optional<ConflictResolutionMode>
conflict_mode_from_string(std::string_view name) noexcept {
    for (auto mode :
         {ConflictResolutionMode::LastWriterWins, ConflictResolutionMode::VectorClock}) {
        if (to_string(mode) == name) {
            return mode;
        }
    }
    return std::nullopt;
}

/// One outgoing stream: `source`'s committed writes on their way to `target`.
struct StreamStatus {
    RegionId source;
    RegionId target;
    /// Queue entries of `source` (one per key) `target` has not acknowledged.
    std::size_t owed{};
    /// The highest seq `target` acknowledged, capped at `last_seq`.
    std::uint64_t acknowledged_seq{};
    /// `source`'s latest commit.
    std::uint64_t last_seq{};
    /// How long `target` has been missing a write of `source`: the physical clock minus the
    /// timestamp of the oldest (first committed) write it has not acknowledged, counting a
    /// write whose queued entry a newer write of the same key replaced; 0 when nothing is owed.
    std::chrono::milliseconds lag{};
    /// `lag > config().max_lag`.
    bool stale{};
};

} // namespace geo
