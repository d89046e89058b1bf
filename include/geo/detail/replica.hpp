#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../error.hpp"
#include "../record.hpp"
#include "../types.hpp"
#include "conflict_log.hpp"
#include "key_store.hpp"
#include "listeners.hpp"
#include "region_names.hpp"
#include "regions.hpp"
#include "replica_clock.hpp"

namespace geo::detail {

/// One replica's whole state: the parts, each guarding its own fields with its own lock.
/// Operations that span parts (detail/write_path.hpp) take its locks in this order only:
///
///   1. a region's stream lock (RegionStream::stream_mutex), one at a time;
///   2. one key shard (KeyShard::mutex);
///   3. one fanout queue (FanoutQueue::mutex); never a second one while holding it (the
///      write path releases the queue that owed the key's previous write before taking the
///      writing region's);
///   4. the conflict log (ConflictLog, inside its own methods).
///
/// The listener set's lock is never taken under another, and listeners run with no lock held.
/// The physical clock function runs under a shard lock.
struct Replica {
    Replica(ActiveActiveGeoConfig checked_config, std::vector<RegionRaftGroup> checked_groups,
            std::function<std::uint64_t()> physical_ms)
        : config(std::move(checked_config)),
          names(config.regions),
          groups(std::move(checked_groups)),
          clock(std::move(physical_ms), config.regions.size(), config.tombstone_grace,
                config.max_clock_offset),
          local(names.find(config.local_region)),
          conflicts(config.conflict_log_capacity) {
        const std::size_t n = config.regions.size();
        regions.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            regions.push_back(std::make_unique<RegionState>(i, n));
        }
        for (const auto& group : groups) {
            RegionState& state = *regions[names.find(group.region_id)];
            state.group_id = group.group_id;
            state.stream.reset_seq(group.committed_seq);
        }
    }

    Replica(const Replica&) = delete;
    Replica& operator=(const Replica&) = delete;

    [[nodiscard]] bool has_peers() const noexcept { return regions.size() > 1; }

    const ActiveActiveGeoConfig config;
    const RegionNames names; ///< views into config.regions
    const std::vector<RegionRaftGroup> groups;
    ReplicaClock clock;
    std::vector<std::unique_ptr<RegionState>> regions; ///< one per configured region, same order
    const std::size_t local;                            ///< the local region's index
    KeyStore keys;
    ConflictLog conflicts;
    ListenerSet<ConflictEvent> listeners;
};

} // namespace geo::detail
