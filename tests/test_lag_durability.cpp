// Stream lag and durability per consistency level: what a host reads to tell a lagging or dead
// peer, and to answer a client only once a write reached the regions its level asks for. The
// queue keeps one entry per key (a newer write replaces the older one), so both must count
// the writes a replaced entry carried: checked against a model that remembers every write.
#include <geo/detail/missed_writes.hpp>
#include <geo/replicator.hpp>

#include "geo_test.hpp"
#include "replication_fixtures.hpp"
#include "state_machine_fixtures.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace {

using geo::Committed;
using geo::ConsistencyLevel;
using geo::StreamStatus;
using geo::detail::Missed;
using geo_test::ap;
using geo_test::both_modes;
using geo_test::eu;
using geo_test::us;
using geo_test::sm::is;
using geo_test::sm::make_replica;
using geo_test::sm::snapshot_bytes;
using geo_test::sm::start_ms;
using namespace std::chrono_literals;

constexpr std::uint64_t max_u64 = std::numeric_limits<std::uint64_t>::max();

/// A replica of `us` whose physical clock the test moves.
struct Fixture {
    explicit Fixture(geo::ConflictResolutionMode mode = geo::ConflictResolutionMode::LastWriterWins,
                     std::chrono::nanoseconds max_lag = 5s)
        : replica([&] {
              auto config = geo::ActiveActiveGeoConfig::multi_region(us, geo_test::all_regions());
              config.conflict_mode = mode;
              config.max_lag = max_lag;
              return std::make_unique<geo::ActiveActiveReplicator>(config, geo_test::all_groups(),
                                                                   [this] { return now.load(); });
          }()) {}

    /// A local write at the log timestamp `ts`; its seq.
    std::uint64_t write(const std::string& key, std::uint64_t ts, const std::string& value = "v") {
        const auto outcome = replica->put(key, value, ts);
        REQUIRE(is<Committed>(outcome));
        return std::get<Committed>(outcome).seq;
    }

    StreamStatus status(const std::string& target) const {
        return replica->stream_status(us, target);
    }

    std::atomic<std::uint64_t> now{start_ms};
    std::unique_ptr<geo::ActiveActiveReplicator> replica;
};

// ---- the arithmetic ------------------------------------------------------------------------

TEST_CASE("lag arithmetic: never negative, stale strictly past max_lag at any magnitude", "[lag]") {
    using geo::detail::is_stale;
    using geo::detail::lag_ms;
    using geo::detail::to_lag;
    REQUIRE(lag_ms(1000, 400) == 600);
    REQUIRE(lag_ms(400, 1000) == 0); // a write stamped ahead of this node's clock
    REQUIRE(lag_ms(max_u64, 0) == max_u64);

    REQUIRE_FALSE(is_stale(5000, 5s));
    REQUIRE(is_stale(5001, 5s));
    REQUIRE_FALSE(is_stale(0, 1ns));
    REQUIRE(is_stale(1, 1ns));
    REQUIRE_FALSE(is_stale(1, 1500us)); // 1 ms is not more than 1.5 ms
    REQUIRE(is_stale(2, 1500us));
    REQUIRE_FALSE(is_stale(0, 0ns));
    REQUIRE(is_stale(1, 0ns));
    REQUIRE_FALSE(is_stale(max_u64 / 2000000, std::chrono::nanoseconds::max()));
    REQUIRE(is_stale(max_u64, std::chrono::nanoseconds::max()));

    REQUIRE(to_lag(7) == 7ms);
    REQUIRE(to_lag(max_u64) == std::chrono::milliseconds::max());
}

TEST_CASE("replacing an entry: a target that acknowledged it misses only the new write, one "
          "that did not keeps missing from where it did",
          "[lag][durability]") {
    using geo::detail::after_replace;
    using geo::detail::first_missed;
    using geo::detail::holds;
    const Missed fresh = first_missed(Missed{}, 7, 700);
    REQUIRE(fresh == Missed{7, 700});
    REQUIRE(after_replace(true, fresh, 900) == Missed{});
    REQUIRE(after_replace(false, fresh, 900) == Missed{7, 700});
    REQUIRE(after_replace(false, Missed{3, 300}, 900) == Missed{3, 300});
    // A replacing write stamped earlier (hosts choose stamps): the lag may read longer.
    REQUIRE(after_replace(false, Missed{3, 300}, 200) == Missed{3, 200});

    REQUIRE(holds(3, false, Missed{9, 0}));  // acknowledged the entry: holds all before it
    REQUIRE(holds(3, true, Missed{7, 700})); // owes the entry, but 3 came before what it misses
    REQUIRE_FALSE(holds(7, true, Missed{7, 700}));
    REQUIRE_FALSE(holds(9, true, Missed{7, 700}));
}

// ---- lag and staleness ---------------------------------------------------------------------

TEST_CASE("stream status: owed, acknowledged and last seq, lag from the oldest write not "
          "acknowledged, 0 when nothing is owed",
          "[lag]") {
    Fixture f;
    StreamStatus s = f.status(eu);
    REQUIRE(s.source == us);
    REQUIRE(s.target == eu);
    REQUIRE(s.owed == 0);
    REQUIRE(s.lag == 0ms);
    REQUIRE_FALSE(s.stale);

    f.write("a", start_ms);       // seq 1
    f.write("b", start_ms + 100); // seq 2
    f.write("c", start_ms + 300); // seq 3
    f.now = start_ms + 1000;
    s = f.status(eu);
    REQUIRE(s.owed == 3);
    REQUIRE(s.acknowledged_seq == 0);
    REQUIRE(s.last_seq == 3);
    REQUIRE(s.lag == 1000ms);

    REQUIRE(f.replica->acknowledge_fanout(us, eu, 1) == 1);
    s = f.status(eu);
    REQUIRE(s.owed == 2);
    REQUIRE(s.acknowledged_seq == 1);
    REQUIRE(s.lag == 900ms);
    REQUIRE(f.status(ap).lag == 1000ms); // each target on its own

    (void)f.replica->acknowledge_fanout(us, eu, 99); // past the newest: capped at last_seq
    s = f.status(eu);
    REQUIRE(s.owed == 0);
    REQUIRE(s.acknowledged_seq == 3);
    REQUIRE(s.lag == 0ms);

    f.now = start_ms - 50; // a clock behind the write's stamp: lag 0, never negative
    REQUIRE(f.status(ap).lag == 0ms);
    REQUIRE(f.replica->stream_status(us, ap, start_ms + 2500).lag == 2500ms);
    REQUIRE(f.replica->stream_status(us, us).owed == 0);
    REQUIRE_THROWS_AS(f.replica->stream_status(us, "mars"), geo::ConfigError);
}

TEST_CASE("a stream is stale exactly when its lag passes max_lag", "[lag]") {
    Fixture f(geo::ConflictResolutionMode::LastWriterWins, 5s);
    f.write("a", start_ms);
    f.now = start_ms + 5000;
    REQUIRE(f.status(eu).lag == 5000ms);
    REQUIRE_FALSE(f.status(eu).stale);
    f.now = start_ms + 5001;
    REQUIRE(f.status(eu).stale);
    REQUIRE(f.status(ap).stale);
    (void)f.replica->acknowledge_fanout(us, eu, 1);
    REQUIRE_FALSE(f.status(eu).stale);
    REQUIRE(f.status(ap).stale);

    Fixture tight(geo::ConflictResolutionMode::LastWriterWins, 1ns); // the 1 ns
    tight.write("a", start_ms);
    REQUIRE_FALSE(tight.status(eu).stale); // 0 ms behind
    tight.now = start_ms + 1;
    REQUIRE(tight.status(eu).stale);
}

TEST_CASE("a key rewritten faster than a silent peer acknowledges keeps the peer's lag "
          "growing, while a peer that keeps up stays fresh",
          "[lag]") {
    // yugabyte-db#10147: the lag read the age of the newest entry, so a hot key made a stopped
    // consumer look current. Here ap never acknowledges; eu acknowledges every write.
    for (auto mode : both_modes) {
        CAPTURE(geo_test::mode_name(mode));
        Fixture f(mode, 5s);
        for (std::uint64_t i = 0; i <= 100; ++i) {
            const std::uint64_t ts = start_ms + 100 * i;
            f.now = ts;
            const std::uint64_t seq = f.write("hot", ts);
            (void)f.replica->acknowledge_fanout(us, eu, seq);
        }
        f.now = start_ms + 10'050;
        const StreamStatus to_ap = f.status(ap);
        REQUIRE(to_ap.owed == 1); // one entry: the key's newest write
        REQUIRE(to_ap.lag == 10'050ms);
        REQUIRE(to_ap.stale);
        REQUIRE(f.status(eu).lag == 0ms);
        REQUIRE(f.replica->remote_acks(us, "hot", 1) == 1); // eu holds it, ap does not
    }
}

// ---- durability ----------------------------------------------------------------------------

TEST_CASE("durability: an acknowledgement between a write and the write that replaced it in "
          "the queue does not count",
          "[durability]") {
    Fixture f;
    const std::uint64_t k1 = f.write("k", start_ms);     // 1
    const std::uint64_t j = f.write("j", start_ms + 1);  // 2
    const std::uint64_t k3 = f.write("k", start_ms + 2); // 3 replaces 1 in the queue
    (void)f.replica->acknowledge_fanout(us, eu, j);      // eu got seq 2, but never seq 1
    REQUIRE(f.replica->remote_acks(us, "k", k1) == 0);
    REQUIRE(f.replica->remote_acks(us, "j", j) == 1);
    REQUIRE_FALSE(f.replica->is_durable(us, "k", k1, ConsistencyLevel::EachQuorum));
    REQUIRE(f.replica->is_durable(us, "j", j, ConsistencyLevel::EachQuorum));
    REQUIRE_FALSE(f.replica->is_durable(us, "j", j, ConsistencyLevel::AllQuorum));

    (void)f.replica->acknowledge_fanout(us, eu, k3); // the replacing write covers the first
    REQUIRE(f.replica->remote_acks(us, "k", k1) == 1);
    REQUIRE(f.replica->remote_acks(us, "k", k3) == 1);

    // Acknowledged before it was replaced: held, though the newer write is not.
    const std::uint64_t m1 = f.write("m", start_ms + 3);
    (void)f.replica->acknowledge_fanout(us, ap, m1);
    const std::uint64_t m2 = f.write("m", start_ms + 4);
    REQUIRE(f.replica->remote_acks(us, "m", m1) == 1); // ap
    REQUIRE(f.replica->remote_acks(us, "m", m2) == 0);

    // The local levels need no peer; a seq never committed has no holder.
    REQUIRE(f.replica->is_durable(us, "m", m2, ConsistencyLevel::LocalQuorum));
    REQUIRE(f.replica->is_durable(us, "m", m2, ConsistencyLevel::LocalAsync));
    REQUIRE(f.replica->remote_acks(us, "m", 0) == 0);
    REQUIRE(f.replica->remote_acks(us, "m", 99) == 0);
    REQUIRE_THROWS_AS(f.replica->remote_acks("mars", "m", 1), geo::ConfigError);
}

TEST_CASE("durability: a write displaced at its origin by a remote write still needs its "
          "acknowledgements; one every peer acknowledged stays durable after it left the queue",
          "[durability]") {
    for (auto mode : both_modes) {
        CAPTURE(geo_test::mode_name(mode));
        Fixture f(mode);
        const std::uint64_t seq = f.write("k", start_ms);
        geo::VectorClock clock;
        clock.increment(300); // ap's group: concurrent with us's write in vector-clock mode
        auto remote = geo_test::entry(ap, "k", "theirs", start_ms + 10, 1, clock);
        (void)f.replica->apply_remote(ap, remote);
        REQUIRE(f.replica->get("k") == std::optional<std::string>("theirs"));
        REQUIRE(f.replica->pending_fanout_len(us) == 1); // the displaced write, as a copy
        REQUIRE(f.replica->remote_acks(us, "k", seq) == 0);

        (void)f.replica->acknowledge_fanout(us, eu, seq);
        REQUIRE(f.replica->remote_acks(us, "k", seq) == 1);
        REQUIRE(f.replica->is_durable(us, "k", seq, ConsistencyLevel::EachQuorum));
        REQUIRE_FALSE(f.replica->is_durable(us, "k", seq, ConsistencyLevel::AllQuorum));
        (void)f.replica->acknowledge_fanout(us, ap, seq);
        REQUIRE(f.replica->pending_fanout_len(us) == 0);
        REQUIRE(f.replica->remote_acks(us, "k", seq) == 2);
        REQUIRE(f.replica->is_durable(us, "k", seq, ConsistencyLevel::AllQuorum));
    }
}

TEST_CASE("wait_durable is woken by another thread's acknowledgement; a timeout rolls nothing "
          "back",
          "[durability][threads]") {
    Fixture f;
    const std::uint64_t seq = f.write("k", start_ms);
    REQUIRE_FALSE(f.replica->wait_durable(us, "k", seq, ConsistencyLevel::EachQuorum, 0ms));
    REQUIRE_FALSE(f.replica->wait_durable(us, "k", seq, ConsistencyLevel::EachQuorum, 5ms));
    REQUIRE(f.replica->get("k") == std::optional<std::string>("v")); // still committed
    REQUIRE(f.replica->pending_fanout_len(us, eu) == 1);             // and still shipping
    REQUIRE(f.replica->wait_durable(us, "k", seq, ConsistencyLevel::LocalQuorum, 0ms));

    // AllQuorum needs two acknowledgements, given by another thread one after the other. The
    // waiter's timeout is only a guard against a lost wake-up failing the run forever.
    std::atomic<bool> waiting{false};
    bool durable = false;
    std::thread waiter([&] {
        waiting = true;
        durable = f.replica->wait_durable(us, "k", seq, ConsistencyLevel::AllQuorum, 60s);
    });
    while (!waiting) {
        std::this_thread::yield();
    }
    (void)f.replica->acknowledge_fanout(us, eu, seq);
    (void)f.replica->acknowledge_fanout(us, ap, seq);
    waiter.join();
    REQUIRE(durable);
    REQUIRE_THROWS_AS(f.replica->wait_durable("mars", "k", seq, ConsistencyLevel::AllQuorum, 0ms),
                      geo::ConfigError);
}

TEST_CASE("many waiters, writers and acknowledgers on several threads: every waiter is woken",
          "[durability][threads]") {
    Fixture f;
    constexpr int writers = 2;
    constexpr int per_writer = 200;
    std::vector<std::thread> threads;
    std::atomic<int> durable{0};
    std::atomic<bool> done{false};
    for (int w = 0; w < writers; ++w) {
        threads.emplace_back([&, w] {
            for (int i = 0; i < per_writer; ++i) {
                const std::string key = "k" + std::to_string(w) + "-" + std::to_string(i % 7);
                const auto outcome =
                    f.replica->put(key, "v", start_ms + static_cast<std::uint64_t>(i));
                const std::uint64_t seq = std::get<Committed>(outcome).seq;
                if (f.replica->wait_durable(us, key, seq, ConsistencyLevel::AllQuorum, 60s)) {
                    ++durable;
                }
            }
        });
    }
    std::thread acker([&] {
        while (!done) {
            for (const auto& target : {eu, ap}) {
                const auto batch = f.replica->peek_fanout(us, target, 16);
                if (!batch.empty()) {
                    (void)f.replica->acknowledge_fanout(us, target, batch.back().seq);
                }
                (void)f.replica->stream_statuses();
            }
            std::this_thread::yield();
        }
    });
    for (auto& t : threads) {
        t.join();
    }
    done = true;
    acker.join();
    REQUIRE(durable == writers * per_writer);
    for (const StreamStatus& s : f.replica->stream_statuses()) {
        REQUIRE(s.owed == 0);
        REQUIRE(s.lag == 0ms);
    }
}

// ---- against a model that remembers every write --------------------------------------------

/// Every write of us, and what each peer holds of each key: the highest seq it acknowledged
/// while that seq was the key's newest write here (acknowledging past a write whose entry a
/// newer one replaced gives nothing).
struct Model {
    std::map<std::string, std::vector<std::pair<std::uint64_t, std::uint64_t>>> writes; // seq, ts
    std::map<std::string, std::map<std::string, std::uint64_t>> held; // target -> key -> seq
    std::map<std::string, std::uint64_t> acked;
    std::uint64_t last_seq = 0;

    void acknowledge(const std::string& target, std::uint64_t up_to) {
        acked[target] = std::max(acked[target], std::min(up_to, last_seq));
        for (const auto& [key, list] : writes) {
            const std::uint64_t newest = list.back().first;
            if (newest <= up_to) {
                held[target][key] = std::max(held[target][key], newest);
            }
        }
    }

    std::size_t remote_acks(const std::string& key, std::uint64_t seq) const {
        std::size_t n = 0;
        for (const auto& target : {eu, ap}) {
            const auto t = held.find(target);
            const std::uint64_t h =
                t == held.end() || t->second.count(key) == 0 ? 0 : t->second.at(key);
            n += h >= seq ? 1 : 0;
        }
        return n;
    }

    std::uint64_t lag(const std::string& target, std::uint64_t now) const {
        std::uint64_t oldest_seq = max_u64;
        std::uint64_t oldest_ts = 0;
        for (const auto& [key, list] : writes) {
            const auto t = held.find(target);
            const std::uint64_t h =
                t == held.end() || t->second.count(key) == 0 ? 0 : t->second.at(key);
            for (const auto& [seq, ts] : list) {
                if (seq > h && seq < oldest_seq) {
                    oldest_seq = seq;
                    oldest_ts = ts;
                }
            }
        }
        return oldest_seq == max_u64 ? 0 : geo::detail::lag_ms(now, oldest_ts);
    }
};

TEST_CASE("lag and remote acknowledgements agree with a model of every write on random "
          "histories (rewrites, displaced copies, acknowledgements, drains, snapshots)",
          "[lag][durability][model]") {
    const std::vector<std::string> keys = {"a", "b", "c", "d", "e"};
    for (std::uint32_t seed = 1; seed <= 150; ++seed) {
        CAPTURE(seed);
        std::mt19937 rng(seed);
        const auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
        Fixture f(seed % 2 == 0 ? geo::ConflictResolutionMode::LastWriterWins
                                : geo::ConflictResolutionMode::VectorClock,
                  std::chrono::milliseconds(40 + pick(80)));
        Model model;
        std::uint64_t clock = start_ms;
        std::uint64_t ap_seq = 0;
        for (int step = 0; step < 160; ++step) {
            CAPTURE(step);
            clock += 1 + pick(20);
            const std::string& key = keys[pick(keys.size())];
            const std::size_t op = pick(100);
            if (op < 45) {
                const auto outcome = op < 38
                                         ? f.replica->put(key, "v" + std::to_string(step), clock)
                                         : f.replica->erase(key, clock);
                REQUIRE(is<Committed>(outcome));
                const std::uint64_t seq = std::get<Committed>(outcome).seq;
                const std::uint64_t ts = f.replica->get_record(key)->timestamp_ms;
                model.writes[key].emplace_back(seq, ts);
                model.last_seq = seq;
                clock = std::max(clock, ts);
            } else if (op < 55) {
                // ap's write of the key wins and displaces ours (kept queued as a copy).
                geo::VectorClock vc = f.replica->get_record(key) ? f.replica->get_record(key)->clock
                                                                 : geo::VectorClock{};
                vc.increment(300);
                ++ap_seq;
                (void)f.replica->apply_remote(
                    ap, geo_test::entry(ap, key, "ap" + std::to_string(step), clock, ap_seq, vc));
            } else if (op < 90) {
                const std::string& target = pick(2) == 0 ? eu : ap;
                const std::uint64_t up_to = pick(static_cast<std::size_t>(model.last_seq + 3));
                (void)f.replica->acknowledge_fanout(us, target, up_to);
                model.acknowledge(target, up_to);
            } else if (op < 95) {
                const std::string& target = pick(2) == 0 ? eu : ap;
                const auto batch = f.replica->drain_fanout(us, target);
                if (!batch.empty()) {
                    model.acknowledge(target, batch.back().seq);
                }
            } else {
                // A restored replica answers exactly as the one that took the snapshot.
                const std::string bytes = snapshot_bytes(*f.replica);
                std::istringstream in(bytes);
                f.replica->restore(in);
                REQUIRE(snapshot_bytes(*f.replica) == bytes);
            }

            const std::uint64_t now = clock + pick(200);
            for (const auto& target : {eu, ap}) {
                CAPTURE(target);
                const StreamStatus s = f.replica->stream_status(us, target, now);
                const std::uint64_t lag = model.lag(target, now);
                REQUIRE(s.lag == std::chrono::milliseconds(lag));
                REQUIRE(s.stale == (std::chrono::milliseconds(lag) > f.replica->config().max_lag));
                REQUIRE(s.acknowledged_seq == model.acked[target]);
                REQUIRE(s.last_seq == model.last_seq);
                REQUIRE(s.owed == f.replica->pending_fanout_len(us, target));
                REQUIRE((s.owed == 0) == (lag == 0 && model.lag(target, max_u64) == 0));
            }
            for (const auto& [k, list] : model.writes) {
                for (const auto& [seq, ts] : list) {
                    CAPTURE(k, seq);
                    REQUIRE(f.replica->remote_acks(us, k, seq) == model.remote_acks(k, seq));
                }
            }
        }
    }
}

} // namespace
