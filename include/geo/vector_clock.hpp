#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <new>
#include <utility>

#include "detail/clock_entry_view.hpp"
#include "types.hpp"

namespace geo {

/// How two vector clocks relate: one pass over both answers every question.
enum class ClockOrder { Equal, Before, After, Concurrent };

/// A vector clock over node ids. A missing entry counts as 0 everywhere, equality included.
///
/// Entries are kept sorted by node id, with no zero counters. A clock has one entry per region
/// that wrote the key, and regions are few, so up to `inline_capacity` entries live inside the
/// object: copying, moving, comparing and updating such a clock never allocates. A larger clock
/// moves its entries to the heap and comes back inline once it shrinks to the capacity, so each
/// clock has exactly one representation (equality can compare the inline bytes).
///
/// Layout: only the array of slots, no size field. Inline, the entries fill a prefix of the
/// slots and the rest are {0, 0}; since a stored counter is never 0, the size is the number of
/// non-zero counters. On the heap, slot 0 holds {size, 0} and slot 1 {buffer address, capacity}:
/// a non-zero node with a zero counter in slot 0 never occurs inline, so it marks the heap case.
/// This is what fits 4 entries in 64 bytes (a size field would cost 8 more, padded).
class VectorClock {
public:
    using Entry = std::pair<NodeId, std::uint64_t>;

    /// Entries held without allocating. Four covers deployments of up to four regions.
    static constexpr std::size_t inline_capacity = 4;

    /// Read-only view of a clock's entries, valid until the clock is next modified or destroyed.
    using EntryView = detail::ClockEntryView;

    VectorClock() noexcept = default;

    /// `{{node, counter}, ...}`; duplicate nodes keep the largest counter.
    // Delegating, so a throw after a spill still runs the destructor and frees the buffer.
    VectorClock(std::initializer_list<Entry> entries) : VectorClock() {
        for (const auto& [node, counter] : entries) {
            set(node, std::max(counter, get(node)));
        }
    }

    // Copies the slots as they are, then gives a heap clock its own buffer. If that throws,
    // no destructor runs on the half-built object, so the borrowed address is never freed.
    VectorClock(const VectorClock& other) : slots_(other.slots_) {
        if (on_heap()) {
            const std::size_t n = heap_size();
            Entry* buffer = allocate(n);
            std::copy_n(other.heap_data(), n, buffer);
            set_heap(buffer, n, n);
        }
    }

    VectorClock(VectorClock&& other) noexcept : slots_(other.slots_) { other.slots_ = {}; }

    /// Strong guarantee: if allocating fails, *this is unchanged.
    VectorClock& operator=(const VectorClock& other) {
        if (this == &other) {
            return *this;
        }
        if (!other.on_heap()) {
            release();
            slots_ = other.slots_;
            return *this;
        }
        const std::size_t n = other.heap_size();
        if (on_heap() && heap_capacity() >= n) {
            std::copy_n(other.heap_data(), n, heap_data());
            slots_[0].first = n;
            return *this;
        }
        Entry* buffer = allocate(n);
        std::copy_n(other.heap_data(), n, buffer);
        release();
        set_heap(buffer, n, n);
        return *this;
    }

    VectorClock& operator=(VectorClock&& other) noexcept {
        if (this != &other) {
            release();
            slots_ = other.slots_;
            other.slots_ = {};
        }
        return *this;
    }

    ~VectorClock() { release(); }

    [[nodiscard]] std::uint64_t get(NodeId node) const noexcept {
        if (!on_heap()) {
            return inline_get(node, Slots{});
        }
        const Entry* d = heap_data();
        const Entry* it = lower(d, heap_size(), node);
        return it != d + heap_size() && it->first == node ? it->second : 0;
    }

    /// Sets one entry; setting 0 removes it, since a missing entry already means 0.
    /// Strong guarantee: if growing the heap buffer fails, the clock is unchanged.
    void set(NodeId node, std::uint64_t counter) {
        const std::size_t n = size();
        const std::size_t i = lower_index(node, n);
        Entry* d = mutable_data();
        if (i < n && d[i].first == node) {
            if (counter == 0) {
                erase_at(i, n);
            } else {
                d[i].second = counter;
            }
        } else if (counter != 0) {
            insert_at(i, n, Entry{node, counter});
        }
    }

    /// Strong guarantee, as `set`.
    void increment(NodeId node) {
        const std::size_t n = size();
        const std::size_t i = lower_index(node, n);
        Entry* d = mutable_data();
        if (i < n && d[i].first == node) {
            // Saturates: wrapping to 0 would move the clock backwards (before every clock it
            // followed). At the top of the range the clock stays equal, which resolution then
            // treats as concurrent writes, decided by the LWW order.
            if (d[i].second != std::numeric_limits<std::uint64_t>::max()) {
                ++d[i].second;
            }
        } else {
            insert_at(i, n, Entry{node, 1});
        }
    }

    /// Pointwise maximum, in place. Strong guarantee, as `set`.
    void update(const VectorClock& other) {
        if (other.dominated_by(*this)) {
            return; // the common case on a hot path: nothing to add (also covers self-update)
        }
        const std::size_t na = size();
        const Entry* b = other.data();
        const std::size_t nb = other.size();
        const std::size_t count = union_size(data(), na, b, nb);
        if (count > capacity()) {
            Entry* buffer = allocate(count);
            merge_into(data(), na, b, nb, buffer);
            release();
            set_heap(buffer, count, count);
            return;
        }
        // Merge from the back, in place: the write position never passes the unread entries.
        Entry* a = mutable_data();
        std::size_t ia = na;
        std::size_t ib = nb;
        std::size_t w = count;
        while (ib > 0) {
            if (ia > 0 && a[ia - 1].first > b[ib - 1].first) {
                a[--w] = a[--ia];
            } else if (ia > 0 && a[ia - 1].first == b[ib - 1].first) {
                --ia;
                --ib;
                a[--w] = Entry{a[ia].first, std::max(a[ia].second, b[ib].second)};
            } else {
                a[--w] = b[--ib];
            }
        }
        if (on_heap()) {
            slots_[0].first = count;
        }
    }

    /// Pointwise maximum, as a new clock.
    [[nodiscard]] VectorClock merge(const VectorClock& other) const {
        VectorClock result = *this;
        result.update(other);
        return result;
    }

    [[nodiscard]] ClockOrder compare(const VectorClock& other) const noexcept {
        if (!on_heap() && !other.on_heap() && same_nodes(*this, other, Slots{})) {
            // The usual case (every region has written the key): slot i of both clocks is the
            // same node, or unused in both, so the counters compare slot by slot, branch-free.
            return order(any_below(*this, other, Slots{}), any_below(other, *this, Slots{}));
        }
        bool less = false;    // some entry of *this is below other's
        bool greater = false; // some entry of *this is above other's
        const Entry* a = data();
        const Entry* a_end = a + size();
        const Entry* b = other.data();
        const Entry* b_end = b + other.size();
        while (a != a_end && b != b_end) {
            if (a->first < b->first) {
                greater = true; // a's entry is > 0 and b's is missing
                ++a;
            } else if (b->first < a->first) {
                less = true;
                ++b;
            } else {
                less = less || a->second < b->second;
                greater = greater || a->second > b->second;
                ++a;
                ++b;
            }
        }
        greater = greater || a != a_end;
        less = less || b != b_end;
        return order(less, greater);
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
    [[nodiscard]] EntryView entries() const noexcept { return EntryView(data(), size()); }
    [[nodiscard]] bool empty() const noexcept {
        return slots_[0].first == 0 && slots_[0].second == 0;
    }

    friend bool operator==(const VectorClock& a, const VectorClock& b) noexcept {
        if (!a.on_heap()) {
            // One representation per clock, so equal inline clocks have equal slots; against a
            // heap clock slot 0 differs ({size, 0} never occurs inline).
            return same_slots(a, b, Slots{});
        }
        return b.on_heap() && a.heap_size() == b.heap_size() &&
               std::equal(a.heap_data(), a.heap_data() + a.heap_size(), b.heap_data());
    }
    friend bool operator!=(const VectorClock& a, const VectorClock& b) noexcept {
        return !(a == b);
    }

private:
    // The inline paths are folds over the slot indices: unrolled and branch-free at any -O.
    using Slots = std::make_index_sequence<inline_capacity>;

    static constexpr std::uint64_t mask(bool b) noexcept {
        return 0 - static_cast<std::uint64_t>(b);
    }

    template <std::size_t... I>
    [[nodiscard]] std::uint64_t inline_get(NodeId node, std::index_sequence<I...>) const noexcept {
        // Unused slots have counter 0, so matching one adds nothing.
        return ((slots_[I].second & mask(slots_[I].first == node)) | ...);
    }
    template <std::size_t... I>
    [[nodiscard]] std::size_t inline_size(std::index_sequence<I...>) const noexcept {
        return (static_cast<std::size_t>(slots_[I].second != 0) + ...);
    }
    /// Used slots below `node`: they form the sorted prefix, so this is `node`'s position.
    template <std::size_t... I>
    [[nodiscard]] std::size_t inline_lower(NodeId node, std::index_sequence<I...>) const noexcept {
        return ((static_cast<std::size_t>(slots_[I].second != 0) &
                 static_cast<std::size_t>(slots_[I].first < node)) +
                ...);
    }
    /// Inline `a` and `b` list the same nodes (their unused slots are {0, 0}).
    template <std::size_t... I>
    [[nodiscard]] static bool same_nodes(const VectorClock& a, const VectorClock& b,
                                         std::index_sequence<I...>) noexcept {
        return ((a.slots_[I].first ^ b.slots_[I].first) | ...) == 0;
    }
    /// For inline `a` and `b` with the same nodes: some counter of `a` is below `b`'s.
    template <std::size_t... I>
    [[nodiscard]] static bool any_below(const VectorClock& a, const VectorClock& b,
                                        std::index_sequence<I...>) noexcept {
        return ((static_cast<unsigned>(a.slots_[I].second < b.slots_[I].second)) | ...) != 0;
    }
    template <std::size_t... I>
    [[nodiscard]] static bool same_slots(const VectorClock& a, const VectorClock& b,
                                         std::index_sequence<I...>) noexcept {
        return (((a.slots_[I].first ^ b.slots_[I].first) |
                 (a.slots_[I].second ^ b.slots_[I].second)) |
                ...) == 0;
    }
    [[nodiscard]] static ClockOrder order(bool less, bool greater) noexcept {
        if (less && greater) {
            return ClockOrder::Concurrent;
        }
        if (less) {
            return ClockOrder::Before;
        }
        return greater ? ClockOrder::After : ClockOrder::Equal;
    }

    [[nodiscard]] bool on_heap() const noexcept {
        return slots_[0].second == 0 && slots_[0].first != 0;
    }
    [[nodiscard]] std::size_t heap_size() const noexcept {
        return static_cast<std::size_t>(slots_[0].first);
    }
    [[nodiscard]] std::size_t heap_capacity() const noexcept {
        return static_cast<std::size_t>(slots_[1].second);
    }
    [[nodiscard]] Entry* heap_data() const noexcept {
        return reinterpret_cast<Entry*>(static_cast<std::uintptr_t>(slots_[1].first));
    }
    [[nodiscard]] std::size_t capacity() const noexcept {
        return on_heap() ? heap_capacity() : inline_capacity;
    }
    [[nodiscard]] std::size_t size() const noexcept {
        return on_heap() ? heap_size() : inline_size(Slots{});
    }
    [[nodiscard]] const Entry* data() const noexcept {
        return on_heap() ? heap_data() : slots_.data();
    }
    [[nodiscard]] Entry* mutable_data() noexcept { return on_heap() ? heap_data() : slots_.data(); }

    static const Entry* lower(const Entry* d, std::size_t n, NodeId node) noexcept {
        return std::lower_bound(d, d + n, node,
                                [](const Entry& e, NodeId x) { return e.first < x; });
    }
    /// Index of the first entry with node id >= `node`, among the `n` entries.
    [[nodiscard]] std::size_t lower_index(NodeId node, std::size_t n) const noexcept {
        if (!on_heap()) {
            return inline_lower(node, Slots{});
        }
        return static_cast<std::size_t>(lower(heap_data(), n, node) - heap_data());
    }

    // A plain call of the replaceable ::operator new rather than a new-expression, which a
    // compiler may elide; the entries are then constructed in place (trivially destroyed).
    static Entry* allocate(std::size_t n) {
        Entry* buffer = static_cast<Entry*>(::operator new(n * sizeof(Entry)));
        for (std::size_t i = 0; i < n; ++i) {
            ::new (static_cast<void*>(buffer + i)) Entry();
        }
        return buffer;
    }
    static void deallocate(Entry* buffer) noexcept { ::operator delete(buffer); }

    void release() noexcept {
        if (on_heap()) {
            deallocate(heap_data());
        }
    }
    void set_heap(Entry* buffer, std::size_t n, std::size_t cap) noexcept {
        slots_ = {};
        slots_[0] = Entry{n, 0};
        slots_[1] =
            Entry{std::uint64_t{reinterpret_cast<std::uintptr_t>(buffer)}, cap};
    }

    /// Inserts `e` at index `i` of the `n` entries, spilling or growing the buffer when full.
    void insert_at(std::size_t i, std::size_t n, const Entry& e) {
        Entry* d = mutable_data();
        if (n < capacity()) {
            std::copy_backward(d + i, d + n, d + n + 1);
            d[i] = e;
            if (on_heap()) {
                slots_[0].first = n + 1;
            }
            return;
        }
        // Allocate before touching anything: on failure the clock is unchanged.
        const std::size_t cap = 2 * n;
        Entry* buffer = allocate(cap);
        std::copy_n(d, i, buffer);
        buffer[i] = e;
        std::copy(d + i, d + n, buffer + i + 1);
        release();
        set_heap(buffer, n + 1, cap);
    }

    /// Removes index `i` of the `n` entries; a heap clock down to the capacity moves back inline.
    void erase_at(std::size_t i, std::size_t n) noexcept {
        Entry* d = mutable_data();
        std::copy(d + i + 1, d + n, d + i);
        if (!on_heap()) {
            d[n - 1] = Entry{};
        } else if (n - 1 > inline_capacity) {
            slots_[0].first = n - 1;
        } else {
            std::copy_n(d, inline_capacity, slots_.data()); // d is the heap buffer, not slots_
            deallocate(d);
        }
    }

    [[nodiscard]] static std::size_t union_size(const Entry* a, std::size_t na, const Entry* b,
                                                std::size_t nb) noexcept {
        std::size_t common = 0;
        std::size_t ia = 0;
        std::size_t ib = 0;
        while (ia < na && ib < nb) {
            if (a[ia].first < b[ib].first) {
                ++ia;
            } else if (b[ib].first < a[ia].first) {
                ++ib;
            } else {
                ++common;
                ++ia;
                ++ib;
            }
        }
        return na + nb - common;
    }

    static void merge_into(const Entry* a, std::size_t na, const Entry* b, std::size_t nb,
                           Entry* out) noexcept {
        const Entry* a_end = a + na;
        const Entry* b_end = b + nb;
        while (a != a_end && b != b_end) {
            if (a->first < b->first) {
                *out++ = *a++;
            } else if (b->first < a->first) {
                *out++ = *b++;
            } else {
                *out++ = Entry{a->first, std::max(a->second, b->second)};
                ++a;
                ++b;
            }
        }
        out = std::copy(a, a_end, out);
        std::copy(b, b_end, out);
    }

    [[nodiscard]] bool dominated_by(const VectorClock& other) const noexcept {
        auto order = compare(other);
        return order == ClockOrder::Equal || order == ClockOrder::Before;
    }

    std::array<Entry, inline_capacity> slots_{}; // see the layout note above the class
};

static_assert(sizeof(VectorClock) == VectorClock::inline_capacity * sizeof(VectorClock::Entry),
              "the slots are the whole clock: no size field, no padding");
static_assert(sizeof(std::uintptr_t) <= sizeof(std::uint64_t),
              "a heap clock keeps its buffer's address in a node id");

} // namespace geo
