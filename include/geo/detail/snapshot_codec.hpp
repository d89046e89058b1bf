#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "../error.hpp"
#include "entry.hpp"
#include "fanout_queue.hpp"
#include "missed_writes.hpp"
#include "replica.hpp"
#include "snapshot_format.hpp"

/// How a snapshot encodes a record and what a queue entry's targets miss (docs/snapshot.md).
namespace geo::detail {

/// The record's fields after its region (as `region_bytes`: an id or an index), in one
/// sized write: this runs under every lock during capture.
inline void put_fields(ByteBuffer& buf, const QueueEntry& e, std::size_t region_bytes,
                       char* (*store_region)(char*, const QueueEntry&)) {
    const auto entries = e.clock.entries();
    const std::size_t size =
        region_bytes + 8 + 8 + 1 + 8 + e.value.size() + 4 + 16 * entries.size();
    char* p = store_region(buf.extend(size), e);
    p = store_u64(p, e.timestamp_ms);
    p = store_u64(p, e.seq);
    p = store_u8(p, e.deleted ? 1 : 0);
    p = store_bytes(p, e.value);
    p = store_u32(p, static_cast<std::uint32_t>(entries.size()));
    for (const auto& [node, counter] : entries) {
        p = store_u64(store_u64(p, node), counter);
    }
}

/// For the digest: the region as its id, so replicas configured in another order agree.
inline void put_record(ByteBuffer& buf, const QueueEntry& e, std::string_view region) {
    put_bytes(buf, region);
    put_fields(buf, e, 0, [](char* p, const QueueEntry&) { return p; });
}

/// For the snapshot: the region as its index into the configured ids.
inline void put_region_record(ByteBuffer& buf, const QueueEntry& e) {
    put_fields(buf, e, 4,
               [](char* p, const QueueEntry& entry) { return store_u32(p, entry.region); });
}

/// Reads what put_region_record wrote into `e`, checking it against the configuration.
inline void read_region_record(BodyReader& reader, const Replica& rep, QueueEntry& e) {
    // The fixed part in one bounds check: region, timestamp, seq, deleted, value size.
    const char* p = reader.raw(4 + 8 + 8 + 1 + 8).data();
    const std::uint32_t region = get_u32_at(p);
    const auto deleted = static_cast<unsigned char>(p[20]);
    if (region >= rep.regions.size() || deleted > 1) {
        throw ParseError("snapshot: corrupt (region index or deleted flag)");
    }
    e.region = region;
    e.timestamp_ms = get_u64_at(p + 4);
    e.seq = get_u64_at(p + 12);
    e.deleted = deleted == 1;
    e.value.assign(reader.raw(reader.length(get_u64_at(p + 21))));
    const std::size_t n = reader.length(reader.u32(), 16);
    const char* entries = reader.raw(16 * n).data();
    NodeId last = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const NodeId node = get_u64_at(entries + 16 * i);
        const std::uint64_t counter = get_u64_at(entries + 16 * i + 8);
        if ((i > 0 && node <= last) || counter == 0) {
            throw ParseError("snapshot: corrupt (clock entries out of order or zero)");
        }
        e.clock.set(node, counter); // ascending: each set appends
        last = node;
    }
}

/// What targets owing `e` miss of its key (see Missed), canonical: nothing for the targets
/// that acknowledged it. 0: nothing; 1: one Missed for every target; 2: one per target.
inline void put_missed(ByteBuffer& buf, const FanoutQueue& queue, const QueueEntry& e,
                       std::size_t self) {
    const std::size_t n = queue.region_count();
    const auto of = [&](std::size_t t) { return queue.owes(e, t) ? queue.missed(e, t) : Missed{}; };
    const Missed common = of(self == 0 ? 1 : 0);
    bool uniform = true;
    for (std::size_t t = 0; t < n; ++t) {
        uniform = uniform && (t == self || of(t) == common);
    }
    if (uniform) {
        put_u8(buf, common.pinned() ? 1 : 0);
        if (common.pinned()) {
            put_u64(buf, common.from);
            put_u64(buf, common.since_ms);
        }
        return;
    }
    put_u8(buf, 2);
    for (std::size_t t = 0; t < n; ++t) {
        if (t != self) {
            put_u64(buf, of(t).from);
            put_u64(buf, of(t).since_ms);
        }
    }
}

/// Reads what put_missed wrote into `out` (index = target); false when nothing is missed.
inline bool read_missed(BodyReader& reader, const QueueEntry& e, std::size_t self,
                        std::vector<Missed>& out) {
    const std::uint8_t form = reader.u8();
    if (form > 2) {
        throw ParseError("snapshot: corrupt (missed-writes form)");
    }
    std::fill(out.begin(), out.end(), Missed{});
    for (std::size_t t = 0; t < out.size() && form != 0; ++t) {
        if (t == self || (form == 1 && t != (self == 0 ? 1 : 0))) {
            continue;
        }
        Missed m{reader.u64(), reader.u64()};
        // A pin is an earlier write of the key, stamped no later than the entry.
        if ((form == 1 && !m.pinned()) ||
            (m.pinned() && (m.from >= e.seq || m.since_ms > e.timestamp_ms)) ||
            (!m.pinned() && m.since_ms != 0)) {
            throw ParseError("snapshot: corrupt (missed writes of a queue entry)");
        }
        out[t] = m;
    }
    if (form == 1) {
        const Missed common = out[self == 0 ? 1 : 0];
        for (std::size_t t = 0; t < out.size(); ++t) {
            out[t] = t == self ? Missed{} : common;
        }
    }
    return form != 0;
}

} // namespace geo::detail
