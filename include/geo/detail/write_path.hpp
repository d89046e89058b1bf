#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "../record.hpp"
#include "../resolve.hpp"
#include "../vector_clock.hpp"
#include "replica.hpp"

namespace geo::detail {

/// Where a local commit's timestamp and clock come from.
enum class Stamp {
    Clock, ///< `put(key, value)`: this node's hybrid clock; clock derived from the stored one
    Log,   ///< `put(key, value, ts)`: the Raft log's timestamp; clock derived the same way
    Host,  ///< `apply_local_write`: the caller's timestamp and clock, taken as they are
};

/// A write being applied, before it is stored.
struct Incoming {
    std::size_t region;
    std::string_view key;
    std::string_view value;
    std::uint64_t timestamp_ms;
    VectorClock& clock; ///< the caller's, moved into the slot when the write is stored
    bool deleted;
    std::uint64_t seq;
    bool assign_seq; ///< Rust-module API: the origin's counter gives the seq once stored
};

/// The commit paths, across the parts of a Replica, in the lock order it documents.
///
/// Static functions over the aggregate rather than members of an object holding a reference
/// to it: measured, the stored reference cost a few instructions per write. Conflicts raised
/// on the way are appended to `events`, for the caller to deliver once it holds no lock.
///
/// Failure: everything that can throw (allocation, a region id copied into an outcome)
/// happens before the first change, so a write either happens entirely or not at all.
struct WritePath {
    /// A commit of region `r`, stamped as `stamp` says (see Stamp).
    static GeoWriteOutcome commit_local(Replica& rep, std::size_t r, std::string_view key,
                                        std::string_view value, bool deleted, Stamp stamp,
                                        std::uint64_t log_ts, VectorClock* host_clock,
                                        std::vector<ConflictEvent>& events) {
        RegionState& state = *rep.regions[r];
        if (!state.stream.can_commit()) {
            throw_exhausted(rep, r);
        }
        const std::size_t hash = rep.keys.hash(key);
        KeyShard& shard = rep.keys.shard_for(hash);
        std::lock_guard<SpinMutex> shard_lock(shard.mutex());
        // Observed under the shard lock, with the store: a snapshot (which holds every lock)
        // sees both or neither.
        if (stamp != Stamp::Clock) {
            rep.clock.observe(r, log_ts);
        }
        Slot* slot = shard.find(key, hash);
        std::uint64_t ts = stamp == Stamp::Clock ? rep.clock.stamp() : log_ts;
        // The caller's clock is used in place; a derived one is built only when needed (a
        // clock is 64 bytes: constructing and moving them shows on every write).
        std::optional<VectorClock> derived;
        VectorClock* clock_ptr = host_clock;
        if (stamp != Stamp::Host) {
            derived.emplace(slot != nullptr ? slot->clock : VectorClock{});
            if (state.group_id) {
                // Reserve the entry now; its value is set once the seq is known. Saturating:
                // a wrap to 0 would put the new clock before the stored one.
                const std::uint64_t entry = derived->get(*state.group_id);
                derived->set(*state.group_id, entry == std::numeric_limits<std::uint64_t>::max()
                                                  ? entry
                                                  : entry + 1);
            }
            clock_ptr = &*derived;
        }
        VectorClock& clock = *clock_ptr;
        std::unique_ptr<PreparedConflict> displaced; // vector-clock mode only, rare
        if (slot != nullptr) {
            const bool by_clock = rep.config.conflict_mode == ConflictResolutionMode::VectorClock;
            if (stamp == Stamp::Host || !by_clock) {
                // A new commit of this region is later than all its earlier ones: max seq.
                const Resolution res = resolve_against(
                    rep, *slot, ts, r, std::numeric_limits<std::uint64_t>::max(), clock);
                const WriteRef incoming{r, ts, 0, clock, value, deleted};
                if (!res.incoming_wins) {
                    return reject(rep, r, *slot, key, incoming, res.same_write, events);
                }
                if (res.concurrent) {
                    displaced = prepare_conflict(rep, key, incoming, stored_ref(*slot), events);
                }
            } else if (ts <= slot->timestamp_ms) {
                // The derived clock follows the stored one, so the timestamp must too ("clock
                // order implies timestamp order" keeps the LWW fallback a total order). At the
                // top of the range no later timestamp exists: refused, on every node alike.
                if (slot->timestamp_ms == std::numeric_limits<std::uint64_t>::max()) {
                    const WriteRef incoming{r, ts, 0, clock, value, deleted};
                    return reject(rep, r, *slot, key, incoming, false, events);
                }
                ts = slot->timestamp_ms + 1;
            }
        }
        // Built before anything changes: copying a long region id into it may allocate.
        GeoWriteOutcome outcome = committed(rep, r, 0);

        std::unique_lock<SpinMutex> queue_lock;
        bool requeue = false; // the slot stays linked in this region's queue, moved at the end
        std::uint64_t old_seq = 0;
        std::uint64_t old_ts = 0;
        if (slot == nullptr) {
            SlotPtr fresh(new_entry<Slot>(key));
            fresh->value.assign(value);
            fresh->region = static_cast<std::uint32_t>(r);
            slot = shard.insert(std::move(fresh), hash);
            queue_lock = std::unique_lock<SpinMutex>(state.queue.mutex());
        } else {
            // A write another region still owes its peers stays queued as a copy.
            old_seq = slot->seq;
            old_ts = slot->timestamp_ms;
            requeue =
                detach_for_rewrite(rep, *slot, value.size(), slot->region != r, r, queue_lock);
            if (!queue_lock.owns_lock()) {
                queue_lock = std::unique_lock<SpinMutex>(state.queue.mutex());
            }
        }
        // Nothing below allocates: the slot's strings have capacity, the clock is moved.
        const std::uint64_t seq = state.stream.next_seq();
        if (stamp != Stamp::Host && state.group_id) {
            // Above every entry this region issued before (its seq) and above the key's
            // current entry, so the new clock follows the stored one.
            clock.set(*state.group_id, std::max(seq, clock.get(*state.group_id)));
        }
        if (stamp == Stamp::Clock || ts != log_ts) {
            rep.clock.observe(r, ts); // a stamp or lift is applied state too (snapshots)
        }
        store(*slot, r, ts, clock, value, seq, deleted);
        if (requeue) {
            state.queue.requeue(*slot, old_seq, old_ts); // no copy of the key: it is linked
        } else if (rep.has_peers()) {
            state.queue.drop_copy(key);
            state.queue.push(*slot);
        }
        queue_lock.unlock();
        if (displaced) {
            publish_conflict(rep, *displaced, seq, events);
        }
        std::get_if<Committed>(&outcome)->seq = seq;
        return outcome;
    }

    /// A peer's write, resolved against the stored record; never queued again.
    static GeoWriteOutcome commit_remote(Replica& rep, Incoming& in,
                                         std::vector<ConflictEvent>& events) {
        if (in.assign_seq && !rep.regions[in.region]->stream.can_commit()) {
            throw_exhausted(rep, in.region);
        }
        rep.clock.check_offset(in.timestamp_ms);
        const std::size_t hash = rep.keys.hash(in.key);
        KeyShard& shard = rep.keys.shard_for(hash);
        std::lock_guard<SpinMutex> shard_lock(shard.mutex());
        rep.clock.observe(in.region, in.timestamp_ms); // under the lock: see commit_local
        Slot* slot = shard.find(in.key, hash);
        std::unique_ptr<PreparedConflict> displaced; // vector-clock mode only, rare
        if (slot != nullptr) {
            const Resolution res =
                resolve_against(rep, *slot, in.timestamp_ms, in.region, in.seq, in.clock);
            const WriteRef incoming{in.region, in.timestamp_ms, in.seq,
                                    in.clock,  in.value,        in.deleted};
            if (!res.incoming_wins) {
                return reject(rep, in.region, *slot, in.key, incoming, res.same_write, events);
            }
            if (res.concurrent) {
                displaced = prepare_conflict(rep, in.key, incoming, stored_ref(*slot), events);
            }
        }
        // Built before anything changes: copying a long region id into it may allocate.
        GeoWriteOutcome outcome = committed(rep, in.region, 0);
        if (slot != nullptr) {
            std::unique_lock<SpinMutex> unused;
            detach_for_rewrite(rep, *slot, in.value.size(), true, std::nullopt, unused);
        } else {
            SlotPtr fresh(new_entry<Slot>(in.key));
            fresh->value.reserve(in.value.size());
            fresh->region = static_cast<std::uint32_t>(in.region);
            slot = shard.insert(std::move(fresh), hash);
        }
        if (in.assign_seq) {
            in.seq = rep.regions[in.region]->stream.next_seq();
        }
        store(*slot, in.region, in.timestamp_ms, in.clock, in.value, in.seq, in.deleted);
        if (displaced) {
            publish_conflict(rep, *displaced, in.seq, events);
        }
        std::get_if<Committed>(&outcome)->seq = in.seq;
        return outcome;
    }

    /// A fanout entry of origin `o`: applied once, in its stream's order.
    static GeoWriteOutcome apply_entry(Replica& rep, std::size_t o, const FanoutEntry& entry,
                                       std::vector<ConflictEvent>& events) {
        RegionStream& stream = rep.regions[o]->stream;
        std::lock_guard<SpinMutex> stream_lock(stream.stream_mutex());
        const std::uint64_t applied = stream.seq();
        if (entry.seq <= applied) {
            return GeoWriteOutcome(std::in_place_type<AlreadyApplied>,
                                   AlreadyApplied{rep.config.regions[o], entry.seq});
        }
        if (entry.prev_seq > applied) {
            // Something before it was lost or reordered: applying it would move the cursor
            // past a write never received.
            return GeoWriteOutcome(std::in_place_type<OutOfOrder>,
                                   OutOfOrder{rep.config.regions[o], entry.seq, applied});
        }
        VectorClock clock = entry.record.clock; // may allocate: before anything changes
        Incoming in{o, entry.key, entry.record.value, entry.record.timestamp_ms, clock,
                    entry.record.deleted,
                    // A record from a node that does not track seq carries 0: the entry's seq
                    // is the same commit sequence.
                    entry.record.seq != 0 ? entry.record.seq : entry.seq, false};
        GeoWriteOutcome result = commit_remote(rep, in, events);
        stream.raise_seq(entry.seq);
        if (auto* done = std::get_if<Committed>(&result)) {
            done->seq = entry.seq;
        }
        return result;
    }

private:
    [[noreturn]] static void throw_exhausted(const Replica& rep, std::size_t r) {
        throw Error("region '" + rep.config.regions[r] +
                    "' has used up its commit sequence (2^63): nothing was written");
    }

    /// A conflict built before the write that raises it is stored, so that reporting it after
    /// the store cannot fail.
    struct PreparedConflict {
        LoggedConflict for_log;
        std::optional<ConflictEvent> for_listeners;
    };

    // Readers of a queue see the record of a linked slot, so it may change only after the
    // slot is unlinked, or under that queue's lock. Capacity for the new value is reserved
    // first, while the slot still sits in its queue: if that allocation fails, nothing has
    // changed. With `keep_owed` (a remote write displaces the record) a still-owed write is
    // replaced in its queue by a copy. With `keep_locked_region` equal to the slot's region,
    // that queue's lock is handed back in `keep_lock`, and a linked slot stays linked (the
    // caller rewrites it under that lock and requeues it): returns true then.
    static bool detach_for_rewrite(Replica& rep, Slot& slot, std::size_t value_size, bool keep_owed,
                                   std::optional<std::size_t> keep_locked_region,
                                   std::unique_lock<SpinMutex>& keep_lock) {
        const std::size_t r = slot.region;
        FanoutQueue& queue = rep.regions[r]->queue;
        const bool keep = keep_locked_region && *keep_locked_region == r;
        std::unique_lock<SpinMutex> lock(queue.mutex(), std::defer_lock);
        if (keep || slot.is_linked()) {
            lock.lock();
        }
        if (slot.value.capacity() < value_size) {
            slot.value.reserve(value_size);
        }
        bool requeue = false;
        if (!slot.is_linked()) {
            // nothing to do in the queue
        } else if (keep_owed) {
            queue.keep_copy(slot, copy_entry(slot));
        } else if (keep) {
            requeue = true;
        } else {
            queue.unlink(slot);
        }
        if (keep) {
            keep_lock = std::move(lock);
        }
        return requeue;
    }

    /// The outcome of a write that lost to `winner`, with its conflict logged. (A function of
    /// its own so that its callers return a single named outcome, which is then built in
    /// place.)
    static GeoWriteOutcome reject(Replica& rep, std::size_t r, const Slot& winner,
                                  std::string_view key, const WriteRef& incoming, bool same_write,
                                  std::vector<ConflictEvent>& events) {
        GeoWriteOutcome outcome = rejected(rep, r, winner); // may allocate: nothing changed yet
        if (!same_write) {
            raise_conflict(rep, key, stored_ref(winner), incoming, events);
        }
        return outcome;
    }

    /// Overwrites a slot whose strings already have the capacity (see detach_for_rewrite).
    static void store(Slot& slot, std::size_t r, std::uint64_t ts, VectorClock& clock,
                      std::string_view value, std::uint64_t seq, bool deleted) noexcept {
        slot.timestamp_ms = ts;
        slot.seq = seq;
        slot.region = static_cast<std::uint32_t>(r);
        slot.deleted = deleted;
        if (slot.value.size() == value.size()) { // cheaper than assign when sizes match
            std::char_traits<char>::copy(slot.value.data(), value.data(), value.size());
        } else {
            slot.value.assign(value.data(), value.size());
        }
        if (!clock.empty() || !slot.clock.empty()) {
            slot.clock = std::move(clock);
        }
    }

    /// Resolves a write of region `r` against `stored`. In LWW mode region ranks stand in for
    /// the ids (they sort the same), so no string is compared.
    [[nodiscard]] static Resolution resolve_against(const Replica& rep, const Slot& stored,
                                                    std::uint64_t ts, std::size_t r,
                                                    std::uint64_t seq,
                                                    const VectorClock& clock) noexcept {
        if (rep.config.conflict_mode != ConflictResolutionMode::LastWriterWins) {
            return resolve_by_clock(rep, stored, ts, r, seq, clock);
        }
        const std::uint32_t in_rank = rep.names.rank(r);
        const std::uint32_t stored_rank = rep.names.rank(stored.region);
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

    [[nodiscard]] static Resolution resolve_by_clock(const Replica& rep, const Slot& stored,
                                                     std::uint64_t ts, std::size_t r,
                                                     std::uint64_t seq,
                                                     const VectorClock& clock) noexcept {
        return resolve(WriteView(ts, rep.config.regions[r], seq, clock),
                       WriteView(stored.timestamp_ms, rep.config.regions[stored.region], stored.seq,
                                 stored.clock),
                       rep.config.conflict_mode);
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

    [[nodiscard]] static GeoWriteOutcome committed(const Replica& rep, std::size_t r,
                                                   std::uint64_t seq) {
        return GeoWriteOutcome(std::in_place_type<Committed>,
                               MakeCommitted{rep.config.regions[r], seq});
    }

    [[nodiscard]] static GeoWriteOutcome rejected(const Replica& rep, std::size_t r,
                                                  const Slot& winner) {
        return GeoWriteOutcome(std::in_place_type<RejectedByConflict>,
                               MakeRejected{rep.config.regions[r],
                                            rep.config.regions[winner.region],
                                            winner.timestamp_ms});
    }

    [[nodiscard]] static WriteRef stored_ref(const Slot& slot) noexcept {
        return WriteRef{slot.region, slot.timestamp_ms, slot.seq,
                        slot.clock,  slot.value,        slot.deleted};
    }

    [[nodiscard]] static GeoRecord record_of(const Replica& rep, const WriteRef& w) {
        return GeoRecord{rep.config.regions[w.region], w.timestamp_ms, w.clock,
                         std::string(w.value),         w.seq,          w.deleted};
    }

    [[nodiscard]] static ConflictEvent event_of(const Replica& rep, std::string_view key,
                                                const WriteRef& winner, const WriteRef& loser) {
        return ConflictEvent{std::string(key), record_of(rep, winner), record_of(rep, loser)};
    }

    /// Logs a conflict (caller holds the key's shard lock) and, when listeners exist, keeps a
    /// copy to deliver once every lock is released.
    static void raise_conflict(Replica& rep, std::string_view key, const WriteRef& winner,
                               const WriteRef& loser, std::vector<ConflictEvent>& events) {
        if (rep.listeners.any()) {
            // Kept out of the common path: a ConflictEvent on the stack costs its zeroing.
            ConflictEvent event = event_of(rep, key, winner, loser);
            events.reserve(events.size() + 1);
            rep.conflicts.log(key, winner, loser);
            events.push_back(std::move(event)); // capacity reserved: cannot throw
            return;
        }
        rep.conflicts.log(key, winner, loser);
    }

    static std::unique_ptr<PreparedConflict> prepare_conflict(Replica& rep, std::string_view key,
                                                              const WriteRef& winner,
                                                              const WriteRef& loser,
                                                              std::vector<ConflictEvent>& events) {
        auto prepared = std::make_unique<PreparedConflict>();
        prepared->for_log.assign(key, winner, loser);
        if (rep.listeners.any()) {
            prepared->for_listeners = event_of(rep, key, winner, loser);
            events.reserve(events.size() + 1);
        }
        return prepared;
    }

    /// Logs and queues for listeners a prepared conflict; `winner_seq` is the stored write's.
    static void publish_conflict(Replica& rep, PreparedConflict& prepared, std::uint64_t winner_seq,
                                 std::vector<ConflictEvent>& events) noexcept {
        prepared.for_log.set_winner_seq(winner_seq);
        rep.conflicts.publish(prepared.for_log);
        if (prepared.for_listeners) {
            prepared.for_listeners->winner.seq = winner_seq;
            events.push_back(std::move(*prepared.for_listeners)); // capacity reserved
        }
    }
};

} // namespace geo::detail
