#include <geo/vector_clock.hpp>

#include "geo_test.hpp"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <new>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

// ---- counting allocations ------------------------------------------------------------------
// This test is its own executable, so it replaces the global allocation functions with ones
// that count and can fail on demand. They forward to malloc/aligned_alloc and free, which the
// sanitizers intercept, so GCC's sanitizers (a shared runtime, which our definitions override)
// still see matched pairs. Clang links its sanitizer runtimes statically, operator new included,
// so a second definition would not link: there allocations are counted through the sanitizer's
// malloc hook instead, and failures cannot be injected.

#if defined(__clang__) && defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer) || __has_feature(hwaddress_sanitizer)
#define GEO_TEST_RUNTIME_OWNS_NEW 1
#endif
#endif
#ifndef GEO_TEST_RUNTIME_OWNS_NEW
#define GEO_TEST_RUNTIME_OWNS_NEW 0
#endif

#if GEO_TEST_RUNTIME_OWNS_NEW
#include <sanitizer/allocator_interface.h>
#endif

namespace {

std::atomic<std::size_t> allocation_count{0};
/// 0: allocations succeed. n > 0: the n-th allocation from now fails (then it is 0 again).
std::atomic<std::size_t> fail_in{0};

#if GEO_TEST_RUNTIME_OWNS_NEW

constexpr bool can_fail_allocations = false;

void count_allocation(const volatile void*, std::size_t) {
    allocation_count.fetch_add(1, std::memory_order_relaxed);
}
void ignore_free(const volatile void*) {}

void start_counting() {
    static const int installed =
        __sanitizer_install_malloc_and_free_hooks(count_allocation, ignore_free);
    (void)installed;
}

} // namespace

#else

constexpr bool can_fail_allocations = true;

void start_counting() {}

void* counted_allocate(std::size_t size, std::size_t alignment) noexcept {
    allocation_count.fetch_add(1, std::memory_order_relaxed);
    const std::size_t armed = fail_in.load(std::memory_order_relaxed);
    if (armed != 0) {
        fail_in.store(armed - 1, std::memory_order_relaxed);
        if (armed == 1) {
            return nullptr;
        }
    }
    size = size == 0 ? 1 : size;
    if (alignment <= alignof(std::max_align_t)) {
        return std::malloc(size);
    }
    return std::aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment);
}

void* allocate_or_throw(std::size_t size, std::size_t alignment) {
    void* p = counted_allocate(size, alignment);
    if (p == nullptr) {
        throw std::bad_alloc();
    }
    return p;
}

std::size_t align_of(std::align_val_t alignment) noexcept {
    return static_cast<std::size_t>(alignment);
}

} // namespace

void* operator new(std::size_t size) {
    return allocate_or_throw(size, 0);
}
void* operator new[](std::size_t size) {
    return allocate_or_throw(size, 0);
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    return counted_allocate(size, 0);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
    return counted_allocate(size, 0);
}
void* operator new(std::size_t size, std::align_val_t alignment) {
    return allocate_or_throw(size, align_of(alignment));
}
void* operator new[](std::size_t size, std::align_val_t alignment) {
    return allocate_or_throw(size, align_of(alignment));
}
void* operator new(std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
    return counted_allocate(size, align_of(alignment));
}
void* operator new[](std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
    return counted_allocate(size, align_of(alignment));
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete[](void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    std::free(p);
}

#endif

using geo::ClockOrder;
using geo::NodeId;
using geo::VectorClock;

namespace {

constexpr NodeId max_node = 4; // random clocks use nodes 0..max_node-1

/// A small random clock: each of a few nodes absent or with a counter 0..3 (0 set explicitly,
/// which must mean the same as absent).
VectorClock random_clock(std::mt19937& rng) {
    std::uniform_int_distribution<int> present(0, 2);
    std::uniform_int_distribution<std::uint64_t> counter(0, 3);
    VectorClock clock;
    for (NodeId node = 0; node < max_node; ++node) {
        if (present(rng) != 0) {
            clock.set(node, counter(rng));
        }
    }
    return clock;
}

/// Reference relation computed entry by entry, independently of compare().
ClockOrder reference_order(const VectorClock& a, const VectorClock& b) {
    bool less = false;
    bool greater = false;
    for (NodeId node = 0; node < max_node; ++node) {
        less = less || a.get(node) < b.get(node);
        greater = greater || a.get(node) > b.get(node);
    }
    if (less && greater) {
        return ClockOrder::Concurrent;
    }
    if (less) {
        return ClockOrder::Before;
    }
    return greater ? ClockOrder::After : ClockOrder::Equal;
}

bool dominated_by(const VectorClock& a, const VectorClock& b) { // a <= b pointwise
    for (NodeId node = 0; node < max_node; ++node) {
        if (a.get(node) > b.get(node)) {
            return false;
        }
    }
    return true;
}

constexpr int random_rounds = 2000;

} // namespace

TEST_CASE("a missing entry reads as zero") {
    VectorClock clock;
    CHECK(clock.get(0) == 0);
    CHECK(clock.get(42) == 0);
    clock.increment(7);
    CHECK(clock.get(42) == 0);
    CHECK(clock.get(6) == 0);
    CHECK(clock.get(8) == 0);
}

TEST_CASE("increment adds one to a node's entry and leaves the others") {
    VectorClock clock;
    clock.increment(3);
    CHECK(clock.get(3) == 1);
    clock.increment(3);
    clock.increment(3);
    CHECK(clock.get(3) == 3);
    clock.increment(1);
    CHECK(clock.get(1) == 1);
    CHECK(clock.get(3) == 3);
}

TEST_CASE("set overwrites one entry") {
    VectorClock clock{{1, 5}};
    clock.set(1, 2);
    CHECK(clock.get(1) == 2);
    clock.set(9, 4);
    CHECK(clock.get(9) == 4);
    clock.set(1, 0);
    CHECK(clock.get(1) == 0);
    CHECK(clock == VectorClock{{9, 4}});
}

TEST_CASE("the initializer list sets entries, keeping the largest counter of a repeated node") {
    VectorClock clock{{1, 2}, {7, 1}, {1, 5}, {1, 3}};
    CHECK(clock.get(1) == 5);
    CHECK(clock.get(7) == 1);
    CHECK(clock.get(2) == 0);
}

TEST_CASE("update takes the pointwise maximum in place") {
    VectorClock a{{1, 3}, {2, 1}};
    const VectorClock b{{2, 4}, {3, 2}, {1, 1}};
    a.update(b);
    CHECK(a.get(1) == 3);
    CHECK(a.get(2) == 4);
    CHECK(a.get(3) == 2);
    CHECK(a == VectorClock{{1, 3}, {2, 4}, {3, 2}});
    CHECK(b == VectorClock{{2, 4}, {3, 2}, {1, 1}});
}

TEST_CASE("update with a dominated clock changes nothing") {
    VectorClock a{{1, 3}, {2, 4}};
    a.update(VectorClock{{1, 2}});
    CHECK(a == VectorClock{{1, 3}, {2, 4}});
    a.update(VectorClock{});
    CHECK(a == VectorClock{{1, 3}, {2, 4}});
}

TEST_CASE("merge returns the pointwise maximum without changing either operand") {
    const VectorClock a{{1, 3}, {2, 1}};
    const VectorClock b{{2, 4}, {3, 2}};
    const VectorClock m = a.merge(b);
    CHECK(m == VectorClock{{1, 3}, {2, 4}, {3, 2}});
    CHECK(a == VectorClock{{1, 3}, {2, 1}});
    CHECK(b == VectorClock{{2, 4}, {3, 2}});
}

TEST_CASE("happens_before needs every entry <= and at least one <") {
    const VectorClock a{{1, 1}, {2, 1}};
    CHECK(a.happens_before(VectorClock{{1, 2}, {2, 1}}));
    CHECK(a.happens_before(VectorClock{{1, 1}, {2, 1}, {3, 1}})); // missing entry is 0 < 1
    CHECK(VectorClock{}.happens_before(a));
    CHECK_FALSE(a.happens_before(a));                           // equal: not strictly before
    CHECK_FALSE(a.happens_before(VectorClock{{1, 2}}));         // 2:1 > 2:0
    CHECK_FALSE(VectorClock{{1, 2}, {2, 1}}.happens_before(a)); // after, not before
    CHECK_FALSE(a.happens_before(VectorClock{}));
}

TEST_CASE("is_concurrent holds when each clock has an entry above the other's") {
    const VectorClock a{{1, 2}, {2, 1}};
    const VectorClock b{{1, 1}, {2, 2}};
    CHECK(a.is_concurrent(b));
    CHECK(b.is_concurrent(a));
    CHECK(VectorClock{{1, 1}}.is_concurrent(VectorClock{{2, 1}}));
}

TEST_CASE("equal or ordered clocks are not concurrent") {
    const VectorClock a{{1, 2}, {2, 1}};
    CHECK_FALSE(a.is_concurrent(a));
    CHECK_FALSE(a.is_concurrent(VectorClock{{1, 2}, {2, 1}}));
    CHECK_FALSE(a.is_concurrent(VectorClock{{1, 3}, {2, 1}}));
    CHECK_FALSE(a.is_concurrent(VectorClock{{1, 1}}));
    CHECK_FALSE(VectorClock{}.is_concurrent(VectorClock{}));
}

TEST_CASE("a zero entry set explicitly equals the empty clock") {
    VectorClock set_zero;
    set_zero.set(9, 0);
    CHECK(set_zero == VectorClock{});
    CHECK_FALSE(set_zero != VectorClock{});
    CHECK(VectorClock{{9, 0}} == VectorClock{});
    CHECK(set_zero.empty());
    CHECK(set_zero.compare(VectorClock{}) == ClockOrder::Equal);
    CHECK_FALSE(set_zero.happens_before(VectorClock{}));
    CHECK_FALSE(VectorClock{}.happens_before(set_zero));
}

TEST_CASE("equality ignores zero entries among non-zero ones") {
    CHECK(VectorClock{{1, 2}, {9, 0}} == VectorClock{{1, 2}});
    VectorClock decremented{{1, 2}, {9, 1}};
    decremented.set(9, 0);
    CHECK(decremented == VectorClock{{1, 2}});
    CHECK(VectorClock{{1, 2}} != VectorClock{{1, 3}});
    CHECK(VectorClock{{1, 2}} != VectorClock{{1, 2}, {9, 1}});
}

TEST_CASE("compare reports Equal, Before, After and Concurrent") {
    const VectorClock a{{1, 1}, {2, 1}};
    CHECK(a.compare(VectorClock{{2, 1}, {1, 1}}) == ClockOrder::Equal);
    CHECK(a.compare(VectorClock{{1, 2}, {2, 1}}) == ClockOrder::Before);
    CHECK(a.compare(VectorClock{{1, 1}}) == ClockOrder::After);
    CHECK(a.compare(VectorClock{{1, 2}}) == ClockOrder::Concurrent);
    CHECK(VectorClock{}.compare(a) == ClockOrder::Before);
    CHECK(a.compare(VectorClock{}) == ClockOrder::After);
}

TEST_CASE("entries lists the non-zero entries in ascending node order") {
    VectorClock clock{{7, 1}, {1, 2}, {4, 0}};
    const std::vector<VectorClock::Entry> expected{{1, 2}, {7, 1}};
    const auto entries = clock.entries();
    CHECK(std::vector<VectorClock::Entry>(entries.begin(), entries.end()) == expected);
}

TEST_CASE("compare agrees with an entry-by-entry reference on random clocks") {
    std::mt19937 rng(20240601);
    for (int i = 0; i < random_rounds; ++i) {
        const VectorClock a = random_clock(rng);
        const VectorClock b = random_clock(rng);
        const ClockOrder expected = reference_order(a, b);
        if (a.compare(b) != expected) {
            FAIL_CHECK("compare disagrees with the reference at round " << i);
        }
        if ((a == b) != (expected == ClockOrder::Equal)) {
            FAIL_CHECK("== disagrees with the reference at round " << i);
        }
    }
}

TEST_CASE("exactly one of equal, before, after, concurrent holds for any two clocks") {
    std::mt19937 rng(7);
    for (int i = 0; i < random_rounds; ++i) {
        const VectorClock a = random_clock(rng);
        const VectorClock b = random_clock(rng);
        const int holds = int(a == b) + int(a.happens_before(b)) + int(b.happens_before(a)) +
                          int(a.is_concurrent(b));
        if (holds != 1) {
            FAIL_CHECK("round " << i << ": " << holds << " relations hold");
        }
        if (a.is_concurrent(b) != b.is_concurrent(a)) {
            FAIL_CHECK("is_concurrent is not symmetric at round " << i);
        }
        const ClockOrder ab = a.compare(b);
        const ClockOrder ba = b.compare(a);
        const bool mirrored =
            (ab == ClockOrder::Before && ba == ClockOrder::After) ||
            (ab == ClockOrder::After && ba == ClockOrder::Before) ||
            (ab == ba && (ab == ClockOrder::Equal || ab == ClockOrder::Concurrent));
        if (!mirrored) {
            FAIL_CHECK("compare is not antisymmetric at round " << i);
        }
    }
}

TEST_CASE("merge is commutative, associative and idempotent") {
    std::mt19937 rng(99);
    for (int i = 0; i < random_rounds; ++i) {
        const VectorClock a = random_clock(rng);
        const VectorClock b = random_clock(rng);
        const VectorClock c = random_clock(rng);
        if (a.merge(b) != b.merge(a)) {
            FAIL_CHECK("merge is not commutative at round " << i);
        }
        if (a.merge(b).merge(c) != a.merge(b.merge(c))) {
            FAIL_CHECK("merge is not associative at round " << i);
        }
        if (a.merge(a) != a) {
            FAIL_CHECK("merge is not idempotent at round " << i);
        }
    }
}

TEST_CASE("merge is the least upper bound and update agrees with it") {
    std::mt19937 rng(12345);
    for (int i = 0; i < random_rounds; ++i) {
        const VectorClock a = random_clock(rng);
        const VectorClock b = random_clock(rng);
        const VectorClock m = a.merge(b);
        for (NodeId node = 0; node < max_node; ++node) {
            if (m.get(node) != std::max(a.get(node), b.get(node))) {
                FAIL_CHECK("merge is not the pointwise max at round " << i << ", node " << node);
            }
        }
        VectorClock updated = a;
        updated.update(b);
        if (updated != m) {
            FAIL_CHECK("update differs from merge at round " << i);
        }
    }
}

TEST_CASE("a clock happens before its merge with another unless the other is below it") {
    std::mt19937 rng(4242);
    int strictly_before = 0;
    int dominated = 0;
    for (int i = 0; i < random_rounds; ++i) {
        const VectorClock a = random_clock(rng);
        const VectorClock b = random_clock(rng);
        const VectorClock m = a.merge(b);
        if (dominated_by(b, a)) {
            ++dominated;
            if (m != a || a.happens_before(m)) {
                FAIL_CHECK("round " << i << ": merging a dominated clock changed the clock");
            }
        } else {
            ++strictly_before;
            if (!a.happens_before(m)) {
                FAIL_CHECK("round " << i << ": a does not happen before a.merge(b)");
            }
        }
        if (b.happens_before(a) != (dominated_by(b, a) && b != a)) {
            FAIL_CHECK("round " << i << ": happens_before disagrees with pointwise <=");
        }
    }
    // Both branches were exercised, so the property was really checked both ways.
    CHECK(strictly_before > 100);
    CHECK(dominated > 100);
}

TEST_CASE("a clock happens before itself incremented") {
    std::mt19937 rng(5);
    for (int i = 0; i < random_rounds; ++i) {
        const VectorClock a = random_clock(rng);
        VectorClock next = a;
        next.increment(static_cast<NodeId>(i % static_cast<int>(max_node + 2)));
        if (!a.happens_before(next) || next.happens_before(a)) {
            FAIL_CHECK("round " << i << ": increment did not move the clock strictly forward");
        }
    }
}

TEST_CASE("incrementing a counter at the maximum saturates: the clock never moves backwards") {
    const auto top = std::numeric_limits<std::uint64_t>::max();
    const VectorClock before{{1, 4}, {2, top}};
    VectorClock clock = before;
    clock.increment(2);
    CHECK(clock.get(2) == top);
    CHECK(clock == before);
    CHECK_FALSE(clock.happens_before(before));
    CHECK_FALSE(before.happens_before(clock));
    CHECK_FALSE(clock.happens_before(VectorClock{})); // a wrap made it look older than empty
    CHECK(clock.entries().size() == 2);
}

// ---- allocation behaviour -------------------------------------------------------------------

namespace {

constexpr std::size_t inline_capacity = VectorClock::inline_capacity;

/// Heap allocations made while `f` runs (run nothing else in `f`: Catch2 may allocate).
template <class F>
std::size_t allocations_during(F&& f) {
    start_counting();
    const std::size_t before = allocation_count.load(std::memory_order_relaxed);
    f();
    return allocation_count.load(std::memory_order_relaxed) - before;
}

/// Runs `f` with its `nth` allocation failing; whether `f` then threw bad_alloc.
template <class F>
bool throws_bad_alloc_when_allocation_fails(std::size_t nth, F&& f) {
    bool threw = false;
    fail_in.store(nth, std::memory_order_relaxed);
    try {
        f();
    } catch (const std::bad_alloc&) {
        threw = true;
    }
    fail_in.store(0, std::memory_order_relaxed);
    return threw;
}

/// `count` entries on nodes first, first + 10, ...; counters 1, 2, ...
VectorClock clock_of(std::size_t count, NodeId first = 10) {
    VectorClock clock;
    for (std::size_t i = 0; i < count; ++i) {
        clock.set(first + 10 * i, i + 1);
    }
    return clock;
}

std::vector<VectorClock::Entry> entries_of(const VectorClock& clock) {
    const auto entries = clock.entries();
    return {entries.begin(), entries.end()};
}

} // namespace

TEST_CASE("copying, moving, updating and comparing clocks within the inline capacity never "
          "allocates") {
    for (std::size_t k = 0; k <= inline_capacity; ++k) {
        CAPTURE(k);
        const VectorClock a = clock_of(k); // nodes 10, 20, ...
        VectorClock b = a;
        b.increment(10);                 // b is after a
        const NodeId fresh = 5 + 10 * k; // not in a; a plus it still fits while k < capacity
        // Interleaved nodes (10, 20, ... and 15, 25, ...), k in all: updating adds entries.
        const VectorClock odd = clock_of((k + 1) / 2, 10);
        const VectorClock even = clock_of(k / 2, 15);

        VectorClock copied;
        VectorClock assigned{{7, 7}};
        VectorClock moved;
        VectorClock move_assigned{{8, 8}};
        VectorClock incremented;
        VectorClock set_existing;
        VectorClock set_fresh;
        VectorClock removed;
        VectorClock updated;
        VectorClock interleaved;
        VectorClock merged;
        ClockOrder order = ClockOrder::Equal;
        bool equal = false;
        bool unequal = true;
        bool before = false;
        bool concurrent = false;
        std::uint64_t sum = 0;
        const std::size_t allocations = allocations_during([&] {
            copied = VectorClock(a);
            assigned = a;
            VectorClock temporary(a);
            moved = VectorClock(std::move(temporary));
            move_assigned = std::move(moved);
            moved = move_assigned;
            incremented = a;
            incremented.increment(10);
            if (k < inline_capacity) {
                incremented.increment(fresh);
            }
            set_existing = a;
            set_existing.set(10, 42);
            set_fresh = a;
            if (k < inline_capacity) {
                set_fresh.set(fresh, 5);
            }
            removed = a;
            removed.set(10, 0);
            updated = a;
            updated.update(b);
            interleaved = odd;
            interleaved.update(even);
            merged = even.merge(odd);
            order = a.compare(b);
            equal = copied == a;
            unequal = copied != a;
            before = a.happens_before(b);
            concurrent = odd.is_concurrent(even);
            for (const auto& [node, counter] : a.entries()) {
                sum += a.get(node) + counter;
            }
        });
        CHECK(allocations == 0);

        // And each operation did its job.
        CHECK(copied == a);
        CHECK(assigned == a);
        CHECK(moved == a);
        CHECK(move_assigned == a);
        CHECK(incremented.get(10) == a.get(10) + 1);
        CHECK(incremented.get(fresh) == (k < inline_capacity ? 1 : 0));
        CHECK(set_existing.get(10) == 42);
        CHECK(set_fresh.get(fresh) == (k < inline_capacity ? 5 : 0));
        CHECK(removed.get(10) == 0);
        CHECK(removed.entries().size() == (k == 0 ? 0 : k - 1));
        CHECK(updated == b);
        CHECK(interleaved.entries().size() == k);
        CHECK(merged == interleaved);
        for (const auto& [node, counter] : interleaved.entries()) {
            CHECK(counter == std::max(odd.get(node), even.get(node)));
        }
        CHECK(order == ClockOrder::Before);
        CHECK(equal);
        CHECK_FALSE(unequal);
        CHECK(before);
        CHECK(concurrent == (k >= 2));
        CHECK(sum == k * (k + 1));
    }
}

TEST_CASE("a clock above the inline capacity spills to the heap and keeps working") {
    VectorClock big;
    const std::size_t spill_allocations = allocations_during([&] {
        for (std::size_t i = 0; i < 3 * inline_capacity; ++i) {
            big.increment(100 - i); // descending: every entry goes to the front
        }
    });
    CHECK(spill_allocations > 0); // the counter does see the clock's allocations
    CHECK(big.entries().size() == 3 * inline_capacity);
    for (std::size_t i = 0; i < 3 * inline_capacity; ++i) {
        CHECK(big.get(100 - i) == 1);
    }
    CHECK(std::is_sorted(big.entries().begin(), big.entries().end()));

    VectorClock copy;
    CHECK(allocations_during([&] { copy = big; }) == 1);
    CHECK(copy == big);
    copy.increment(100);
    CHECK(big.happens_before(copy));
    CHECK(copy.compare(big) == ClockOrder::After);

    VectorClock small = clock_of(inline_capacity, 1000);
    CHECK(small.is_concurrent(big));
    small.update(big);
    CHECK(small.entries().size() == 4 * inline_capacity);
    CHECK(big.happens_before(small));

    // Shrunk back to the capacity, the clock is inline again: copies stop allocating.
    for (std::size_t i = inline_capacity; i < 3 * inline_capacity; ++i) {
        big.set(100 - i, 0);
    }
    CHECK(big.entries().size() == inline_capacity);
    VectorClock inline_again;
    CHECK(allocations_during([&] { inline_again = big; }) == 0);
    CHECK(inline_again == VectorClock{{100, 1}, {99, 1}, {98, 1}, {97, 1}});
    CHECK(inline_again == big);
}

TEST_CASE("copying a heap clock into one whose buffer has room reuses that buffer") {
    const VectorClock big = clock_of(2 * inline_capacity);
    VectorClock target = clock_of(2 * inline_capacity, 5);
    CHECK(allocations_during([&] { target = big; }) == 0);
    CHECK(target == big);
}

TEST_CASE("an allocation that fails while spilling or growing leaves the clock unchanged") {
    if (!can_fail_allocations) {
        WARN("not checked: this sanitizer runtime's operator new cannot be made to fail");
        return;
    }
    const VectorClock full = clock_of(inline_capacity); // nodes 10, 20, ...: inline and full
    const NodeId fresh = 5;                             // sorts first: every entry moves

    SECTION("set") {
        VectorClock clock = full;
        CHECK(throws_bad_alloc_when_allocation_fails(1, [&] { clock.set(fresh, 3); }));
        CHECK(entries_of(clock) == entries_of(full));
        CHECK(clock == full);
        clock.set(fresh, 3); // and it works once memory is there
        CHECK(clock.get(fresh) == 3);
        CHECK(clock.entries().size() == inline_capacity + 1);
    }
    SECTION("increment") {
        VectorClock clock = full;
        CHECK(throws_bad_alloc_when_allocation_fails(1, [&] { clock.increment(fresh); }));
        CHECK(entries_of(clock) == entries_of(full));
        CHECK(clock.get(fresh) == 0);
    }
    SECTION("update and merge") {
        VectorClock clock = full;
        const VectorClock other{{fresh, 1}, {10, 9}};
        CHECK(throws_bad_alloc_when_allocation_fails(1, [&] { clock.update(other); }));
        CHECK(entries_of(clock) == entries_of(full));
        CHECK(throws_bad_alloc_when_allocation_fails(1, [&] { (void)clock.merge(other); }));
        CHECK(entries_of(clock) == entries_of(full));
        CHECK(other == VectorClock{{fresh, 1}, {10, 9}});
    }
    SECTION("copying a heap clock") {
        const VectorClock big = clock_of(2 * inline_capacity + 1);
        VectorClock clock = full;
        CHECK(throws_bad_alloc_when_allocation_fails(1, [&] { clock = big; }));
        CHECK(entries_of(clock) == entries_of(full));
        VectorClock heap_clock = clock_of(inline_capacity + 1, 3); // buffer too small for big
        const auto before = entries_of(heap_clock);
        CHECK(throws_bad_alloc_when_allocation_fails(1, [&] { heap_clock = big; }));
        CHECK(entries_of(heap_clock) == before);
        CHECK(throws_bad_alloc_when_allocation_fails(1, [&] { VectorClock copy(big); }));
        CHECK(big == clock_of(2 * inline_capacity + 1));
    }
    SECTION("growing a full heap buffer") {
        // Add entries to a heap clock, each time with the next allocation failing, until one
        // addition needs a bigger buffer.
        VectorClock clock = clock_of(inline_capacity + 1);
        bool failed = false;
        for (NodeId node = 1000; node < 1100 && !failed; ++node) {
            const auto before = entries_of(clock);
            failed = throws_bad_alloc_when_allocation_fails(1, [&] { clock.increment(node); });
            if (failed) {
                CHECK(entries_of(clock) == before);
                CHECK(clock.get(node) == 0);
            }
        }
        CHECK(failed);
    }
    SECTION("building from a list") {
        // The spill succeeds and growing fails: the partly built clock must not leak its buffer
        // (LeakSanitizer checks this under the sanitizer presets).
        CHECK(throws_bad_alloc_when_allocation_fails(2, [] {
            const VectorClock clock{{1, 1},  {2, 1},  {3, 1},  {4, 1},  {5, 1},
                                    {6, 1},  {7, 1},  {8, 1},  {9, 1},  {10, 1},
                                    {11, 1}, {12, 1}, {13, 1}, {14, 1}, {15, 1}};
            (void)clock;
        }));
    }
}

// ---- against a naive model ------------------------------------------------------------------

namespace {

using Model = std::map<NodeId, std::uint64_t>; // no zero counters

constexpr NodeId model_nodes = 10; // node ids 0..9: clocks grow past the inline capacity

VectorClock clock_from(const Model& model, std::mt19937& rng) {
    // Set in a shuffled order, so construction does not rely on ascending insertion.
    std::vector<std::pair<NodeId, std::uint64_t>> order(model.begin(), model.end());
    std::shuffle(order.begin(), order.end(), rng);
    VectorClock clock;
    for (const auto& [node, counter] : order) {
        clock.set(node, counter);
    }
    return clock;
}

void model_set(Model& model, NodeId node, std::uint64_t counter) {
    if (counter == 0) {
        model.erase(node);
    } else {
        model[node] = counter;
    }
}

Model model_max(const Model& a, const Model& b) {
    Model out = a;
    for (const auto& [node, counter] : b) {
        out[node] = std::max(out[node], counter);
    }
    return out;
}

ClockOrder model_order(const Model& a, const Model& b) {
    bool less = false;
    bool greater = false;
    for (NodeId node = 0; node < model_nodes; ++node) {
        const auto ia = a.find(node);
        const auto ib = b.find(node);
        const std::uint64_t va = ia == a.end() ? 0 : ia->second;
        const std::uint64_t vb = ib == b.end() ? 0 : ib->second;
        less = less || va < vb;
        greater = greater || va > vb;
    }
    if (less && greater) {
        return ClockOrder::Concurrent;
    }
    if (less) {
        return ClockOrder::Before;
    }
    return greater ? ClockOrder::After : ClockOrder::Equal;
}

/// Empty when `clock` holds exactly `model`, else what differs.
std::string mismatch(const VectorClock& clock, const Model& model) {
    std::ostringstream out;
    for (NodeId node = 0; node <= model_nodes; ++node) {
        const auto it = model.find(node);
        const std::uint64_t expected = it == model.end() ? 0 : it->second;
        if (clock.get(node) != expected) {
            out << "get(" << node << ") = " << clock.get(node) << ", model " << expected << "; ";
        }
    }
    if (entries_of(clock) != std::vector<VectorClock::Entry>(model.begin(), model.end())) {
        out << "entries differ; ";
    }
    if (clock.entries().size() != model.size() || clock.empty() != model.empty()) {
        out << "size differs; ";
    }
    return out.str();
}

/// A random model: mostly around `near` (one counter up or down, or one entry more or less), so
/// that Equal, Before and After come up as often as Concurrent; otherwise any 0..10 entries.
Model random_model(std::mt19937& rng, const Model& near) {
    Model model;
    if (rng() % 2 == 0) {
        model = near;
        const NodeId node = rng() % model_nodes;
        switch (rng() % 4) {
        case 0:
            break;
        case 1:
            model_set(model, node, model.count(node) != 0 ? model[node] + 1 : 1);
            break;
        case 2:
            model_set(model, node, model.count(node) != 0 ? model[node] - 1 : 0);
            break;
        default:
            model_set(model, node, 0);
            break;
        }
        return model;
    }
    const std::size_t count = rng() % (model_nodes + 1);
    for (std::size_t i = 0; i < count; ++i) {
        model_set(model, rng() % model_nodes, rng() % 6);
    }
    return model;
}

} // namespace

TEST_CASE("random operation sequences agree with a map model as clocks grow past the inline "
          "capacity and shrink back") {
    int steps_above_capacity = 0;
    int shrinks_back = 0;
    for (std::uint32_t seed = 1; seed <= 40; ++seed) {
        std::mt19937 rng(seed);
        VectorClock clock;
        Model model;
        for (int step = 0; step < 250; ++step) {
            // Phases of 25 steps that favour adding entries, then removing them.
            const bool growing = (step / 25) % 2 == 0;
            const std::size_t size_before = model.size();
            const NodeId node = rng() % model_nodes;
            switch (rng() % 8) {
            case 0:
            case 1:
            case 2: {
                const std::uint64_t counter = rng() % 10 < (growing ? 2u : 7u) ? 0 : 1 + rng() % 5;
                clock.set(node, counter);
                model_set(model, node, counter);
                break;
            }
            case 3:
                clock.increment(node);
                ++model[node];
                break;
            case 4: {
                const Model other = random_model(rng, model);
                clock.update(clock_from(other, rng));
                model = model_max(model, other);
                break;
            }
            case 5: {
                const Model other = random_model(rng, model);
                clock = clock.merge(clock_from(other, rng));
                model = model_max(model, other);
                break;
            }
            case 6: {
                model = random_model(rng, model);
                const VectorClock other = clock_from(model, rng);
                clock = other;
                break;
            }
            default: {
                // Copies and moves, including onto itself.
                VectorClock copy(clock);
                clock = std::move(copy);
                const VectorClock& alias = clock;
                clock = alias;
                clock.update(alias);
                break;
            }
            }
            steps_above_capacity += model.size() > inline_capacity ? 1 : 0;
            shrinks_back +=
                size_before > inline_capacity && model.size() <= inline_capacity ? 1 : 0;

            const std::string diff = mismatch(clock, model);
            if (!diff.empty()) {
                FAIL_CHECK("seed " << seed << " step " << step << ": " << diff);
                break;
            }
            const VectorClock copy = clock;
            const VectorClock rebuilt = clock_from(model, rng);
            if (!mismatch(copy, model).empty() || copy != clock || !(rebuilt == clock)) {
                FAIL_CHECK("seed " << seed << " step " << step << ": copy or == disagrees");
            }

            const Model other_model = random_model(rng, model);
            const VectorClock other = clock_from(other_model, rng);
            const ClockOrder expected = model_order(model, other_model);
            const ClockOrder mirrored = model_order(other_model, model);
            if (clock.compare(other) != expected || other.compare(clock) != mirrored ||
                clock.happens_before(other) != (expected == ClockOrder::Before) ||
                clock.is_concurrent(other) != (expected == ClockOrder::Concurrent) ||
                (clock == other) != (expected == ClockOrder::Equal) ||
                (clock != other) != (expected != ClockOrder::Equal)) {
                FAIL_CHECK("seed " << seed << " step " << step << ": comparison disagrees");
            }
            const Model max = model_max(model, other_model);
            VectorClock updated = clock;
            updated.update(other);
            if (!mismatch(clock.merge(other), max).empty() || !mismatch(updated, max).empty() ||
                !mismatch(clock, model).empty() || !mismatch(other, other_model).empty()) {
                FAIL_CHECK("seed " << seed << " step " << step << ": merge or update disagrees");
            }
        }
    }
    // Both directions were really exercised.
    CHECK(steps_above_capacity > 3000);
    CHECK(shrinks_back > 200);
}
