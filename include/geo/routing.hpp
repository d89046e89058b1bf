#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "types.hpp"

namespace geo {

/// Sends writes whose subject starts with `subject_prefix` (and whose tenant equals `tenant_id`)
/// to `target_region` with `consistency`. An unset field matches anything.
struct RegionRoutingRule {
    std::string name;
    std::optional<std::string> subject_prefix;
    std::optional<std::string> tenant_id;
    RegionId target_region;
    ConsistencyLevel consistency{ConsistencyLevel::LocalAsync};

    /// The catch-all rule "default": no prefix, no tenant.
    [[nodiscard]] static RegionRoutingRule default_to(RegionId region,
                                                      ConsistencyLevel consistency) {
        return RegionRoutingRule{"default", std::nullopt, std::nullopt, std::move(region),
                                 consistency};
    }

    /// A rule with a tenant never matches a write without one.
    [[nodiscard]] bool
    matches(std::string_view subject,
            std::optional<std::string_view> tenant = std::nullopt) const noexcept {
        if (subject_prefix && subject.substr(0, subject_prefix->size()) != *subject_prefix) {
            return false;
        }
        return !tenant_id || (tenant && *tenant == *tenant_id);
    }

    friend bool operator==(const RegionRoutingRule& a, const RegionRoutingRule& b) {
        return a.name == b.name && a.subject_prefix == b.subject_prefix &&
               a.tenant_id == b.tenant_id && a.target_region == b.target_region &&
               a.consistency == b.consistency;
    }
    friend bool operator!=(const RegionRoutingRule& a, const RegionRoutingRule& b) {
        return !(a == b);
    }
};

/// Where a write goes first, where it is shipped afterwards, and how many acks it waits for.
/// `failed_over`: the rule's region was unavailable and `primary_region` is the first available
/// region in failover order (ActiveActiveReplicator::route).
struct WriteRoutingDecision {
    RegionId primary_region;
    std::vector<RegionId> fanout_regions;
    ConsistencyLevel consistency{ConsistencyLevel::LocalAsync};
    bool failed_over{false};

    friend bool operator==(const WriteRoutingDecision& a, const WriteRoutingDecision& b) {
        return a.primary_region == b.primary_region && a.fanout_regions == b.fanout_regions &&
               a.consistency == b.consistency && a.failed_over == b.failed_over;
    }
    friend bool operator!=(const WriteRoutingDecision& a, const WriteRoutingDecision& b) {
        return !(a == b);
    }
};

namespace detail {
template <class T, class = void>
struct has_tenant_member : std::false_type {};
template <class T>
struct has_tenant_member<T, std::void_t<decltype(std::declval<const T&>().tenant())>>
    : std::true_type {};

/// A tenant as a view: accepts optional<string>, optional<string_view>, a string, a pointer.
template <class T>
[[nodiscard]] std::optional<std::string_view> tenant_view(const T& tenant) {
    if constexpr (std::is_convertible_v<const T&, std::string_view>) {
        return std::string_view(tenant);
    } else if constexpr (std::is_same_v<T, std::nullopt_t>) {
        return std::nullopt;
    } else {
        if (!tenant) {
            return std::nullopt;
        }
        return std::string_view(*tenant);
    }
}
} // namespace detail

/// Customization point that lets `ActiveActiveGeoConfig::route` take a host's own write type
/// without building strings first. Specialize it for `Write`:
///
///     template <> struct geo::RoutingTraits<MyWrite> {
///         static std::string_view subject(const MyWrite& w) { return w.iri; }
///         static std::optional<std::string_view> tenant(const MyWrite& w) { return w.tenant; }
///     };
///
/// Without a specialization, a type with member functions `subject()` and (optionally)
/// `tenant()` works as is; they may return strings, views or optionals, by value or reference.
template <class Write, class = void>
struct RoutingTraits {
    static decltype(auto) subject(const Write& write) { return write.subject(); }
    static decltype(auto) tenant(const Write& write) {
        if constexpr (detail::has_tenant_member<Write>::value) {
            return write.tenant();
        } else {
            return std::nullopt;
        }
    }
};

} // namespace geo
