#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <string_view>
#include <utility>
#include <vector>

#include "entry.hpp"
#include "missed_writes.hpp"

namespace geo::detail {

/// What the targets owing one FanoutQueue's entries miss of their keys besides the entries'
/// own writes (see Missed), and per target the oldest such write, so that stream lag is O(1).
/// Part of its queue: guarded by the queue's lock, told of every link change.
///
/// Invariants:
/// - an entry's Missed for its owing targets is in the entry (`missed_kind`): 0 nothing, 1 one
///   Missed for all (as deltas below its seq and stamp), 2 one per target in block
///   `missed_seqs` of `blocks_`, 3 every write of the key (the fallback when a block cannot be
///   allocated: it overstates what is missed, never understates it);
/// - a block not in use is in `free_blocks_`, whose capacity covers every block;
/// - unless `oldest_unknown_[t]`, `oldest_[t]` is the pinned Missed with the lowest `from`
///   among the entries owed to `t` (none: from 0);
/// - between unlinked() and the next pushed(), `carried_` holds the unlinked entry's encoding
///   and which targets owed it (and owns its block, if any).
class MissedTable {
public:
    MissedTable(std::size_t self, std::size_t region_count)
        : self_(self), n_(region_count), owes_(region_count, 0), carry_(region_count),
          oldest_(region_count), oldest_unknown_(region_count, 0) {}

    /// What `t` misses of `e`'s key besides `e` itself, if it owes `e`.
    [[nodiscard]] Missed of(const QueueEntry& e, std::size_t t) const noexcept {
        return of(replaced(e, e.seq, e.timestamp_ms, 0, 0), t);
    }

    /// Whether target `t` >= 64 owed the entry being replaced (before replaced()).
    void set_owed(std::size_t t, bool owed) noexcept { owes_[t] = owed ? 1 : 0; }

    /// What replace() needs of an entry being replaced, read before its record changes.
    struct Replaced {
        std::uint64_t seq{};
        std::uint64_t timestamp_ms{};
        std::uint8_t kind{};
        std::uint32_t seqs{};
        std::uint32_t ms{};
        std::size_t owing{};        ///< how many targets owed it
        std::uint64_t owing_mask{}; ///< bit t: target t < 64 owed it (from 64 on: set_owed)
    };
    [[nodiscard]] static Replaced replaced(const QueueEntry& e, std::uint64_t seq, std::uint64_t ts,
                                           std::size_t owing, std::uint64_t owing_mask) noexcept {
        return Replaced{seq, ts, e.missed_kind, e.missed_seqs, e.missed_ms, owing, owing_mask};
    }

    /// `e` left the queue (unlink, drop_copy): the next pushed() is its newer write.
    void unlinked(QueueEntry& e, std::size_t owing, std::uint64_t owing_mask) noexcept {
        if (carrying_) {
            release(carried_); // never pushed again (the write path always pushes)
        }
        carried_ = replaced(e, e.seq, e.timestamp_ms, owing, owing_mask);
        carrying_ = true;
        e.missed_kind = 0; // its block, if any, now belongs to carried_
    }

    /// `e` joined the queue: a new key's write, or the newer write of the entry just unlinked.
    void pushed(QueueEntry& e) noexcept {
        e.missed_kind = 0;
        if (carrying_) {
            carrying_ = false;
            replace(e, carried_);
        }
    }

    /// `e` (its record already rewritten) replaces `old`: each target keeps missing what it
    /// missed of `old`, unless it had acknowledged it.
    void replace(QueueEntry& e, const Replaced& old) noexcept {
        if (old.owing + 1 == n_ && old.kind == 1) {
            // A hot key nobody acknowledged in between: every target still misses the same
            // write, already noted as a pin; only the deltas move.
            const Missed m = of(old, 0);
            if (m.since_ms <= e.timestamp_ms && fits(e, m)) {
                encode_uniform(e, m);
                return;
            }
        }
        replace_general(e, old);
    }

    /// `copy` takes `e`'s place in the queue (same seq and stamp: the same encoding holds).
    void moved(QueueEntry& e, QueueEntry& copy) noexcept {
        copy.missed_kind = e.missed_kind;
        copy.missed_seqs = e.missed_seqs;
        copy.missed_ms = e.missed_ms;
        e.missed_kind = 0;
    }

    /// `e` left the queue for good: every target acknowledged it.
    void released(QueueEntry& e) noexcept { release_block(e); }

    /// `t` acknowledged `e`: if it pinned t's oldest missed write, that is found again later.
    void passed(const QueueEntry& e, std::size_t t) noexcept {
        if (e.missed_kind != 0 && oldest_unknown_[t] == 0) {
            const Missed m = of(e, t);
            if (m.pinned() && m.from == oldest_[t].from) {
                oldest_unknown_[t] = 1;
            }
        }
    }

    /// `t` owes nothing any more.
    void caught_up(std::size_t t) noexcept {
        oldest_[t] = Missed{};
        oldest_unknown_[t] = 0;
    }

    /// The pinned missed write of `t` with the lowest seq (from 0: none) among the entries from
    /// `cursor` (t's) on. O(1), except after the previous one was acknowledged: then one walk.
    [[nodiscard]] Missed oldest_pin(std::size_t t, const QueueEntry* cursor) const noexcept {
        if (oldest_unknown_[t] != 0) {
            Missed best{};
            for (const QueueEntry* e = cursor; e != nullptr; e = e->next) {
                const Missed m = e->missed_kind != 0 ? of(*e, t) : Missed{};
                if (m.pinned() && (!best.pinned() || m.from < best.from)) {
                    best = m;
                }
            }
            oldest_[t] = best;
            oldest_unknown_[t] = 0;
        }
        return oldest_[t];
    }

    /// Restore: `per_target` (index = target, from 0 = nothing) for the linked entry `e`.
    void restore(QueueEntry& e, const std::vector<Missed>& per_target) noexcept {
        release_block(e);
        std::copy(per_target.begin(), per_target.end(), carry_.begin());
        encode(e);
    }

    /// Every oldest pin is found again on demand (after a restore).
    void forget_oldest() noexcept { std::fill(oldest_unknown_.begin(), oldest_unknown_.end(), 1); }

    void swap(MissedTable& other) noexcept {
        blocks_.swap(other.blocks_);
        free_blocks_.swap(other.free_blocks_);
        oldest_.swap(other.oldest_);
        oldest_unknown_.swap(other.oldest_unknown_);
    }

private:
    static constexpr std::uint64_t narrow = std::numeric_limits<std::uint32_t>::max();

    [[nodiscard]] static bool fits(const QueueEntry& e, Missed m) noexcept {
        return e.seq - m.from <= narrow && e.timestamp_ms - m.since_ms <= narrow;
    }

    static void encode_uniform(QueueEntry& e, Missed m) noexcept {
        e.missed_kind = 1;
        e.missed_seqs = static_cast<std::uint32_t>(e.seq - m.from);
        e.missed_ms = static_cast<std::uint32_t>(e.timestamp_ms - m.since_ms);
    }

    void note(std::size_t t, Missed m) noexcept {
        if (t != self_ && oldest_unknown_[t] == 0 &&
            (!oldest_[t].pinned() || m.from <= oldest_[t].from)) {
            oldest_[t] = m;
        }
    }

    /// replace(), every other case.
    [[gnu::noinline]] void replace_general(QueueEntry& e, const Replaced& old) noexcept {
        if (old.owing + 1 == n_ && old.kind == 0) {
            // The key's second write with nobody acknowledging the first: one new pin.
            const Missed m =
                after_replace(false, Missed{old.seq, old.timestamp_ms}, e.timestamp_ms);
            if (fits(e, m)) {
                encode_uniform(e, m);
                for (std::size_t t = 0; t < n_; ++t) {
                    note(t, m);
                }
                return;
            }
        }
        for (std::size_t t = 0; t < n_; ++t) {
            const bool owed = t < 64 ? ((old.owing_mask >> t) & 1U) != 0 : owes_[t] != 0;
            carry_[t] =
                !owed ? Missed{}
                      : after_replace(false, first_missed(of(old, t), old.seq, old.timestamp_ms),
                                      e.timestamp_ms);
        }
        release(old);
        encode(e);
    }

    /// The one decoder of an entry's encoding (see the invariants).
    [[nodiscard]] Missed of(const Replaced& old, std::size_t t) const noexcept {
        switch (old.kind) {
        case 0:
            return Missed{};
        case 1:
            return Missed{old.seq - old.seqs, old.timestamp_ms - old.ms};
        case 2:
            return blocks_[std::size_t{old.seqs} * n_ + t];
        default:
            return Missed{1, 0}; // every write of the key, since the epoch
        }
    }

    void release(const Replaced& old) noexcept {
        if (old.kind == 2) {
            free_blocks_.push_back(old.seqs);
        }
    }

    /// Encodes `carry_` (per target) into `e` and notes its pins.
    void encode(QueueEntry& e) noexcept {
        const Missed common = carry_[self_ == 0 && n_ > 1 ? 1 : 0];
        bool uniform = true;
        for (std::size_t t = 0; t < n_; ++t) {
            uniform = uniform && (t == self_ || carry_[t] == common);
        }
        std::uint32_t block = 0;
        if (uniform && !common.pinned()) {
            e.missed_kind = 0;
            return;
        }
        if (uniform && fits(e, common)) {
            encode_uniform(e, common);
        } else if (alloc_block(block)) {
            e.missed_kind = 2;
            e.missed_seqs = block;
            std::copy(carry_.begin(), carry_.end(),
                      blocks_.begin() + static_cast<std::ptrdiff_t>(std::size_t{block} * n_));
        } else {
            e.missed_kind = 3;
        }
        for (std::size_t t = 0; t < n_; ++t) {
            if (t != self_ && carry_[t].pinned()) {
                note(t, of(e, t));
            }
        }
    }

    [[nodiscard]] bool alloc_block(std::uint32_t& block) noexcept {
        if (!free_blocks_.empty()) {
            block = free_blocks_.back();
            free_blocks_.pop_back();
            return true;
        }
        const std::size_t count = blocks_.size() / n_;
        if (count >= narrow) {
            return false;
        }
        try {
            free_blocks_.reserve(count + 1); // so that release_block never allocates
            blocks_.resize(blocks_.size() + n_);
        } catch (const std::bad_alloc&) {
            return false;
        }
        block = static_cast<std::uint32_t>(count);
        return true;
    }

    void release_block(QueueEntry& e) noexcept {
        if (e.missed_kind == 2) {
            free_blocks_.push_back(e.missed_seqs);
        }
        e.missed_kind = 0;
    }

    std::size_t self_;
    std::size_t n_;
    std::vector<Missed> blocks_; ///< n_ per block
    std::vector<std::uint32_t> free_blocks_;
    Replaced carried_; ///< from unlinked() to the next pushed()
    bool carrying_{};
    std::vector<std::uint8_t> owes_; ///< per target from 64 on: it owed the entry replaced
    std::vector<Missed> carry_;      ///< per target: scratch of pushed() and restore()
    mutable std::vector<Missed> oldest_;
    mutable std::vector<std::uint8_t> oldest_unknown_;
};

} // namespace geo::detail
