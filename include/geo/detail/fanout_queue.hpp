#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../record.hpp"
#include "../types.hpp"
#include "entry.hpp"
#include "missed_table.hpp"
#include "missed_writes.hpp"
#include "spin_mutex.hpp"

namespace geo::detail {

/// One source region's committed writes still owed to its peers: a list in ascending seq,
/// with, per target region, a cursor at the first entry that target has not acknowledged.
///
/// Invariants (all fields guarded by mutex()):
/// - entries from head to tail have strictly ascending seq; each is `linked`;
/// - `cursor_[t]` is the first entry `t` has not acknowledged (null: none), and
///   `owed_[t]` counts the entries from it to the tail; `cursor_[self]` stays null;
/// - the head is some target's cursor: an entry every target acknowledged is released
///   (unlinked, and deleted if it is a detached copy);
/// - `queued_` counts the entries; `copies_` indexes the detached copies by key (at most one
///   per key: a newer commit of the key drops it);
/// - `acked_[t]` is the highest seq `t` acknowledged (capped at the source's latest commit),
///   and `cursor_[t]` is the first entry with a seq above it;
/// - `unchecked_[t]`: the last acknowledgement came from a drain, which nobody confirmed, so
///   the first entry owed to `t` follows nothing checkable (prev_seq 0) until `t` confirms;
/// - `missed_` knows what targets owing an entry miss of its key besides the entry's own write
///   (coalescing, see MissedTable): told of every push, unlink, copy, acknowledgement, release.
///
/// Every method but the constructor and destructor needs mutex() held by the caller.
class FanoutQueue {
public:
    FanoutQueue(std::size_t self, std::size_t region_count)
        : self_(self), missed_(self, region_count) {
        // Every local commit writes these arrays. Allocated back to back, two regions'
        // arrays would share a cache line between two writer threads: the spare capacity,
        // never used, keeps whatever is allocated next 256 bytes away.
        constexpr std::size_t spare_bytes = 256;
        cursor_.reserve(region_count + spare_bytes / sizeof(QueueEntry*));
        cursor_.assign(region_count, nullptr);
        owed_.reserve(region_count + spare_bytes / sizeof(std::size_t));
        owed_.assign(region_count, 0);
        acked_.assign(region_count, 0);
        unchecked_.assign(region_count, false);
    }

    FanoutQueue(const FanoutQueue&) = delete;
    FanoutQueue& operator=(const FanoutQueue&) = delete;
    ~FanoutQueue() {
        for (auto& [key, copy] : copies_) {
            EntryDeleter{}(copy);
        }
    }

    [[nodiscard]] SpinMutex& mutex() const noexcept { return mu_; }

    /// Appends `entry` (seq above the tail's), owed to every other region.
    void push(QueueEntry& entry) noexcept {
        entry.prev = tail_;
        entry.next = nullptr;
        (tail_ ? tail_->next : head_) = &entry;
        tail_ = &entry;
        entry.set_linked(true);
        ++queued_;
        const std::size_t n = owed_.size();
        for (std::size_t t = 0; t < n; ++t) {
            if (t == self_) {
                continue;
            }
            if (cursor_[t] == nullptr) {
                cursor_[t] = &entry; // everything before was acknowledged by t
            }
            ++owed_[t];
        }
        missed_.pushed(entry);
    }

    /// A newer commit of a linked entry's key, written into the entry under this lock (its
    /// seq and stamp were `old_seq`, `old_ts`): the entry moves to the tail, owed to every
    /// target again; what each target missed of the old write carries over. unlink + push in
    /// one pass.
    void requeue(QueueEntry& entry, std::uint64_t old_seq, std::uint64_t old_ts) noexcept {
        const std::size_t n = owed_.size();
        const bool at_tail = tail_ == &entry;
        std::size_t owing = 0;
        std::uint64_t owing_mask = 0;
        for (std::size_t t = 0; t < n; ++t) {
            QueueEntry*& cursor = cursor_[t];
            const bool owes_it = cursor == &entry || (cursor != nullptr && cursor->seq <= old_seq);
            if (t < 64) {
                owing_mask |= std::uint64_t{owes_it} << t;
            } else {
                missed_.set_owed(t, owes_it);
            }
            if (owes_it) {
                ++owing; // owed before and after: its count stays
                if (cursor == &entry && !at_tail) {
                    cursor = entry.next;
                }
            } else if (t != self_) {
                ++owed_[t];
                if (cursor == nullptr) {
                    cursor = &entry;
                }
            }
        }
        if (!at_tail) {
            (entry.prev ? entry.prev->next : head_) = entry.next;
            entry.next->prev = entry.prev;
            entry.prev = tail_;
            entry.next = nullptr;
            tail_->next = &entry;
            tail_ = &entry;
        }
        missed_.replace(entry, MissedTable::replaced(entry, old_seq, old_ts, owing, owing_mask));
    }

    /// Removes a linked entry, whoever still owes it, to be replaced by the next push (a newer
    /// commit of its key): what each target missed of it carries over to that push.
    void unlink(QueueEntry& entry) noexcept {
        const std::size_t n = owed_.size();
        std::size_t owing = 0;
        std::uint64_t owing_mask = 0; // targets below 64; a local, so no store aliases the loop
        for (std::size_t t = 0; t < n; ++t) {
            QueueEntry* cursor = cursor_[t];
            const bool owes_it = cursor != nullptr && entry.seq >= cursor->seq;
            if (t < 64) {
                owing_mask |= std::uint64_t{owes_it} << t;
            } else {
                missed_.set_owed(t, owes_it);
            }
            if (owes_it) {
                --owed_[t]; // at or after t's cursor: it was owed to t
                ++owing;
            }
            if (cursor == &entry) {
                cursor_[t] = entry.next;
            }
        }
        missed_.unlinked(entry, owing, owing_mask);
        (entry.prev ? entry.prev->next : head_) = entry.next;
        (entry.next ? entry.next->prev : tail_) = entry.prev;
        entry.prev = entry.next = nullptr;
        entry.set_linked(false);
        --queued_;
    }

    /// Puts `copy` (a detached copy of the linked `entry`) in `entry`'s place, so the write
    /// stays owed while `entry` is rewritten. The queue owns the copy from now on. Strong
    /// guarantee (a newer commit of the key drops the previous copy, so there is none).
    void keep_copy(QueueEntry& entry, EntryPtr copy) {
        copies_.emplace(copy->key, copy.get()); // may throw: nothing changed yet
        QueueEntry& in = *copy.release();
        in.prev = entry.prev;
        in.next = entry.next;
        (in.prev ? in.prev->next : head_) = &in;
        (in.next ? in.next->prev : tail_) = &in;
        std::replace(cursor_.begin(), cursor_.end(), &entry, &in);
        missed_.moved(entry, in);
        in.set_linked(true);
        entry.prev = entry.next = nullptr;
        entry.set_linked(false);
    }

    /// A newer commit of `key` by this region supersedes a queued copy of its earlier one (what
    /// targets missed of it carries over to the next push, see unlink).
    void drop_copy(std::string_view key) noexcept {
        if (copies_.empty()) {
            return;
        }
        auto it = copies_.find(key);
        if (it != copies_.end()) {
            QueueEntry* copy = it->second;
            copies_.erase(it);
            unlink(*copy);
            EntryDeleter{}(copy);
        }
    }

    /// Whether a copy of a displaced write of `key` is still owed.
    [[nodiscard]] bool holds_copy(std::string_view key) const {
        return !copies_.empty() && copies_.count(key) != 0;
    }

    /// Calls `visit(entry, prev_seq)` for up to `max_entries` entries not acknowledged by
    /// `target` with a seq above `after_seq`, ascending seq. `prev_seq` is the seq of the entry
    /// before it in this queue, or the target's acknowledged seq for the first one owed.
    /// Costs O(entries skipped + visited).
    template <class Visit>
    void for_each_owed(std::size_t target, std::size_t max_entries, std::uint64_t after_seq,
                       Visit&& visit) const {
        std::uint64_t prev = unchecked_[target] ? 0 : acked_[target];
        const QueueEntry* e = cursor_[target];
        for (; e != nullptr && e->seq <= after_seq; e = e->next) {
            prev = e->seq; // in flight already: the pipelined batch follows it
        }
        for (std::size_t n = max_entries; e != nullptr && n > 0; e = e->next, --n) {
            visit(*e, prev);
            prev = e->seq;
        }
    }

    /// Up to `max_entries` entries owed to `target` with a seq above `after_seq`, as they
    /// travel, ascending seq.
    void collect(std::size_t target, std::size_t max_entries, const std::vector<RegionId>& regions,
                 std::vector<FanoutEntry>& batch, std::uint64_t after_seq = 0) const {
        batch.reserve(batch.size() + std::min(max_entries, owed_[target]));
        for_each_owed(target, max_entries, after_seq, [&](const QueueEntry& e, std::uint64_t prev) {
            batch.push_back(FanoutEntry{std::string(e.key), record_of(e, regions), e.seq, prev});
        });
    }

    /// `target` holds every entry up to `up_to_seq`; entries nobody is owed any more leave.
    /// `latest_seq` is the source's latest commit: the acknowledged seq never passes it, so
    /// acknowledging past the newest entry never makes later entries look out of order.
    /// Returns how many entries stopped being owed to `target`.
    std::size_t
    acknowledge(std::size_t target, std::uint64_t up_to_seq,
                std::uint64_t latest_seq = std::numeric_limits<std::uint64_t>::max()) noexcept {
        const std::uint64_t capped = std::min(up_to_seq, latest_seq);
        if (capped >= acked_[target]) {
            unchecked_[target] = false; // the target confirmed everything acknowledged so far
        }
        acked_[target] = std::max(acked_[target], capped);
        std::size_t released = 0;
        QueueEntry*& cursor = cursor_[target];
        while (cursor != nullptr && cursor->seq <= up_to_seq) {
            missed_.passed(*cursor, target);
            cursor = cursor->next;
            ++released;
        }
        owed_[target] -= released;
        if (owed_[target] == 0) {
            missed_.caught_up(target);
        }
        while (head_ != nullptr &&
               std::find(cursor_.begin(), cursor_.end(), head_) == cursor_.end()) {
            QueueEntry* done = head_;
            head_ = done->next;
            (head_ ? head_->prev : tail_) = nullptr;
            done->next = nullptr;
            missed_.released(*done); // before the release store: another queue may link it next
            done->set_linked(false);
            --queued_;
            if (done->detached) {
                copies_.erase(done->key);
                EntryDeleter{}(done);
            }
        }
        return released;
    }

    [[nodiscard]] std::size_t region_count() const noexcept { return owed_.size(); }
    /// Entries owed to at least one target.
    [[nodiscard]] std::size_t queued() const noexcept { return queued_; }
    /// Entries owed to `target`.
    [[nodiscard]] std::size_t owed(std::size_t target) const noexcept { return owed_[target]; }
    /// A drain handed entries out and acknowledged them at once: if that shipment is lost,
    /// the target never gets them, so what follows must not claim to follow them.
    void acknowledge_drained(std::size_t target, std::uint64_t up_to_seq,
                             std::uint64_t latest_seq) noexcept {
        acknowledge(target, up_to_seq, latest_seq);
        unchecked_[target] = true;
    }

    /// Whether the first entry owed to `target` goes out unchecked (see acknowledge_drained).
    [[nodiscard]] bool unchecked(std::size_t target) const noexcept { return unchecked_[target]; }
    /// Restore: the flag as the snapshot recorded it.
    void set_unchecked(std::size_t target, bool on) noexcept { unchecked_[target] = on; }

    /// The highest seq `target` acknowledged.
    [[nodiscard]] std::uint64_t acked(std::size_t target) const noexcept { return acked_[target]; }
    [[nodiscard]] const QueueEntry* head() const noexcept { return head_; }

    /// Appends a detached copy (restore: the queue owns it from now on). Strong guarantee.
    void push_copy(EntryPtr copy) {
        copies_.emplace(copy->key, copy.get());
        push(*copy.release());
    }

    /// Exchanges contents with a queue of the same region and region count (restore).
    void swap(FanoutQueue& other) noexcept {
        std::swap(head_, other.head_);
        std::swap(tail_, other.tail_);
        cursor_.swap(other.cursor_);
        owed_.swap(other.owed_);
        acked_.swap(other.acked_);
        unchecked_.swap(other.unchecked_);
        std::swap(queued_, other.queued_);
        copies_.swap(other.copies_);
        missed_.swap(other.missed_);
    }

    // ---- what targets miss: lag and durability ---------------------------------------------

    /// Whether `t` has not acknowledged `entry` (linked in this queue).
    [[nodiscard]] bool owes(const QueueEntry& entry, std::size_t t) const noexcept {
        const QueueEntry* cursor = cursor_[t];
        return cursor != nullptr && cursor->seq <= entry.seq;
    }

    /// What `t` misses of `entry`'s key besides `entry` itself, if it owes `entry`.
    [[nodiscard]] Missed missed(const QueueEntry& entry, std::size_t t) const noexcept {
        return missed_.of(entry, t);
    }

    /// How many targets hold write `seq` of the key whose entry here is `entry`: it (or a
    /// newer write that replaced it) was acknowledged.
    [[nodiscard]] std::size_t holders(const QueueEntry& entry, std::uint64_t seq) const noexcept {
        std::size_t n = 0;
        for (std::size_t t = 0; t < owed_.size(); ++t) {
            if (t != self_ &&
                holds(seq, owes(entry, t),
                      first_missed(missed(entry, t), entry.seq, entry.timestamp_ms))) {
                ++n;
            }
        }
        return n;
    }

    /// The oldest write `t` misses: the lowest pinned one or the entry at its cursor; from 0
    /// when nothing is owed. O(1) but after an acknowledgement that passed the oldest pin.
    [[nodiscard]] Missed oldest_missed(std::size_t t) const noexcept {
        const QueueEntry* cursor = cursor_[t];
        if (cursor == nullptr) {
            return Missed{};
        }
        const Missed pin = missed_.oldest_pin(t, cursor);
        return pin.pinned() && pin.from < cursor->seq ? pin
                                                      : Missed{cursor->seq, cursor->timestamp_ms};
    }

    /// The queued copy of a displaced write of `key`, if any.
    [[nodiscard]] const QueueEntry* copy_of(std::string_view key) const {
        if (copies_.empty()) {
            return nullptr;
        }
        const auto it = copies_.find(key);
        return it == copies_.end() ? nullptr : it->second;
    }

    /// Restore: what each target misses of the linked `entry`'s key, as recorded (index =
    /// target; from 0 for targets missing nothing more). Call forget_oldest() when done.
    void restore_missed(QueueEntry& entry, const std::vector<Missed>& per_target) noexcept {
        missed_.restore(entry, per_target);
    }

    /// The oldest pins are found again on demand (restore).
    void forget_oldest() noexcept { missed_.forget_oldest(); }

private:
    mutable SpinMutex mu_;
    std::size_t self_; ///< this queue's region: owes itself nothing
    QueueEntry* head_{};
    QueueEntry* tail_{};
    std::vector<QueueEntry*> cursor_;
    std::vector<std::size_t> owed_;
    std::vector<std::uint64_t> acked_;
    std::vector<bool> unchecked_;
    std::size_t queued_{};
    std::unordered_map<std::string_view, QueueEntry*> copies_;
    MissedTable missed_;
};

} // namespace geo::detail
