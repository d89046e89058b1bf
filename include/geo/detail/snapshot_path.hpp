#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "../record.hpp"
#include "../types.hpp"
#include "entry.hpp"
#include "key_table.hpp"
#include "replica.hpp"
#include "snapshot_codec.hpp"
#include "snapshot_format.hpp"

namespace geo::detail {

/// Snapshot, restore and digest of a Replica (the format: docs/snapshot.md).
///
/// Capture takes every lock in the Replica's order (streams, shards, queues), copies the state
/// as encoded bytes and releases each lock as soon as what it guards is copied; sorting and
/// writing happen after, so writers wait for a copy (of at most what they need), not for the
/// output. Restore verifies the checksum, then replays
/// the snapshot into an empty staging Replica with ordinary operations of the parts (insert
/// a slot, push an entry, acknowledge), and swaps the staged contents in under every lock.
struct SnapshotPath {
    static constexpr char magic[8] = {'g', 'e', 'o', 's', 'n', 'a', 'p', '\n'};
    static constexpr std::uint32_t version = 2;

    static void snapshot(const Replica& rep, std::ostream& out) {
        Capture cut;
        capture(const_cast<Replica&>(rep), cut); // takes the locks only; nothing is modified
        for (Located& at : cut.records) {
            at.order = hash_key(key_at(cut, at), 0);
        }
        // Canonical order: by a fixed hash of the key, then by the key, so the bytes do not
        // depend on the seeded hash, insertion history or shard layout.
        std::sort(cut.records.begin(), cut.records.end(), [&](const Located& a, const Located& b) {
            return a.order != b.order ? a.order < b.order : key_at(cut, a) < key_at(cut, b);
        });
        ChunkWriter writer(out);
        ByteBuffer& buf = writer.buffer();
        buf.append(std::string_view(magic, sizeof magic));
        put_u32(buf, version);
        put_identity(buf, rep);
        for (std::size_t r = 0; r < rep.regions.size(); ++r) {
            put_u64(buf, cut.seq[r]);
            put_u64(buf, cut.observed[r]);
        }
        put_u64(buf, cut.records.size());
        for (const Located& at : cut.records) {
            buf.append(std::string_view(cut.bytes.data() + at.offset, at.size));
            writer.flush_if_full();
        }
        for (const ByteBuffer& queue : cut.queues) {
            // Already canonical (queue order is commit order); written in pieces so the
            // writer's buffer stays one chunk long.
            std::string_view rest = queue.view();
            while (!rest.empty()) {
                const std::string_view piece = rest.substr(0, max_chunk);
                buf.append(piece);
                writer.flush_if_full();
                rest.remove_prefix(piece.size());
            }
        }
        writer.finish();
    }

    static void restore(Replica& live, std::istream& in) {
        const ByteBuffer body = read_chunks(in); // ParseError unless intact
        BodyReader reader(body.view());
        const std::string_view head = reader.raw(sizeof magic);
        if (head != std::string_view(magic, sizeof magic)) {
            throw ParseError("snapshot: not a geo snapshot (bad magic)");
        }
        const std::uint32_t v = reader.u32();
        if (v != version) {
            throw ParseError("snapshot: unknown version " + std::to_string(v) +
                             " (this build reads " + std::to_string(version) + ")");
        }
        check_identity(reader, live);
        std::unique_ptr<Replica> staged = Replica::staging_for(live);
        replay(reader, *staged);
        if (!reader.at_end()) {
            throw ParseError("snapshot: corrupt (bytes after the last queue)");
        }
        {
            HoldAll hold(live);
            for (std::size_t i = 0; i < KeyStore::shard_count; ++i) {
                live.keys.shard(i).swap_slots(staged->keys.shard(i));
            }
            for (std::size_t r = 0; r < live.regions.size(); ++r) {
                live.regions[r]->queue.swap(staged->regions[r]->queue);
                live.regions[r]->stream.reset_seq(staged->regions[r]->stream.seq());
                live.clock.reset_observed(r, staged->clock.observed(r));
            }
        }
        // `staged` now holds the old state and frees it here, with no lock held.
    }

    /// Sum of a fixed hash of every record (key and every GeoRecord field, the region as
    /// its id): independent of order, seeds and queues.
    [[nodiscard]] static std::uint64_t records_digest(const Replica& rep) {
        std::uint64_t sum = 0;
        ByteBuffer buf;
        for (std::size_t i = 0; i < KeyStore::shard_count; ++i) {
            const KeyShard& shard = rep.keys.shard(i);
            std::lock_guard<SpinMutex> lock(shard.mutex());
            shard.for_each_prefetched([&](const Slot& slot, std::size_t) {
                buf.clear();
                put_bytes(buf, slot.key);
                put_record(buf, slot, rep.config.regions[slot.region]);
                // Mixed once more so a sum of hashes cannot cancel by construction.
                sum += fold_multiply(hash_key(buf.view(), digest_seed), digest_seed | 1);
            });
        }
        return sum;
    }

private:
    static constexpr std::uint64_t digest_seed = 0x6469676573742121ULL; // "digest!!"
    static constexpr std::uint8_t kind_slot = 0;
    static constexpr std::uint8_t kind_copy = 1;

    /// Every lock of a Replica, taken in its documented order and released in reverse.
    class HoldAll {
    public:
        explicit HoldAll(Replica& rep) {
            locks_.reserve(rep.regions.size() * 2 + KeyStore::shard_count);
            for (auto& region : rep.regions) {
                locks_.emplace_back(region->stream.stream_mutex());
            }
            for (std::size_t i = 0; i < KeyStore::shard_count; ++i) {
                locks_.emplace_back(rep.keys.shard(i).mutex());
            }
            for (auto& region : rep.regions) {
                locks_.emplace_back(region->queue.mutex());
            }
        }
        ~HoldAll() {
            while (!locks_.empty()) {
                locks_.pop_back();
            }
        }
        HoldAll(const HoldAll&) = delete;
        HoldAll& operator=(const HoldAll&) = delete;

    private:
        std::vector<std::unique_lock<SpinMutex>> locks_;
    };

    struct Located {
        std::uint64_t order; ///< fixed hash of the key
        std::size_t offset;  ///< of the encoded record in Capture::bytes
        std::size_t size;
    };

    struct Capture {
        std::vector<std::uint64_t> seq;
        std::vector<std::uint64_t> observed;
        ByteBuffer bytes; ///< every record, encoded, one after the other
        std::vector<Located> records;
        std::vector<ByteBuffer> queues; ///< per source region, encoded
    };

    static std::string_view key_at(const Capture& cut, const Located& at) noexcept {
        const std::uint64_t size = get_u64_at(cut.bytes.data() + at.offset);
        return std::string_view(cut.bytes.data() + at.offset + 8, static_cast<std::size_t>(size));
    }

    static void put_identity(ByteBuffer& buf, const Replica& rep) {
        const ActiveActiveGeoConfig& config = rep.config;
        put_u32(buf, static_cast<std::uint32_t>(config.regions.size()));
        for (const auto& region : config.regions) {
            put_bytes(buf, region);
        }
        put_bytes(buf, config.local_region);
        put_u8(buf, config.conflict_mode == ConflictResolutionMode::VectorClock ? 1 : 0);
        // Group ids key the regions' vector-clock entries: another layout is another config.
        for (std::size_t r = 0; r < rep.regions.size(); ++r) {
            const auto& group = rep.regions[r]->group_id;
            put_u8(buf, group ? 1 : 0);
            put_u64(buf, group ? *group : 0);
        }
    }

    /// ConfigError when the (intact) snapshot was taken with other regions, another local
    /// region, another conflict mode or other Raft group ids.
    static void check_identity(BodyReader& reader, const Replica& rep) {
        const ActiveActiveGeoConfig& config = rep.config;
        const std::uint32_t n = reader.u32();
        std::vector<std::string> regions;
        for (std::uint32_t i = 0; i < n; ++i) {
            regions.emplace_back(reader.bytes());
        }
        const std::string local(reader.bytes());
        const std::uint8_t mode = reader.u8();
        if (mode > 1) {
            throw ParseError("snapshot: corrupt (conflict mode " + std::to_string(mode) + ")");
        }
        bool same_groups = n == rep.regions.size();
        for (std::uint32_t i = 0; i < n; ++i) {
            const std::uint8_t has = reader.u8();
            const std::uint64_t id = reader.u64();
            if (has > 1) {
                throw ParseError("snapshot: corrupt (group id flag)");
            }
            if (same_groups) {
                const auto& group = rep.regions[i]->group_id;
                same_groups = (has == 1) == group.has_value() && (!group || *group == id);
            }
        }
        if (regions != config.regions || local != config.local_region ||
            (mode == 1) != (config.conflict_mode == ConflictResolutionMode::VectorClock)) {
            throw ConfigError("snapshot of another configuration (regions, local region or "
                              "conflict mode differ)");
        }
        if (!same_groups) {
            throw ConfigError("snapshot of another configuration (Raft group ids differ)");
        }
    }

    /// Copies a consistent cut: the state at the moment every lock is held. Then it lets
    /// writers go as early as the cut allows: the streams once the sequences are copied, the
    /// queues once they are copied, each shard once its records are. A write released that
    /// way touches only what was copied already (one shard, queues, sequences), so it falls
    /// after the cut; one that needs something not copied yet waits for its lock.
    static void capture(Replica& rep, Capture& cut) {
        const std::size_t n = rep.regions.size();
        std::vector<std::unique_lock<SpinMutex>> streams;
        std::vector<std::unique_lock<SpinMutex>> shards;
        std::vector<std::unique_lock<SpinMutex>> queues;
        streams.reserve(n);
        shards.reserve(KeyStore::shard_count);
        queues.reserve(n);
        cut.seq.reserve(n);
        cut.observed.reserve(n);
        cut.queues.resize(n);
        for (auto& region : rep.regions) { // the documented order: streams, shards, queues
            streams.emplace_back(region->stream.stream_mutex());
        }
        for (std::size_t i = 0; i < KeyStore::shard_count; ++i) {
            shards.emplace_back(rep.keys.shard(i).mutex());
        }
        for (auto& region : rep.regions) {
            queues.emplace_back(region->queue.mutex());
        }

        for (std::size_t r = 0; r < n; ++r) {
            cut.seq.push_back(rep.regions[r]->stream.seq());
            cut.observed.push_back(rep.clock.observed(r));
        }
        streams.clear();
        for (std::size_t r = 0; r < n; ++r) {
            const FanoutQueue& queue = rep.regions[r]->queue;
            ByteBuffer& buf = cut.queues[r];
            for (std::size_t t = 0; t < n; ++t) {
                put_u64(buf, queue.acked(t));
                put_u8(buf, queue.unchecked(t) ? 1 : 0);
            }
            put_u64(buf, queue.queued());
            for (const QueueEntry* e = queue.head(); e != nullptr; e = e->next) {
                char* p = buf.extend(1 + 8 + e->key.size());
                store_bytes(store_u8(p, e->detached ? kind_copy : kind_slot), e->key);
                if (e->detached) {
                    put_region_record(buf, *e);
                }
                put_missed(buf, queue, *e, r);
            }
        }
        queues.clear();
        std::size_t keys = 0;
        for (std::size_t i = 0; i < KeyStore::shard_count; ++i) {
            keys += rep.keys.shard(i).size();
        }
        cut.records.reserve(keys);
        cut.bytes.reserve(keys * 128); // a typical record; grows if needed
        for (std::size_t i = 0; i < KeyStore::shard_count; ++i) {
            rep.keys.shard(i).for_each_prefetched([&](const Slot& slot, std::size_t) {
                const std::size_t offset = cut.bytes.size();
                put_bytes(cut.bytes, slot.key);
                put_region_record(cut.bytes, slot);
                // The order is hashed after the locks are released (see snapshot).
                cut.records.push_back(Located{0, offset, cut.bytes.size() - offset});
            });
            shards[i].unlock();
        }
    }

    /// Rebuilds the state in an empty replica from a body positioned after the identity.
    static void replay(BodyReader& reader, Replica& rep) {
        const std::size_t n = rep.regions.size();
        for (std::size_t r = 0; r < n; ++r) {
            const std::uint64_t seq = reader.u64();
            if (seq >= max_seq) {
                throw ParseError("snapshot: corrupt (a region sequence at or above 2^63)");
            }
            rep.regions[r]->stream.reset_seq(seq);
            rep.clock.reset_observed(r, reader.u64());
        }
        const std::size_t records = reader.count(8 + 4 + 8 + 8 + 1 + 8 + 4);
        for (std::size_t i = 0; i < KeyStore::shard_count; ++i) {
            // Keys spread evenly over the shards; a little slack avoids a late doubling.
            rep.keys.shard(i).reserve(records / KeyStore::shard_count + records / 256 + 16);
        }
        for (std::size_t i = 0; i < records; ++i) {
            const std::string_view key = reader.bytes();
            SlotPtr slot(new_entry<Slot>(key));
            read_region_record(reader, rep, *slot);
            const std::size_t hash = rep.keys.hash(key);
            KeyShard& shard = rep.keys.shard_for(hash);
            if (shard.find(key, hash) != nullptr) {
                throw ParseError("snapshot: corrupt (key stored twice)");
            }
            shard.insert(std::move(slot), hash);
        }
        for (std::size_t r = 0; r < n; ++r) {
            FanoutQueue& queue = rep.regions[r]->queue;
            std::vector<std::uint64_t> acked(n);
            std::vector<bool> unchecked(n);
            for (std::size_t t = 0; t < n; ++t) {
                acked[t] = reader.u64();
                const std::uint8_t flag = reader.u8();
                if (flag > 1 || (flag == 1 && t == r)) {
                    throw ParseError("snapshot: corrupt (drain flag)");
                }
                unchecked[t] = flag == 1;
            }
            const std::size_t entries = reader.count(1 + 8 + 1);
            std::uint64_t last_seq = 0;
            std::vector<Missed> missed(n);
            for (std::size_t i = 0; i < entries; ++i) {
                const std::uint8_t kind = reader.u8();
                const std::string_view key = reader.bytes();
                QueueEntry* entry = nullptr;
                if (kind == kind_slot) {
                    const std::size_t hash = rep.keys.hash(key);
                    Slot* slot = rep.keys.shard_for(hash).find(key, hash);
                    // A region's new commit of a key drops its queued copy: never both.
                    if (slot == nullptr || slot->region != r || slot->is_linked() ||
                        queue.holds_copy(key)) {
                        throw ParseError("snapshot: corrupt (queue entry without its record)");
                    }
                    entry = slot;
                    check_order(entry->seq, last_seq, rep.regions[r]->stream.seq());
                    queue.push(*slot);
                } else if (kind == kind_copy) {
                    EntryPtr copy(new_entry<QueueEntry>(key));
                    read_region_record(reader, rep, *copy);
                    copy->detached = true;
                    const std::size_t hash = rep.keys.hash(key);
                    const Slot* slot = rep.keys.shard_for(hash).find(key, hash);
                    if (copy->region != r || queue.holds_copy(key) ||
                        (slot != nullptr && slot->region == r && slot->is_linked())) {
                        throw ParseError("snapshot: corrupt (detached copy)");
                    }
                    check_order(copy->seq, last_seq, rep.regions[r]->stream.seq());
                    entry = copy.get();
                    queue.push_copy(std::move(copy));
                } else {
                    throw ParseError("snapshot: corrupt (queue entry kind)");
                }
                last_seq = entry->seq;
                if (read_missed(reader, *entry, r, missed)) {
                    queue.restore_missed(*entry, missed);
                }
            }
            for (std::size_t t = 0; t < n; ++t) {
                if (t != r) {
                    queue.acknowledge(t, acked[t], rep.regions[r]->stream.seq());
                    queue.set_unchecked(t, unchecked[t]);
                }
            }
            if (queue.queued() != entries) {
                throw ParseError("snapshot: corrupt (queue holds entries nobody is owed)");
            }
            queue.forget_oldest();
        }
    }

    static void check_order(std::uint64_t seq, std::uint64_t last, std::uint64_t region_seq) {
        if (seq <= last || seq > region_seq) {
            throw ParseError("snapshot: corrupt (queue out of seq order)");
        }
    }
};

} // namespace geo::detail
