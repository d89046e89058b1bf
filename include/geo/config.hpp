#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "error.hpp"
#include "routing.hpp"
#include "types.hpp"

namespace geo {

/// One region's Raft group, as the host runs it.
struct RegionRaftGroup {
    RegionId region_id;
    std::uint64_t group_id{};
    std::vector<NodeId> members;
    std::uint64_t committed_seq{}; ///< the last sequence this region committed

    RegionRaftGroup() = default;
    RegionRaftGroup(RegionId region, std::uint64_t group, std::vector<NodeId> member_nodes)
        : region_id(std::move(region)), group_id(group), members(std::move(member_nodes)) {}

    friend bool operator==(const RegionRaftGroup& a, const RegionRaftGroup& b) {
        return a.group_id == b.group_id && a.committed_seq == b.committed_seq &&
               a.region_id == b.region_id && a.members == b.members;
    }
    friend bool operator!=(const RegionRaftGroup& a, const RegionRaftGroup& b) { return !(a == b); }
};

/// The regions, which one this process is, and how writes are routed and resolved.
struct ActiveActiveGeoConfig {
    std::vector<RegionId> regions;
    RegionId local_region;
    std::map<std::string, std::vector<RegionId>> primary_tier;
    /// The order tiers are tried in when a region fails over (detail/failover.hpp): these
    /// first, then the tiers not listed, by name. Empty: "primary" first, then the others.
    std::vector<std::string> tier_order;
    std::vector<RegionRoutingRule> routing_rules;
    ConflictResolutionMode conflict_mode{ConflictResolutionMode::LastWriterWins};
    std::chrono::nanoseconds max_lag{std::chrono::seconds(5)};
    /// How long a tombstone outlives the write that made it before it may be purged; every
    /// delivery must finish within it (see ActiveActiveReplicator::purge_tombstones).
    std::chrono::nanoseconds tombstone_grace{std::chrono::hours(24)};
    /// How many conflicts `recent_conflicts()` keeps; 0 keeps none (listeners still run). The
    /// log is allocated up front (about 150 bytes an entry), so validate() caps it.
    std::size_t conflict_log_capacity{1024};
    /// A remote write stamped further than this ahead of the local physical clock is counted
    /// in `ActiveActiveReplicator::clock_offset_violations()` (still applied: refusing it would
    /// depend on each replica's clock and break convergence). Zero disables the check.
    std::chrono::nanoseconds max_clock_offset{0};

    /// The largest conflict_log_capacity validate() accepts: 2^20 entries, about 160 MB
    /// allocated when the replicator is built.
    static constexpr std::size_t max_conflict_log_capacity = std::size_t{1} << 20;

    [[nodiscard]] static ActiveActiveGeoConfig single_region(RegionId local) {
        return multi_region(local, {local});
    }

    /// `local` is put first when `regions` lacks it; one tier "primary" with every region and
    /// one default rule sending every write to `local` with LocalAsync.
    [[nodiscard]] static ActiveActiveGeoConfig multi_region(RegionId local,
                                                            std::vector<RegionId> regions) {
        if (std::find(regions.begin(), regions.end(), local) == regions.end()) {
            regions.insert(regions.begin(), local);
        }
        ActiveActiveGeoConfig config;
        config.primary_tier.emplace("primary", regions);
        config.routing_rules.push_back(
            RegionRoutingRule::default_to(local, ConsistencyLevel::LocalAsync));
        config.regions = std::move(regions);
        config.local_region = std::move(local);
        return config;
    }

    [[nodiscard]] bool has_region(std::string_view region) const noexcept {
        return std::find(regions.begin(), regions.end(), region) != regions.end();
    }

    /// The first rule that matches, or nullptr.
    [[nodiscard]] const RegionRoutingRule*
    matching_rule(std::string_view subject,
                  std::optional<std::string_view> tenant = std::nullopt) const noexcept {
        for (const auto& rule : routing_rules) {
            if (rule.matches(subject, tenant)) {
                return &rule;
            }
        }
        return nullptr;
    }

    /// First matching rule wins; fanout is every other region in config order. No match: the
    /// local region with LocalAsync.
    [[nodiscard]] WriteRoutingDecision
    route(std::string_view subject, std::optional<std::string_view> tenant = std::nullopt) const {
        const RegionRoutingRule* rule = matching_rule(subject, tenant);
        WriteRoutingDecision decision;
        decision.primary_region = rule ? rule->target_region : local_region;
        decision.consistency = rule ? rule->consistency : ConsistencyLevel::LocalAsync;
        for (const auto& region : regions) {
            if (region != decision.primary_region) {
                decision.fanout_regions.push_back(region);
            }
        }
        return decision;
    }

    /// Routes a host's own write type through `RoutingTraits<Write>`.
    template <class Write,
              class = std::enable_if_t<!std::is_convertible_v<const Write&, std::string_view>>>
    [[nodiscard]] WriteRoutingDecision route(const Write& write) const {
        // Keep what the traits return alive (it may be a temporary string) while routing.
        decltype(auto) subject = RoutingTraits<Write>::subject(write);
        decltype(auto) tenant = RoutingTraits<Write>::tenant(write);
        return route(std::string_view(subject), detail::tenant_view(tenant));
    }

    /// Throws ConfigError naming the first impossible setting.
    void validate() const {
        if (regions.empty()) {
            throw ConfigError("regions is empty");
        }
        for (std::size_t i = 0; i < regions.size(); ++i) {
            if (regions[i].empty()) {
                throw ConfigError("regions[" + std::to_string(i) + "] is an empty region id");
            }
            if (std::find(regions.begin(), regions.begin() + static_cast<std::ptrdiff_t>(i),
                          regions[i]) != regions.begin() + static_cast<std::ptrdiff_t>(i)) {
                throw ConfigError("region '" + regions[i] + "' is listed twice in regions");
            }
        }
        if (!has_region(local_region)) {
            throw ConfigError("local region '" + local_region + "' is not in regions");
        }
        for (const auto& [tier, members] : primary_tier) {
            for (const auto& region : members) {
                if (!has_region(region)) {
                    throw ConfigError("primary_tier '" + tier + "' names unknown region '" +
                                      region + "'");
                }
            }
        }
        for (std::size_t i = 0; i < tier_order.size(); ++i) {
            if (primary_tier.count(tier_order[i]) == 0) {
                throw ConfigError("tier_order names tier '" + tier_order[i] +
                                  "', which is not in primary_tier");
            }
            if (std::find(tier_order.begin(), tier_order.begin() + static_cast<std::ptrdiff_t>(i),
                          tier_order[i]) != tier_order.begin() + static_cast<std::ptrdiff_t>(i)) {
                throw ConfigError("tier '" + tier_order[i] + "' is listed twice in tier_order");
            }
        }
        for (std::size_t i = 0; i < routing_rules.size(); ++i) {
            if (!has_region(routing_rules[i].target_region)) {
                throw ConfigError("routing_rules[" + std::to_string(i) + "] ('" +
                                  routing_rules[i].name + "') targets unknown region '" +
                                  routing_rules[i].target_region + "'");
            }
        }
        if (max_lag.count() < 0) {
            throw ConfigError("max_lag is negative");
        }
        if (tombstone_grace.count() < 0) {
            throw ConfigError("tombstone_grace is negative");
        }
        if (max_clock_offset.count() < 0) {
            throw ConfigError("max_clock_offset is negative");
        }
        if (conflict_log_capacity > max_conflict_log_capacity) {
            throw ConfigError("conflict_log_capacity " + std::to_string(conflict_log_capacity) +
                              " exceeds the limit of " +
                              std::to_string(max_conflict_log_capacity) +
                              " (ActiveActiveGeoConfig::max_conflict_log_capacity)");
        }
    }

    friend bool operator==(const ActiveActiveGeoConfig& a, const ActiveActiveGeoConfig& b) {
        return a.regions == b.regions && a.local_region == b.local_region &&
               a.primary_tier == b.primary_tier && a.tier_order == b.tier_order &&
               a.routing_rules == b.routing_rules && a.conflict_mode == b.conflict_mode &&
               a.max_lag == b.max_lag && a.tombstone_grace == b.tombstone_grace &&
               a.conflict_log_capacity == b.conflict_log_capacity &&
               a.max_clock_offset == b.max_clock_offset;
    }
    friend bool operator!=(const ActiveActiveGeoConfig& a, const ActiveActiveGeoConfig& b) {
        return !(a == b);
    }
};

} // namespace geo
