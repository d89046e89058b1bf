#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config.hpp"
#include "detail/conflict_log.hpp"
#include "detail/key_table.hpp"
#include "detail/region_names.hpp"
#include "detail/spin_mutex.hpp"
#include "error.hpp"
#include "hybrid_clock.hpp"
#include "record.hpp"
#include "resolve.hpp"
#include "types.hpp"
#include "vector_clock.hpp"

#if defined(__GNUC__)
#define GEO_DETAIL_COLD __attribute__((cold, noinline))
#else
#define GEO_DETAIL_COLD
#endif

namespace geo {

namespace detail {

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
    /// Written under the queue's mutex. Only a holder of the key's shard mutex links a slot,
    /// so that holder may read `false` without the queue's mutex (acquire pairs with the
    /// release of the unlinking thread, which may have just read the record).
    std::atomic<bool> linked{false};
    std::string value;
    VectorClock clock;
    // Guarded by the fanout mutex of the queue's region:
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

} // namespace detail

/// Active-active replication state of one region's process: the resolved record of every key,
/// and, per source region, the committed writes still owed to each peer region.
///
/// The host calls `apply_local_write` (or `put`/`erase`) when its Raft log commits, ships what
/// `peek_fanout` hands out over its own transport, calls `acknowledge_fanout` when a peer has
/// applied a batch, and feeds received batches to `apply_remote`. Every replica resolves
/// concurrent writes to a key the same way, so once every stream is delivered, all replicas hold
/// identical records, whatever the delivery order, duplicates and re-sends.
///
/// Thread-safe: every member may be called from any thread. Keys are sharded, each region's
/// queue has its own lock, and no lock is held while conflict listeners run.
///
/// Exceptions: bad input (an unknown region, a mismatched entry) throws a `geo::Error` and
/// changes nothing. An allocation failure leaves every stored write and every owed entry intact.
class ActiveActiveReplicator {
public:
    using ConflictListener = std::function<void(const ConflictEvent&)>;
    using ListenerId = std::uint64_t;

    /// Throws ConfigError for an impossible config (see ActiveActiveGeoConfig::validate), a
    /// group whose region is not configured, two groups for one region, or two regions
    /// sharing a group id (it keys the region's vector-clock entry).
    ActiveActiveReplicator(ActiveActiveGeoConfig config, std::vector<RegionRaftGroup> groups)
        : ActiveActiveReplicator(std::move(config), std::move(groups), &current_timestamp_ms) {}

    /// `physical_ms` replaces the wall clock under the hybrid clock (tests give each replica a
    /// skewed or frozen clock this way). It is called with internal locks held: it must not
    /// call back into the replicator, and should return quickly (other writers of the same
    /// key shard wait for it).
    ///
    /// A group's `committed_seq` restores its region's sequence: local commits continue after
    /// it, and entries of that origin at or below it count as already applied.
    ActiveActiveReplicator(ActiveActiveGeoConfig config, std::vector<RegionRaftGroup> groups,
                           std::function<std::uint64_t()> physical_ms)
        : config_(std::move(config)), groups_(std::move(groups)), clock_(std::move(physical_ms)) {
        config_.validate();
        for (std::size_t i = 0; i < groups_.size(); ++i) {
            if (!config_.has_region(groups_[i].region_id)) {
                throw ConfigError("group " + std::to_string(groups_[i].group_id) +
                                  " belongs to unknown region '" + groups_[i].region_id + "'");
            }
            for (std::size_t j = 0; j < i; ++j) {
                if (groups_[j].region_id == groups_[i].region_id) {
                    throw ConfigError("region '" + groups_[i].region_id +
                                      "' has more than one Raft group");
                }
                // The group id keys the region's vector-clock entry: shared, two regions
                // would issue the same entries and replicas could end apart.
                if (groups_[j].group_id == groups_[i].group_id) {
                    throw ConfigError("regions '" + groups_[j].region_id + "' and '" +
                                      groups_[i].region_id + "' share Raft group id " +
                                      std::to_string(groups_[i].group_id));
                }
            }
        }
        names_ = detail::RegionNames(config_.regions);
        const std::size_t n = config_.regions.size();
        regions_.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
            regions_.push_back(std::make_unique<RegionState>(n));
        }
        local_index_ = index_of(config_.local_region);
        for (const auto& group : groups_) {
            RegionState& state = *regions_[index_of(group.region_id)];
            state.group_id = group.group_id;
            state.seq.store(group.committed_seq, std::memory_order_relaxed);
        }
        conflict_ring_.resize(config_.conflict_log_capacity);
        tombstone_grace_ms_ = ceil_ms(config_.tombstone_grace);
        max_clock_offset_ms_ = ceil_ms(config_.max_clock_offset);
    }

    ActiveActiveReplicator(const ActiveActiveReplicator&) = delete;
    ActiveActiveReplicator& operator=(const ActiveActiveReplicator&) = delete;

    [[nodiscard]] const ActiveActiveGeoConfig& config() const noexcept { return config_; }

    /// The Raft groups given at construction; `committed_seq` is the region's current sequence.
    [[nodiscard]] std::vector<RegionRaftGroup> groups() const {
        std::vector<RegionRaftGroup> result = groups_;
        for (auto& group : result) {
            group.committed_seq = regions_[index_of(group.region_id)]->seq.load();
        }
        return result;
    }

    // ---- writes ---------------------------------------------------------------------------

    /// A write that just committed in `region`'s Raft log, with the caller's timestamp and clock.
    /// Accepted: stored, given the region's next sequence and queued for every other region.
    ///
    /// The caller's timestamp is observed by the hybrid clock. In vector-clock mode the caller
    /// must keep "clock order implies timestamp order" for its own clocks (a write whose clock
    /// follows another's must not carry a smaller timestamp), or replicas may end apart, and
    /// must not use the node ids that are group ids (`put`/`erase` issue those entries); `put`
    /// and `erase` keep that rule themselves.
    GeoWriteOutcome apply_local_write(std::string_view region, std::string_view key,
                                      std::string_view value, std::uint64_t timestamp_ms,
                                      VectorClock clock = {}) {
        return commit_local(region_index(region), key, value, false, timestamp_ms, &clock);
    }

    /// Like `apply_local_write`, for a delete: stores a tombstone.
    GeoWriteOutcome apply_local_delete(std::string_view region, std::string_view key,
                                       std::uint64_t timestamp_ms, VectorClock clock = {}) {
        return commit_local(region_index(region), key, {}, true, timestamp_ms, &clock);
    }

    /// Writes `value` in the local region, stamped by the hybrid clock (and, in vector-clock
    /// mode, with the key's clock advanced on the local group's entry). Always committed.
    GeoWriteOutcome put(std::string_view key, std::string_view value) {
        return commit_local(local_index_, key, value, false, std::nullopt, nullptr);
    }

    /// Deletes `key` in the local region: a tombstone that wins over every older write.
    GeoWriteOutcome erase(std::string_view key) {
        return commit_local(local_index_, key, {}, true, std::nullopt, nullptr);
    }

    /// A peer's write as the seed API delivers it: resolved like any write, never queued again.
    /// Accepted: the origin's counter advances by one and becomes the record's seq. It cannot
    /// tell a re-delivery from a new write; prefer `apply_remote`, and do not mix the two for
    /// one origin (they share its counter).
    GeoWriteOutcome apply_remote_write(std::string_view origin, std::string_view key,
                                       std::string_view value, std::uint64_t timestamp_ms,
                                       VectorClock clock = {}) {
        const std::size_t o = region_index(origin);
        // Resolved as the origin's next seq; the counter only advances if the write is stored.
        Incoming in{o,
                    key,
                    value,
                    timestamp_ms,
                    std::move(clock),
                    false,
                    regions_[o]->seq.load(std::memory_order_relaxed) + 1,
                    true};
        std::vector<ConflictEvent> events;
        GeoWriteOutcome outcome = commit_remote(in, events);
        deliver(events);
        return outcome;
    }

    /// A peer's fanout entry. Idempotent: an entry at or below the highest seq already applied
    /// from `origin` changes nothing and answers AlreadyApplied (streams are FIFO per origin).
    /// An entry that loses its conflict still counts as applied.
    GeoWriteOutcome apply_remote(std::string_view origin, const FanoutEntry& entry) {
        const std::size_t o = region_index(origin);
        check_origin(o, entry);
        RegionState& state = *regions_[o];
        std::vector<ConflictEvent> events;
        GeoWriteOutcome outcome = [&]() -> GeoWriteOutcome {
            std::lock_guard<Mutex> stream(state.remote_mu);
            if (entry.seq <= state.seq.load(std::memory_order_relaxed)) {
                return AlreadyApplied{config_.regions[o], entry.seq};
            }
            Incoming in{o, entry.key, entry.record.value, entry.record.timestamp_ms,
                        entry.record.clock, entry.record.deleted,
                        // A record from a node that does not track seq carries 0: the entry's
                        // seq is the same commit sequence.
                        entry.record.seq != 0 ? entry.record.seq : entry.seq, false};
            GeoWriteOutcome result = commit_remote(in, events);
            raise_seq(state, entry.seq);
            if (auto* committed = std::get_if<Committed>(&result)) {
                committed->seq = entry.seq;
            }
            return result;
        }();
        deliver(events);
        return outcome;
    }

    /// Applies a batch in order; one outcome per entry. Entries are checked first, so a batch
    /// with a bad entry changes nothing; if an entry fails for lack of memory, those before it
    /// stay applied, and re-sending the whole batch is safe.
    std::vector<GeoWriteOutcome> apply_remote(std::string_view origin,
                                              const std::vector<FanoutEntry>& batch) {
        const std::size_t o = region_index(origin); // an error even for an empty batch
        for (const auto& entry : batch) {
            check_origin(o, entry); // before applying any: a bad batch changes nothing
        }
        std::vector<GeoWriteOutcome> outcomes;
        outcomes.reserve(batch.size());
        for (const auto& entry : batch) {
            outcomes.push_back(apply_remote(origin, entry));
        }
        return outcomes;
    }

    // ---- fanout ---------------------------------------------------------------------------

    /// Up to `max_entries` entries of `source` not yet acknowledged by `target`, ascending seq,
    /// left in place. Costs O(entries returned), not O(queue).
    [[nodiscard]] std::vector<FanoutEntry>
    peek_fanout(std::string_view source, std::string_view target,
                std::size_t max_entries = std::numeric_limits<std::size_t>::max()) const {
        const std::size_t s = region_index(source);
        const std::size_t t = region_index(target);
        std::vector<FanoutEntry> batch;
        if (s == t) {
            return batch;
        }
        const RegionState& state = *regions_[s];
        std::lock_guard<Mutex> lock(state.fanout_mu);
        collect(state, t, max_entries, batch);
        return batch;
    }

    /// `target` has applied every entry of `source` up to `up_to_seq`: they are no longer owed
    /// to it, and an entry owed to nobody is released. Past the newest entry acknowledges all.
    /// Returns how many entries stopped being owed to `target`.
    std::size_t acknowledge_fanout(std::string_view source, std::string_view target,
                                   std::uint64_t up_to_seq) {
        const std::size_t s = region_index(source);
        const std::size_t t = region_index(target);
        if (s == t) {
            return 0;
        }
        RegionState& state = *regions_[s];
        std::lock_guard<Mutex> lock(state.fanout_mu);
        return acknowledge(state, t, up_to_seq);
    }

    /// Every entry of `source` owed to `target`, oldest first, acknowledged at once. A failed
    /// shipment loses them: hosts that cannot afford that use peek + acknowledge.
    std::vector<FanoutEntry> drain_fanout(std::string_view source, std::string_view target) {
        const std::size_t s = region_index(source);
        const std::size_t t = region_index(target);
        std::vector<FanoutEntry> batch;
        if (s == t) {
            return batch;
        }
        RegionState& state = *regions_[s];
        std::lock_guard<Mutex> lock(state.fanout_mu);
        collect(state, t, std::numeric_limits<std::size_t>::max(), batch);
        if (!batch.empty()) {
            acknowledge(state, t, batch.back().seq);
        }
        return batch;
    }

    /// Entries of `source` still owed to at least one region.
    [[nodiscard]] std::size_t pending_fanout_len(std::string_view source) const {
        const RegionState& state = *regions_[region_index(source)];
        std::lock_guard<Mutex> lock(state.fanout_mu);
        return state.queued;
    }

    /// Entries of `source` still owed to `target`.
    [[nodiscard]] std::size_t pending_fanout_len(std::string_view source,
                                                 std::string_view target) const {
        const std::size_t s = region_index(source);
        const std::size_t t = region_index(target);
        if (s == t) {
            return 0;
        }
        const RegionState& state = *regions_[s];
        std::lock_guard<Mutex> lock(state.fanout_mu);
        return state.owed[t];
    }

    // ---- reads ----------------------------------------------------------------------------

    /// The stored record, tombstones included.
    [[nodiscard]] std::optional<GeoRecord> get_record(std::string_view key) const {
        const std::size_t hash = detail::hash_key(key, hash_seed_);
        const Shard& shard = shard_for(hash);
        std::lock_guard<Mutex> lock(shard.mu);
        if (const detail::Slot* slot = shard.table.find(key, hash)) {
            return record_of(*slot);
        }
        return std::nullopt;
    }

    /// The value, or nullopt when the key is absent or deleted.
    [[nodiscard]] std::optional<std::string> get(std::string_view key) const {
        const std::size_t hash = detail::hash_key(key, hash_seed_);
        const Shard& shard = shard_for(hash);
        std::lock_guard<Mutex> lock(shard.mu);
        const detail::Slot* slot = shard.table.find(key, hash);
        if (slot == nullptr || slot->deleted) {
            return std::nullopt;
        }
        return slot->value;
    }

    /// Keys stored, tombstones included until purged.
    [[nodiscard]] std::size_t record_count() const {
        std::size_t count = 0;
        for (const auto& shard : shards_) {
            std::lock_guard<Mutex> lock(shard.mu);
            count += shard.table.size();
        }
        return count;
    }

    /// Every configured region's sequence: its commit count for writes committed here, the
    /// highest seq applied from it for writes received.
    [[nodiscard]] std::map<RegionId, std::uint64_t> region_sequences() const {
        std::map<RegionId, std::uint64_t> result;
        for (std::size_t i = 0; i < regions_.size(); ++i) {
            result.emplace(config_.regions[i], regions_[i]->seq.load());
        }
        return result;
    }

    // ---- tombstones -----------------------------------------------------------------------

    /// Removes tombstones older than `tombstone_grace` (by the physical clock) that this process
    /// no longer owes to any peer. The origin of a delete knows every peer acknowledged it;
    /// other replicas cannot, and rely on the grace period alone: as in Cassandra, every
    /// delivery must finish within it, or a write older than the delete that arrives after the
    /// purge brings the key back. Never called implicitly; O(keys).
    std::size_t purge_tombstones() {
        const std::uint64_t now = clock_.physical_ms();
        const std::uint64_t cutoff = now > tombstone_grace_ms_ ? now - tombstone_grace_ms_ : 0;
        std::size_t purged = 0;
        std::vector<std::pair<detail::Slot*, std::size_t>> doomed;
        for (auto& shard : shards_) {
            std::lock_guard<Mutex> lock(shard.mu);
            doomed.clear();
            shard.table.for_each([&](detail::Slot& slot, std::size_t hash) {
                if (slot.deleted && slot.timestamp_ms <= cutoff && !owes(slot)) {
                    doomed.emplace_back(&slot, hash);
                }
            });
            for (const auto& [slot, hash] : doomed) {
                shard.table.erase(slot, hash);
            }
            purged += doomed.size();
        }
        return purged;
    }

    // ---- conflicts ------------------------------------------------------------------------

    /// The latest conflicts, oldest first, at most `config().conflict_log_capacity`.
    [[nodiscard]] std::vector<ConflictEvent> recent_conflicts() const {
        std::lock_guard<Mutex> lock(conflict_mu_);
        std::vector<ConflictEvent> result;
        const std::size_t capacity = conflict_ring_.size();
        const std::size_t kept =
            static_cast<std::size_t>(std::min<std::uint64_t>(conflicts_total_, capacity));
        result.reserve(kept);
        for (std::size_t i = 0; i < kept; ++i) {
            result.push_back(
                conflict_ring_[(conflicts_total_ - kept + i) % capacity].to_event(config_.regions));
        }
        return result;
    }

    /// Conflicts raised since construction (the log keeps only the latest).
    [[nodiscard]] std::uint64_t conflict_count() const {
        std::lock_guard<Mutex> lock(conflict_mu_);
        return conflicts_total_;
    }

    /// Calls `listener` for every conflict raised after this call, on the writing thread, after
    /// the write is applied and with no lock held: it may call back into the replicator. It may
    /// run on several threads at once. An exception it throws is caught and counted in
    /// `listener_errors()`; it never reaches the writer, and the other listeners still run.
    ListenerId on_conflict(ConflictListener listener) {
        std::lock_guard<Mutex> lock(listeners_mu_);
        auto next = std::make_shared<ListenerList>(listeners_ ? *listeners_ : ListenerList{});
        next->emplace_back(++last_listener_id_, std::move(listener));
        listeners_ = std::move(next);
        has_listeners_.store(true, std::memory_order_release);
        return last_listener_id_;
    }

    /// Unregisters a listener; false if `id` is not registered. A write already in flight may
    /// still call it once after this returns: keep what it captures alive until writers stop.
    bool remove_conflict_listener(ListenerId id) {
        std::lock_guard<Mutex> lock(listeners_mu_);
        if (!listeners_) {
            return false;
        }
        auto next = std::make_shared<ListenerList>(*listeners_);
        auto it = std::find_if(next->begin(), next->end(),
                               [id](const auto& entry) { return entry.first == id; });
        if (it == next->end()) {
            return false;
        }
        next->erase(it);
        has_listeners_.store(!next->empty(), std::memory_order_release);
        listeners_ = std::move(next);
        return true;
    }

    /// Remote writes received with a timestamp more than `config().max_clock_offset` ahead of
    /// this replica's physical clock: a peer's clock is wrong, and its writes will win LWW
    /// conflicts they should not. Always 0 when the check is disabled.
    [[nodiscard]] std::uint64_t clock_offset_violations() const noexcept {
        return clock_offset_violations_.load(std::memory_order_relaxed);
    }

    /// Exceptions thrown by conflict listeners and swallowed.
    [[nodiscard]] std::uint64_t listener_errors() const noexcept {
        return listener_errors_.load(std::memory_order_relaxed);
    }

private:
    using Mutex = detail::SpinMutex;
    using ListenerList = std::vector<std::pair<ListenerId, ConflictListener>>;
    static constexpr std::size_t shard_count = 64;
    static constexpr std::size_t no_group = std::numeric_limits<std::size_t>::max();

    struct alignas(128) Shard {
        mutable Mutex mu;
        detail::KeyTable<detail::Slot, detail::EntryDeleter> table;
    };

    struct alignas(128) RegionState {
        explicit RegionState(std::size_t region_count) {
            // Every local commit writes these arrays. Allocated back to back, two regions'
            // arrays would share a cache line between two writer threads: the spare
            // capacity, never used, keeps whatever is allocated next 256 bytes away.
            constexpr std::size_t spare_bytes = 256;
            cursor.reserve(region_count + spare_bytes / sizeof(detail::QueueEntry*));
            cursor.assign(region_count, nullptr);
            owed.reserve(region_count + spare_bytes / sizeof(std::size_t));
            owed.assign(region_count, 0);
        }

        RegionState(const RegionState&) = delete;
        RegionState& operator=(const RegionState&) = delete;
        ~RegionState() {
            for (auto& [key, entry] : detached) {
                detail::EntryDeleter{}(entry);
            }
        }

        mutable Mutex fanout_mu; // the queue below; local commits of this region
        detail::QueueEntry* head{};
        detail::QueueEntry* tail{};
        std::vector<detail::QueueEntry*> cursor; ///< per target: first entry not acknowledged
        /// Queued copies of displaced writes, by key (rare; see detail::QueueEntry).
        std::unordered_map<std::string_view, detail::QueueEntry*> detached;
        std::vector<std::size_t> owed; ///< per target: entries from cursor to tail
        std::size_t queued{};          ///< entries owed to at least one target

        Mutex remote_mu;                      ///< serializes the stream received from this region
        std::atomic<std::uint64_t> seq{0};    ///< last commit sequence of this region
        std::atomic<std::uint64_t> max_ts{0}; ///< largest timestamp seen from/for this region
        std::optional<std::uint64_t> group_id;
    };

    /// `dst = src` without the generic assign's overhead when the sizes match; into a string
    /// whose capacity was reserved, it cannot throw.
    static void copy_string(std::string& dst, std::string_view src) {
        if (dst.size() == src.size()) {
            std::char_traits<char>::copy(dst.data(), src.data(), src.size());
        } else {
            dst.assign(src.data(), src.size());
        }
    }

    /// A write being applied, before it is stored.
    struct Incoming {
        std::size_t region;
        std::string_view key;
        std::string_view value;
        std::uint64_t timestamp_ms;
        VectorClock clock;
        bool deleted;
        std::uint64_t seq;
        bool assign_seq; ///< seed API: the origin's counter gives the seq once the write is stored
    };

    // ---- helpers: regions, clock ----------------------------------------------------------

    [[nodiscard]] std::size_t index_of(std::string_view region) const noexcept {
        return names_.find(region);
    }

    [[nodiscard]] std::size_t region_index(std::string_view region) const {
        const std::size_t i = names_.find(region);
        if (i == names_.size()) {
            throw_unknown_region(region);
        }
        return i;
    }

    // Out of line, so the lookup on every write stays small.
    [[noreturn]] GEO_DETAIL_COLD void throw_unknown_region(std::string_view region) const {
        std::string known;
        for (const auto& r : config_.regions) {
            known += (known.empty() ? "" : ", ") + r;
        }
        throw ConfigError("unknown region '" + std::string(region) + "' (configured: " + known +
                          ")");
    }

    void check_origin(std::size_t o, const FanoutEntry& entry) const {
        if (entry.record.region != config_.regions[o]) {
            throw ConfigError("entry for key '" + entry.key + "' was written in region '" +
                              entry.record.region + "' but arrived from '" + config_.regions[o] +
                              "'");
        }
    }

    // The top bits pick the shard; the table inside uses the low bits.
    static constexpr int shard_shift = static_cast<int>(sizeof(std::size_t) * 8) - 16;
    [[nodiscard]] Shard& shard_for(std::size_t hash) noexcept {
        return shards_[(hash >> shard_shift) % shard_count];
    }
    [[nodiscard]] const Shard& shard_for(std::size_t hash) const noexcept {
        return shards_[(hash >> shard_shift) % shard_count];
    }

    // Observed timestamps are kept per region (one cache line each) so writers of different
    // regions do not contend; they are folded into the hybrid clock only when it stamps.
    void observe(std::size_t region, std::uint64_t timestamp_ms) noexcept {
        auto& max_ts = regions_[region]->max_ts;
        std::uint64_t seen = max_ts.load(std::memory_order_relaxed);
        while (timestamp_ms > seen &&
               !max_ts.compare_exchange_weak(seen, timestamp_ms, std::memory_order_relaxed)) {
        }
    }

    [[nodiscard]] std::uint64_t stamp() {
        for (const auto& region : regions_) {
            clock_.observe(region->max_ts.load(std::memory_order_relaxed));
        }
        return clock_.stamp();
    }

    static void raise_seq(RegionState& state, std::uint64_t seq) noexcept {
        std::uint64_t current = state.seq.load(std::memory_order_relaxed);
        while (seq > current &&
               !state.seq.compare_exchange_weak(current, seq, std::memory_order_relaxed)) {
        }
    }

    // ---- helpers: the fanout queue (caller holds the region's fanout_mu) ------------------

    [[nodiscard]] bool has_peers() const noexcept { return regions_.size() > 1; }

    void link_tail(std::size_t r, detail::QueueEntry& slot) noexcept {
        RegionState& state = *regions_[r];
        slot.prev = state.tail;
        slot.next = nullptr;
        (state.tail ? state.tail->next : state.head) = &slot;
        state.tail = &slot;
        slot.set_linked(true);
        ++state.queued;
        for (std::size_t t = 0; t < regions_.size(); ++t) {
            if (t == r) {
                continue;
            }
            if (state.cursor[t] == nullptr) {
                state.cursor[t] = &slot; // everything before was acknowledged by t
            }
            ++state.owed[t];
        }
    }

    void unlink(std::size_t r, detail::QueueEntry& slot) noexcept {
        RegionState& state = *regions_[r];
        for (std::size_t t = 0; t < regions_.size(); ++t) {
            detail::QueueEntry* cursor = state.cursor[t];
            if (cursor == nullptr) {
                continue; // t acknowledged everything, this entry included
            }
            if (slot.seq >= cursor->seq) {
                --state.owed[t]; // at or after t's cursor: it was owed to t
            }
            if (cursor == &slot) {
                state.cursor[t] = slot.next;
            }
        }
        (slot.prev ? slot.prev->next : state.head) = slot.next;
        (slot.next ? slot.next->prev : state.tail) = slot.prev;
        slot.prev = slot.next = nullptr;
        slot.set_linked(false);
        --state.queued;
    }

    void collect(const RegionState& state, std::size_t t, std::size_t max_entries,
                 std::vector<FanoutEntry>& batch) const {
        std::size_t n = std::min(max_entries, state.owed[t]);
        batch.reserve(n);
        for (const detail::QueueEntry* slot = state.cursor[t]; slot != nullptr && n > 0;
             slot = slot->next, --n) {
            batch.push_back(FanoutEntry{std::string(slot->key), record_of(*slot), slot->seq});
        }
    }

    std::size_t acknowledge(RegionState& state, std::size_t t, std::uint64_t up_to_seq) noexcept {
        std::size_t released = 0;
        detail::QueueEntry*& cursor = state.cursor[t];
        while (cursor != nullptr && cursor->seq <= up_to_seq) {
            cursor = cursor->next;
            ++released;
        }
        state.owed[t] -= released;
        // Entries before every cursor are owed to nobody.
        while (state.head != nullptr && std::find(state.cursor.begin(), state.cursor.end(),
                                                  state.head) == state.cursor.end()) {
            detail::QueueEntry* done = state.head;
            state.head = done->next;
            (state.head ? state.head->prev : state.tail) = nullptr;
            done->next = nullptr;
            done->set_linked(false);
            --state.queued;
            if (done->detached) {
                state.detached.erase(done->key);
                detail::EntryDeleter{}(done);
            }
        }
        return released;
    }

    /// Whether some queue here still holds a write of this key: the slot itself, or a copy of
    /// a write the slot's record displaced (shipping that copy after the tombstone is gone
    /// could revive the key at a peer that also purged it).
    [[nodiscard]] bool owes(const detail::Slot& slot) const {
        for (std::size_t r = 0; r < regions_.size(); ++r) {
            const RegionState& state = *regions_[r];
            std::lock_guard<Mutex> lock(state.fanout_mu);
            if ((r == slot.region && slot.is_linked()) ||
                (!state.detached.empty() && state.detached.count(slot.key) != 0)) {
                return true;
            }
        }
        return false;
    }

    // Readers of the queue see the record of a linked slot, so it may change only after the
    // slot is unlinked. Capacity for the new value is reserved first, while the slot still
    // sits in its queue: if that allocation fails, nothing has changed. With `keep_owed` (a
    // remote write displaces the record) a still-owed write is replaced in its queue by a copy.
    void detach_for_rewrite(detail::Slot& slot, std::size_t value_size, bool keep_owed,
                            std::optional<std::size_t> keep_locked_region,
                            std::unique_lock<Mutex>& keep_lock) {
        const std::size_t r = slot.region;
        RegionState& old = *regions_[r];
        const bool keep = keep_locked_region && *keep_locked_region == r;
        std::unique_lock<Mutex> lock(old.fanout_mu, std::defer_lock);
        if (keep || slot.is_linked()) {
            lock.lock();
        }
        reserve(slot.value, value_size);
        if (!slot.is_linked()) {
            // nothing to do in the queue
        } else if (keep_owed) {
            detail::EntryPtr copy(detail::new_entry<detail::QueueEntry>(slot.key));
            copy->timestamp_ms = slot.timestamp_ms;
            copy->seq = slot.seq;
            copy->region = slot.region;
            copy->deleted = slot.deleted;
            copy->value = slot.value;
            copy->clock = slot.clock;
            copy->detached = true;
            old.detached.emplace(copy->key, copy.get());
            replace_in_queue(old, slot, *copy.release());
        } else {
            unlink(r, slot);
        }
        if (keep) {
            keep_lock = std::move(lock);
        }
    }

    static void reserve(std::string& s, std::size_t size) {
        if (s.capacity() < size) {
            s.reserve(size);
        }
    }

    static void replace_in_queue(RegionState& state, detail::QueueEntry& out,
                                 detail::QueueEntry& in) noexcept {
        in.prev = out.prev;
        in.next = out.next;
        (in.prev ? in.prev->next : state.head) = &in;
        (in.next ? in.next->prev : state.tail) = &in;
        std::replace(state.cursor.begin(), state.cursor.end(), &out, &in);
        in.set_linked(true);
        out.prev = out.next = nullptr;
        out.set_linked(false);
    }

    /// A new commit of `key` in region `r` supersedes a queued copy of its earlier one.
    void drop_detached(RegionState& state, std::size_t r, std::string_view key) noexcept {
        auto it = state.detached.find(key);
        if (it != state.detached.end()) {
            detail::QueueEntry* copy = it->second;
            state.detached.erase(it);
            unlink(r, *copy);
            detail::EntryDeleter{}(copy);
        }
    }

    // ---- the write paths ------------------------------------------------------------------

    GeoWriteOutcome commit_local(std::size_t r, std::string_view key, std::string_view value,
                                 bool deleted, std::optional<std::uint64_t> explicit_ts,
                                 VectorClock* explicit_clock) {
        std::vector<ConflictEvent> events;
        GeoWriteOutcome outcome =
            commit_local(r, key, value, deleted, explicit_ts, explicit_clock, events);
        deliver(events);
        return outcome;
    }

    // Conflicts raised on the way are appended to `events`, for the caller to deliver once it
    // holds no lock.
    GeoWriteOutcome commit_local(std::size_t r, std::string_view key, std::string_view value,
                                 bool deleted, std::optional<std::uint64_t> explicit_ts,
                                 VectorClock* explicit_clock, std::vector<ConflictEvent>& events) {
        RegionState& state = *regions_[r];
        const bool auto_stamp = !explicit_ts.has_value();
        if (auto_stamp && config_.conflict_mode == ConflictResolutionMode::VectorClock &&
            !state.group_id) {
            throw ConfigError("vector-clock mode needs a Raft group for local region '" +
                              config_.regions[r] + "' to key its clock entry");
        }
        if (explicit_ts) {
            observe(r, *explicit_ts);
        }
        const std::size_t hash = detail::hash_key(key, hash_seed_);
        Shard& shard = shard_for(hash);
        std::lock_guard<Mutex> shard_lock(shard.mu);
        detail::Slot* slot = shard.table.find(key, hash);
        const std::uint64_t ts = auto_stamp ? stamp() : *explicit_ts;
        VectorClock clock;
        if (auto_stamp) {
            if (slot != nullptr) {
                clock = slot->clock;
            }
            if (state.group_id) {
                // Reserve the entry now; its value is set once the seq is known.
                clock.set(*state.group_id, clock.get(*state.group_id) + 1);
            }
        } else {
            clock = std::move(*explicit_clock);
        }
        std::unique_ptr<PreparedConflict> displaced; // vector-clock mode only, rare
        if (slot != nullptr && !auto_stamp) {
            // A new commit of this region is later than all its earlier ones: max seq.
            const Resolution res =
                resolve_against(*slot, ts, r, std::numeric_limits<std::uint64_t>::max(), clock);
            const detail::WriteRef incoming{r, ts, 0, clock, value, deleted};
            if (!res.incoming_wins) {
                return reject(r, *slot, key, incoming, res.same_write, events);
            }
            if (res.concurrent) {
                displaced = prepare_conflict(key, incoming, stored_ref(*slot), events);
            }
        }
        // Built before anything changes: copying a long region id into it may allocate.
        GeoWriteOutcome outcome = committed(r, 0);

        std::unique_lock<Mutex> queue_lock;
        if (slot == nullptr) {
            detail::SlotPtr fresh(detail::new_entry<detail::Slot>(key));
            fresh->value.assign(value);
            fresh->region = static_cast<std::uint32_t>(r);
            slot = shard.table.insert(std::move(fresh), hash);
            queue_lock = std::unique_lock<Mutex>(state.fanout_mu);
        } else {
            // A write another region still owes its peers stays queued as a copy.
            detach_for_rewrite(*slot, value.size(), slot->region != r, r, queue_lock);
            if (!queue_lock.owns_lock()) {
                queue_lock = std::unique_lock<Mutex>(state.fanout_mu);
            }
        }
        // Nothing below allocates: the slot's strings have capacity, the clock is swapped.
        const std::uint64_t seq = state.seq.fetch_add(1, std::memory_order_relaxed) + 1;
        if (auto_stamp && state.group_id) {
            // Above every entry this region issued before (its seq) and above the key's
            // current entry, so the new clock follows the stored one.
            clock.set(*state.group_id, std::max(seq, clock.get(*state.group_id)));
        }
        store(*slot, r, ts, clock, value, seq, deleted);
        if (has_peers()) {
            if (!state.detached.empty()) {
                drop_detached(state, r, key);
            }
            link_tail(r, *slot);
        }
        queue_lock.unlock();
        if (displaced) {
            publish_conflict(*displaced, seq, events);
        }
        std::get_if<Committed>(&outcome)->seq = seq;
        return outcome;
    }

    GeoWriteOutcome commit_remote(Incoming& in, std::vector<ConflictEvent>& events) {
        observe(in.region, in.timestamp_ms);
        if (max_clock_offset_ms_ != 0 &&
            in.timestamp_ms > saturating_add(clock_.physical_ms(), max_clock_offset_ms_)) {
            clock_offset_violations_.fetch_add(1, std::memory_order_relaxed);
        }
        const std::size_t hash = detail::hash_key(in.key, hash_seed_);
        Shard& shard = shard_for(hash);
        std::lock_guard<Mutex> shard_lock(shard.mu);
        detail::Slot* slot = shard.table.find(in.key, hash);
        std::unique_ptr<PreparedConflict> displaced; // vector-clock mode only, rare
        if (slot != nullptr) {
            const Resolution res =
                resolve_against(*slot, in.timestamp_ms, in.region, in.seq, in.clock);
            const detail::WriteRef incoming{in.region, in.timestamp_ms, in.seq,
                                            in.clock,  in.value,        in.deleted};
            if (!res.incoming_wins) {
                return reject(in.region, *slot, in.key, incoming, res.same_write, events);
            }
            if (res.concurrent) {
                displaced = prepare_conflict(in.key, incoming, stored_ref(*slot), events);
            }
        }
        // Built before anything changes: copying a long region id into it may allocate.
        GeoWriteOutcome outcome = committed(in.region, 0);
        if (slot != nullptr) {
            std::unique_lock<Mutex> unused;
            detach_for_rewrite(*slot, in.value.size(), true, std::nullopt, unused);
        } else {
            detail::SlotPtr fresh(detail::new_entry<detail::Slot>(in.key));
            fresh->value.reserve(in.value.size());
            fresh->region = static_cast<std::uint32_t>(in.region);
            slot = shard.table.insert(std::move(fresh), hash);
        }
        if (in.assign_seq) {
            in.seq = regions_[in.region]->seq.fetch_add(1, std::memory_order_relaxed) + 1;
        }
        store(*slot, in.region, in.timestamp_ms, in.clock, in.value, in.seq, in.deleted);
        if (displaced) {
            publish_conflict(*displaced, in.seq, events);
        }
        std::get_if<Committed>(&outcome)->seq = in.seq;
        return outcome;
    }

    /// The outcome of a write that lost to `winner`, with its conflict logged. (A function of
    /// its own so that its callers return a single named outcome, which is then built in
    /// place.)
    GeoWriteOutcome reject(std::size_t r, const detail::Slot& winner, std::string_view key,
                           const detail::WriteRef& incoming, bool same_write,
                           std::vector<ConflictEvent>& events) {
        GeoWriteOutcome outcome = rejected(r, winner); // may allocate: nothing changed yet
        if (!same_write) {
            raise_conflict(key, stored_ref(winner), incoming, events);
        }
        return outcome;
    }

    /// Overwrites a slot whose strings already have the capacity (see detach_for_rewrite).
    void store(detail::Slot& slot, std::size_t r, std::uint64_t ts, VectorClock& clock,
               std::string_view value, std::uint64_t seq, bool deleted) noexcept {
        slot.timestamp_ms = ts;
        slot.seq = seq;
        slot.region = static_cast<std::uint32_t>(r);
        slot.deleted = deleted;
        copy_string(slot.value, value);
        if (!clock.empty() || !slot.clock.empty()) {
            slot.clock = std::move(clock);
        }
    }

    /// Resolves a write of region `r` against `slot`'s record. In LWW mode region ranks stand
    /// in for the ids (they sort the same), so no string is compared.
    [[nodiscard]] Resolution resolve_against(const detail::Slot& stored, std::uint64_t ts,
                                             std::size_t r, std::uint64_t seq,
                                             const VectorClock& clock) const noexcept {
        if (config_.conflict_mode != ConflictResolutionMode::LastWriterWins) {
            return resolve_by_clock(stored, ts, r, seq, clock);
        }
        const std::uint32_t in_rank = names_.rank(r);
        const std::uint32_t stored_rank = names_.rank(stored.region);
        Resolution res;
        res.same_write = ts == stored.timestamp_ms && in_rank == stored_rank && seq == stored.seq;
        if (stored.timestamp_ms != ts) {
            res.incoming_wins = stored.timestamp_ms < ts;
        } else if (stored_rank != in_rank) {
            res.incoming_wins = stored_rank < in_rank;
        } else {
            res.incoming_wins = stored.seq < seq;
        }
        return res;
    }

    [[nodiscard]] Resolution resolve_by_clock(const detail::Slot& stored, std::uint64_t ts,
                                              std::size_t r, std::uint64_t seq,
                                              const VectorClock& clock) const noexcept {
        return resolve(detail::WriteView(ts, config_.regions[r], seq, clock),
                       detail::WriteView(stored.timestamp_ms, config_.regions[stored.region],
                                         stored.seq, stored.clock),
                       config_.conflict_mode);
    }

    // The variant is constructed from these converters rather than from a Committed or
    // RejectedByConflict value: callgrind counts 50-75 fewer instructions per write (the
    // converted value is still moved into place, but the generic converting constructor's
    // work is skipped).
    struct MakeCommitted {
        const RegionId& region;
        std::uint64_t seq;
        operator Committed() const { return Committed{region, seq}; } // NOLINT: implicit on purpose
    };
    struct MakeRejected {
        const RegionId& region;
        const RegionId& winner_region;
        std::uint64_t winner_timestamp_ms;
        operator RejectedByConflict() const { // NOLINT: implicit on purpose
            return RejectedByConflict{region, winner_region, winner_timestamp_ms};
        }
    };

    [[nodiscard]] GeoWriteOutcome committed(std::size_t r, std::uint64_t seq) const {
        return GeoWriteOutcome(std::in_place_type<Committed>,
                               MakeCommitted{config_.regions[r], seq});
    }

    [[nodiscard]] GeoWriteOutcome rejected(std::size_t r, const detail::Slot& winner) const {
        return GeoWriteOutcome(
            std::in_place_type<RejectedByConflict>,
            MakeRejected{config_.regions[r], config_.regions[winner.region], winner.timestamp_ms});
    }

    // ---- conflicts ------------------------------------------------------------------------

    [[nodiscard]] static detail::WriteRef stored_ref(const detail::Slot& slot) noexcept {
        return detail::WriteRef{slot.region, slot.timestamp_ms, slot.seq,
                                slot.clock,  slot.value,        slot.deleted};
    }

    [[nodiscard]] GeoRecord record_of(const detail::QueueEntry& e) const {
        return GeoRecord{
            config_.regions[e.region], e.timestamp_ms, e.clock, e.value, e.seq, e.deleted};
    }

    [[nodiscard]] GeoRecord record_of(const detail::WriteRef& w) const {
        return GeoRecord{config_.regions[w.region], w.timestamp_ms, w.clock,
                         std::string(w.value),      w.seq,          w.deleted};
    }

    [[nodiscard]] ConflictEvent event_of(std::string_view key, const detail::WriteRef& winner,
                                         const detail::WriteRef& loser) const {
        return ConflictEvent{std::string(key), record_of(winner), record_of(loser)};
    }

    /// Logs a conflict (caller holds the key's shard lock) and, when listeners exist, keeps a
    /// copy to deliver once every lock is released.
    void raise_conflict(std::string_view key, const detail::WriteRef& winner,
                        const detail::WriteRef& loser, std::vector<ConflictEvent>& events) {
        if (has_listeners_.load(std::memory_order_acquire)) {
            // Kept out of the common path: a ConflictEvent on the stack costs its zeroing.
            ConflictEvent event = event_of(key, winner, loser);
            events.reserve(events.size() + 1);
            log_conflict(key, winner, loser);
            events.push_back(std::move(event)); // capacity reserved: cannot throw
            return;
        }
        log_conflict(key, winner, loser);
    }

    void log_conflict(std::string_view key, const detail::WriteRef& winner,
                      const detail::WriteRef& loser) {
        std::lock_guard<Mutex> lock(conflict_mu_);
        if (!conflict_ring_.empty()) {
            // Overwrites the oldest entry in place, reusing its memory; if that fails, the
            // entry and the count are unchanged.
            conflict_ring_[conflicts_total_ % conflict_ring_.size()].assign(key, winner, loser);
        }
        ++conflicts_total_;
    }

    /// A conflict built before the write that raises it is stored, so that reporting it after
    /// the store cannot fail.
    struct PreparedConflict {
        detail::LoggedConflict for_log;
        std::optional<ConflictEvent> for_listeners;
    };

    std::unique_ptr<PreparedConflict> prepare_conflict(std::string_view key,
                                                       const detail::WriteRef& winner,
                                                       const detail::WriteRef& loser,
                                                       std::vector<ConflictEvent>& events) {
        auto prepared = std::make_unique<PreparedConflict>();
        prepared->for_log.assign(key, winner, loser);
        if (has_listeners_.load(std::memory_order_acquire)) {
            prepared->for_listeners = event_of(key, winner, loser);
            events.reserve(events.size() + 1);
        }
        return prepared;
    }

    /// Logs and queues for listeners a prepared conflict; `winner_seq` is the stored write's.
    void publish_conflict(PreparedConflict& prepared, std::uint64_t winner_seq,
                          std::vector<ConflictEvent>& events) noexcept {
        prepared.for_log.set_winner_seq(winner_seq);
        {
            std::lock_guard<Mutex> lock(conflict_mu_);
            if (!conflict_ring_.empty()) {
                swap(conflict_ring_[conflicts_total_ % conflict_ring_.size()], prepared.for_log);
            }
            ++conflicts_total_;
        }
        if (prepared.for_listeners) {
            prepared.for_listeners->winner.seq = winner_seq;
            events.push_back(std::move(*prepared.for_listeners)); // capacity reserved
        }
    }

    void deliver(const std::vector<ConflictEvent>& events) {
        if (events.empty()) {
            return;
        }
        std::shared_ptr<const ListenerList> listeners;
        {
            std::lock_guard<Mutex> lock(listeners_mu_);
            listeners = listeners_;
        }
        if (!listeners) {
            return;
        }
        for (const auto& event : events) {
            for (const auto& entry : *listeners) {
                try {
                    entry.second(event);
                } catch (...) {
                    listener_errors_.fetch_add(1, std::memory_order_relaxed);
                }
            }
        }
    }

    static std::uint64_t ceil_ms(std::chrono::nanoseconds d) noexcept {
        const auto ns = static_cast<std::uint64_t>(d.count()); // validate() rejects negatives
        return ns / 1'000'000 + (ns % 1'000'000 != 0 ? 1 : 0);
    }

    static std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) noexcept {
        return a > std::numeric_limits<std::uint64_t>::max() - b
                   ? std::numeric_limits<std::uint64_t>::max()
                   : a + b;
    }

    ActiveActiveGeoConfig config_;
    detail::RegionNames names_; ///< views into config_.regions
    const std::uint64_t hash_seed_ = detail::random_seed();
    std::vector<RegionRaftGroup> groups_;
    HybridClock clock_;
    std::vector<std::unique_ptr<RegionState>> regions_;
    std::size_t local_index_{};
    std::uint64_t tombstone_grace_ms_{};
    std::uint64_t max_clock_offset_ms_{};
    std::atomic<std::uint64_t> clock_offset_violations_{0};
    Shard shards_[shard_count];

    mutable Mutex conflict_mu_;
    std::vector<detail::LoggedConflict> conflict_ring_;
    std::uint64_t conflicts_total_{};

    Mutex listeners_mu_;
    std::shared_ptr<const ListenerList> listeners_;
    ListenerId last_listener_id_{};
    std::atomic<bool> has_listeners_{false};
    std::atomic<std::uint64_t> listener_errors_{0};
};

} // namespace geo

#undef GEO_DETAIL_COLD
