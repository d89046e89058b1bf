#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

#include "types.hpp"

namespace geo {

/// How two vector clocks relate: one pass over both answers every question.
enum class ClockOrder { Equal, Before, After, Concurrent };

/// A vector clock over node ids. A missing entry counts as 0 everywhere, equality included.
///
/// Entries live in a vector sorted by node id, with no zero entries, so comparing two clocks
/// is a single allocation-free merge walk (clocks have a handful of entries in practice).
class VectorClock {
public:
    using Entry = std::pair<NodeId, std::uint64_t>;

    VectorClock() = default;
    /// `{{node, counter}, ...}`; duplicate nodes keep the largest counter.
    VectorClock(std::initializer_list<Entry> entries) {
        for (const auto& [node, counter] : entries) {
            set(node, std::max(counter, get(node)));
        }
    }

    [[nodiscard]] std::uint64_t get(NodeId node) const noexcept {
        auto it = find(node);
        return it != entries_.end() && it->first == node ? it->second : 0;
    }

    /// Sets one entry; setting 0 removes it, since a missing entry already means 0.
    void set(NodeId node, std::uint64_t counter) {
        auto it = find(node);
        if (it != entries_.end() && it->first == node) {
            if (counter == 0) {
                entries_.erase(it);
            } else {
                it->second = counter;
            }
        } else if (counter != 0) {
            entries_.insert(it, Entry{node, counter});
        }
    }

    void increment(NodeId node) {
        auto it = find(node);
        if (it != entries_.end() && it->first == node) {
            ++it->second;
        } else {
            entries_.insert(it, Entry{node, 1});
        }
    }

    /// Pointwise maximum, in place.
    void update(const VectorClock& other) {
        if (other.dominated_by(*this)) {
            return; // the common case on a hot path: nothing to add, nothing to allocate
        }
        std::vector<Entry> merged;
        merged.reserve(entries_.size() + other.entries_.size());
        auto a = entries_.begin();
        auto b = other.entries_.begin();
        while (a != entries_.end() || b != other.entries_.end()) {
            if (b == other.entries_.end() || (a != entries_.end() && a->first < b->first)) {
                merged.push_back(*a++);
            } else if (a == entries_.end() || b->first < a->first) {
                merged.push_back(*b++);
            } else {
                merged.emplace_back(a->first, std::max(a->second, b->second));
                ++a;
                ++b;
            }
        }
        entries_ = std::move(merged);
    }

    /// Pointwise maximum, as a new clock.
    [[nodiscard]] VectorClock merge(const VectorClock& other) const {
        VectorClock result = *this;
        result.update(other);
        return result;
    }

    [[nodiscard]] ClockOrder compare(const VectorClock& other) const noexcept {
        bool less = false;    // some entry of *this is below other's
        bool greater = false; // some entry of *this is above other's
        auto a = entries_.begin();
        auto b = other.entries_.begin();
        while ((a != entries_.end() || b != other.entries_.end()) && !(less && greater)) {
            if (b == other.entries_.end() || (a != entries_.end() && a->first < b->first)) {
                greater = true; // a's entry is > 0 and b's is missing
                ++a;
            } else if (a == entries_.end() || b->first < a->first) {
                less = true;
                ++b;
            } else {
                less = less || a->second < b->second;
                greater = greater || a->second > b->second;
                ++a;
                ++b;
            }
        }
        if (less && greater) {
            return ClockOrder::Concurrent;
        }
        if (less) {
            return ClockOrder::Before;
        }
        return greater ? ClockOrder::After : ClockOrder::Equal;
    }

    /// Every entry <= other's and at least one strictly less.
    [[nodiscard]] bool happens_before(const VectorClock& other) const noexcept {
        return compare(other) == ClockOrder::Before;
    }

    /// Neither happens before the other, and they are not equal.
    [[nodiscard]] bool is_concurrent(const VectorClock& other) const noexcept {
        return compare(other) == ClockOrder::Concurrent;
    }

    /// Non-zero entries in ascending node order.
    [[nodiscard]] const std::vector<Entry>& entries() const noexcept { return entries_; }
    [[nodiscard]] bool empty() const noexcept { return entries_.empty(); }

    friend bool operator==(const VectorClock& a, const VectorClock& b) noexcept {
        return a.entries_ == b.entries_;
    }
    friend bool operator!=(const VectorClock& a, const VectorClock& b) noexcept {
        return !(a == b);
    }

private:
    [[nodiscard]] std::vector<Entry>::const_iterator find(NodeId node) const noexcept {
        return std::lower_bound(entries_.begin(), entries_.end(), node,
                                [](const Entry& e, NodeId n) { return e.first < n; });
    }
    [[nodiscard]] std::vector<Entry>::iterator find(NodeId node) noexcept {
        return std::lower_bound(entries_.begin(), entries_.end(), node,
                                [](const Entry& e, NodeId n) { return e.first < n; });
    }
    [[nodiscard]] bool dominated_by(const VectorClock& other) const noexcept {
        auto order = compare(other);
        return order == ClockOrder::Equal || order == ClockOrder::Before;
    }

    std::vector<Entry> entries_; // sorted by node id, no zero counters
};

} // namespace geo
