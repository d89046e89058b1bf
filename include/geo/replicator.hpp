#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <istream>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "config.hpp"
#include "detail/arguments.hpp"
#include "detail/failover.hpp"
#include "detail/purge.hpp"
#include "detail/replica.hpp"
#include "detail/snapshot_path.hpp"
#include "detail/streams.hpp"
#include "detail/write_path.hpp"
#include "error.hpp"
#include "hybrid_clock.hpp"
#include "record.hpp"
#include "routing.hpp"
#include "types.hpp"
#include "vector_clock.hpp"

namespace geo {

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
///
/// This class translates region names to indices, checks arguments and delivers conflict
/// events once no lock is held; the state and its rules live in the parts of detail::Replica
/// (docs/design.md lists them).
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
        : rep_(detail::checked_config(std::move(config), groups), groups, std::move(physical_ms)) {}

    ActiveActiveReplicator(const ActiveActiveReplicator&) = delete;
    ActiveActiveReplicator& operator=(const ActiveActiveReplicator&) = delete;

    [[nodiscard]] const ActiveActiveGeoConfig& config() const noexcept { return rep_.config; }

    /// The Raft groups given at construction; `committed_seq` is the region's current sequence.
    [[nodiscard]] std::vector<RegionRaftGroup> groups() const {
        std::vector<RegionRaftGroup> result = rep_.groups;
        for (auto& group : result) {
            group.committed_seq = rep_.regions[rep_.names.find(group.region_id)]->stream.seq();
        }
        return result;
    }

    // ---- routing --------------------------------------------------------------------------

    /// Marks `region` up or down for `route` (all are available at construction).
    void set_region_available(std::string_view region, bool available) {
        rep_.regions[region_index(region)]->available.store(available, std::memory_order_relaxed);
    }

    [[nodiscard]] bool region_available(std::string_view region) const {
        return rep_.regions[region_index(region)]->available.load(std::memory_order_relaxed);
    }

    /// `config().route`'s decision; if its region is unavailable, the first available region
    /// in failover order with `failed_over` set (detail::fail_over). Writes are not redirected.
    [[nodiscard]] WriteRoutingDecision
    route(std::string_view subject, std::optional<std::string_view> tenant = std::nullopt) const {
        return fail_over(rep_.config.route(subject, tenant));
    }

    /// The same for a host's own write type, through `RoutingTraits<Write>`.
    template <class Write,
              class = std::enable_if_t<!std::is_convertible_v<const Write&, std::string_view>>>
    [[nodiscard]] WriteRoutingDecision route(const Write& write) const {
        return fail_over(rep_.config.route(write));
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
        const std::size_t r = region_index(region);
        detail::Arguments::check_text(key, value);
        return commit_local(r, key, value, false, Stamp::Host, timestamp_ms, &clock);
    }

    /// Like `apply_local_write`, for a delete: stores a tombstone.
    GeoWriteOutcome apply_local_delete(std::string_view region, std::string_view key,
                                       std::uint64_t timestamp_ms, VectorClock clock = {}) {
        const std::size_t r = region_index(region);
        detail::Arguments::check_text(key, {});
        return commit_local(r, key, {}, true, Stamp::Host, timestamp_ms, &clock);
    }

    /// Writes `value` in the local region, stamped by this node's hybrid clock (and, in
    /// vector-clock mode, with the key's clock advanced on the local group's entry). Not for a
    /// Raft group's apply path (each node's clock differs): use the overload with a timestamp.
    GeoWriteOutcome put(std::string_view key, std::string_view value) {
        check_local_write(key, value);
        return commit_local(rep_.local, key, value, false, Stamp::Clock, 0, nullptr);
    }

    /// Deletes `key` in the local region: a tombstone that wins over every older write.
    GeoWriteOutcome erase(std::string_view key) {
        check_local_write(key, {});
        return commit_local(rep_.local, key, {}, true, Stamp::Clock, 0, nullptr);
    }

    /// The stamp a proposer puts in a write's log entry: strictly above every stamp before
    /// and every timestamp applied so far. Not state: only the proposer calls it.
    [[nodiscard]] std::uint64_t next_timestamp() { return rep_.clock.next(); }
    /// The same, but writes of one millisecond may share a stamp (their region's seq orders
    /// them), so a proposer of many writes a millisecond keeps to physical time. Not state.
    [[nodiscard]] std::uint64_t proposal_timestamp() { return rep_.clock.proposal(rep_.local); }

    /// A local write whose timestamp comes from the Raft log: the same calls in the same order
    /// give the same outcomes and state on every node, whatever its physical clock. Resolved
    /// like any write (LWW: a remote write with a later timestamp wins, RejectedByConflict).
    /// Vector-clock mode derives the clock as `put(key, value)` does and lifts a timestamp at
    /// or below the stored record's just above it (refused at the top of the range).
    GeoWriteOutcome put(std::string_view key, std::string_view value, std::uint64_t timestamp_ms) {
        check_local_write(key, value);
        return commit_local(rep_.local, key, value, false, Stamp::Log, timestamp_ms, nullptr);
    }

    /// Like `put(key, value, timestamp_ms)`, for a delete.
    GeoWriteOutcome erase(std::string_view key, std::uint64_t timestamp_ms) {
        check_local_write(key, {});
        return commit_local(rep_.local, key, {}, true, Stamp::Log, timestamp_ms, nullptr);
    }

    /// A peer's write as the Rust module's API delivers it: resolved like any write, never
    /// queued again. Accepted: the origin's counter advances by one and becomes the record's
    /// seq. It cannot tell a re-delivery from a new write; prefer `apply_remote`, and do not mix
    /// the two for one origin (they share its counter).
    GeoWriteOutcome apply_remote_write(std::string_view origin, std::string_view key,
                                       std::string_view value, std::uint64_t timestamp_ms,
                                       VectorClock clock = {}) {
        const std::size_t o = region_index(origin);
        detail::Arguments::check_text(key, value);
        // Resolved as the origin's next seq; the counter only advances if the write is stored.
        detail::Incoming in{
            o, key, value, timestamp_ms, clock, false, rep_.regions[o]->stream.seq() + 1, true};
        std::vector<ConflictEvent> events;
        GeoWriteOutcome outcome = detail::WritePath::commit_remote(rep_, in, events);
        rep_.listeners.deliver(events);
        return outcome;
    }

    /// A peer's fanout entry. Idempotent: an entry at or below the highest seq already applied
    /// from `origin` changes nothing and answers AlreadyApplied; one whose `prev_seq` is above it
    /// (something before it went missing) changes nothing and answers OutOfOrder.
    /// An entry that loses its conflict still counts as applied.
    GeoWriteOutcome apply_remote(std::string_view origin, const FanoutEntry& entry) {
        const std::size_t o = region_index(origin);
        check_origin(o, entry);
        return apply_checked(o, entry);
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
            outcomes.push_back(apply_checked(o, entry)); // checked above: not again
        }
        return outcomes;
    }

    // ---- fanout ---------------------------------------------------------------------------

    /// Up to `max_entries` entries of `source` not yet acknowledged by `target` with a seq above
    /// `after_seq` (a sender pipelining batches passes the last seq it sent), ascending seq,
    /// left in place, each with the `prev_seq` it follows. Costs O(entries skipped + returned).
    [[nodiscard]] std::vector<FanoutEntry>
    peek_fanout(std::string_view source, std::string_view target,
                std::size_t max_entries = std::numeric_limits<std::size_t>::max(),
                std::uint64_t after_seq = 0) const {
        return Streams::peek(rep_, region_index(source), region_index(target), max_entries,
                             after_seq);
    }

    /// `target` has applied every entry of `source` up to `up_to_seq`: they are no longer owed
    /// to it, and an entry owed to nobody is released. Past the newest entry acknowledges all.
    /// Returns how many entries stopped being owed to `target`. Wakes `wait_durable`.
    std::size_t acknowledge_fanout(std::string_view source, std::string_view target,
                                   std::uint64_t up_to_seq) {
        const std::size_t n =
            Streams::acknowledge(rep_, region_index(source), region_index(target), up_to_seq);
        acks_.notify();
        return n;
    }

    /// Every entry of `source` owed to `target`, oldest first, acknowledged at once. A failed
    /// shipment loses them: hosts that cannot afford that use peek + acknowledge.
    std::vector<FanoutEntry> drain_fanout(std::string_view source, std::string_view target) {
        std::vector<FanoutEntry> batch =
            Streams::drain(rep_, region_index(source), region_index(target));
        acks_.notify();
        return batch;
    }

    /// Entries of `source` still owed to at least one region.
    [[nodiscard]] std::size_t pending_fanout_len(std::string_view source) const {
        return Streams::queued(rep_, region_index(source));
    }

    /// Entries of `source` still owed to `target`.
    [[nodiscard]] std::size_t pending_fanout_len(std::string_view source,
                                                 std::string_view target) const {
        return Streams::owed(rep_, region_index(source), region_index(target));
    }

    // ---- lag and durability (README: "Consistency levels, lag and failover") ---------------

    /// The stream from `source` to `target` (see StreamStatus), its lag measured at `now_ms`
    /// (default: the physical clock); stale once the lag exceeds `config().max_lag`.
    [[nodiscard]] StreamStatus stream_status(std::string_view source, std::string_view target,
                                             std::uint64_t now_ms) const {
        return Streams::status(rep_, region_index(source), region_index(target), now_ms);
    }
    [[nodiscard]] StreamStatus stream_status(std::string_view source,
                                             std::string_view target) const {
        return stream_status(source, target, rep_.clock.physical_ms());
    }

    /// Every stream (source != target), by source then target in configured order.
    [[nodiscard]] std::vector<StreamStatus> stream_statuses() const {
        return Streams::statuses(rep_, rep_.clock.physical_ms());
    }

    /// How many peer regions hold `source`'s write `seq` of `key`: they acknowledged it, or a
    /// later write of `key` by `source` that replaced it in the queue (acknowledging up to a seq
    /// between the two does not count). 0 for a seq `source` has not committed.
    [[nodiscard]] std::size_t remote_acks(std::string_view source, std::string_view key,
                                          std::uint64_t seq) const {
        return Streams::remote_acks(rep_, region_index(source), key, seq);
    }

    /// Whether the write has the remote acknowledgements `level` asks for (min_remote_acks:
    /// EachQuorum = one peer region, AllQuorum = every peer, the local levels none).
    [[nodiscard]] bool is_durable(std::string_view source, std::string_view key, std::uint64_t seq,
                                  ConsistencyLevel level) const {
        return Streams::is_durable(rep_, region_index(source), key, seq, level);
    }

    /// Blocks until `is_durable` (true) or `timeout` passes (false). Woken by
    /// acknowledge_fanout, drain_fanout and restore, never by polling. A timeout rolls
    /// nothing back: the write stays committed and keeps shipping.
    bool wait_durable(std::string_view source, std::string_view key, std::uint64_t seq,
                      ConsistencyLevel level, std::chrono::milliseconds timeout) {
        const std::size_t s = region_index(source); // unknown: throws, never times out
        return acks_.wait(timeout, [&] { return Streams::is_durable(rep_, s, key, seq, level); });
    }

    // ---- reads ----------------------------------------------------------------------------

    /// The stored record, tombstones included.
    [[nodiscard]] std::optional<GeoRecord> get_record(std::string_view key) const {
        return rep_.read(key, [&](const detail::Slot& slot) {
            return std::optional<GeoRecord>(detail::record_of(slot, rep_.config.regions));
        });
    }

    /// The value, or nullopt when the key is absent or deleted.
    [[nodiscard]] std::optional<std::string> get(std::string_view key) const {
        return rep_.read(key, [](const detail::Slot& slot) {
            return slot.deleted ? std::nullopt : std::optional<std::string>(slot.value);
        });
    }

    /// Keys stored, tombstones included until purged.
    [[nodiscard]] std::size_t record_count() const { return rep_.keys.size(); }

    /// Every configured region's sequence: its commit count for writes committed here, the
    /// highest seq applied from it for writes received.
    [[nodiscard]] std::map<RegionId, std::uint64_t> region_sequences() const {
        std::map<RegionId, std::uint64_t> result;
        for (std::size_t i = 0; i < rep_.regions.size(); ++i) {
            result.emplace(rep_.config.regions[i], rep_.regions[i]->stream.seq());
        }
        return result;
    }

    // ---- tombstones -----------------------------------------------------------------------

    /// Removes tombstones stamped at least `tombstone_grace` before `now_ms` that this process
    /// no longer owes to any peer; a Raft group puts the purge and its time in the log, so
    /// every node purges at the same point. The origin of a delete knows every peer
    /// acknowledged it; other replicas cannot, and rely on the grace period alone: as in
    /// Cassandra, every delivery must finish within it, or a write older than the delete that
    /// arrives after the purge brings the key back. Never called implicitly; O(keys).
    std::size_t purge_tombstones(std::uint64_t now_ms) {
        const std::optional<std::uint64_t> cutoff = rep_.clock.purge_cutoff(now_ms);
        return cutoff ? detail::Purge::tombstones(rep_, *cutoff) : 0;
    }

    /// At this node's physical time (outside a Raft group).
    std::size_t purge_tombstones() { return purge_tombstones(rep_.clock.physical_ms()); }

    // ---- snapshots ------------------------------------------------------------------------

    /// Writes a consistent cut of the state that decides future behaviour (records, queues,
    /// acknowledgements, applied seqs, observed timestamps) at `out`'s position: canonical
    /// bytes (equal state, equal bytes), versioned and checksummed; docs/snapshot.md. Writers
    /// on other threads wait only while the state is copied, not while it is written.
    void snapshot(std::ostream& out) const { detail::SnapshotPath::snapshot(rep_, out); }

    /// Replaces the whole state with a snapshot's, read from `in`'s position. Truncated,
    /// corrupt or unknown-version input: ParseError; a snapshot of other regions or another
    /// conflict mode: ConfigError; either way nothing changed. Listeners and the conflict log
    /// stay as they are.
    void restore(std::istream& in) {
        detail::SnapshotPath::restore(rep_, in);
        acks_.notify();
    }

    /// A digest of every stored record (key and every GeoRecord field), independent of order,
    /// queues and seeds: converged replicas have equal digests.
    [[nodiscard]] std::uint64_t records_digest() const {
        return detail::SnapshotPath::records_digest(rep_);
    }

    // ---- conflicts ------------------------------------------------------------------------

    /// The latest conflicts, oldest first, at most `config().conflict_log_capacity`.
    [[nodiscard]] std::vector<ConflictEvent> recent_conflicts() const {
        return rep_.conflicts.recent(rep_.config.regions);
    }

    /// Conflicts raised since construction (the log keeps only the latest).
    [[nodiscard]] std::uint64_t conflict_count() const { return rep_.conflicts.total(); }

    /// Calls `listener` for every conflict raised after this call, on the writing thread, after
    /// the write is applied and with no lock held: it may call back into the replicator. It may
    /// run on several threads at once. An exception it throws is caught and counted in
    /// `listener_errors()`; it never reaches the writer, and the other listeners still run.
    ListenerId on_conflict(ConflictListener listener) {
        return rep_.listeners.add(std::move(listener));
    }

    /// Unregisters a listener; false if `id` is not registered. A write already in flight may
    /// still call it once after this returns: keep what it captures alive until writers stop.
    bool remove_conflict_listener(ListenerId id) { return rep_.listeners.remove(id); }

    /// Remote writes received with a timestamp more than `config().max_clock_offset` ahead of
    /// this replica's physical clock: a peer's clock is wrong, and its writes will win LWW
    /// conflicts they should not. Always 0 when the check is disabled.
    [[nodiscard]] std::uint64_t clock_offset_violations() const noexcept {
        return rep_.clock.offset_violations();
    }

    /// Exceptions thrown by conflict listeners and swallowed.
    [[nodiscard]] std::uint64_t listener_errors() const noexcept { return rep_.listeners.errors(); }

private:
    [[nodiscard]] std::size_t region_index(std::string_view region) const {
        return detail::Arguments::region_index(rep_, region);
    }
    void check_origin(std::size_t o, const FanoutEntry& entry) const {
        detail::Arguments::check_entry(rep_, o, entry);
    }
    void check_local_write(std::string_view key, std::string_view value) const {
        detail::Arguments::check_text(key, value);
        detail::Arguments::check_local_group(rep_);
    }

    GeoWriteOutcome apply_checked(std::size_t o, const FanoutEntry& entry) {
        std::vector<ConflictEvent> events;
        GeoWriteOutcome outcome = detail::WritePath::apply_entry(rep_, o, entry, events);
        rep_.listeners.deliver(events);
        return outcome;
    }

    WriteRoutingDecision fail_over(WriteRoutingDecision decision) const {
        return detail::fail_over(rep_.config, std::move(decision), [this](std::size_t i) {
            return rep_.regions[i]->available.load(std::memory_order_relaxed);
        });
    }

    using Stamp = detail::Stamp;
    using Streams = detail::Streams;

    GeoWriteOutcome commit_local(std::size_t r, std::string_view key, std::string_view value,
                                 bool deleted, Stamp stamp, std::uint64_t ts,
                                 VectorClock* host_clock) {
        std::vector<ConflictEvent> events;
        GeoWriteOutcome outcome = detail::WritePath::commit_local(rep_, r, key, value, deleted,
                                                                  stamp, ts, host_clock, events);
        rep_.listeners.deliver(events);
        return outcome;
    }

    detail::Replica rep_;
    detail::AckSignal acks_;
};

} // namespace geo
