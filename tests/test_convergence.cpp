// Convergence (docs/design.md, section 3.1): any interleaving of writes, partial and repeated
// deliveries, re-sends and partitions, once every stream is delivered, leaves all replicas with
// identical records, and the record of each key is the greatest write committed for it (no
// write lost).
//
// A failing run reports its seed; rerun exactly that seed with
//   GEO_CONVERGENCE_SEED=<seed> ./test_convergence "<test name>"
// (GEO_CONVERGENCE_SEEDS=<n> widens every run to n seeds).
#include <geo/replicator.hpp>

#include "geo_test.hpp"
#include "replication_fixtures.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

namespace {

using geo::ActiveActiveReplicator;
using geo::AlreadyApplied;
using geo::Committed;
using geo::ConflictResolutionMode;
using geo::FanoutEntry;
using geo::GeoRecord;
using geo::GeoWriteOutcome;
using geo::RejectedByConflict;
using geo_test::describe;
using geo_test::ship;

constexpr std::size_t replica_count = 3;
const std::array<std::string, replica_count> regions{"us-east-1", "eu-west-1", "ap-northeast-1"};
constexpr std::array<std::uint64_t, replica_count> group_ids{1000, 2000, 3000};
constexpr std::size_t key_count = 8;
constexpr std::uint64_t epoch_ms = 1'700'000'000'000;

enum class ClockKind {
    Wall,     ///< no physical clock given: the replicator reads the wall clock
    Frozen,   ///< every replica's physical clock returns one constant
    Skewed,   ///< simulated time, each replica offset by tens of ms
    OneAhead, ///< simulated time, us-east-1 one second ahead of the others
};

const char* clock_name(ClockKind kind) {
    switch (kind) {
    case ClockKind::Wall:
        return "wall";
    case ClockKind::Frozen:
        return "frozen";
    case ClockKind::Skewed:
        return "skewed";
    case ClockKind::OneAhead:
        return "one-ahead";
    }
    return "?";
}

struct Scenario {
    ConflictResolutionMode mode;
    ClockKind clock;
    /// LWW only: some local writes go through apply_local_write with the caller's timestamp.
    bool explicit_timestamps = false;
    std::size_t seeds = 150;
    std::size_t steps = 2000;
};

/// The last-writer-wins order, `(timestamp_ms, region, seq)`, written out here so the
/// oracle does not share the library's code. In vector-clock mode it is the order too, since
/// put/erase keep "clock order implies timestamp order".
bool lww_before(const GeoRecord& a, const GeoRecord& b) {
    return std::tie(a.timestamp_ms, a.region, a.seq) < std::tie(b.timestamp_ms, b.region, b.seq);
}

/// Fails the test case with `message` (built only on failure); the enclosing INFO names the seed.
#define SIM_CHECK(cond, message)                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            FAIL("step " << step_ << ": " #cond " failed: " << message);                           \
        }                                                                                          \
    } while (false)

/// Three replicas, the simulated time they read, and what the test knows must hold.
class Simulation {
public:
    Simulation(const Scenario& scenario, std::uint64_t seed) : scenario_(scenario), rng_(seed) {
        if (scenario.clock == ClockKind::Skewed) {
            for (auto& offset : offsets_) {
                offset = static_cast<std::int64_t>(pick(121)) - 60; // [-60, +60] ms
            }
        } else if (scenario.clock == ClockKind::OneAhead) {
            offsets_[0] = 1000;
        }
        std::vector<geo::RegionRaftGroup> groups;
        for (std::size_t i = 0; i < replica_count; ++i) {
            groups.emplace_back(regions[i], group_ids[i],
                                std::vector<geo::NodeId>{i * 10 + 1, i * 10 + 2, i * 10 + 3});
        }
        for (std::size_t i = 0; i < replica_count; ++i) {
            auto config = geo::ActiveActiveGeoConfig::multi_region(
                regions[i], std::vector<geo::RegionId>(regions.begin(), regions.end()));
            config.conflict_mode = scenario.mode;
            if (scenario.clock == ClockKind::Wall) {
                replicas_[i] = std::make_unique<ActiveActiveReplicator>(config, groups);
            } else {
                replicas_[i] = std::make_unique<ActiveActiveReplicator>(
                    config, groups, [this, i] { return physical(i); });
            }
        }
    }

    void run() {
        for (step_ = 0; step_ < scenario_.steps; ++step_) {
            if (scenario_.clock == ClockKind::Skewed || scenario_.clock == ClockKind::OneAhead) {
                now_ += pick(3); // 0, 1 or 2 ms a step: many writes share a millisecond
            }
            const std::size_t action = pick(100);
            if (action < 40) {
                write();
            } else if (action < 75) {
                deliver();
            } else if (action < 82) {
                replay();
            } else if (action < 90) {
                flush_deferred_acks();
            } else if (action < 95) {
                partition();
            } else {
                check_queue_bounds();
            }
        }
        heal();
        check_converged();
    }

private:
    struct Batch {
        std::size_t source;
        std::size_t target;
        std::vector<FanoutEntry> entries;
    };
    struct Ack {
        std::size_t source;
        std::size_t target;
        std::uint64_t up_to;
    };

    std::size_t pick(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }

    std::uint64_t physical(std::size_t i) const {
        if (scenario_.clock == ClockKind::Frozen) {
            return epoch_ms;
        }
        return static_cast<std::uint64_t>(static_cast<std::int64_t>(now_) + offsets_[i]);
    }

    std::uint64_t physical_for_caller(std::size_t i) const {
        return scenario_.clock == ClockKind::Wall ? geo::current_timestamp_ms() : physical(i);
    }

    ActiveActiveReplicator& at(std::size_t i) { return *replicas_[i]; }

    // ---- actions ------------------------------------------------------------------------------

    void write() {
        const std::size_t i = pick(replica_count);
        const std::string key = "k" + std::to_string(pick(key_count));
        const std::string value = regions[i] + "#" + std::to_string(step_);
        ActiveActiveReplicator& r = at(i);
        GeoWriteOutcome outcome;
        bool deleted = false;
        bool stamped_by_library = true;
        if (scenario_.explicit_timestamps && pick(3) == 0) {
            stamped_by_library = false;
            std::uint64_t ts = physical_for_caller(i) + pick(41) - 20; // behind or ahead
            if (pick(4) == 0) {
                if (const auto stored = r.get_record(key)) {
                    ts = stored->timestamp_ms; // a tie in the same millisecond
                }
            }
            deleted = pick(5) == 0;
            const std::uint64_t conflicts = r.conflict_count();
            outcome = deleted ? r.apply_local_delete(regions[i], key, ts)
                              : r.apply_local_write(regions[i], key, value, ts);
            SIM_CHECK(r.conflict_count() - conflicts ==
                          (std::holds_alternative<RejectedByConflict>(outcome) ? 1U : 0U),
                      describe(outcome));
        } else {
            deleted = pick(5) == 0;
            const std::uint64_t conflicts = r.conflict_count();
            outcome = deleted ? r.erase(key) : r.put(key, value);
            SIM_CHECK(r.conflict_count() == conflicts, "put/erase raised a conflict");
        }
        SIM_CHECK(!std::holds_alternative<AlreadyApplied>(outcome), describe(outcome));
        SIM_CHECK(!stamped_by_library || std::holds_alternative<Committed>(outcome),
                  "put/erase of " << key << " at " << regions[i] << ": " << describe(outcome));
        const auto* committed = std::get_if<Committed>(&outcome);
        if (committed == nullptr) {
            return;
        }
        const auto stored = r.get_record(key);
        SIM_CHECK(stored.has_value(), key);
        SIM_CHECK(stored->region == regions[i] && stored->seq == committed->seq &&
                      committed->region == regions[i] && stored->deleted == deleted &&
                      (deleted || stored->value == value),
                  describe(stored) << " after " << describe(outcome));
        if (scenario_.mode == ConflictResolutionMode::VectorClock && stamped_by_library) {
            // The vector-clock rule: the local entry is above every entry this region issued.
            const std::uint64_t entry = stored->clock.get(group_ids[i]);
            SIM_CHECK(entry > max_local_entry_[i],
                      regions[i] << " issued " << entry << " after " << max_local_entry_[i]);
            max_local_entry_[i] = entry;
        }
        auto& best = greatest_[key];
        if (!best || lww_before(*best, *stored)) {
            best = *stored;
        }
    }

    /// Ships a random prefix of what `source` owes `target`, maybe twice, maybe acknowledged.
    void deliver() {
        const std::size_t s = pick(replica_count);
        const std::size_t t = (s + 1 + pick(replica_count - 1)) % replica_count;
        if (blocked_until_[s][t] > step_) {
            return;
        }
        const std::size_t max_entries = 1 + pick(6);
        const auto batch = at(s).peek_fanout(regions[s], regions[t], max_entries);
        SIM_CHECK(batch.size() <= max_entries, batch.size());
        for (std::size_t j = 0; j < batch.size(); ++j) {
            const FanoutEntry& e = batch[j];
            SIM_CHECK(e.seq == e.record.seq && e.record.region == regions[s],
                      e.key << " seq " << e.seq << " " << describe(e.record));
            SIM_CHECK(j == 0 || batch[j - 1].seq < e.seq,
                      "seq " << batch[j - 1].seq << " before " << e.seq);
        }
        const std::vector<FanoutEntry> prefix(
            batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(pick(batch.size() + 1)));
        apply(s, t, prefix);
        if (pick(4) == 0) {
            apply(s, t, prefix); // a duplicate shipment
        }
        if (prefix.empty()) {
            return;
        }
        history_.push_back(Batch{s, t, prefix});
        if (history_.size() > 64) {
            history_.erase(history_.begin());
        }
        switch (pick(3)) {
        case 0:
            (void)at(s).acknowledge_fanout(regions[s], regions[t], prefix.back().seq);
            break;
        case 1:
            deferred_acks_.push_back(Ack{s, t, prefix.back().seq});
            break;
        default:
            break; // never acknowledged: re-sent by a later peek
        }
    }

    /// Applies entries in order, checking each outcome against the target's cursor.
    void apply(std::size_t s, std::size_t t, const std::vector<FanoutEntry>& entries) {
        std::uint64_t& cursor = applied_[t][s];
        for (const auto& e : entries) {
            const auto before = at(t).get_record(e.key);
            const std::uint64_t conflicts = at(t).conflict_count();
            const GeoWriteOutcome outcome = at(t).apply_remote(regions[s], e);
            const std::uint64_t raised = at(t).conflict_count() - conflicts;
            SIM_CHECK(raised == expected_conflicts(before, e.record, outcome),
                      raised << " conflicts for " << e.key << " " << describe(e.record) << " over "
                             << describe(before) << ": " << describe(outcome));
            const GeoWriteOutcome already{AlreadyApplied{regions[s], e.seq}};
            const GeoWriteOutcome committed{Committed{regions[s], e.seq}};
            if (e.seq <= cursor) {
                SIM_CHECK(outcome == already, regions[s] << "->" << regions[t] << " " << e.key
                                                         << " seq " << e.seq << " (applied up to "
                                                         << cursor << "): " << describe(outcome));
            } else {
                SIM_CHECK(outcome == committed ||
                              std::holds_alternative<RejectedByConflict>(outcome),
                          regions[s] << "->" << regions[t] << " " << e.key << " seq " << e.seq
                                     << ": " << describe(outcome));
                cursor = e.seq;
            }
        }
        if (!entries.empty()) {
            const std::uint64_t seen = at(t).region_sequences().at(regions[s]);
            SIM_CHECK(seen == cursor, regions[t] << " reports " << seen << " applied from "
                                                 << regions[s] << ", expected " << cursor);
        }
    }

    /// Every rejected write is one conflict; in vector-clock mode so is a stored record that
    /// an incoming write displaces without following it causally. Nothing else is.
    std::uint64_t expected_conflicts(const std::optional<GeoRecord>& before,
                                     const GeoRecord& incoming,
                                     const GeoWriteOutcome& outcome) const {
        if (std::holds_alternative<RejectedByConflict>(outcome)) {
            return 1;
        }
        if (std::holds_alternative<Committed>(outcome) && before &&
            scenario_.mode == ConflictResolutionMode::VectorClock &&
            !before->clock.happens_before(incoming.clock)) {
            return 1;
        }
        return 0;
    }

    /// Re-delivers a batch applied earlier: every entry is AlreadyApplied, nothing changes.
    void replay() {
        if (history_.empty()) {
            return;
        }
        const Batch& old = history_[pick(history_.size())];
        std::vector<std::optional<GeoRecord>> before;
        for (const auto& e : old.entries) {
            before.push_back(at(old.target).get_record(e.key));
        }
        const auto conflicts = at(old.target).conflict_count();
        for (std::size_t j = 0; j < old.entries.size(); ++j) {
            const FanoutEntry& e = old.entries[j];
            const GeoWriteOutcome outcome = at(old.target).apply_remote(regions[old.source], e);
            const GeoWriteOutcome already{AlreadyApplied{regions[old.source], e.seq}};
            SIM_CHECK(outcome == already,
                      "replayed " << e.key << " seq " << e.seq << ": " << describe(outcome));
        }
        for (std::size_t j = 0; j < old.entries.size(); ++j) {
            const auto now = at(old.target).get_record(old.entries[j].key);
            SIM_CHECK(now == before[j], describe(before[j]) << " became " << describe(now));
        }
        SIM_CHECK(at(old.target).conflict_count() == conflicts, "replay raised a conflict");
    }

    void flush_deferred_acks() {
        for (const auto& ack : deferred_acks_) {
            (void)at(ack.source)
                .acknowledge_fanout(regions[ack.source], regions[ack.target], ack.up_to);
        }
        deferred_acks_.clear();
    }

    void partition() {
        const std::size_t s = pick(replica_count);
        const std::size_t t = (s + 1 + pick(replica_count - 1)) % replica_count;
        const std::size_t until = step_ + 50 + pick(400);
        blocked_until_[s][t] = until;
        if (pick(2) == 0) {
            blocked_until_[t][s] = until;
        }
    }

    /// At most one pending entry per key and source; a region owes itself nothing.
    void check_queue_bounds() {
        for (std::size_t s = 0; s < replica_count; ++s) {
            const auto pending = at(s).pending_fanout_len(regions[s]);
            SIM_CHECK(pending <= key_count, regions[s] << " holds " << pending);
            SIM_CHECK(at(s).peek_fanout(regions[s], regions[s]).empty(), regions[s]);
            for (std::size_t t = 0; t < replica_count; ++t) {
                const auto owed = at(s).pending_fanout_len(regions[s], regions[t]);
                SIM_CHECK(owed <= pending, regions[s] << "->" << regions[t]);
                SIM_CHECK(at(s).peek_fanout(regions[s], regions[t]).size() == owed,
                          regions[s] << "->" << regions[t] << " owes " << owed);
            }
        }
    }

    // ---- the end ------------------------------------------------------------------------------

    void heal() {
        flush_deferred_acks();
        for (int round = 0; round < 4; ++round) {
            for (std::size_t s = 0; s < replica_count; ++s) {
                for (std::size_t t = 0; t < replica_count; ++t) {
                    if (s == t) {
                        continue;
                    }
                    const auto batch = at(s).peek_fanout(regions[s], regions[t]);
                    apply(s, t, batch);
                    if (!batch.empty()) {
                        (void)at(s).acknowledge_fanout(regions[s], regions[t], batch.back().seq);
                    }
                }
            }
        }
        for (std::size_t s = 0; s < replica_count; ++s) {
            SIM_CHECK(at(s).pending_fanout_len(regions[s]) == 0,
                      regions[s] << " still owes " << at(s).pending_fanout_len(regions[s]));
        }
    }

    void check_converged() {
        std::size_t present = 0;
        for (std::size_t k = 0; k < key_count; ++k) {
            const std::string key = "k" + std::to_string(k);
            std::optional<GeoRecord> expected;
            if (const auto it = greatest_.find(key); it != greatest_.end()) {
                expected = it->second;
            }
            present += expected.has_value() ? 1 : 0;
            for (std::size_t i = 0; i < replica_count; ++i) {
                const auto actual = at(i).get_record(key);
                SIM_CHECK(actual == expected,
                          "after healing, "
                              << regions[i] << " holds " << key << " = " << describe(actual)
                              << "; the greatest committed write is " << describe(expected)
                              << " (us-east-1: " << describe(at(0).get_record(key))
                              << ", eu-west-1: " << describe(at(1).get_record(key))
                              << ", ap-northeast-1: " << describe(at(2).get_record(key)) << ")");
            }
        }
        for (std::size_t i = 0; i < replica_count; ++i) {
            SIM_CHECK(at(i).record_count() == present, regions[i] << ": " << at(i).record_count());
        }
    }

    Scenario scenario_;
    std::mt19937_64 rng_;
    std::uint64_t now_ = epoch_ms;
    std::array<std::int64_t, replica_count> offsets_{};
    std::array<std::unique_ptr<ActiveActiveReplicator>, replica_count> replicas_;
    std::size_t step_ = 0;

    std::map<std::string, std::optional<GeoRecord>> greatest_; ///< the LWW-greatest commit
    std::array<std::uint64_t, replica_count> max_local_entry_{};
    std::array<std::array<std::uint64_t, replica_count>, replica_count> applied_{}; ///< [t][s]
    std::array<std::array<std::size_t, replica_count>, replica_count> blocked_until_{};
    std::vector<Batch> history_;
    std::vector<Ack> deferred_acks_;
};

#undef SIM_CHECK

std::optional<std::uint64_t> env_number(const char* name) {
    if (const char* text = std::getenv(name)) {
        return std::strtoull(text, nullptr, 10);
    }
    return std::nullopt;
}

void run_scenario(Scenario scenario) {
    std::uint64_t first = 1;
    std::uint64_t last = scenario.seeds;
    if (const auto seeds = env_number("GEO_CONVERGENCE_SEEDS")) {
        last = *seeds;
    }
    if (const auto only = env_number("GEO_CONVERGENCE_SEED")) {
        first = last = *only;
    }
    const std::string mode(geo::to_string(scenario.mode));
    for (std::uint64_t seed = first; seed <= last; ++seed) {
        INFO("reproduce: GEO_CONVERGENCE_SEED="
             << seed << " (mode " << mode << ", clock " << clock_name(scenario.clock) << ", "
             << scenario.steps << " steps"
             << (scenario.explicit_timestamps ? ", explicit timestamps" : "") << ")");
        Simulation(scenario, seed).run();
    }
    SUCCEED("converged");
}

constexpr auto lww = ConflictResolutionMode::LastWriterWins;
constexpr auto vc = ConflictResolutionMode::VectorClock;

} // namespace

TEST_CASE("LWW replicas converge on the greatest write: wall clock", "[convergence]") {
    run_scenario({lww, ClockKind::Wall});
}

TEST_CASE("LWW replicas converge on the greatest write: frozen clocks", "[convergence]") {
    run_scenario({lww, ClockKind::Frozen});
}

TEST_CASE("LWW replicas converge on the greatest write: skewed clocks", "[convergence]") {
    run_scenario({lww, ClockKind::Skewed});
}

TEST_CASE("LWW replicas converge on the greatest write: one replica a second ahead",
          "[convergence]") {
    run_scenario({lww, ClockKind::OneAhead});
}

TEST_CASE("vector-clock replicas converge on the greatest write: wall clock", "[convergence]") {
    run_scenario({vc, ClockKind::Wall});
}

TEST_CASE("vector-clock replicas converge on the greatest write: frozen clocks", "[convergence]") {
    run_scenario({vc, ClockKind::Frozen});
}

TEST_CASE("vector-clock replicas converge on the greatest write: skewed clocks", "[convergence]") {
    run_scenario({vc, ClockKind::Skewed});
}

TEST_CASE("vector-clock replicas converge on the greatest write: one replica a second ahead",
          "[convergence]") {
    run_scenario({vc, ClockKind::OneAhead});
}

TEST_CASE("LWW replicas converge when apply_local_write's explicit timestamps mix with puts",
          "[convergence]") {
    for (auto clock : {ClockKind::Frozen, ClockKind::Skewed, ClockKind::OneAhead}) {
        run_scenario({lww, clock, true, 50});
    }
}

// ---- the vector-clock rule (docs/design.md, section 3.8) ----------------------------------------

namespace {

std::unique_ptr<ActiveActiveReplicator> vc_replica(std::size_t i, std::uint64_t physical_ms) {
    auto config = geo::ActiveActiveGeoConfig::multi_region(
        regions[i], std::vector<geo::RegionId>(regions.begin(), regions.end()));
    config.conflict_mode = ConflictResolutionMode::VectorClock;
    std::vector<geo::RegionRaftGroup> groups;
    for (std::size_t g = 0; g < replica_count; ++g) {
        groups.emplace_back(regions[g], group_ids[g], std::vector<geo::NodeId>{g + 1});
    }
    return std::make_unique<ActiveActiveReplicator>(config, groups,
                                                    [physical_ms] { return physical_ms; });
}

} // namespace

TEST_CASE("in vector-clock mode, put and erase issue a local clock entry above every entry the "
          "region issued before, even after a concurrent write displaced the region's own",
          "[convergence][vector-clock]") {
    // us-east-1 is 50 ms behind eu-west-1, ap-northeast-1 another 30 ms behind.
    auto a = vc_replica(0, epoch_ms + 50);
    auto b = vc_replica(1, epoch_ms + 100);
    auto c = vc_replica(2, epoch_ms + 20);
    const std::uint64_t g = group_ids[0];

    REQUIRE(std::holds_alternative<Committed>(a->put("k", "us-1")));
    const GeoRecord us1 = *a->get_record("k");
    ship(*a, *c); // ap sees us-1 only

    REQUIRE(std::holds_alternative<Committed>(b->put("k", "eu-1"))); // concurrent, later
    ship(*b, *a); // eu-1 displaces us-east-1's own write there
    REQUIRE(a->get("k") == "eu-1");
    REQUIRE(a->conflict_count() == 1);

    // The stored record's own entry is 0 now: "stored clock + 1" would reissue us-1's entry.
    REQUIRE(std::holds_alternative<Committed>(a->put("k", "us-2")));
    const GeoRecord us2 = *a->get_record("k");
    REQUIRE(us2.clock.get(g) > us1.clock.get(g));
    REQUIRE(us1.clock.happens_before(us2.clock));
    REQUIRE(us2.timestamp_ms > us1.timestamp_ms);

    REQUIRE(std::holds_alternative<Committed>(a->erase("k")));
    const GeoRecord us3 = *a->get_record("k");
    REQUIRE(us3.clock.get(g) > us2.clock.get(g));
    REQUIRE(us2.clock.happens_before(us3.clock));

    // ap wrote on top of us-1 with a clock that is far behind; everything still converges.
    REQUIRE(std::holds_alternative<Committed>(c->put("k", "ap-1")));
    for (int round = 0; round < 2; ++round) {
        for (auto* from : {a.get(), b.get(), c.get()}) {
            for (auto* to : {a.get(), b.get(), c.get()}) {
                if (from != to) {
                    ship(*from, *to);
                }
            }
        }
    }
    const GeoRecord final_a = *a->get_record("k");
    REQUIRE(final_a == *b->get_record("k"));
    REQUIRE(final_a == *c->get_record("k"));
    REQUIRE(final_a == us3);
}
