#pragma once

/// Helpers shared by the replication tests (conflicts, loss scenarios, tombstones, convergence,
/// stress): the three-region topology, shipping a stream between two replicas, a fanout entry
/// builder, the conflict modes, readable descriptions of records and outcomes, and the
/// Catch::StringMaker specializations built on them. It includes "geo_test.hpp" itself.

#include <geo/replicator.hpp>

#include "geo_test.hpp"

#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace geo_test {

inline const std::string us = "us-east-1";
inline const std::string eu = "eu-west-1";
inline const std::string ap = "ap-northeast-1";

inline std::vector<geo::RegionId> all_regions() {
    return {us, eu, ap};
}

/// Every region's Raft group, with distinct group ids (they key the vector-clock entries).
inline std::vector<geo::RegionRaftGroup> all_groups() {
    return {geo::RegionRaftGroup(us, 100, {1, 2, 3}), geo::RegionRaftGroup(eu, 200, {4, 5, 6}),
            geo::RegionRaftGroup(ap, 300, {7, 8, 9})};
}

/// Ships everything `from` owes `to` (its local region's stream) and acknowledges it.
inline void ship(geo::ActiveActiveReplicator& from, geo::ActiveActiveReplicator& to) {
    const std::string& source = from.config().local_region;
    const std::string& target = to.config().local_region;
    const auto batch = from.peek_fanout(source, target);
    for (const auto& entry : batch) {
        (void)to.apply_remote(source, entry);
    }
    if (!batch.empty()) {
        (void)from.acknowledge_fanout(source, target, batch.back().seq);
    }
}

/// A committed write of `region`, as its fanout entry would carry it.
inline geo::FanoutEntry entry(const std::string& region, const std::string& key,
                              const std::string& value, std::uint64_t ts, std::uint64_t seq,
                              geo::VectorClock clock = {}, bool deleted = false) {
    geo::GeoRecord record;
    record.region = region;
    record.timestamp_ms = ts;
    record.clock = std::move(clock);
    record.value = value;
    record.seq = seq;
    record.deleted = deleted;
    return geo::FanoutEntry{key, record, seq};
}

inline constexpr geo::ConflictResolutionMode both_modes[] = {
    geo::ConflictResolutionMode::LastWriterWins, geo::ConflictResolutionMode::VectorClock};

inline std::string mode_name(geo::ConflictResolutionMode mode) {
    return std::string(geo::to_string(mode));
}

inline std::string describe(const geo::GeoRecord& r) {
    std::ostringstream out;
    out << "{region=" << r.region << " ts=" << r.timestamp_ms << " seq=" << r.seq
        << " deleted=" << r.deleted << " value=\"" << r.value << "\" clock={";
    for (const auto& [node, counter] : r.clock.entries()) {
        out << node << ':' << counter << ' ';
    }
    out << "}}";
    return out.str();
}

inline std::string describe(const std::optional<geo::GeoRecord>& r) {
    return r ? describe(*r) : std::string("(absent)");
}

inline std::string describe(const geo::ConflictEvent& e) {
    return "{key=" + e.key + " winner=" + describe(e.winner) + " loser=" + describe(e.loser) + "}";
}

inline std::string describe(const geo::GeoWriteOutcome& outcome) {
    std::ostringstream out;
    if (const auto* c = std::get_if<geo::Committed>(&outcome)) {
        out << "Committed{" << c->region << ", " << c->seq << "}";
    } else if (const auto* r = std::get_if<geo::RejectedByConflict>(&outcome)) {
        out << "RejectedByConflict{" << r->region << ", " << r->winner_region << ", "
            << r->winner_timestamp_ms << "}";
    } else if (const auto* a = std::get_if<geo::AlreadyApplied>(&outcome)) {
        out << "AlreadyApplied{" << a->region << ", " << a->seq << "}";
    }
    return out.str();
}

} // namespace geo_test

namespace Catch {
template <>
struct StringMaker<geo::GeoRecord> {
    static std::string convert(const geo::GeoRecord& r) { return geo_test::describe(r); }
};
template <>
struct StringMaker<geo::ConflictEvent> {
    static std::string convert(const geo::ConflictEvent& e) { return geo_test::describe(e); }
};
#if !defined(CATCH_CONFIG_ENABLE_VARIANT_STRINGMAKER) &&                                           \
    !defined(CATCH_CONFIG_ENABLE_ALL_STRINGMAKERS)
template <>
struct StringMaker<geo::GeoWriteOutcome> {
    static std::string convert(const geo::GeoWriteOutcome& outcome) {
        return geo_test::describe(outcome);
    }
};
#endif
} // namespace Catch
