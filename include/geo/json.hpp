#pragma once

/// nlohmann_json integration: `to_json`/`from_json` for every wire type, found by ADL, in the
/// JSON format of the Rust module geo ports (the active-active geo replication module of
/// oxirs-cluster 0.3.1), so either side reads what the other writes; docs/design.md describes
/// the wire format. Reading throws geo::ParseError naming the path of the offending field and
/// leaves the destination untouched on failure. The generic reading machinery those conversions
/// share is in detail/json_read.hpp.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "config.hpp"
#include "detail/batch_json.hpp"
#include "detail/json_read.hpp"
#include "error.hpp"
#include "record.hpp"
#include "routing.hpp"
#include "types.hpp"
#include "vector_clock.hpp"

namespace geo {

// ---- enums: the variant name as a string --------------------------------------------------

inline void to_json(nlohmann::json& j, ConsistencyLevel level) {
    j = std::string(to_string(level));
}

inline void from_json(const nlohmann::json& j, ConsistencyLevel& level) {
    if (!j.is_string()) {
        throw detail::FieldParseError("", "expected a consistency level name, found " +
                                              detail::describe(j));
    }
    const auto parsed = consistency_level_from_string(j.get_ref<const std::string&>());
    if (!parsed) {
        throw detail::FieldParseError(
            "", "unknown consistency level " + detail::quoted(j.get_ref<const std::string&>()) +
                    " (expected LocalAsync, LocalQuorum, EachQuorum or AllQuorum)");
    }
    level = *parsed;
}

inline void to_json(nlohmann::json& j, ConflictResolutionMode mode) {
    j = std::string(to_string(mode));
}

inline void from_json(const nlohmann::json& j, ConflictResolutionMode& mode) {
    if (!j.is_string()) {
        throw detail::FieldParseError("", "expected a conflict resolution mode name, found " +
                                              detail::describe(j));
    }
    const auto parsed = conflict_mode_from_string(j.get_ref<const std::string&>());
    if (!parsed) {
        throw detail::FieldParseError("", "unknown conflict resolution mode " +
                                              detail::quoted(j.get_ref<const std::string&>()) +
                                              " (expected LastWriterWins or VectorClock)");
    }
    mode = *parsed;
}

// ---- VectorClock: {"clocks": {"1": 2, "7": 1}} --------------------------------------------

inline void to_json(nlohmann::json& j, const VectorClock& clock) {
    nlohmann::json clocks = nlohmann::json::object();
    for (const auto& [node, counter] : clock.entries()) {
        clocks[std::to_string(node)] = counter;
    }
    j = nlohmann::json::object();
    j["clocks"] = std::move(clocks);
}

/// Zero counters are dropped (a missing entry means 0); keys must be decimal uint64 node ids.
inline void from_json(const nlohmann::json& j, VectorClock& clock) {
    detail::expect_object(j);
    VectorClock result;
    detail::within("clocks", [&] {
        const nlohmann::json* clocks = nullptr;
        try {
            clocks = &j.at("clocks");
        } catch (const nlohmann::json::out_of_range&) {
            throw detail::FieldParseError("", "missing required field");
        }
        detail::expect_object(*clocks);
        for (auto it = clocks->begin(); it != clocks->end(); ++it) {
            detail::within(it.key(), [&] {
                const auto node = detail::parse_node_id(it.key());
                if (!node) {
                    throw detail::FieldParseError("",
                                                  "node id " + detail::quoted(it.key()) +
                                                      " is not a decimal unsigned 64-bit integer");
                }
                std::uint64_t counter = 0;
                detail::read_value(it.value(), counter);
                if (counter > result.get(*node)) { // "7" and "07" name one node: keep the max
                    result.set(*node, counter);
                }
            });
        }
    });
    clock = std::move(result);
}

// ---- routing ------------------------------------------------------------------------------

inline void to_json(nlohmann::json& j, const RegionRoutingRule& rule) {
    j = nlohmann::json::object();
    j["name"] = rule.name;
    j["subject_prefix"] = rule.subject_prefix ? nlohmann::json(*rule.subject_prefix) : nullptr;
    j["tenant_id"] = rule.tenant_id ? nlohmann::json(*rule.tenant_id) : nullptr;
    j["target_region"] = rule.target_region;
    j["consistency"] = rule.consistency;
}

inline void from_json(const nlohmann::json& j, RegionRoutingRule& rule) {
    detail::expect_object(j);
    RegionRoutingRule result;
    detail::read_field(j, "name", result.name);
    detail::read_optional_field(j, "subject_prefix", result.subject_prefix);
    detail::read_optional_field(j, "tenant_id", result.tenant_id);
    detail::read_field(j, "target_region", result.target_region);
    detail::read_field(j, "consistency", result.consistency);
    rule = std::move(result);
}

inline void to_json(nlohmann::json& j, const WriteRoutingDecision& decision) {
    j = nlohmann::json::object();
    j["primary_region"] = decision.primary_region;
    j["fanout_regions"] = decision.fanout_regions;
    j["consistency"] = decision.consistency;
    j["failed_over"] = decision.failed_over;
}

inline void from_json(const nlohmann::json& j, WriteRoutingDecision& decision) {
    detail::expect_object(j);
    WriteRoutingDecision result;
    detail::read_field(j, "primary_region", result.primary_region);
    detail::read_field(j, "fanout_regions", result.fanout_regions);
    detail::read_field(j, "consistency", result.consistency);
    detail::read_field_if_present(j, "failed_over", result.failed_over);
    decision = std::move(result);
}

// ---- config -------------------------------------------------------------------------------

/// Writes the Rust module's fields plus `tier_order`, `tombstone_grace`, `max_clock_offset`
/// ({secs, nanos}) and `conflict_log_capacity`.
/// Throws ConfigError for a negative duration, which the wire format cannot express.
inline void to_json(nlohmann::json& j, const ActiveActiveGeoConfig& config) {
    nlohmann::json tiers = nlohmann::json::object();
    for (const auto& [tier, regions] : config.primary_tier) {
        tiers[tier] = regions;
    }
    nlohmann::json rules = nlohmann::json::array();
    for (const auto& rule : config.routing_rules) {
        rules.push_back(rule);
    }
    nlohmann::json result = nlohmann::json::object();
    result["regions"] = config.regions;
    result["local_region"] = config.local_region;
    result["primary_tier"] = std::move(tiers);
    result["tier_order"] = config.tier_order;
    result["routing_rules"] = std::move(rules);
    result["conflict_mode"] = config.conflict_mode;
    result["max_lag"] = detail::duration_to_json(config.max_lag, "max_lag");
    result["tombstone_grace"] = detail::duration_to_json(config.tombstone_grace, "tombstone_grace");
    result["conflict_log_capacity"] = config.conflict_log_capacity;
    result["max_clock_offset"] =
        detail::duration_to_json(config.max_clock_offset, "max_clock_offset");
    j = std::move(result);
}

/// The Rust module's fields are required; a missing field that geo added keeps the member
/// initializer's default.
/// Does not call validate(): a parsed config may still name regions inconsistently.
inline void from_json(const nlohmann::json& j, ActiveActiveGeoConfig& config) {
    detail::expect_object(j);
    ActiveActiveGeoConfig result;
    detail::read_field(j, "regions", result.regions);
    detail::read_field(j, "local_region", result.local_region);
    detail::read_field(j, "primary_tier", result.primary_tier);
    detail::read_field_if_present(j, "tier_order", result.tier_order);
    detail::read_field(j, "routing_rules", result.routing_rules);
    detail::read_field(j, "conflict_mode", result.conflict_mode);
    detail::read_field(j, "max_lag", result.max_lag);
    detail::read_field_if_present(j, "tombstone_grace", result.tombstone_grace);
    detail::read_field_if_present(j, "max_clock_offset", result.max_clock_offset);
    std::uint64_t capacity = result.conflict_log_capacity;
    detail::read_field_if_present(j, "conflict_log_capacity", capacity);
    detail::within("conflict_log_capacity", [&] {
        result.conflict_log_capacity = detail::narrow_unsigned<std::size_t>(capacity);
    });
    config = std::move(result);
}

inline void to_json(nlohmann::json& j, const RegionRaftGroup& group) {
    j = nlohmann::json::object();
    j["region_id"] = group.region_id;
    j["group_id"] = group.group_id;
    j["members"] = group.members;
    j["committed_seq"] = group.committed_seq;
}

inline void from_json(const nlohmann::json& j, RegionRaftGroup& group) {
    detail::expect_object(j);
    RegionRaftGroup result;
    detail::read_field(j, "region_id", result.region_id);
    detail::read_field(j, "group_id", result.group_id);
    detail::read_field(j, "members", result.members);
    detail::read_field(j, "committed_seq", result.committed_seq);
    group = std::move(result);
}

// ---- records and outcomes -----------------------------------------------------------------

inline void to_json(nlohmann::json& j, const GeoRecord& record) {
    j = nlohmann::json::object();
    j["region"] = record.region;
    j["timestamp_ms"] = record.timestamp_ms;
    j["clock"] = record.clock;
    j["value"] = record.value;
    j["seq"] = record.seq;
    j["deleted"] = record.deleted;
}

/// `seq` and `deleted` may be missing (records of the Rust module): they read as 0 and false.
inline void from_json(const nlohmann::json& j, GeoRecord& record) {
    detail::expect_object(j);
    GeoRecord result;
    detail::read_field(j, "region", result.region);
    detail::read_field(j, "timestamp_ms", result.timestamp_ms);
    detail::read_field(j, "clock", result.clock);
    detail::read_field(j, "value", result.value);
    detail::read_field_if_present(j, "seq", result.seq);
    detail::read_field_if_present(j, "deleted", result.deleted);
    record = std::move(result);
}

inline void to_json(nlohmann::json& j, const FanoutEntry& entry) {
    j = nlohmann::json::object();
    j["key"] = entry.key;
    j["record"] = entry.record;
    j["seq"] = entry.seq;
    j["prev_seq"] = entry.prev_seq;
}

/// The object above (a missing `prev_seq` reads as 0), or the `[key, record, seq]` tuple the Rust
/// module's drain_fanout returns (prev_seq 0); a batch may mix both.
inline void from_json(const nlohmann::json& j, FanoutEntry& entry) {
    FanoutEntry result;
    if (j.is_array()) {
        detail::read_tuple(j, "[key, record, seq]", result.key, result.record, result.seq);
    } else if (j.is_object()) {
        detail::read_field(j, "key", result.key);
        detail::read_field(j, "record", result.record);
        detail::read_field(j, "seq", result.seq);
        detail::read_field_if_present(j, "prev_seq", result.prev_seq);
    } else {
        throw detail::FieldParseError(
            "", "expected an object or a [key, record, seq] array, found " + detail::describe(j));
    }
    entry = std::move(result);
}

inline void to_json(nlohmann::json& j, const ConflictEvent& event) {
    j = nlohmann::json::object();
    j["key"] = event.key;
    j["winner"] = event.winner;
    j["loser"] = event.loser;
}

inline void from_json(const nlohmann::json& j, ConflictEvent& event) {
    detail::expect_object(j);
    ConflictEvent result;
    detail::read_field(j, "key", result.key);
    detail::read_field(j, "winner", result.winner);
    detail::read_field(j, "loser", result.loser);
    event = std::move(result);
}

inline void to_json(nlohmann::json& j, const Committed& outcome) {
    j = nlohmann::json::object();
    j["region"] = outcome.region;
    j["seq"] = outcome.seq;
}

inline void from_json(const nlohmann::json& j, Committed& outcome) {
    detail::expect_object(j);
    Committed result;
    detail::read_field(j, "region", result.region);
    detail::read_field(j, "seq", result.seq);
    outcome = std::move(result);
}

inline void to_json(nlohmann::json& j, const RejectedByConflict& outcome) {
    j = nlohmann::json::object();
    j["region"] = outcome.region;
    j["winner_region"] = outcome.winner_region;
    j["winner_timestamp_ms"] = outcome.winner_timestamp_ms;
}

inline void from_json(const nlohmann::json& j, RejectedByConflict& outcome) {
    detail::expect_object(j);
    RejectedByConflict result;
    detail::read_field(j, "region", result.region);
    detail::read_field(j, "winner_region", result.winner_region);
    detail::read_field(j, "winner_timestamp_ms", result.winner_timestamp_ms);
    outcome = std::move(result);
}

inline void to_json(nlohmann::json& j, const AlreadyApplied& outcome) {
    j = nlohmann::json::object();
    j["region"] = outcome.region;
    j["seq"] = outcome.seq;
}

inline void from_json(const nlohmann::json& j, AlreadyApplied& outcome) {
    detail::expect_object(j);
    AlreadyApplied result;
    detail::read_field(j, "region", result.region);
    detail::read_field(j, "seq", result.seq);
    outcome = std::move(result);
}

inline void to_json(nlohmann::json& j, const OutOfOrder& outcome) {
    j = nlohmann::json::object();
    j["region"] = outcome.region;
    j["seq"] = outcome.seq;
    j["applied_seq"] = outcome.applied_seq;
}

inline void from_json(const nlohmann::json& j, OutOfOrder& outcome) {
    detail::expect_object(j);
    OutOfOrder result;
    detail::read_field(j, "region", result.region);
    detail::read_field(j, "seq", result.seq);
    detail::read_field(j, "applied_seq", result.applied_seq);
    outcome = std::move(result);
}

namespace detail {
[[nodiscard]] constexpr std::string_view outcome_tag(const Committed&) noexcept {
    return "Committed";
}
[[nodiscard]] constexpr std::string_view outcome_tag(const RejectedByConflict&) noexcept {
    return "RejectedByConflict";
}
[[nodiscard]] constexpr std::string_view outcome_tag(const AlreadyApplied&) noexcept {
    return "AlreadyApplied";
}
[[nodiscard]] constexpr std::string_view outcome_tag(const OutOfOrder&) noexcept {
    return "OutOfOrder";
}

template <std::size_t I = 0>
bool read_outcome_alternative(const std::string& tag, const json& body, GeoWriteOutcome& out) {
    if constexpr (I == std::variant_size_v<GeoWriteOutcome>) {
        return false;
    } else {
        using Alternative = std::variant_alternative_t<I, GeoWriteOutcome>;
        if (tag != outcome_tag(Alternative{})) {
            return read_outcome_alternative<I + 1>(tag, body, out);
        }
        Alternative alternative;
        within(tag, [&] { from_json(body, alternative); });
        out = std::move(alternative);
        return true;
    }
}
} // namespace detail

/// Externally tagged, like serde's default for a Rust enum: an object with one key, the
/// alternative's name, holding its fields, e.g. `{"Committed": {"region": "x", "seq": 1}}`.
inline void to_json(nlohmann::json& j, const GeoWriteOutcome& outcome) {
    std::visit(
        [&j](const auto& alternative) {
            nlohmann::json body;
            to_json(body, alternative);
            nlohmann::json result = nlohmann::json::object();
            result[std::string(detail::outcome_tag(alternative))] = std::move(body);
            j = std::move(result);
        },
        outcome);
}

inline void from_json(const nlohmann::json& j, GeoWriteOutcome& outcome) {
    detail::expect_object(j);
    if (j.size() != 1) {
        throw detail::FieldParseError(
            "",
            "expected exactly one key (Committed, RejectedByConflict, AlreadyApplied or "
            "OutOfOrder), found " +
                std::to_string(j.size()));
    }
    const std::string& tag = j.begin().key();
    GeoWriteOutcome result;
    if (!detail::read_outcome_alternative(tag, j.begin().value(), result)) {
        throw detail::FieldParseError("", "unknown write outcome " + detail::quoted(tag) +
                                              " (expected Committed, RejectedByConflict, "
                                              "AlreadyApplied or OutOfOrder)");
    }
    outcome = std::move(result);
}

// ---- text ---------------------------------------------------------------------------------

/// Parses JSON text into a `T`; syntax errors and bad fields alike throw ParseError (with the
/// field path). Containers of geo types (e.g. `std::vector<FanoutEntry>`) report element indices.
/// A batch of FanoutEntry is read without the DOM when it can be (detail/batch_json.hpp).
template <class T>
[[nodiscard]] T from_json_text(std::string_view text) {
    if constexpr (std::is_same_v<T, std::vector<FanoutEntry>>) {
        if (auto batch = detail::read_batch_json(text)) {
            return std::move(*batch);
        }
    }
    return detail::from_json_text_dom<T>(text);
}

/// Parses a configuration. It is not validated: call `validate()` (the replicator does).
[[nodiscard]] inline ActiveActiveGeoConfig parse_config(std::string_view json_text) {
    return from_json_text<ActiveActiveGeoConfig>(json_text);
}

/// Compact JSON text of `value` (`indent` >= 0 pretty-prints). A string that is not valid UTF-8
/// cannot be written as JSON and throws geo::Error. A compact batch of FanoutEntry is written
/// without the DOM, to the same bytes.
template <class T>
[[nodiscard]] std::string to_json_text(const T& value, int indent = -1) {
    if constexpr (std::is_same_v<T, std::vector<FanoutEntry>>) {
        std::string text;
        if (indent < 0 && detail::write_batch_json(value, text)) {
            return text;
        }
    }
    return detail::to_json_text_dom(value, indent);
}

} // namespace geo
