#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
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

/// The config, validated against itself and the groups.
inline ActiveActiveGeoConfig checked_config(ActiveActiveGeoConfig config,
                                            const std::vector<RegionRaftGroup>& groups) {
    config.validate();
    for (std::size_t i = 0; i < groups.size(); ++i) {
        if (groups[i].committed_seq >= max_seq) {
            throw ConfigError("group " + std::to_string(groups[i].group_id) +
                              " has committed_seq " + std::to_string(groups[i].committed_seq) +
                              ", at or above the limit 2^63");
        }
        if (!config.has_region(groups[i].region_id)) {
            throw ConfigError("group " + std::to_string(groups[i].group_id) +
                              " belongs to unknown region '" + groups[i].region_id + "'");
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (groups[j].region_id == groups[i].region_id) {
                throw ConfigError("region '" + groups[i].region_id +
                                  "' has more than one Raft group");
            }
            // The group id keys the region's vector-clock entry: shared, two regions
            // would issue the same entries and replicas could end apart.
            if (groups[j].group_id == groups[i].group_id) {
                throw ConfigError("regions '" + groups[j].region_id + "' and '" +
                                  groups[i].region_id + "' share Raft group id " +
                                  std::to_string(groups[i].group_id));
            }
        }
    }
    return config;
}

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
    Replica(ActiveActiveGeoConfig valid_config, std::vector<RegionRaftGroup> valid_groups,
            std::function<std::uint64_t()> physical_ms)
        : Replica(std::move(valid_config), std::move(valid_groups), std::move(physical_ms),
                  random_seed(), false) {}

    /// An empty replica to restore a snapshot into before it replaces `live`'s state: same
    /// configuration and key hashing, no conflict log of its own.
    static std::unique_ptr<Replica> staging_for(const Replica& live) {
        return std::unique_ptr<Replica>(
            new Replica(live.config, live.groups, nullptr, live.keys.seed(), true));
    }

    Replica(const Replica&) = delete;
    Replica& operator=(const Replica&) = delete;

    [[nodiscard]] bool has_peers() const noexcept { return regions.size() > 1; }

    /// `read(slot)` of `key`'s slot under its shard lock, or an empty Result without one.
    template <class Read>
    [[nodiscard]] auto read(std::string_view key, Read&& read) const
        -> decltype(read(std::declval<const Slot&>())) {
        const std::size_t hash = keys.hash(key);
        const KeyShard& shard = keys.shard_for(hash);
        std::lock_guard<SpinMutex> lock(shard.mutex());
        const Slot* slot = shard.find(key, hash);
        return slot != nullptr ? read(*slot) : decltype(read(*slot)){};
    }

    const ActiveActiveGeoConfig config;
    const RegionNames names; ///< views into config.regions
    const std::vector<RegionRaftGroup> groups;
    ReplicaClock clock;
    std::vector<std::unique_ptr<RegionState>> regions; ///< one per configured region, same order
    const std::size_t local;                           ///< the local region's index
    KeyStore keys;
    ConflictLog conflicts;
    ListenerSet<ConflictEvent> listeners;

private:
    Replica(ActiveActiveGeoConfig valid_config, std::vector<RegionRaftGroup> valid_groups,
            std::function<std::uint64_t()> physical_ms, std::uint64_t seed, bool staging)
        : config(std::move(valid_config)), names(config.regions), groups(std::move(valid_groups)),
          clock(std::move(physical_ms), config.regions.size(), config.tombstone_grace,
                config.max_clock_offset),
          local(names.find(config.local_region)), keys(seed),
          conflicts(staging ? 0 : config.conflict_log_capacity) {
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
};

} // namespace geo::detail
