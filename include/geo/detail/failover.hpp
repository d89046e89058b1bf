#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../routing.hpp"
#include "../types.hpp"

namespace geo::detail {

/// The tiers of `config.primary_tier` in the order they are tried: those `tier_order` lists,
/// in its order, then the others by name; an empty `tier_order` puts "primary" first. A tier
/// `tier_order` names but `primary_tier` lacks is skipped (validate() refuses it).
[[nodiscard]] inline std::vector<std::string> tier_sequence(const ActiveActiveGeoConfig& config) {
    std::vector<std::string> tiers;
    if (config.tier_order.empty()) {
        if (config.primary_tier.count("primary") != 0) {
            tiers.emplace_back("primary");
        }
    } else {
        for (const auto& tier : config.tier_order) {
            if (config.primary_tier.count(tier) != 0 &&
                std::find(tiers.begin(), tiers.end(), tier) == tiers.end()) {
                tiers.push_back(tier);
            }
        }
    }
    for (const auto& entry : config.primary_tier) { // a std::map: by name
        if (std::find(tiers.begin(), tiers.end(), entry.first) == tiers.end()) {
            tiers.push_back(entry.first);
        }
    }
    return tiers;
}

/// Indices into `config.regions` in failover order: tier by tier (tier_sequence), regions in
/// the order their tier lists them, a region in several tiers at its first place. Regions in
/// no tier, and tier members that are not configured, are never failover targets.
[[nodiscard]] inline std::vector<std::size_t>
failover_indices(const ActiveActiveGeoConfig& config) {
    std::vector<std::size_t> order;
    for (const auto& tier : tier_sequence(config)) {
        for (const auto& region : config.primary_tier.at(tier)) {
            const auto it = std::find(config.regions.begin(), config.regions.end(), region);
            if (it == config.regions.end()) {
                continue;
            }
            const auto index = static_cast<std::size_t>(it - config.regions.begin());
            if (std::find(order.begin(), order.end(), index) == order.end()) {
                order.push_back(index);
            }
        }
    }
    return order;
}

/// The regions tried, in order, when a write's region is unavailable.
[[nodiscard]] inline std::vector<RegionId> failover_order(const ActiveActiveGeoConfig& config) {
    std::vector<RegionId> order;
    for (const std::size_t index : failover_indices(config)) {
        order.push_back(config.regions[index]);
    }
    return order;
}

/// `decision` (what `config.route` answered) under an availability view: unchanged while its
/// primary region is available (or not configured); otherwise the first available region in
/// failover order takes its place, the fanout becomes every other region (available or not)
/// in config order, the consistency level stays, and `failed_over` is set. No region
/// in failover order available: unchanged. `available(i)` tells whether `config.regions[i]` is
/// available; it is called at most once per region, so a view that changes meanwhile still yields
/// the decision of one availability pattern.
template <class Available,
          class = std::enable_if_t<std::is_invocable_r_v<bool, Available&, std::size_t>>>
[[nodiscard]] WriteRoutingDecision fail_over(const ActiveActiveGeoConfig& config,
                                             WriteRoutingDecision decision, Available&& available) {
    const auto primary =
        std::find(config.regions.begin(), config.regions.end(), decision.primary_region);
    if (primary == config.regions.end()) {
        return decision;
    }
    const auto down = static_cast<std::size_t>(primary - config.regions.begin());
    if (available(down)) {
        return decision;
    }
    for (const std::size_t candidate : failover_indices(config)) {
        if (candidate == down || !available(candidate)) {
            continue;
        }
        decision.primary_region = config.regions[candidate];
        decision.fanout_regions.clear();
        for (std::size_t i = 0; i < config.regions.size(); ++i) {
            if (i != candidate) {
                decision.fanout_regions.push_back(config.regions[i]);
            }
        }
        decision.failed_over = true;
        return decision;
    }
    return decision;
}

/// `fail_over` with the view as one flag per region of `config.regions`, in config order; a
/// region past the end of `available` counts as available.
[[nodiscard]] inline WriteRoutingDecision fail_over(const ActiveActiveGeoConfig& config,
                                                    WriteRoutingDecision decision,
                                                    const std::vector<bool>& available) {
    return fail_over(config, std::move(decision),
                     [&available](std::size_t i) { return i >= available.size() || available[i]; });
}

} // namespace geo::detail
