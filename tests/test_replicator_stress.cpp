// Stress and fault-injection tests of the replicator:
//  - a randomized differential test of detail::KeyTable against std::unordered_map;
//  - a single-threaded 3-region test of the fanout queue bookkeeping (owed counts, cursors, GC,
//    detached copies) through the public API;
//  - a multi-threaded stress of two replicas exchanging entries while every member is called
//    concurrently, conflict listeners call back in, ending with a full exchange and a check that
//    both replicas hold identical records (run it under TSan and ASan+UBSan).
//  - allocation-failure sweeps, and regression tests of defects found in review ([review]).
#if defined(__GNUC__) && !defined(__clang__)
// This file replaces the global operator new/delete with malloc/free (allocation-failure
// injection); GCC then sees inlined std::allocator pairs as mismatched. They are not.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

#include <geo/detail/key_table.hpp>
#include <geo/replicator.hpp>

#include "geo_test.hpp"
#include "replication_fixtures.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

// ---------------------------------------------------------------------------------------------
// Allocation-failure injection: this executable replaces the global operator new; a thread that
// arms `fail_countdown` with n gets std::bad_alloc from its (n+1)-th allocation.
// ---------------------------------------------------------------------------------------------
// TSan's runtime defines operator new itself (a second definition does not link), so under TSan
// the injection and the tests that need it are left out.
#if defined(__SANITIZE_THREAD__)
#define GEO_REVIEW_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GEO_REVIEW_TSAN 1
#endif
#endif
#ifndef GEO_REVIEW_TSAN
#define GEO_REVIEW_TSAN 0
#endif

#if !GEO_REVIEW_TSAN
namespace {
thread_local long fail_countdown = -1;
} // namespace

void* operator new(std::size_t size) {
    if (fail_countdown >= 0 && fail_countdown-- == 0) {
        throw std::bad_alloc();
    }
    if (void* p = std::malloc(size == 0 ? 1 : size)) {
        return p;
    }
    throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
    return ::operator new(size);
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
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
    return std::malloc(size == 0 ? 1 : size);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}

namespace {
/// Runs `op` with its thread's (n+1)-th allocation failing. `fired`: the failure was injected
/// (the op allocates more than n times); `threw`: it reached the caller as std::bad_alloc.
struct Injection {
    bool fired;
    bool threw;
};
template <class Op>
Injection fail_allocation(long n, Op&& op) {
    fail_countdown = n;
    bool threw = false;
    try {
        op();
    } catch (const std::bad_alloc&) {
        threw = true;
    }
    const bool fired = fail_countdown < 0;
    fail_countdown = -1;
    return Injection{fired, threw};
}
} // namespace
#endif

namespace {

using geo::ActiveActiveGeoConfig;
using geo::ActiveActiveReplicator;
using geo::ConflictResolutionMode;
using geo::FanoutEntry;
using geo::GeoRecord;
using geo::GeoWriteOutcome;
using geo::RegionRaftGroup;

// ---------------------------------------------------------------------------------------------
// KeyTable vs std::unordered_map
// ---------------------------------------------------------------------------------------------

struct TableNode {
    std::string key;
    std::uint64_t value{};
};

using HashFn = std::size_t (*)(std::string_view);

std::size_t real_hash(std::string_view key) {
    return geo::detail::hash_key(key);
}

/// Few distinct hashes: many equal full hashes, long probe runs.
std::size_t tiny_hash(std::string_view key) {
    return geo::detail::hash_key(key) % 7;
}

/// Distinct full hashes whose low bits put every key in the last 4 buckets of any table of
/// up to 65536 buckets: every probe run wraps around the end of the table.
std::size_t wrapping_hash(std::string_view key) {
    const std::size_t h = geo::detail::hash_key(key);
    return (h & ~std::size_t{0xFFFF}) | (0xFFFF - (h & 3));
}

/// Hashes in a narrow window of buckets with distinct values: backward shifts across homes.
std::size_t clustered_hash(std::string_view key) {
    const std::size_t h = geo::detail::hash_key(key);
    return (h & ~std::size_t{0xFF}) | ((h & 0xF) * 3);
}

void check_table_equals_model(
    const geo::detail::KeyTable<TableNode>& table,
    const std::unordered_map<std::string, std::pair<TableNode*, std::uint64_t>>& model,
    const std::vector<std::string>& universe, HashFn hash) {
    REQUIRE(table.size() == model.size());
    for (const auto& key : universe) {
        TableNode* found = table.find(key, hash(key));
        auto it = model.find(key);
        if (it == model.end()) {
            REQUIRE(found == nullptr);
        } else {
            // Nodes never move: the table hands back the very node it was given.
            REQUIRE(found == it->second.first);
            REQUIRE(found->key == key);
            REQUIRE(found->value == it->second.second);
        }
    }
    std::size_t visited = 0;
    table.for_each([&](const TableNode& node, std::size_t h) {
        ++visited;
        auto it = model.find(node.key);
        REQUIRE(it != model.end());
        REQUIRE(it->second.first == &node);
        REQUIRE(h == hash(node.key));
    });
    REQUIRE(visited == model.size());
}

// ---------------------------------------------------------------------------------------------
// Replicator helpers
// ---------------------------------------------------------------------------------------------

using geo_test::describe;

/// Checks what the public API shows of `source`'s queue; returns "" or what is wrong.
std::string queue_problem(const ActiveActiveReplicator& rep, const std::string& source) {
    std::ostringstream problem;
    std::set<std::pair<std::string, std::uint64_t>> owed_to_someone;
    for (const auto& target : rep.config().regions) {
        const auto batch = rep.peek_fanout(source, target);
        const std::size_t pending = rep.pending_fanout_len(source, target);
        if (source == target) {
            if (!batch.empty() || pending != 0) {
                problem << source << " owes itself " << batch.size() << "/" << pending << "; ";
            }
            continue;
        }
        if (batch.size() != pending) {
            problem << source << "->" << target << ": peek returns " << batch.size()
                    << " entries but pending_fanout_len says " << pending << "; ";
        }
        std::set<std::string> keys;
        for (std::size_t i = 0; i < batch.size(); ++i) {
            if (i > 0 && batch[i].seq <= batch[i - 1].seq) {
                problem << source << "->" << target << ": seq not ascending at " << i << "; ";
            }
            if (batch[i].seq != batch[i].record.seq || batch[i].record.region != source) {
                problem << source << "->" << target << ": malformed entry " << i << "; ";
            }
            if (!keys.insert(batch[i].key).second) {
                problem << source << "->" << target << ": key " << batch[i].key
                        << " queued twice; ";
            }
            owed_to_someone.emplace(batch[i].key, batch[i].seq);
        }
        // A prefix peek is a prefix of the full peek.
        const auto prefix = rep.peek_fanout(source, target, batch.size() / 2);
        if (!std::equal(prefix.begin(), prefix.end(), batch.begin()) ||
            prefix.size() != batch.size() / 2) {
            problem << source << "->" << target << ": a limited peek is not a prefix; ";
        }
    }
    if (rep.pending_fanout_len(source) != owed_to_someone.size()) {
        problem << source << ": pending_fanout_len " << rep.pending_fanout_len(source) << " but "
                << owed_to_someone.size() << " entries are owed to someone; ";
    }
    return problem.str();
}

// ---------------------------------------------------------------------------------------------
// Single-threaded 3-region queue test
// ---------------------------------------------------------------------------------------------

constexpr std::size_t three = 3;
const std::array<std::string, three> regions3{"us", "eu", "ap"};

class ThreeRegions {
public:
    ThreeRegions(ConflictResolutionMode mode, std::uint64_t seed) : rng_(seed) {
        for (std::size_t i = 0; i < three; ++i) {
            auto config = ActiveActiveGeoConfig::multi_region(regions3[i],
                                                              {regions3.begin(), regions3.end()});
            config.conflict_mode = mode;
            std::vector<RegionRaftGroup> groups;
            for (std::size_t g = 0; g < three; ++g) {
                groups.emplace_back(regions3[g], 10 + g, std::vector<geo::NodeId>{g + 1});
            }
            const std::int64_t skew = static_cast<std::int64_t>(i) * 7 - 7;
            reps_[i] = std::make_unique<ActiveActiveReplicator>(config, groups, [this, skew] {
                return static_cast<std::uint64_t>(static_cast<std::int64_t>(now_) + skew);
            });
        }
    }

    std::size_t pick(std::size_t n) {
        return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
    }

    void step() {
        const std::size_t who = pick(three);
        ActiveActiveReplicator& rep = *reps_[who];
        const std::string key = "k" + std::to_string(pick(12));
        switch (pick(10)) {
        case 0:
        case 1:
        case 2:
            record_local(rep.put(key, "v" + std::to_string(counter_++)), rep, key);
            break;
        case 3:
            record_local(rep.erase(key), rep, key);
            break;
        case 4:
            if (mode() == ConflictResolutionMode::LastWriterWins) {
                record_local(rep.apply_local_write(regions3[who], key,
                                                   "x" + std::to_string(counter_++),
                                                   now_ + pick(40)),
                             rep, key);
            } else {
                ++now_;
            }
            break;
        case 5:
        case 6:
        case 7: {
            // Ship part of a stream; sometimes lose the shipment, apply it twice, or apply a
            // prefix only; acknowledge what the receiver reports.
            std::size_t target = pick(three);
            if (target == who) {
                target = (who + 1) % three;
            }
            auto batch = rep.peek_fanout(regions3[who], regions3[target], pick(6) + 1);
            const std::size_t fate = pick(5);
            if (fate == 0) {
                batch.clear(); // lost in transit
            } else if (fate == 1 && !batch.empty()) {
                batch.resize(pick(batch.size())); // partially delivered
            }
            reps_[target]->apply_remote(regions3[who], batch);
            if (fate == 2) {
                reps_[target]->apply_remote(regions3[who], batch); // re-delivered
            }
            if (pick(3) != 0) {
                rep.acknowledge_fanout(regions3[who], regions3[target],
                                       reps_[target]->region_sequences()[regions3[who]]);
            }
            break;
        }
        case 8: {
            std::size_t target = pick(three);
            if (target == who) {
                target = (who + 2) % three;
            }
            reps_[target]->apply_remote(regions3[who],
                                        rep.drain_fanout(regions3[who], regions3[target]));
            break;
        }
        default:
            now_ += pick(3);
            break;
        }
    }

    void exchange_all() {
        for (int round = 0; round < 100; ++round) {
            bool moved = false;
            for (std::size_t s = 0; s < three; ++s) {
                for (std::size_t t = 0; t < three; ++t) {
                    if (s == t) {
                        continue;
                    }
                    auto batch = reps_[s]->peek_fanout(regions3[s], regions3[t]);
                    moved = moved || !batch.empty();
                    reps_[t]->apply_remote(regions3[s], batch);
                    reps_[s]->acknowledge_fanout(regions3[s], regions3[t],
                                                 reps_[t]->region_sequences()[regions3[s]]);
                }
            }
            if (!moved) {
                return;
            }
        }
    }

    ActiveActiveReplicator& rep(std::size_t i) { return *reps_[i]; }
    const std::map<std::string, std::vector<GeoRecord>>& committed() const { return committed_; }

private:
    ConflictResolutionMode mode() const { return reps_[0]->config().conflict_mode; }

    void record_local(const GeoWriteOutcome& outcome, ActiveActiveReplicator& rep,
                      const std::string& key) {
        if (std::holds_alternative<geo::Committed>(outcome)) {
            committed_[key].push_back(*rep.get_record(key));
        }
    }

    std::mt19937_64 rng_;
    std::uint64_t now_{1'000'000};
    std::uint64_t counter_{0};
    std::array<std::unique_ptr<ActiveActiveReplicator>, three> reps_;
    std::map<std::string, std::vector<GeoRecord>> committed_;
};

// ---------------------------------------------------------------------------------------------
// Two replicas, many threads
// ---------------------------------------------------------------------------------------------

const std::array<std::string, 2> regions2{"us", "eu"};
constexpr std::size_t stress_keys = 48;
constexpr std::size_t echo_keys = 6;

std::vector<std::string> stress_universe() {
    std::vector<std::string> keys;
    for (std::size_t i = 0; i < stress_keys; ++i) {
        keys.push_back("key-" + std::to_string(i) + (i % 5 == 0 ? std::string(40, 'x') : ""));
    }
    for (std::size_t i = 0; i < echo_keys; ++i) {
        keys.push_back("echo-" + std::to_string(i));
    }
    return keys;
}

struct Cluster {
    std::atomic<std::uint64_t> physical{1'000'000};
    std::array<std::unique_ptr<ActiveActiveReplicator>, 2> reps;
    std::array<std::mutex, 2> ship_mu; // direction i -> 1-i: streams are FIFO
    std::atomic<bool> listener_writes{true};
    std::atomic<std::uint64_t> explicit_ts{1'000'000};
    std::atomic<std::uint64_t> problems{0};
    std::array<std::atomic<std::uint64_t>, 2> heard{}; // conflicts heard by each replica
    std::mutex problem_mu;
    std::string first_problem;

    Cluster(ConflictResolutionMode mode, std::chrono::nanoseconds grace) {
        for (std::size_t i = 0; i < 2; ++i) {
            auto config =
                ActiveActiveGeoConfig::multi_region(regions2[i], {regions2[0], regions2[1]});
            config.conflict_mode = mode;
            config.tombstone_grace = grace;
            config.conflict_log_capacity = 8;
            std::vector<RegionRaftGroup> groups{RegionRaftGroup(regions2[0], 1, {1}),
                                                RegionRaftGroup(regions2[1], 2, {2})};
            const std::uint64_t skew = i == 0 ? 0 : 37;
            reps[i] = std::make_unique<ActiveActiveReplicator>(
                config, groups, [this, skew] { return physical.load() + skew; });
        }
    }

    void problem(const std::string& what) {
        if (problems.fetch_add(1) == 0) {
            std::lock_guard<std::mutex> lock(problem_mu);
            first_problem = what;
        }
    }

    /// Ships `from`'s stream to the other replica. `blocking` false: give up if another
    /// thread (possibly this one, further up the stack) is shipping that stream.
    void ship(std::size_t from, std::size_t max_entries, int fate, bool blocking) {
        const std::size_t to = 1 - from;
        std::unique_lock<std::mutex> lock(ship_mu[from], std::defer_lock);
        if (blocking) {
            lock.lock();
        } else if (!lock.try_lock()) {
            return;
        }
        std::vector<FanoutEntry> batch;
        if (fate == 3) {
            batch = reps[from]->drain_fanout(regions2[from], regions2[to]);
        } else {
            batch = reps[from]->peek_fanout(regions2[from], regions2[to], max_entries);
            if (fate == 0) {
                batch.clear(); // lost in transit
            } else if (fate == 1 && !batch.empty()) {
                batch.resize(batch.size() / 2); // partially delivered
            }
        }
        for (std::size_t i = 1; i < batch.size(); ++i) {
            if (batch[i].seq <= batch[i - 1].seq) {
                problem("shipped batch not in ascending seq");
            }
        }
        const auto outcomes = reps[to]->apply_remote(regions2[from], batch);
        if (outcomes.size() != batch.size()) {
            problem("apply_remote returned the wrong number of outcomes");
        }
        if (fate == 2) {
            for (const auto& outcome : reps[to]->apply_remote(regions2[from], batch)) {
                if (!std::holds_alternative<geo::AlreadyApplied>(outcome)) {
                    problem("a re-delivered entry was not AlreadyApplied");
                }
            }
        }
        lock.unlock();
        // Safe from any thread at any time: everything up to the receiver's highest applied seq
        // of this stream was applied there.
        reps[from]->acknowledge_fanout(regions2[from], regions2[to],
                                       reps[to]->region_sequences()[regions2[from]]);
    }

    void acknowledge(std::size_t from) {
        const std::size_t to = 1 - from;
        reps[from]->acknowledge_fanout(regions2[from], regions2[to],
                                       reps[to]->region_sequences()[regions2[from]]);
    }

    bool exchange_all() {
        for (int round = 0; round < 1000; ++round) {
            bool moved = false;
            for (std::size_t from = 0; from < 2; ++from) {
                const std::size_t to = 1 - from;
                auto batch = reps[from]->peek_fanout(regions2[from], regions2[to]);
                moved = moved || !batch.empty();
                reps[to]->apply_remote(regions2[from], batch);
                acknowledge(from);
            }
            if (!moved && reps[0]->pending_fanout_len(regions2[0]) == 0 &&
                reps[1]->pending_fanout_len(regions2[1]) == 0) {
                return true;
            }
        }
        return false;
    }
};

void register_listeners(Cluster& cluster, std::size_t self) {
    ActiveActiveReplicator& rep = *cluster.reps[self];
    rep.on_conflict([&cluster, self](const geo::ConflictEvent& event) {
        cluster.heard[self].fetch_add(1, std::memory_order_relaxed);
        ActiveActiveReplicator& me = *cluster.reps[self];
        // Reads while other threads write; the event's winner is not necessarily still stored.
        const auto stored = me.get_record(event.key);
        if (!stored) {
            // Possible only after a purge (chaos test) or if the key was never stored.
            static_cast<void>(me.record_count());
        }
        static_cast<void>(me.pending_fanout_len(regions2[self]));
        static_cast<void>(me.recent_conflicts());
        const std::uint64_t pick = event.loser.seq + event.winner.seq + event.loser.timestamp_ms;
        if (cluster.listener_writes.load() && pick % 4 == 0) {
            // Writes back in: a new commit, which may raise a conflict on another thread.
            me.put("echo-" + std::to_string(pick % echo_keys), event.winner.value);
        }
        if (cluster.listener_writes.load() && pick % 5 == 1) {
            // Ships (never blocking: this thread may already be shipping that stream).
            cluster.ship(self, 4, 4, false);
        }
        if (pick % 7 == 2) {
            static_cast<void>(me.peek_fanout(regions2[self], regions2[1 - self], 3));
        }
        if (pick % 11 == 3) {
            throw std::runtime_error("listener failure"); // swallowed and counted
        }
    });
}

void stress_worker(Cluster& cluster, std::size_t self, std::size_t thread_no,
                   std::size_t iterations, std::uint64_t seed, bool chaos) {
    std::mt19937_64 rng(seed);
    auto pick = [&rng](std::size_t n) {
        return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
    };
    const auto universe = stress_universe();
    ActiveActiveReplicator& rep = *cluster.reps[self];
    const std::string& region = regions2[self];
    const geo::NodeId private_node = 100 + thread_no;
    std::uint64_t private_counter = 0;
    const bool vc = rep.config().conflict_mode == ConflictResolutionMode::VectorClock;
    // Shared, not on this stack: a listener may still run once after its removal (deliver
    // works on a snapshot of the list).
    auto ignored = std::make_shared<std::atomic<std::uint64_t>>(0);

    for (std::size_t it = 0; it < iterations; ++it) {
        const std::string& key = universe[pick(stress_keys)];
        const std::string value = "t" + std::to_string(thread_no) + "-" + std::to_string(it) +
                                  (pick(4) == 0 ? std::string(64, 'v') : "");
        switch (pick(22)) {
        case 0:
        case 1:
        case 2:
        case 3:
            rep.put(key, value);
            break;
        case 4:
            rep.erase(key);
            break;
        case 5:
        case 6: {
            // The caller's own timestamp and clock. In vector-clock mode the clock names only
            // this thread's node and the timestamp grows with it, so "clock order implies
            // timestamp order" holds; in LWW mode any timestamp is fine.
            geo::VectorClock clock;
            std::uint64_t ts = 0;
            if (vc) {
                clock.set(private_node, ++private_counter);
                ts = cluster.explicit_ts.fetch_add(1 + pick(3));
            } else {
                ts = cluster.physical.load() + pick(60);
            }
            if (pick(5) == 0) {
                rep.apply_local_delete(region, key, ts, clock);
            } else {
                rep.apply_local_write(region, key, value, ts, clock);
            }
            break;
        }
        case 7:
        case 8:
        case 9:
            cluster.ship(self, pick(8) + 1, static_cast<int>(pick(5)), true);
            break;
        case 10:
            cluster.ship(1 - self, 64, 4, true); // this thread ships the peer's stream too
            break;
        case 11:
            cluster.acknowledge(pick(2));
            break;
        case 12:
            static_cast<void>(rep.peek_fanout(region, regions2[1 - self], pick(10)));
            break;
        case 13:
            static_cast<void>(rep.get_record(key));
            static_cast<void>(rep.get(key));
            break;
        case 14:
            rep.purge_tombstones();
            break;
        case 15:
            static_cast<void>(rep.record_count());
            static_cast<void>(rep.region_sequences());
            static_cast<void>(rep.groups());
            static_cast<void>(rep.pending_fanout_len(region));
            static_cast<void>(rep.pending_fanout_len(region, regions2[1 - self]));
            break;
        case 16:
            static_cast<void>(rep.recent_conflicts());
            static_cast<void>(rep.conflict_count());
            break;
        case 17: {
            // A listener that comes and goes while conflicts are raised.
            const auto id =
                rep.on_conflict([ignored](const geo::ConflictEvent&) { ignored->fetch_add(1); });
            std::this_thread::yield();
            rep.remove_conflict_listener(id);
            break;
        }
        case 18:
            cluster.physical.fetch_add(pick(3));
            break;
        case 19:
            if (chaos) {
                // apply_remote_write, the Rust module's remote write: it shares the origin's
                // counter with apply_remote, so it is only mixed in where convergence is not
                // checked.
                rep.apply_remote_write(regions2[1 - self], key, value,
                                       cluster.physical.load() + pick(100));
            } else {
                rep.put(key, value);
            }
            break;
        case 20:
            if (chaos) {
                cluster.physical.fetch_add(1 + pick(50)); // tombstones become purgeable
                // A commit of the peer's region here: the key's slot joins the peer region's
                // queue on this replica, so later commits unlink it across queues.
                rep.apply_local_write(regions2[1 - self], key, value,
                                      cluster.physical.load() + pick(100));
                static_cast<void>(rep.peek_fanout(regions2[1 - self], region, pick(5)));
                rep.acknowledge_fanout(regions2[1 - self], region,
                                       rep.region_sequences()[regions2[1 - self]] - pick(3));
            }
            break;
        default:
            static_cast<void>(rep.drain_fanout(region, region)); // owes itself nothing
            break;
        }
    }
}

void run_stress(Cluster& cluster, std::size_t iterations, std::uint64_t seed, bool chaos) {
    register_listeners(cluster, 0);
    register_listeners(cluster, 1);
    std::vector<std::thread> threads;
    constexpr std::size_t per_replica = 3;
    for (std::size_t i = 0; i < 2 * per_replica; ++i) {
        threads.emplace_back(stress_worker, std::ref(cluster), i % 2, i, iterations, seed + i,
                             chaos);
    }
    for (auto& t : threads) {
        t.join();
    }
    INFO("conflicts heard: " << cluster.heard[0].load() << " / " << cluster.heard[1].load());
    CHECK(cluster.heard[0].load() + cluster.heard[1].load() > 0); // the listeners did run
    CHECK(cluster.problems.load() == 0);
    INFO("first problem: " << cluster.first_problem);
    REQUIRE(cluster.problems.load() == 0);
}

#if !GEO_REVIEW_TSAN
// ---------------------------------------------------------------------------------------------
// Allocation-failure sweep
// ---------------------------------------------------------------------------------------------

const std::array<std::string, 5> fault_keys{"k1", "k2", "k3", "k4", "k5"};

struct FaultPair {
    std::unique_ptr<ActiveActiveReplicator> a; // local "us"
    std::unique_ptr<ActiveActiveReplicator> b; // local "eu"
    std::shared_ptr<std::atomic<std::uint64_t>> heard_b =
        std::make_shared<std::atomic<std::uint64_t>>(0);

    FaultPair() {
        for (std::size_t i = 0; i < 2; ++i) {
            auto config =
                ActiveActiveGeoConfig::multi_region(regions2[i], {regions2[0], regions2[1]});
            config.conflict_mode = ConflictResolutionMode::VectorClock;
            config.conflict_log_capacity = 2;
            std::vector<RegionRaftGroup> groups{RegionRaftGroup(regions2[0], 1, {1}),
                                                RegionRaftGroup(regions2[1], 2, {2})};
            const std::uint64_t physical = i == 0 ? 5000 : 4000; // "us" is ahead
            auto rep = std::make_unique<ActiveActiveReplicator>(config, groups,
                                                                [physical] { return physical; });
            (i == 0 ? a : b) = std::move(rep);
        }
        auto heard = heard_b;
        b->on_conflict([heard](const geo::ConflictEvent&) { heard->fetch_add(1); });
        a->put("k1", "a1");
        a->put("k2", "a2");
        a->erase("k3");
        b->put("k2", std::string(100, 'b')); // concurrent with a's k2, loses to it (older ts)
        b->put("k4", "b4");
        b->apply_remote("us", a->peek_fanout("us", "eu", 1)); // part of a's stream shipped
        a->acknowledge_fanout("us", "eu", 1);
    }

    std::string snapshot() const {
        std::ostringstream out;
        for (const auto* rep : {a.get(), b.get()}) {
            out << "count=" << rep->record_count() << " conflicts=" << rep->conflict_count();
            for (const auto& [region, seq] : rep->region_sequences()) {
                out << ' ' << region << '=' << seq;
            }
            for (const auto& key : fault_keys) {
                out << ' ' << key << describe(rep->get_record(key));
            }
            for (const auto& s : regions2) {
                for (const auto& t : regions2) {
                    for (const auto& e : rep->peek_fanout(s, t)) {
                        out << " owed " << s << "->" << t << ':' << e.key << '@' << e.seq;
                    }
                }
            }
            out << " | ";
        }
        return out.str();
    }

    void exchange() {
        for (int round = 0; round < 10; ++round) {
            b->apply_remote("us", a->peek_fanout("us", "eu"));
            a->acknowledge_fanout("us", "eu", b->region_sequences()["us"]);
            a->apply_remote("eu", b->peek_fanout("eu", "us"));
            b->acknowledge_fanout("eu", "us", a->region_sequences()["eu"]);
        }
    }
};

using FaultOp = void (*)(FaultPair&, const std::vector<FanoutEntry>&);

struct FaultCase {
    const char* name;
    FaultOp op;
};

const std::array<FaultCase, 9> fault_cases{{
    // One entry: a batch is applied entry by entry, and entries before a failing one stay
    // applied (re-sending the batch is safe, they answer AlreadyApplied).
    {"b.apply_remote(a's k2): displaces b's queued k2",
     [](FaultPair& p, const std::vector<FanoutEntry>& batch) {
         for (const auto& entry : batch) {
             if (entry.key == "k2") {
                 p.b->apply_remote("us", entry);
             }
         }
     }},
    {"a.put(k1): requeues a queued key",
     [](FaultPair& p, const std::vector<FanoutEntry>&) { p.a->put("k1", std::string(50, 'n')); }},
    {"a.put(k5): a new key",
     [](FaultPair& p, const std::vector<FanoutEntry>&) { p.a->put("k5", "fresh"); }},
    {"b.erase(k2)", [](FaultPair& p, const std::vector<FanoutEntry>&) { p.b->erase("k2"); }},
    {"b.apply_local_write(k4) concurrent, displaces",
     [](FaultPair& p, const std::vector<FanoutEntry>&) {
         p.b->apply_local_write("eu", "k4", std::string(70, 'w'), 9000, geo::VectorClock{{99, 1}});
     }},
    {"b.apply_local_write(k2) concurrent, rejected",
     [](FaultPair& p, const std::vector<FanoutEntry>&) {
         p.b->apply_local_write("eu", "k2", "lost", 10, geo::VectorClock{{98, 1}});
     }},
    {"a.drain_fanout",
     [](FaultPair& p, const std::vector<FanoutEntry>&) {
         const auto drained = p.a->drain_fanout("us", "eu");
         // Only the drain is under test: a failed shipment of drained entries loses them by
         // contract.
         const long armed = fail_countdown;
         fail_countdown = -1;
         p.b->apply_remote("us", drained);
         fail_countdown = armed;
     }},
    {"a.peek_fanout",
     [](FaultPair& p, const std::vector<FanoutEntry>&) {
         static_cast<void>(p.a->peek_fanout("us", "eu"));
     }},
    {"a.purge_tombstones",
     [](FaultPair& p, const std::vector<FanoutEntry>&) { p.a->purge_tombstones(); }},
}};

struct FaultOutcome {
    std::size_t injected = 0;                ///< runs in which an allocation failed
    std::vector<std::string> changed;        ///< runs that threw yet changed observable state
    std::vector<std::string> lost_conflicts; ///< runs after which b heard fewer conflicts
};

FaultOutcome sweep(const FaultCase& fault) {
    FaultOutcome result;
    // Reference: the op, then a full exchange, with no failure.
    FaultPair reference;
    const auto ref_batch = reference.a->peek_fanout("us", "eu");
    fault.op(reference, ref_batch);
    reference.exchange();
    const std::uint64_t ref_heard = reference.heard_b->load();

    for (long n = 0;; ++n) {
        FaultPair pair;
        const auto batch = pair.a->peek_fanout("us", "eu");
        const std::string before = pair.snapshot();
        const auto [fired, threw] = fail_allocation(n, [&] { fault.op(pair, batch); });
        if (!fired) {
            break; // the op needs fewer than n+1 allocations: every point was covered
        }
        ++result.injected;
        INFO(fault.name << ", failing allocation #" << n);
        REQUIRE(queue_problem(*pair.a, "us") == "");
        REQUIRE(queue_problem(*pair.a, "eu") == "");
        REQUIRE(queue_problem(*pair.b, "eu") == "");
        REQUIRE(queue_problem(*pair.b, "us") == "");
        if (threw) {
            const std::string after = pair.snapshot();
            if (after != before) {
                result.changed.push_back("allocation #" + std::to_string(n) + ":\n  before " +
                                         before + "\n  after  " + after);
            }
            fault.op(pair, batch); // the host retries
        }
        pair.exchange();
        // No stored or owed write was lost: both replicas agree, on the same values as without
        // the failure (a retried commit may carry a new seq, so seqs are not compared).
        for (const auto& key : fault_keys) {
            const auto ra = pair.a->get_record(key);
            const auto rb = pair.b->get_record(key);
            INFO("key " << key << ": " << describe(ra) << " vs " << describe(rb) << "; reference "
                        << describe(reference.a->get_record(key)));
            REQUIRE(ra == rb);
            const auto ref = reference.a->get_record(key);
            REQUIRE(ra.has_value() == ref.has_value());
            if (ra) {
                REQUIRE(std::tie(ra->region, ra->value, ra->deleted, ra->timestamp_ms) ==
                        std::tie(ref->region, ref->value, ref->deleted, ref->timestamp_ms));
            }
        }
        REQUIRE(pair.a->pending_fanout_len("us") == 0);
        REQUIRE(pair.b->pending_fanout_len("eu") == 0);
        if (pair.heard_b->load() < ref_heard) {
            result.lost_conflicts.push_back("allocation #" + std::to_string(n) + ": heard " +
                                            std::to_string(pair.heard_b->load()) + " < " +
                                            std::to_string(ref_heard));
        }
    }
    return result;
}

#endif // !GEO_REVIEW_TSAN

} // namespace

// =============================================================================================

TEST_CASE("KeyTable agrees with std::unordered_map under random insert/find/erase",
          "[stress][key_table]") {
    const std::array<std::pair<const char*, HashFn>, 4> hashes{
        std::make_pair("real", &real_hash), std::make_pair("tiny", &tiny_hash),
        std::make_pair("wrapping", &wrapping_hash), std::make_pair("clustered", &clustered_hash)};
    for (const auto& [hash_name, hash] : hashes) {
        for (std::uint64_t seed = 1; seed <= 40; ++seed) {
            INFO("hash " << hash_name << ", seed " << seed);
            std::mt19937_64 rng(seed);
            const std::size_t universe_size = 8 + seed * 7;
            std::vector<std::string> universe;
            for (std::size_t i = 0; i < universe_size; ++i) {
                universe.push_back("key" + std::to_string(i) +
                                   (i % 3 == 0 ? std::string(20, 'p') : ""));
            }
            geo::detail::KeyTable<TableNode> table;
            std::unordered_map<std::string, std::pair<TableNode*, std::uint64_t>> model;
            // Phases: insert-heavy, balanced, erase-heavy, balanced.
            const std::array<unsigned, 4> insert_percent{85, 50, 15, 50};
            std::uint64_t next_value = 0;
            for (unsigned percent : insert_percent) {
                for (std::size_t op = 0; op < 600; ++op) {
                    const std::string& key = universe[std::uniform_int_distribution<std::size_t>(
                        0, universe.size() - 1)(rng)];
                    const std::size_t h = hash(key);
                    const bool want_insert =
                        std::uniform_int_distribution<unsigned>(0, 99)(rng) < percent;
                    TableNode* found = table.find(key, h);
                    auto it = model.find(key);
                    REQUIRE((found == nullptr) == (it == model.end()));
                    if (it != model.end()) {
                        REQUIRE(found == it->second.first);
                    }
                    if (want_insert && found == nullptr) {
                        auto node = std::make_unique<TableNode>();
                        node->key = key;
                        node->value = ++next_value;
                        TableNode* raw = table.insert(std::move(node), h);
                        model.emplace(key, std::make_pair(raw, next_value));
                    } else if (!want_insert && found != nullptr) {
                        table.erase(found, h);
                        model.erase(it);
                    }
                    if (op % 50 == 0) {
                        check_table_equals_model(table, model, universe, hash);
                    }
                }
                check_table_equals_model(table, model, universe, hash);
            }
            // Erase everything, then the empty table still answers, then refill.
            std::vector<std::string> present;
            for (const auto& entry : model) {
                present.push_back(entry.first);
            }
            std::shuffle(present.begin(), present.end(), rng);
            for (const auto& key : present) {
                TableNode* found = table.find(key, hash(key));
                REQUIRE(found != nullptr);
                table.erase(found, hash(key));
                model.erase(key);
            }
            check_table_equals_model(table, model, universe, hash);
            for (const auto& key : universe) {
                auto node = std::make_unique<TableNode>();
                node->key = key;
                node->value = ++next_value;
                model.emplace(key,
                              std::make_pair(table.insert(std::move(node), hash(key)), next_value));
            }
            check_table_equals_model(table, model, universe, hash);
        }
    }
}

TEST_CASE("three regions: fanout queues stay consistent and replicas converge on the greatest "
          "write",
          "[stress][fanout]") {
    for (const auto mode :
         {ConflictResolutionMode::LastWriterWins, ConflictResolutionMode::VectorClock}) {
        for (std::uint64_t seed = 1; seed <= 60; ++seed) {
            INFO("mode " << (mode == ConflictResolutionMode::VectorClock ? "vc" : "lww")
                         << ", seed " << seed);
            ThreeRegions sim(mode, seed);
            for (std::size_t step = 0; step < 600; ++step) {
                sim.step();
                if (step % 10 == 0) {
                    for (std::size_t i = 0; i < three; ++i) {
                        INFO("step " << step);
                        REQUIRE(queue_problem(sim.rep(i), regions3[i]) == "");
                    }
                }
            }
            sim.exchange_all();
            for (std::size_t i = 0; i < three; ++i) {
                REQUIRE(queue_problem(sim.rep(i), regions3[i]) == "");
                REQUIRE(sim.rep(i).pending_fanout_len(regions3[i]) == 0);
            }
            REQUIRE(sim.rep(0).record_count() == sim.rep(1).record_count());
            REQUIRE(sim.rep(0).record_count() == sim.rep(2).record_count());
            for (const auto& [key, writes] : sim.committed()) {
                const auto r0 = sim.rep(0).get_record(key);
                INFO("key " << key << ": " << describe(r0) << " / "
                            << describe(sim.rep(1).get_record(key)) << " / "
                            << describe(sim.rep(2).get_record(key)));
                REQUIRE(r0 == sim.rep(1).get_record(key));
                REQUIRE(r0 == sim.rep(2).get_record(key));
                if (mode == ConflictResolutionMode::LastWriterWins) {
                    // No write lost: the stored record is the greatest committed one.
                    const GeoRecord& greatest = *std::max_element(
                        writes.begin(), writes.end(), [](const GeoRecord& a, const GeoRecord& b) {
                            return std::tie(a.timestamp_ms, a.region, a.seq) <
                                   std::tie(b.timestamp_ms, b.region, b.seq);
                        });
                    REQUIRE(r0.has_value());
                    REQUIRE(describe(*r0) == describe(greatest));
                }
            }
        }
    }
}

TEST_CASE("two replicas under concurrent writes, shipping, acks, purges and re-entrant "
          "listeners end identical",
          "[stress][threads]") {
    for (const auto mode :
         {ConflictResolutionMode::LastWriterWins, ConflictResolutionMode::VectorClock}) {
        INFO("mode " << (mode == ConflictResolutionMode::VectorClock ? "vc" : "lww"));
        // Grace of an hour of simulated time: nothing is purgeable until the end.
        Cluster cluster(mode, std::chrono::hours(1));
        run_stress(cluster, 15000, mode == ConflictResolutionMode::VectorClock ? 1000 : 2000,
                   false);

        cluster.listener_writes = false;
        REQUIRE(cluster.exchange_all());
        const auto universe = stress_universe();
        auto compare = [&] {
            for (std::size_t s = 0; s < 2; ++s) {
                REQUIRE(queue_problem(*cluster.reps[s], regions2[s]) == "");
                REQUIRE(cluster.reps[s]->pending_fanout_len(regions2[s]) == 0);
            }
            REQUIRE(cluster.reps[0]->record_count() == cluster.reps[1]->record_count());
            for (const auto& key : universe) {
                const auto a = cluster.reps[0]->get_record(key);
                const auto b = cluster.reps[1]->get_record(key);
                INFO("key " << key << ": " << describe(a) << " vs " << describe(b));
                REQUIRE(a == b);
            }
            REQUIRE(cluster.reps[0]->region_sequences() == cluster.reps[1]->region_sequences());
        };
        compare();

        // Every tombstone is acknowledged everywhere; once the grace period has passed, both
        // purge them all and still agree.
        cluster.physical += 10ULL * 3600 * 1000;
        cluster.reps[0]->purge_tombstones();
        cluster.reps[1]->purge_tombstones();
        for (const auto& key : universe) {
            const auto a = cluster.reps[0]->get_record(key);
            REQUIRE((!a || !a->deleted));
        }
        compare();
    }
}

TEST_CASE("chaos: purges with no grace and apply_remote_write racing everything else stay "
          "consistent",
          "[stress][threads]") {
    for (const auto mode :
         {ConflictResolutionMode::LastWriterWins, ConflictResolutionMode::VectorClock}) {
        Cluster cluster(mode, std::chrono::nanoseconds(0));
        run_stress(cluster, 15000, 3000, true);
        cluster.listener_writes = false;
        // No convergence promise here (purges with no grace may revive keys, apply_remote_write
        // shares stream counters with apply_remote), but every queue must be consistent and
        // fully drainable.
        for (std::size_t s = 0; s < 2; ++s) {
            REQUIRE(queue_problem(*cluster.reps[s], regions2[s]) == "");
            REQUIRE(queue_problem(*cluster.reps[s], regions2[1 - s]) == "");
        }
        REQUIRE(cluster.exchange_all());
        for (std::size_t s = 0; s < 2; ++s) {
            REQUIRE(queue_problem(*cluster.reps[s], regions2[s]) == "");
            // The queue of the peer's region on this replica (commits made here for it).
            REQUIRE(queue_problem(*cluster.reps[s], regions2[1 - s]) == "");
        }
    }
}

#if !GEO_REVIEW_TSAN
TEST_CASE("an allocation failure at any point loses no stored or owed write and leaves the "
          "queues consistent",
          "[stress][alloc]") {
    std::size_t injected = 0;
    for (const auto& fault : fault_cases) {
        injected += sweep(fault).injected;
    }
    CHECK(injected > 20);
}

// ---- regressions of defects found in review ----------------------------------------

TEST_CASE("an allocation failure after a write is stored is not reported as a failure, "
          "and no lost write goes unreported",
          "[review]") {
    for (const auto& fault : fault_cases) {
        const FaultOutcome outcome = sweep(fault);
        INFO(fault.name);
        for (const auto& changed : outcome.changed) {
            INFO("threw std::bad_alloc, yet changed state: " << changed);
            CHECK(false);
        }
        for (const auto& lost : outcome.lost_conflicts) {
            INFO("conflict never reported after a retry: " << lost);
            CHECK(false);
        }
    }
}

namespace {

// Region ids longer than the small-string buffer: copying one into an outcome allocates.
const std::string long_us = "us-east-1.region-with-a-long-identifier";
const std::string long_eu = "eu-west-1.region-with-a-long-identifier";

std::unique_ptr<ActiveActiveReplicator> long_id_replica() {
    ActiveActiveGeoConfig config;
    config.regions = {long_us, long_eu};
    config.local_region = long_us;
    auto rep = std::make_unique<ActiveActiveReplicator>(config, std::vector<RegionRaftGroup>{},
                                                        [] { return std::uint64_t{5000}; });
    rep->apply_local_write(long_us, "k1", "v1", 100);
    rep->apply_remote_write(long_eu, "k2", "v2", 100);
    return rep;
}

std::string long_id_snapshot(const ActiveActiveReplicator& rep) {
    std::ostringstream out;
    for (const char* key : {"k1", "k2", "k3"}) {
        out << key << describe(rep.get_record(key)) << ' ';
    }
    for (const auto& [region, seq] : rep.region_sequences()) {
        out << region << '=' << seq << ' ';
    }
    out << "pending " << rep.pending_fanout_len(long_us) << '/' << rep.pending_fanout_len(long_eu)
        << " conflicts " << rep.conflict_count() << '/' << rep.recent_conflicts().size();
    return out.str();
}

} // namespace

TEST_CASE("with long region ids, a write that throws std::bad_alloc changed nothing", "[review]") {
    using Op = void (*)(ActiveActiveReplicator&);
    const std::vector<std::pair<const char*, Op>> ops{
        {"put of a new key", [](ActiveActiveReplicator& r) { r.put("k3", "v3"); }},
        {"local write that wins",
         [](ActiveActiveReplicator& r) { r.apply_local_write(long_us, "k2", "w", 200); }},
        {"local write that loses",
         [](ActiveActiveReplicator& r) { r.apply_local_write(long_us, "k2", "w", 50); }},
        {"remote write that wins",
         [](ActiveActiveReplicator& r) { r.apply_remote_write(long_eu, "k1", "w", 200); }},
        {"remote write that loses",
         [](ActiveActiveReplicator& r) { r.apply_remote_write(long_eu, "k1", "w", 50); }},
        {"remote entry that wins",
         [](ActiveActiveReplicator& r) {
             r.apply_remote(long_eu, FanoutEntry{"k1", GeoRecord{long_eu, 200, {}, "w", 7}, 7});
         }},
        {"remote entry that loses",
         [](ActiveActiveReplicator& r) {
             r.apply_remote(long_eu, FanoutEntry{"k1", GeoRecord{long_eu, 50, {}, "w", 7}, 7});
         }},
    };
    for (const auto& [name, op] : ops) {
        std::size_t injected = 0;
        for (long n = 0;; ++n) {
            auto rep = long_id_replica();
            const std::string before = long_id_snapshot(*rep);
            const auto [fired, threw] = fail_allocation(n, [&, fn = op] { fn(*rep); });
            if (!fired) {
                break;
            }
            ++injected;
            INFO(name << ", failing allocation #" << n);
            if (threw) {
                REQUIRE(long_id_snapshot(*rep) == before);
            }
        }
        INFO(name);
        CHECK(injected > 0);
    }
}

TEST_CASE("without memory for a per-target block, a rewrite never counts a write as held that "
          "is not, never reads a lag short, and loses nothing",
          "[stress][alloc]") {
    // eu acknowledged k's first write, ap did not: the rewrite needs one Missed per target.
    constexpr std::uint64_t t0 = 1'700'000'000'000;
    std::size_t injected = 0;
    for (long n = 0;; ++n) {
        auto config =
            geo::ActiveActiveGeoConfig::multi_region(geo_test::us, geo_test::all_regions());
        ActiveActiveReplicator rep(config, geo_test::all_groups(), [] { return t0 + 1000; });
        REQUIRE(rep.put("k", "v1", t0).index() == 0);
        REQUIRE(rep.put("j", "v2", t0 + 1).index() == 0);
        (void)rep.acknowledge_fanout(geo_test::us, geo_test::eu, 2);
        const auto [fired, threw] = fail_allocation(n, [&] { (void)rep.put("k", "v3", t0 + 2); });
        if (!fired) {
            break;
        }
        ++injected;
        INFO("failing allocation #" << n);
        if (threw) {
            REQUIRE(rep.remote_acks(geo_test::us, "k", 1) == 1); // nothing changed
            continue;
        }
        // Exact: eu holds k#1 (1 ack), nobody holds k#3; eu misses since t0+2, ap since t0.
        REQUIRE(rep.remote_acks(geo_test::us, "k", 1) <= 1);
        REQUIRE(rep.remote_acks(geo_test::us, "k", 3) == 0);
        REQUIRE(rep.stream_status(geo_test::us, geo_test::eu).lag.count() >= 998);
        REQUIRE(rep.stream_status(geo_test::us, geo_test::ap).lag.count() >= 1000);
        for (const auto& target : {geo_test::eu, geo_test::ap}) {
            const auto batch = rep.peek_fanout(geo_test::us, target);
            REQUIRE_FALSE(batch.empty());
            REQUIRE(batch.back().record.value == "v3");
            (void)rep.acknowledge_fanout(geo_test::us, target, batch.back().seq);
        }
        REQUIRE(rep.remote_acks(geo_test::us, "k", 1) == 2);
        REQUIRE(rep.remote_acks(geo_test::us, "k", 3) == 2);
        REQUIRE(rep.stream_status(geo_test::us, geo_test::ap).lag.count() == 0);
    }
    CHECK(injected > 0);
}
#endif // !GEO_REVIEW_TSAN

TEST_CASE("a batch with a mismatched entry changes nothing", "[review]") {
    auto config_a = ActiveActiveGeoConfig::multi_region("us", {"us", "eu"});
    auto config_b = ActiveActiveGeoConfig::multi_region("eu", {"us", "eu"});
    ActiveActiveReplicator a(config_a, {});
    ActiveActiveReplicator b(config_b, {});
    a.put("k1", "v1");
    a.put("k2", "v2");
    auto batch = a.peek_fanout("us", "eu");
    REQUIRE(batch.size() == 2);
    batch[1].record.region = "eu"; // arrived from "us" but claims "eu": bad input
    REQUIRE_THROWS_AS(b.apply_remote("us", batch), geo::ConfigError);
    // The class documents "bad input ... throws a geo::Error and changes nothing".
    CHECK(b.record_count() == 0);
    CHECK(b.region_sequences().at("us") == 0);
}

TEST_CASE("tombstone_grace of nanoseconds::max() (\"never purge\") is well defined", "[review]") {
    // (count() + 999'999) overflows a signed 64-bit integer: UB, reported by UBSan.
    auto config = ActiveActiveGeoConfig::multi_region("us", {"us", "eu"});
    config.tombstone_grace = std::chrono::nanoseconds::max();
    ActiveActiveReplicator rep(config, {}, [] { return std::uint64_t{5'000'000'000'000}; });
    rep.erase("k");
    rep.acknowledge_fanout("us", "eu", 100);
    CHECK(rep.purge_tombstones() == 0);
}

TEST_CASE("vector-clock replicas whose regions share a Raft group id still converge "
          "(or the config is rejected)",
          "[review]") {
    // Group ids numbered per region ("every region's group 1") are a common setup. put() keys
    // the clock entry by group id, so two regions then issue entries of one node: clock order no
    // longer implies timestamp order, resolution is not transitive, and delivery order decides.
    const std::array<std::string, 3> names{"a", "b", "c"};
    const std::array<std::uint64_t, 3> physical{100, 200, 150};
    std::vector<RegionRaftGroup> groups{RegionRaftGroup("a", 7, {1}), RegionRaftGroup("b", 7, {2}),
                                        RegionRaftGroup("c", 8, {3})};
    std::array<std::unique_ptr<ActiveActiveReplicator>, 3> reps;
    try {
        for (std::size_t i = 0; i < 3; ++i) {
            auto config = ActiveActiveGeoConfig::multi_region(names[i], {"a", "b", "c"});
            config.conflict_mode = ConflictResolutionMode::VectorClock;
            const std::uint64_t now = physical[i];
            reps[i] =
                std::make_unique<ActiveActiveReplicator>(config, groups, [now] { return now; });
        }
    } catch (const geo::ConfigError&) {
        SUCCEED("duplicate group ids rejected");
        return;
    }
    for (int i = 0; i < 5; ++i) {
        reps[0]->put("k", "x" + std::to_string(i)); // a: clock {7:5}, ts 100
    }
    for (int i = 0; i < 3; ++i) {
        reps[1]->put("k", "y" + std::to_string(i)); // b: clock {7:3}, ts 200
    }
    reps[2]->put("k", "z"); // c: clock {8:1}, ts 150
    auto deliver = [&](std::size_t from, std::size_t to) {
        reps[to]->apply_remote(names[from], reps[from]->peek_fanout(names[from], names[to]));
    };
    deliver(1, 0); // a gets y, then z
    deliver(2, 0);
    deliver(2, 1); // b gets z, then x
    deliver(0, 1);
    deliver(0, 2); // c gets x, then y
    deliver(1, 2);
    const auto ra = reps[0]->get_record("k");
    const auto rb = reps[1]->get_record("k");
    const auto rc = reps[2]->get_record("k");
    INFO("a: " << describe(ra) << "\nb: " << describe(rb) << "\nc: " << describe(rc));
    CHECK(ra == rb);
    CHECK(rb == rc);
}
