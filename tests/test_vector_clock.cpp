#include <geo/vector_clock.hpp>

#include "geo_test.hpp"

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

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
