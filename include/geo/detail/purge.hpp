#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "replica.hpp"

namespace geo::detail {

/// Tombstone purge across the parts of a Replica (ActiveActiveReplicator::purge_tombstones).
struct Purge {
    /// Removes tombstones stamped at or below `cutoff` that no queue here still owes.
    static std::size_t tombstones(Replica& rep, std::uint64_t cutoff) {
        std::size_t purged = 0;
        rep.keys.for_each_shard([&](KeyShard& shard) {
            std::lock_guard<SpinMutex> lock(shard.mutex());
            purged += shard.erase_if([&](const Slot& slot) {
                return slot.deleted && slot.timestamp_ms <= cutoff && !owes(rep, slot);
            });
        });
        return purged;
    }

private:
    /// Whether some queue here still holds a write of this key: the slot itself, or a copy of
    /// a write the slot's record displaced (shipping that copy after the tombstone is gone
    /// could revive the key at a peer that also purged it). Caller holds the key's shard.
    [[nodiscard]] static bool owes(const Replica& rep, const Slot& slot) {
        for (std::size_t r = 0; r < rep.regions.size(); ++r) {
            const FanoutQueue& queue = rep.regions[r]->queue;
            std::lock_guard<SpinMutex> lock(queue.mutex());
            if ((r == slot.region && slot.is_linked()) || queue.holds_copy(slot.key)) {
                return true;
            }
        }
        return false;
    }
};

} // namespace geo::detail
