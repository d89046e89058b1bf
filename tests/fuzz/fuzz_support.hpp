#pragma once

/// Shared by the fuzz targets and the seed-corpus generator: how a failed property is reported,
/// the exception check every decoder call goes through, and the deterministic replicators the
/// snapshot target restores into (and the generator snapshots).

#include <geo/replicator.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <typeinfo>
#include <utility>
#include <vector>

namespace geo_fuzz {

/// A property does not hold: print why and abort, which libFuzzer reports as a crash and saves
/// the input as crash-<sha1>.
[[noreturn]] inline void fail(const std::string& what) {
    std::fprintf(stderr, "\n==geo-fuzz== PROPERTY FAILED: %s\n", what.c_str());
    std::fflush(stderr);
    std::abort();
}

/// Runs `call`; returns true if it returned, false if it threw one of the `Allowed` geo
/// exception types; any other exception fails the property named by `what`.
template <class... Allowed, class Call>
bool returns_or_throws(const char* what, Call&& call) {
    try {
        std::forward<Call>(call)();
        return true;
    } catch (const std::exception& e) {
        if ((... || (dynamic_cast<const Allowed*>(&e) != nullptr))) {
            return false;
        }
        fail(std::string(what) + " threw a disallowed exception " + typeid(e).name() + ": " +
             e.what());
    } catch (...) {
        fail(std::string(what) + " threw something that is not a std::exception");
    }
}

/// Runs `call`, which must not throw at all.
template <class Call>
void must_not_throw(const char* what, Call&& call) {
    try {
        std::forward<Call>(call)();
    } catch (const std::exception& e) {
        fail(std::string(what) + " threw " + typeid(e).name() + ": " + e.what());
    } catch (...) {
        fail(std::string(what) + " threw something that is not a std::exception");
    }
}

// ---- the deterministic replicators of the snapshot target -----------------------------------

inline const std::string us = "us-east-1";
inline const std::string eu = "eu-west-1";
inline const std::string ap = "ap-south-1";

/// Frozen physical time: the same calls give the same state, so the same snapshot bytes.
inline constexpr std::uint64_t frozen_ms = 1'700'000'000'000ULL;

inline std::vector<geo::RegionRaftGroup> world_groups() {
    return {geo::RegionRaftGroup(us, 100, {1, 2, 3}), geo::RegionRaftGroup(eu, 200, {4, 5, 6}),
            geo::RegionRaftGroup(ap, 300, {7, 8, 9})};
}

inline geo::ActiveActiveGeoConfig world_config(geo::ConflictResolutionMode mode) {
    geo::ActiveActiveGeoConfig config = geo::ActiveActiveGeoConfig::multi_region(us, {us, eu, ap});
    config.conflict_mode = mode;
    config.tombstone_grace = std::chrono::milliseconds(1000);
    return config;
}

/// An empty replicator of us-east-1 in a three-region world, on the frozen clock.
inline std::unique_ptr<geo::ActiveActiveReplicator> empty_replica(geo::ConflictResolutionMode mode) {
    return std::make_unique<geo::ActiveActiveReplicator>(world_config(mode), world_groups(),
                                                         [] { return frozen_ms; });
}

/// A fanout entry of `region`, as its stream would carry it.
inline geo::FanoutEntry make_entry(const std::string& region, const std::string& key,
                                   const std::string& value, std::uint64_t ts, std::uint64_t seq,
                                   geo::VectorClock clock = {}, bool deleted = false) {
    geo::GeoRecord record;
    record.region = region;
    record.timestamp_ms = ts;
    record.clock = std::move(clock);
    record.value = value;
    record.seq = seq;
    record.deleted = deleted;
    return geo::FanoutEntry{key, std::move(record), seq, 0};
}

/// The state the snapshot target restores over: a few local keys, a tombstone, a remote write
/// that displaced a still-queued local one (so us-east-1's queue holds a detached copy), a
/// write committed for eu-west-1 (its queue is not empty), and a partial acknowledgement.
inline std::unique_ptr<geo::ActiveActiveReplicator> populated_replica(geo::ConflictResolutionMode mode) {
    auto rep = empty_replica(mode);
    (void)rep->put("user:1", "alice");
    (void)rep->put("user:2", "bob");
    (void)rep->put("cart:7", "3 items");
    (void)rep->erase("cart:7"); // tombstone
    (void)rep->put("user:3", "carol");
    const bool vc = mode == geo::ConflictResolutionMode::VectorClock;
    // A later remote write of user:2 from ap-south-1, still owed locally: the local write of
    // user:2 is kept as a detached copy in us-east-1's queue.
    geo::VectorClock ap_clock = vc ? geo::VectorClock{{100, 2}, {300, 1}} : geo::VectorClock{};
    (void)rep->apply_remote(ap, make_entry(ap, "user:2", "bob@ap", frozen_ms + 50, 1, ap_clock));
    (void)rep->apply_remote(ap, make_entry(ap, "ap:only", "x", frozen_ms + 60, 2,
                                           vc ? geo::VectorClock{{300, 2}} : geo::VectorClock{}));
    // A write committed in eu-west-1's log and applied here as a local commit of that region.
    (void)rep->apply_local_write(eu, "eu:key", "from eu", frozen_ms + 70,
                                 vc ? geo::VectorClock{{200, 1}} : geo::VectorClock{});
    (void)rep->acknowledge_fanout(us, eu, 2); // eu-west-1 has the first two local writes
    // Rewrites of queued keys: user:1 (eu-west-1 had it, ap-south-1 not: what each misses is
    // kept per target) and user:3 (neither had it: one record for both).
    (void)rep->put("user:1", "alice v2");
    (void)rep->put("user:3", "carol v2");
    return rep;
}

inline std::string snapshot_bytes(const geo::ActiveActiveReplicator& rep) {
    std::ostringstream out;
    rep.snapshot(out);
    return out.str();
}

} // namespace geo_fuzz
