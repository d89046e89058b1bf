#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../record.hpp"
#include "../vector_clock.hpp"
#include "spin_mutex.hpp"

namespace geo::detail {

/// One side of a conflict as the caller sees it, without owning anything.
struct WriteRef {
    std::size_t region; ///< index of a configured region
    std::uint64_t timestamp_ms;
    std::uint64_t seq;
    const VectorClock& clock;
    std::string_view value;
    bool deleted;
};

/// A conflict as the log keeps it: key and both values in one buffer, regions as indices and
/// clocks as flat entry arrays, so logging a losing write is a few copies into memory the
/// entry already owns, not a string and a vector per field.
class LoggedConflict {
public:
    /// Overwrites this entry. Strong guarantee: everything that may allocate happens before
    /// the entry changes, so a failure leaves the previous conflict intact.
    void assign(std::string_view key, const WriteRef& winner, const WriteRef& loser) {
        const std::size_t total = key.size() + winner.value.size() + loser.value.size();
        std::unique_ptr<char[]> fresh;
        if (total > capacity_) {
            fresh.reset(new char[total]);
        }
        winner_.reserve_clock(winner.clock);
        loser_.reserve_clock(loser.clock);
        // Nothing below allocates.
        if (fresh) {
            bytes_ = std::move(fresh);
            capacity_ = total;
        }
        char* out = bytes_.get();
        out = copy(out, key);
        out = copy(out, winner.value);
        copy(out, loser.value);
        key_size_ = key.size();
        winner_.set(winner);
        loser_.set(loser);
    }

    void swap(LoggedConflict& other) noexcept {
        using std::swap;
        swap(bytes_, other.bytes_);
        swap(capacity_, other.capacity_);
        swap(key_size_, other.key_size_);
        swap(winner_, other.winner_);
        swap(loser_, other.loser_);
    }

    /// `winner.seq` of a conflict prepared before its winner was given a seq.
    void set_winner_seq(std::uint64_t seq) noexcept { winner_.seq = seq; }

    [[nodiscard]] ConflictEvent to_event(const std::vector<std::string>& regions) const {
        ConflictEvent event;
        const char* in = bytes_.get();
        event.key.assign(in, key_size_);
        in += key_size_;
        in = winner_.to_record(in, regions, event.winner);
        loser_.to_record(in, regions, event.loser);
        return event;
    }

private:
    struct Side {
        std::uint64_t timestamp_ms{};
        std::uint64_t seq{};
        std::size_t region{};
        std::size_t value_size{};
        std::vector<VectorClock::Entry> clock;
        bool deleted{};

        void reserve_clock(const VectorClock& c) {
            if (!c.empty() && c.entries().size() > clock.capacity()) {
                clock.reserve(c.entries().size());
            }
        }

        void set(const WriteRef& w) noexcept {
            timestamp_ms = w.timestamp_ms;
            seq = w.seq;
            region = w.region;
            value_size = w.value.size();
            deleted = w.deleted;
            if (w.clock.empty()) { // LWW mode: always, and cheaper than building the view
                clock.clear();
            } else {
                const auto entries = w.clock.entries();
                clock.assign(entries.begin(), entries.end()); // capacity reserved
            }
        }

        const char* to_record(const char* in, const std::vector<std::string>& regions,
                              GeoRecord& out) const {
            out.region = regions[region];
            out.timestamp_ms = timestamp_ms;
            for (const auto& [node, counter] : clock) {
                out.clock.set(node, counter); // ascending node ids: each set appends
            }
            out.value.assign(in, value_size);
            out.seq = seq;
            out.deleted = deleted;
            return in + value_size;
        }
    };

    static char* copy(char* out, std::string_view s) noexcept {
        if (!s.empty()) {
            std::memcpy(out, s.data(), s.size());
        }
        return out + s.size();
    }

    std::unique_ptr<char[]> bytes_;
    std::size_t capacity_{};
    std::size_t key_size_{};
    Side winner_;
    Side loser_;
};

inline void swap(LoggedConflict& a, LoggedConflict& b) noexcept {
    a.swap(b);
}

/// The latest conflicts, at most `capacity`, and how many were raised in all.
///
/// Invariant (guarded by the log's own lock): entry `i % capacity` holds the conflict number
/// `i` for the last min(total, capacity) values of `i`.
class ConflictLog {
public:
    explicit ConflictLog(std::size_t capacity) : ring_(capacity) {}

    /// Logs a conflict, reusing the oldest entry's memory; if that fails, nothing changed.
    void log(std::string_view key, const WriteRef& winner, const WriteRef& loser) {
        std::lock_guard<SpinMutex> lock(mu_);
        if (!ring_.empty()) {
            ring_[total_ % ring_.size()].assign(key, winner, loser);
        }
        ++total_;
    }

    /// Logs a conflict built beforehand (`prepared` gets the overwritten entry's memory).
    void publish(LoggedConflict& prepared) noexcept {
        std::lock_guard<SpinMutex> lock(mu_);
        if (!ring_.empty()) {
            swap(ring_[total_ % ring_.size()], prepared);
        }
        ++total_;
    }

    /// Oldest first.
    [[nodiscard]] std::vector<ConflictEvent> recent(const std::vector<std::string>& regions) const {
        std::lock_guard<SpinMutex> lock(mu_);
        std::vector<ConflictEvent> result;
        const std::size_t capacity = ring_.size();
        const auto kept = static_cast<std::size_t>(std::min<std::uint64_t>(total_, capacity));
        result.reserve(kept);
        for (std::size_t i = 0; i < kept; ++i) {
            result.push_back(ring_[(total_ - kept + i) % capacity].to_event(regions));
        }
        return result;
    }

    [[nodiscard]] std::uint64_t total() const {
        std::lock_guard<SpinMutex> lock(mu_);
        return total_;
    }

private:
    mutable SpinMutex mu_;
    std::vector<LoggedConflict> ring_;
    std::uint64_t total_{};
};

} // namespace geo::detail
