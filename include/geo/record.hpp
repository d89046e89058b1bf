#pragma once

#include <cstdint>
#include <string>
#include <variant>

#include "types.hpp"
#include "vector_clock.hpp"

namespace geo {

/// The state of one key as committed by one region.
struct GeoRecord {
    RegionId region;              ///< region whose Raft group committed the write
    std::uint64_t timestamp_ms{}; ///< hybrid-clock time of the write
    VectorClock clock;
    std::string value;
    std::uint64_t seq{}; ///< commit sequence in `region`; breaks same-millisecond ties
    bool deleted{false}; ///< a tombstone: the key was erased by this write

    friend bool operator==(const GeoRecord& a, const GeoRecord& b) {
        return a.timestamp_ms == b.timestamp_ms && a.seq == b.seq && a.deleted == b.deleted &&
               a.region == b.region && a.value == b.value && a.clock == b.clock;
    }
    friend bool operator!=(const GeoRecord& a, const GeoRecord& b) { return !(a == b); }
};

/// The write was accepted; `seq` is its commit sequence in `region`.
struct Committed {
    RegionId region;
    std::uint64_t seq{};
    friend bool operator==(const Committed& a, const Committed& b) {
        return a.seq == b.seq && a.region == b.region;
    }
    friend bool operator!=(const Committed& a, const Committed& b) { return !(a == b); }
};

/// The write lost conflict resolution against the stored record of `winner_region`.
struct RejectedByConflict {
    RegionId region;
    RegionId winner_region;
    std::uint64_t winner_timestamp_ms{};
    friend bool operator==(const RejectedByConflict& a, const RejectedByConflict& b) {
        return a.winner_timestamp_ms == b.winner_timestamp_ms && a.region == b.region &&
               a.winner_region == b.winner_region;
    }
    friend bool operator!=(const RejectedByConflict& a, const RejectedByConflict& b) {
        return !(a == b);
    }
};

/// A re-delivered entry: `seq` of `region` was applied before, so nothing changed.
struct AlreadyApplied {
    RegionId region;
    std::uint64_t seq{};
    friend bool operator==(const AlreadyApplied& a, const AlreadyApplied& b) {
        return a.seq == b.seq && a.region == b.region;
    }
    friend bool operator!=(const AlreadyApplied& a, const AlreadyApplied& b) { return !(a == b); }
};

/// An entry whose `prev_seq` is above the highest seq applied from `region` (`applied_seq`):
/// an entry before it was lost or reordered in transit. Nothing changed; the sender re-sends
/// from the acknowledged cursor.
struct OutOfOrder {
    RegionId region;
    std::uint64_t seq{};
    std::uint64_t applied_seq{};
    friend bool operator==(const OutOfOrder& a, const OutOfOrder& b) {
        return a.seq == b.seq && a.applied_seq == b.applied_seq && a.region == b.region;
    }
    friend bool operator!=(const OutOfOrder& a, const OutOfOrder& b) { return !(a == b); }
};

using GeoWriteOutcome = std::variant<Committed, RejectedByConflict, AlreadyApplied, OutOfOrder>;

/// One committed write owed to a peer region; hosts ship batches of these.
struct FanoutEntry {
    std::string key;
    GeoRecord record;
    std::uint64_t seq{}; ///< the source region's commit sequence (equals record.seq)
    /// The seq this entry follows in its stream (the entry before it, or the target's
    /// acknowledged seq); 0: no check, as from senders that do not track it.
    std::uint64_t prev_seq{};
    friend bool operator==(const FanoutEntry& a, const FanoutEntry& b) {
        return a.seq == b.seq && a.prev_seq == b.prev_seq && a.key == b.key &&
               a.record == b.record;
    }
    friend bool operator!=(const FanoutEntry& a, const FanoutEntry& b) { return !(a == b); }
};

/// A write that lost a conflict, with the record that beat it.
struct ConflictEvent {
    std::string key;
    GeoRecord winner;
    GeoRecord loser;
    friend bool operator==(const ConflictEvent& a, const ConflictEvent& b) {
        return a.key == b.key && a.winner == b.winner && a.loser == b.loser;
    }
    friend bool operator!=(const ConflictEvent& a, const ConflictEvent& b) { return !(a == b); }
};

} // namespace geo
