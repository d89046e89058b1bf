#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "../record.hpp"
#include "../types.hpp"
#include "../vector_clock.hpp"

namespace geo::detail {

/// A write owed to peers, linked into its source region's fanout queue in commit order.
///
/// Usually it is a key's stored record itself (a Slot), so queuing copies nothing and a newer
/// commit of the key simply moves it to the tail. When a remote write displaces a record that
/// is still owed, the queue keeps a detached copy in its place, so the displaced write still
/// reaches every peer (which then report it as a lost conflict).
///
/// The record's fields are stored flat, with the region as an index into the configured ids
/// (a GeoRecord is built when one is read), and the key's bytes follow the entry in the same
/// allocation (see new_entry): a lookup compares the key without another cache miss, and a
/// write touches two cache lines of its slot.
///
/// Locks: the record fields of a slot are guarded by its key's shard lock, and change only
/// while the slot is not linked or under its queue's lock too (readers of a queue read linked
/// records under the queue's lock alone). `prev`, `next` and `linked` are guarded by the lock of
/// the queue of region `region`. A detached copy belongs to its queue alone.
struct QueueEntry {
    explicit QueueEntry(std::string_view key_bytes) noexcept : key(key_bytes) {}
    QueueEntry(const QueueEntry&) = delete;
    QueueEntry& operator=(const QueueEntry&) = delete;
    ~QueueEntry() = default;

    const std::string_view key; ///< the bytes right after this object
    std::uint64_t timestamp_ms{};
    std::uint64_t seq{};
    std::uint32_t region{}; ///< index into config().regions
    bool deleted{};
    bool detached{}; ///< a copy owned by the queue, not a key's slot
    /// Written under the queue's lock. Only a holder of the key's shard lock links a slot, so
    /// that holder may read `false` without the queue's lock (acquire pairs with the release
    /// of the unlinking thread, which may have just read the record).
    std::atomic<bool> linked{false};
    /// What targets still owing this entry miss of its key besides this write (coalescing;
    /// see Missed). Guarded by the queue's lock, like `prev`/`next`. `missed_kind`: 0 nothing;
    /// 1 every owing target misses from seq - missed_seqs, stamped timestamp_ms - missed_ms;
    /// 2 per target, in the queue's block number `missed_seqs`; 3 everything (a fallback when
    /// neither fits, so that nothing is ever counted as held that is not).
    std::uint8_t missed_kind{};
    std::uint32_t missed_seqs{};
    std::uint32_t missed_ms{};
    std::string value;
    VectorClock clock;
    QueueEntry* prev{};
    QueueEntry* next{};

    [[nodiscard]] bool is_linked() const noexcept { return linked.load(std::memory_order_acquire); }
    void set_linked(bool on) noexcept { linked.store(on, std::memory_order_release); }
};

/// One key's stored record.
struct Slot : QueueEntry {
    using QueueEntry::QueueEntry;
};

/// Allocates an entry with room for `key` right after it. Strong guarantee.
template <class Entry>
[[nodiscard]] Entry* new_entry(std::string_view key) {
    static_assert(alignof(Entry) <= __STDCPP_DEFAULT_NEW_ALIGNMENT__, "over-aligned entry");
    void* memory = ::operator new(sizeof(Entry) + key.size());
    char* bytes = static_cast<char*>(memory) + sizeof(Entry);
    if (!key.empty()) {
        std::memcpy(bytes, key.data(), key.size());
    }
    return ::new (memory) Entry(std::string_view(bytes, key.size()));
}

/// Destroys what new_entry made.
struct EntryDeleter {
    template <class Entry>
    void operator()(Entry* entry) const noexcept {
        if (entry != nullptr) { // like delete
            entry->~Entry();
            ::operator delete(entry);
        }
    }
};

using SlotPtr = std::unique_ptr<Slot, EntryDeleter>;
using EntryPtr = std::unique_ptr<QueueEntry, EntryDeleter>;

/// A detached copy of `entry`'s record, for its queue to keep. Strong guarantee.
[[nodiscard]] inline EntryPtr copy_entry(const QueueEntry& entry) {
    EntryPtr copy(new_entry<QueueEntry>(entry.key));
    copy->timestamp_ms = entry.timestamp_ms;
    copy->seq = entry.seq;
    copy->region = entry.region;
    copy->deleted = entry.deleted;
    copy->value = entry.value;
    copy->clock = entry.clock;
    copy->detached = true;
    return copy;
}

/// The public record of an entry; `regions` are the configured ids its index points into.
[[nodiscard]] inline GeoRecord record_of(const QueueEntry& e,
                                         const std::vector<RegionId>& regions) {
    return GeoRecord{regions[e.region], e.timestamp_ms, e.clock, e.value, e.seq, e.deleted};
}

} // namespace geo::detail
