#pragma once

/// Helpers of the Raft state-machine tests (test_state_machine.cpp, test_snapshot.cpp,
/// test_streams.cpp): replicas with a chosen physical clock, snapshots as byte strings, and
/// descriptions of outcomes that name every alternative (OutOfOrder included), so a failed
/// comparison prints what differed.

#include <geo/replicator.hpp>

#include "replication_fixtures.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

/// REQUIRE(a == b) for byte strings, described by byte_difference when they differ.
#define GEO_REQUIRE_SAME_BYTES(a, b)                                                               \
    do {                                                                                           \
        const std::string& geo_bytes_a_ = (a);                                                     \
        const std::string& geo_bytes_b_ = (b);                                                     \
        if (geo_bytes_a_ != geo_bytes_b_) {                                                        \
            FAIL("bytes differ: " #a " vs " #b ": "                                                \
                 << geo_test::sm::byte_difference(geo_bytes_a_, geo_bytes_b_));                   \
        }                                                                                          \
    } while (false)

namespace geo_test::sm {

using geo::ActiveActiveGeoConfig;
using geo::ActiveActiveReplicator;
using geo::ConflictResolutionMode;
using geo::GeoWriteOutcome;

inline constexpr std::uint64_t start_ms = 1'700'000'000'000;

/// A replica of `local` in the three-region topology, with `physical_ms` as its wall clock.
inline std::unique_ptr<ActiveActiveReplicator>
make_replica(const std::string& local, ConflictResolutionMode mode,
             std::function<std::uint64_t()> physical_ms,
             std::chrono::milliseconds tombstone_grace = std::chrono::hours(24)) {
    auto config = ActiveActiveGeoConfig::multi_region(local, all_regions());
    config.conflict_mode = mode;
    config.tombstone_grace = tombstone_grace;
    return std::make_unique<ActiveActiveReplicator>(config, all_groups(), std::move(physical_ms));
}

/// A replica whose wall clock is frozen at `at_ms`.
inline std::unique_ptr<ActiveActiveReplicator>
frozen_replica(const std::string& local, ConflictResolutionMode mode,
               std::uint64_t at_ms = start_ms,
               std::chrono::milliseconds tombstone_grace = std::chrono::hours(24)) {
    return make_replica(local, mode, [at_ms] { return at_ms; }, tombstone_grace);
}

/// Where two byte strings (snapshots) first differ, in hex around that offset: printing the
/// strings themselves would be unreadable binary.
inline std::string byte_difference(const std::string& a, const std::string& b) {
    std::size_t at = 0;
    while (at < a.size() && at < b.size() && a[at] == b[at]) {
        ++at;
    }
    auto hex = [at](const std::string& s) {
        static const char digits[] = "0123456789abcdef";
        std::string out;
        const std::size_t from = at < 16 ? 0 : at - 16;
        for (std::size_t i = from; i < s.size() && i < at + 24; ++i) {
            const auto c = static_cast<unsigned char>(s[i]);
            out += i == at ? "[" : " ";
            out += digits[c >> 4];
            out += digits[c & 15];
        }
        return out;
    };
    std::ostringstream out;
    out << "sizes " << a.size() << " and " << b.size() << ", first difference at byte " << at
        << ": {" << hex(a) << " } vs {" << hex(b) << " }";
    return out.str();
}

inline std::string snapshot_bytes(const ActiveActiveReplicator& r) {
    std::ostringstream out;
    r.snapshot(out);
    return out.str();
}

inline void restore_from(ActiveActiveReplicator& r, const std::string& bytes) {
    std::istringstream in(bytes);
    r.restore(in);
}

inline std::string text(const geo::FanoutEntry& e);
inline std::string text(const std::vector<geo::FanoutEntry>& batch);

/// What a replica holds and owes, as text: every record (by digest), the region sequences and
/// every batch it would ship. Unlike the snapshot it leaves out the timestamps observed (a
/// refused write still pushes the clock past its timestamp).
inline std::string replicated_state(const ActiveActiveReplicator& r) {
    std::string out = "digest=" + std::to_string(r.records_digest()) + " records=" +
                      std::to_string(r.record_count());
    for (const auto& [region, seq] : r.region_sequences()) {
        out += " " + region + "=" + std::to_string(seq);
    }
    for (const auto& source : r.config().regions) {
        for (const auto& target : r.config().regions) {
            out += "\n" + source + "->" + target + ": " + text(r.peek_fanout(source, target));
        }
    }
    return out;
}

/// Every alternative of an outcome, every field.
inline std::string text(const GeoWriteOutcome& outcome) {
    std::ostringstream out;
    if (const auto* c = std::get_if<geo::Committed>(&outcome)) {
        out << "Committed{" << c->region << ", " << c->seq << "}";
    } else if (const auto* r = std::get_if<geo::RejectedByConflict>(&outcome)) {
        out << "RejectedByConflict{" << r->region << ", " << r->winner_region << ", "
            << r->winner_timestamp_ms << "}";
    } else if (const auto* a = std::get_if<geo::AlreadyApplied>(&outcome)) {
        out << "AlreadyApplied{" << a->region << ", " << a->seq << "}";
    } else if (const auto* o = std::get_if<geo::OutOfOrder>(&outcome)) {
        out << "OutOfOrder{" << o->region << ", " << o->seq << ", " << o->applied_seq << "}";
    }
    return out.str();
}

inline std::string text(const std::vector<GeoWriteOutcome>& outcomes) {
    std::string out = "[";
    for (const auto& o : outcomes) {
        out += text(o) + " ";
    }
    return out + "]";
}

inline std::string text(const geo::FanoutEntry& e) {
    return "{key=" + e.key + " seq=" + std::to_string(e.seq) +
           " prev_seq=" + std::to_string(e.prev_seq) + " record=" + describe(e.record) + "}";
}

inline std::string text(const std::vector<geo::FanoutEntry>& batch) {
    std::string out = "[";
    for (const auto& e : batch) {
        out += text(e) + " ";
    }
    return out + "]";
}

template <class T>
bool is(const GeoWriteOutcome& outcome) {
    return std::holds_alternative<T>(outcome);
}

inline std::vector<std::uint64_t> seqs_of(const std::vector<geo::FanoutEntry>& batch) {
    std::vector<std::uint64_t> seqs;
    for (const auto& e : batch) {
        seqs.push_back(e.seq);
    }
    return seqs;
}

} // namespace geo_test::sm
