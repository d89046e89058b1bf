// ListenerSet on its own: copy-on-write callbacks, delivered in registration order over the
// set as it was when the delivery started, with listeners' exceptions counted and swallowed.

#include <geo/detail/listeners.hpp>

#include "geo_test.hpp"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using Set = geo::detail::ListenerSet<int>;

TEST_CASE("ListenerSet delivers every event to every listener, in registration order",
          "[listeners]") {
    Set set;
    std::vector<std::pair<char, int>> calls;
    set.add([&](const int& e) { calls.emplace_back('a', e); });
    set.add([&](const int& e) { calls.emplace_back('b', e); });
    set.add([&](const int& e) { calls.emplace_back('c', e); });
    set.deliver({1, 2});
    REQUIRE(calls == std::vector<std::pair<char, int>>{
                         {'a', 1}, {'b', 1}, {'c', 1}, {'a', 2}, {'b', 2}, {'c', 2}});
    calls.clear();
    set.deliver({});
    REQUIRE(calls.empty());
}

TEST_CASE("ListenerSet ids are never reused", "[listeners]") {
    Set set;
    std::set<Set::Id> seen;
    const Set::Id a = set.add([](const int&) {});
    const Set::Id b = set.add([](const int&) {});
    const Set::Id c = set.add([](const int&) {});
    seen = {a, b, c};
    REQUIRE(seen.size() == 3);
    REQUIRE(set.remove(b));
    REQUIRE(set.remove(c));
    // The newest id removed: a reuse of "last id + 1" would give c again.
    const Set::Id d = set.add([](const int&) {});
    REQUIRE(seen.insert(d).second);
    REQUIRE(set.remove(a));
    REQUIRE(set.remove(d));
    // Emptied entirely, the set still does not start over.
    for (int i = 0; i < 10; ++i) {
        REQUIRE(seen.insert(set.add([](const int&) {})).second);
    }
}

TEST_CASE("ListenerSet::remove is false for unknown and already removed ids", "[listeners]") {
    Set set;
    REQUIRE_FALSE(set.remove(0));
    REQUIRE_FALSE(set.remove(1)); // never handed out
    int a_calls = 0;
    int b_calls = 0;
    const Set::Id a = set.add([&](const int&) { ++a_calls; });
    const Set::Id b = set.add([&](const int&) { ++b_calls; });
    REQUIRE_FALSE(set.remove(0));
    REQUIRE_FALSE(set.remove(b + 1));
    REQUIRE(set.remove(a));
    REQUIRE_FALSE(set.remove(a));
    set.deliver({7});
    REQUIRE(a_calls == 0);
    REQUIRE(b_calls == 1);
    REQUIRE(set.remove(b));
    REQUIRE_FALSE(set.remove(b));
    set.deliver({7});
    REQUIRE(b_calls == 1);
}

TEST_CASE("a listener that adds a listener: the running delivery does not call it, the next "
          "one does",
          "[listeners]") {
    Set set;
    std::vector<std::string> calls;
    bool added = false;
    set.add([&](const int& e) {
        calls.push_back("adder " + std::to_string(e));
        if (!added) {
            added = true;
            set.add([&](const int& f) { calls.push_back("added " + std::to_string(f)); });
        }
    });
    set.deliver({1, 2});
    REQUIRE(calls == std::vector<std::string>{"adder 1", "adder 2"});
    calls.clear();
    set.deliver({3});
    REQUIRE(calls == std::vector<std::string>{"adder 3", "added 3"});
}

TEST_CASE("a listener that removes listeners: the running delivery still calls them, the next "
          "one does not",
          "[listeners]") {
    Set set;
    std::vector<std::string> calls;
    Set::Id self = 0;
    Set::Id later = 0;
    std::vector<bool> removed; // checked outside: a listener's exception is swallowed
    self = set.add([&](const int& e) {
        calls.push_back("remover " + std::to_string(e));
        if (e == 1) {
            removed.push_back(set.remove(later));
            removed.push_back(set.remove(self));
        }
    });
    later = set.add([&](const int& e) { calls.push_back("later " + std::to_string(e)); });
    const Set::Id last =
        set.add([&](const int& e) { calls.push_back("last " + std::to_string(e)); });
    set.deliver({1, 2});
    REQUIRE(removed == std::vector<bool>{true, true});
    REQUIRE(set.errors() == 0);
    REQUIRE(calls == std::vector<std::string>{"remover 1", "later 1", "last 1", "remover 2",
                                              "later 2", "last 2"});
    calls.clear();
    set.deliver({3});
    REQUIRE(calls == std::vector<std::string>{"last 3"});
    REQUIRE(set.remove(last));
    REQUIRE_FALSE(set.any());
}

TEST_CASE("a throwing listener is counted in errors() and the others still run", "[listeners]") {
    Set set;
    REQUIRE(set.errors() == 0);
    std::vector<int> before;
    std::vector<int> after;
    set.add([&](const int& e) { before.push_back(e); });
    set.add([](const int& e) {
        if (e % 2 == 0) {
            throw std::runtime_error("even");
        }
        if (e == 3) {
            throw 3; // not a std::exception
        }
    });
    set.add([&](const int& e) { after.push_back(e); });
    set.deliver({1, 2, 3, 4});
    REQUIRE(before == std::vector<int>{1, 2, 3, 4});
    REQUIRE(after == std::vector<int>{1, 2, 3, 4});
    REQUIRE(set.errors() == 3);
    set.deliver({5});
    REQUIRE(set.errors() == 3);
    set.deliver({6});
    REQUIRE(set.errors() == 4);
}

TEST_CASE("ListenerSet::any tracks whether a listener is registered", "[listeners]") {
    Set set;
    REQUIRE_FALSE(set.any());
    const Set::Id a = set.add([](const int&) {});
    REQUIRE(set.any());
    const Set::Id b = set.add([](const int&) {});
    REQUIRE(set.remove(a));
    REQUIRE(set.any()); // b is still there
    REQUIRE_FALSE(set.remove(a));
    REQUIRE(set.any());
    REQUIRE(set.remove(b));
    REQUIRE_FALSE(set.any());
    REQUIRE_FALSE(set.remove(b)); // a failed remove of an empty set changes nothing
    REQUIRE_FALSE(set.any());
    set.add([](const int&) {});
    REQUIRE(set.any());
}

TEST_CASE("ListenerSet under concurrent add, remove and deliver loses and duplicates nothing",
          "[listeners][threads]") {
    // Each thread registers a listener, delivers one event naming itself, and removes the
    // listener: its own listener is registered for the whole of its own delivery, so it must
    // see exactly one of its own events per round, whatever the other threads do. A permanent
    // listener sees every event exactly once. TSan checks the list is never read while written.
    constexpr int threads = 4;
    constexpr int rounds = 1000;
    Set set;
    std::atomic<long> permanent_calls{0};
    set.add([&](const int&) { permanent_calls.fetch_add(1, std::memory_order_relaxed); });
    std::vector<std::atomic<long>> own_hits(threads);
    std::vector<std::atomic<long>> any_hits(threads);
    std::vector<std::vector<Set::Id>> ids(threads);
    std::vector<int> failed_removes(threads, 0);
    std::atomic<int> ready{0};
    std::vector<std::thread> workers;
    workers.reserve(threads);
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            ready.fetch_add(1);
            while (ready.load() < threads) { // start together, so the rounds overlap
                std::this_thread::yield();
            }
            for (int i = 0; i < rounds; ++i) {
                const Set::Id id = set.add([&, t](const int& from) {
                    any_hits[static_cast<std::size_t>(t)].fetch_add(1);
                    if (from == t) {
                        own_hits[static_cast<std::size_t>(t)].fetch_add(1);
                    }
                });
                ids[static_cast<std::size_t>(t)].push_back(id);
                set.deliver({t});
                if (!set.remove(id)) {
                    ++failed_removes[static_cast<std::size_t>(t)];
                }
            }
        });
    }
    for (auto& worker : workers) {
        worker.join();
    }
    std::set<Set::Id> distinct;
    for (int t = 0; t < threads; ++t) {
        const auto ti = static_cast<std::size_t>(t);
        INFO("thread " << t);
        REQUIRE(own_hits[ti].load() == rounds);
        REQUIRE(any_hits[ti].load() >= rounds);
        REQUIRE(failed_removes[ti] == 0);
        distinct.insert(ids[ti].begin(), ids[ti].end());
    }
    REQUIRE(distinct.size() == static_cast<std::size_t>(threads) * rounds);
    REQUIRE(permanent_calls.load() == static_cast<long>(threads) * rounds);
    REQUIRE(set.any()); // the permanent listener
    REQUIRE(set.errors() == 0);
}
