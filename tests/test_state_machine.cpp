// The replicator as a Raft state machine: every node of a region's group applies the same
// committed log (local writes stamped by the proposer, remote batches, acknowledgements,
// purges with a log time) and must end in the same state with the same outcomes, whatever its
// physical clock, hash seed or restores from snapshots along the way.
#include <geo/replicator.hpp>

#include "geo_test.hpp"
#include "replication_fixtures.hpp"
#include "state_machine_fixtures.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace {

using geo::ActiveActiveReplicator;
using geo::AlreadyApplied;
using geo::Committed;
using geo::ConflictResolutionMode;
using geo::FanoutEntry;
using geo::GeoWriteOutcome;
using geo::OutOfOrder;
using geo::RejectedByConflict;
using geo_test::ap;
using geo_test::both_modes;
using geo_test::eu;
using geo_test::us;
using geo_test::sm::frozen_replica;
using geo_test::sm::is;
using geo_test::sm::make_replica;
using geo_test::sm::restore_from;
using geo_test::sm::snapshot_bytes;
using geo_test::sm::start_ms;
using geo_test::sm::text;

constexpr std::uint64_t max_u64 = std::numeric_limits<std::uint64_t>::max();

// ---- the log -----------------------------------------------------------------------------------

/// One committed log entry of the us-east-1 group, as every node applies it.
struct Command {
    enum class Kind { Put, Erase, Remote, Ack, Purge } kind{};
    std::string key;
    std::string value;
    std::uint64_t ts{};             ///< Put/Erase: the proposer's stamp
    std::string region;             ///< Remote: origin; Ack: target
    std::vector<FanoutEntry> batch; ///< Remote
    std::uint64_t number{};         ///< Ack: up_to_seq; Purge: now_ms
};

/// Typed results, to compare with == as well as through their text.
struct Typed {
    std::optional<GeoWriteOutcome> one;
    std::vector<GeoWriteOutcome> many;
    std::size_t count{};
    friend bool operator==(const Typed& a, const Typed& b) {
        return a.one == b.one && a.many == b.many && a.count == b.count;
    }
};

Typed apply_typed(ActiveActiveReplicator& node, const Command& c) {
    Typed t;
    switch (c.kind) {
    case Command::Kind::Put:
        t.one = node.put(c.key, c.value, c.ts);
        break;
    case Command::Kind::Erase:
        t.one = node.erase(c.key, c.ts);
        break;
    case Command::Kind::Remote:
        t.many = node.apply_remote(c.region, c.batch);
        break;
    case Command::Kind::Ack:
        t.count = node.acknowledge_fanout(us, c.region, c.number);
        break;
    case Command::Kind::Purge:
        t.count = node.purge_tombstones(c.number);
        break;
    }
    return t;
}

std::string text(const Typed& t) {
    return (t.one ? text(*t.one) : std::string()) + text(t.many) + " " + std::to_string(t.count);
}

// ---- the simulation ----------------------------------------------------------------------------

/// What the random logs exercised, summed over seeds: each must happen, or the test proves
/// less than it claims.
struct Coverage {
    std::uint64_t local_committed{}, local_rejected{}, remote_committed{}, remote_rejected{},
        already_applied{}, out_of_order{}, purged{}, acks_past_newest{}, restores_from_other{},
        replays{}, replayed_commands{}, stale_stamps{}, lifted{};
};

constexpr std::uint64_t grace_ms = 3000;
constexpr int key_space = 12;
const std::array<std::int64_t, 3> node_skew = {-5000, 0, 7000};

/// Three nodes of us-east-1 applying one log, two peer regions (one replicator each) writing
/// with their own clocks, and the transport between them (lossy, duplicating, reordering).
class Simulation {
public:
    Simulation(ConflictResolutionMode mode, std::uint64_t seed, Coverage& coverage)
        : cov_(coverage), rng_(seed), wall_(start_ms) {
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            const std::int64_t skew = node_skew[i];
            nodes_[i] = make_replica(
                us, mode, [this, skew] { return skewed(skew); },
                std::chrono::milliseconds(grace_ms));
        }
        peers_[eu] = make_replica(
            eu, mode, [this] { return skewed(3000); }, std::chrono::milliseconds(grace_ms));
        peers_[ap] = make_replica(
            ap, mode, [this] { return skewed(-4000); }, std::chrono::milliseconds(grace_ms));
    }

    void run(int commands) {
        for (step_ = 0; step_ < commands; ++step_) {
            CAPTURE(step_);
            wall_ += pick(300);
            const auto roll = pick(100);
            if (roll < 30) {
                local_write();
            } else if (roll < 40) {
                peer_write();
            } else if (roll < 57) {
                deliver_to_us(pick(2) == 0 ? eu : ap);
            } else if (roll < 70) {
                ship_from_us(pick(2) == 0 ? eu : ap);
            } else if (roll < 75) {
                peer_acknowledges(pick(2) == 0 ? eu : ap);
            } else if (roll < 80) {
                peers_exchange();
            } else if (roll < 86) {
                purge();
            } else if (roll < 89) {
                restore_from_other_node();
            } else if (roll < 92) {
                save_or_replay_own_snapshot();
            } else if (roll < 95) {
                require_nodes_identical();
            } else {
                stash_stamp();
            }
        }
        finish();
    }

private:
    std::uint64_t skewed(std::int64_t skew) const {
        return static_cast<std::uint64_t>(static_cast<std::int64_t>(wall_) + skew);
    }
    std::uint64_t pick(std::uint64_t n) { return rng_() % n; }
    std::string random_key() { return "k" + std::to_string(pick(key_space)); }

    /// Applies `c` on every node; every node must answer the same (compared with == and as
    /// text). Logged, for nodes that replay the log after restoring an older snapshot.
    Typed commit(const Command& c) {
        std::array<Typed, 3> results;
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            results[i] = apply_typed(*nodes_[i], c);
        }
        if (!(results[0] == results[1] && results[0] == results[2])) { // described only then
            INFO("node 0: " << text(results[0]) << "\nnode 1: " << text(results[1])
                            << "\nnode 2: " << text(results[2]));
            REQUIRE(results[0] == results[1]);
            REQUIRE(results[0] == results[2]);
        }
        log_.push_back(c);
        log_results_.push_back(results[0]);
        return results[0];
    }

    // ---- commands ------------------------------------------------------------------------

    /// A proposer (a random node) stamps a local write before it is committed; sometimes the
    /// stamp of an older proposal (a deposed leader's) is committed instead.
    void local_write() {
        Command c;
        c.kind = pick(4) == 0 ? Command::Kind::Erase : Command::Kind::Put;
        c.key = random_key();
        c.value = "v" + std::to_string(step_);
        if (!stashed_.empty() && pick(4) == 0) {
            const std::size_t i = pick(stashed_.size());
            c.ts = stashed_[i];
            ++cov_.stale_stamps;
            stashed_.erase(stashed_.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
            c.ts = nodes_[pick(3)]->next_timestamp();
        }
        const Typed t = commit(c);
        REQUIRE(t.one.has_value());
        // A committed local write takes the region's next seq on every node alike.
        if (is<Committed>(*t.one)) {
            ++cov_.local_committed;
            REQUIRE(std::get<Committed>(*t.one).seq == nodes_[0]->region_sequences().at(us));
            const auto stored = nodes_[0]->get_record(c.key);
            REQUIRE(stored.has_value());
            REQUIRE(stored->timestamp_ms >= c.ts);
            cov_.lifted += stored->timestamp_ms > c.ts ? 1 : 0;
        } else {
            REQUIRE(is<RejectedByConflict>(*t.one));
            ++cov_.local_rejected;
        }
    }

    void stash_stamp() { stashed_.push_back(nodes_[pick(3)]->next_timestamp()); }

    void peer_write() {
        auto& peer = *peers_[pick(2) == 0 ? eu : ap];
        const std::string key = random_key();
        const auto outcome =
            pick(4) == 0 ? peer.erase(key) : peer.put(key, "p" + std::to_string(step_));
        if (!is<Committed>(outcome)) {
            FAIL("peer write: " << text(outcome));
        }
    }

    /// A peer ships (part of) its stream to the group, pipelining from where it last sent or
    /// re-sending from the acknowledged cursor; the transport loses, duplicates, splits and
    /// reorders.
    void deliver_to_us(const std::string& p) {
        auto& peer = *peers_[p];
        const std::uint64_t after = pick(2) == 0 ? sent_to_us_[p] : 0;
        const auto batch = peer.peek_fanout(p, us, 1 + pick(6), after);
        if (batch.empty()) {
            sent_to_us_[p] = 0;
            return;
        }
        const std::size_t half = batch.size() / 2;
        const std::vector<FanoutEntry> first(batch.begin(),
                                             batch.begin() + static_cast<std::ptrdiff_t>(half));
        const std::vector<FanoutEntry> second(batch.begin() + static_cast<std::ptrdiff_t>(half),
                                              batch.end());
        bool refused = false;
        switch (pick(7)) {
        case 0: // lost
            break;
        case 1: // duplicated
            refused |= deliver(p, batch);
            refused |= deliver(p, batch);
            break;
        case 2: // split, second half first
            refused |= deliver(p, second);
            refused |= deliver(p, first);
            break;
        case 3: // reversed
            refused |= deliver(p, std::vector<FanoutEntry>(batch.rbegin(), batch.rend()));
            break;
        case 4: // first half lost
            refused |= deliver(p, second);
            break;
        default:
            refused |= deliver(p, batch);
            break;
        }
        // The sender hears of a refusal and goes back to the acknowledged cursor.
        sent_to_us_[p] = refused ? 0 : batch.back().seq;
    }

    /// One delivery of `batch` from `p`, committed on every node; each outcome is checked
    /// against the stream model: at or below the applied seq AlreadyApplied, after a gap
    /// OutOfOrder, else applied. Returns whether an entry was refused as out of order.
    bool deliver(const std::string& p, const std::vector<FanoutEntry>& batch) {
        if (batch.empty()) {
            return false;
        }
        std::uint64_t applied = nodes_[0]->region_sequences().at(p);
        Command c;
        c.kind = Command::Kind::Remote;
        c.region = p;
        c.batch = batch;
        const Typed t = commit(c);
        REQUIRE(t.many.size() == batch.size());
        bool refused = false;
        for (std::size_t i = 0; i < batch.size(); ++i) {
            const auto& e = batch[i];
            const GeoWriteOutcome& got = t.many[i];
            std::optional<GeoWriteOutcome> expected;
            if (e.seq <= applied) {
                expected = AlreadyApplied{p, e.seq};
                ++cov_.already_applied;
            } else if (e.prev_seq > applied) {
                expected = OutOfOrder{p, e.seq, applied};
                ++cov_.out_of_order;
                refused = true;
            } else if (is<Committed>(got)) {
                expected = Committed{p, e.seq};
                ++cov_.remote_committed;
                applied = e.seq;
            } else {
                ++cov_.remote_rejected;
                applied = e.seq;
            }
            const bool as_expected = expected ? got == *expected : is<RejectedByConflict>(got);
            if (!as_expected) {
                INFO("entry " << i << ": " << text(e) << "\nanswered " << text(got) << "\nexpected "
                              << (expected ? text(*expected) : "RejectedByConflict"));
                REQUIRE(as_expected);
            }
        }
        REQUIRE(nodes_[0]->region_sequences().at(p) == applied);
        return refused;
    }

    /// The group ships its stream to peer `p`: every node would hand out the same batch; the
    /// peer applies it (or the batch is lost), and the acknowledgement is committed.
    void ship_from_us(const std::string& p) {
        auto& peer = *peers_[p];
        const std::uint64_t after = pick(2) == 0 ? sent_from_us_[p] : 0;
        const std::size_t max = 1 + pick(5);
        const auto batch = nodes_[0]->peek_fanout(us, p, max, after);
        for (std::size_t i = 1; i < nodes_.size(); ++i) {
            const auto other = nodes_[i]->peek_fanout(us, p, max, after);
            if (other != batch) {
                INFO("node " << i << ": " << text(other) << "\nnode 0: " << text(batch));
                REQUIRE(other == batch);
            }
        }
        if (batch.empty()) {
            sent_from_us_[p] = 0;
        } else if (pick(5) == 0) {
            sent_from_us_[p] = batch.back().seq; // lost; the pipeline goes on
        } else {
            const auto outcomes = peer.apply_remote(us, batch);
            const bool refused = std::any_of(outcomes.begin(), outcomes.end(),
                                             [](const auto& o) { return is<OutOfOrder>(o); });
            sent_from_us_[p] = refused ? 0 : batch.back().seq;
        }
        if (pick(10) < 7) {
            acknowledge_us(p);
        }
    }

    /// Commits peer `p`'s acknowledgement of the group's stream (sometimes past the newest
    /// entry, when the peer holds everything).
    void acknowledge_us(const std::string& p) {
        Command c;
        c.kind = Command::Kind::Ack;
        c.region = p;
        c.number = peers_[p]->region_sequences().at(us);
        if (c.number == nodes_[0]->region_sequences().at(us) && pick(6) == 0) {
            c.number = pick(2) == 0 ? max_u64 : c.number + 1 + pick(10);
            ++cov_.acks_past_newest;
        }
        (void)commit(c);
    }

    void peer_acknowledges(const std::string& p) {
        (void)peers_[p]->acknowledge_fanout(p, us, nodes_[0]->region_sequences().at(p));
    }

    void peers_exchange() {
        geo_test::ship(*peers_[eu], *peers_[ap]);
        geo_test::ship(*peers_[ap], *peers_[eu]);
    }

    /// A purge with a log time, bounded so that no write older than a purged tombstone can
    /// still reach the group (the grace-period contract: every delivery finishes within it).
    void purge() {
        std::uint64_t oldest = std::min(skewed(3000), skewed(-4000)); // peers' next stamps
        for (const auto& p : {eu, ap}) {
            for (const auto& e : peers_[p]->peek_fanout(p, us)) {
                oldest = std::min(oldest, e.record.timestamp_ms);
            }
        }
        for (const std::uint64_t ts : stashed_) {
            oldest = std::min(oldest, ts);
        }
        Command c;
        c.kind = Command::Kind::Purge;
        c.number = std::min(wall_ + pick(5000), oldest + grace_ms - 1);
        cov_.purged += commit(c).count;
    }

    /// A node restores another node's snapshot taken at the same log position.
    void restore_from_other_node() {
        const std::size_t to = pick(3);
        const std::size_t from = (to + 1 + pick(2)) % 3;
        const std::string bytes = snapshot_bytes(*nodes_[from]);
        restore_from(*nodes_[to], bytes);
        GEO_REQUIRE_SAME_BYTES(snapshot_bytes(*nodes_[to]), bytes);
        ++cov_.restores_from_other;
        if (saved_ && saved_->node == to) {
            saved_.reset();
        }
    }

    /// A node keeps a snapshot of its own; later it restores it and replays the log suffix,
    /// answering every command as the first time.
    void save_or_replay_own_snapshot() {
        if (!saved_) {
            const std::size_t node = pick(3);
            saved_ = Saved{node, snapshot_bytes(*nodes_[node]), log_.size()};
            return;
        }
        ActiveActiveReplicator& node = *nodes_[saved_->node];
        restore_from(node, saved_->bytes);
        ++cov_.replays;
        cov_.replayed_commands += log_.size() - saved_->log_position;
        for (std::size_t i = saved_->log_position; i < log_.size(); ++i) {
            CAPTURE(i);
            const Typed again = apply_typed(node, log_[i]);
            if (!(again == log_results_[i])) {
                INFO(text(again) << "\nfirst time: " << text(log_results_[i]));
                REQUIRE(again == log_results_[i]);
            }
        }
        const std::size_t other = (saved_->node + 1) % 3;
        GEO_REQUIRE_SAME_BYTES(snapshot_bytes(node), snapshot_bytes(*nodes_[other]));
        saved_.reset();
    }

    void require_nodes_identical() {
        const std::string bytes = snapshot_bytes(*nodes_[0]);
        const std::uint64_t digest = nodes_[0]->records_digest();
        for (std::size_t i = 1; i < nodes_.size(); ++i) {
            CAPTURE(i);
            GEO_REQUIRE_SAME_BYTES(snapshot_bytes(*nodes_[i]), bytes);
            REQUIRE(nodes_[i]->records_digest() == digest);
            REQUIRE(nodes_[i]->region_sequences() == nodes_[0]->region_sequences());
        }
    }

    // ---- the end -------------------------------------------------------------------------

    /// Every stream delivered and acknowledged; the nodes are byte-identical and the region
    /// holds what its peers hold.
    void finish() {
        for (int round = 0; round < 4; ++round) {
            for (const auto& p : {eu, ap}) {
                sent_to_us_[p] = 0;
                (void)deliver(p, peers_[p]->peek_fanout(p, us));
                peer_acknowledges(p);
                const auto batch = nodes_[0]->peek_fanout(us, p);
                for (const auto& o : peers_[p]->apply_remote(us, batch)) {
                    INFO(text(o));
                    REQUIRE_FALSE(is<OutOfOrder>(o));
                }
                acknowledge_us(p);
            }
            peers_exchange();
        }
        for (const auto& p : {us, eu, ap}) {
            for (auto& node : nodes_) {
                REQUIRE(node->pending_fanout_len(p) == 0);
            }
            REQUIRE(peers_[eu]->pending_fanout_len(p) == 0);
            REQUIRE(peers_[ap]->pending_fanout_len(p) == 0);
        }
        if (saved_) {
            save_or_replay_own_snapshot();
        }
        require_nodes_identical();

        // The group purged tombstones its peers still keep; every other record is the same.
        for (int k = 0; k < key_space; ++k) {
            const std::string key = "k" + std::to_string(k);
            CAPTURE(key);
            const auto at_us = nodes_[0]->get_record(key);
            const auto at_eu = peers_[eu]->get_record(key);
            REQUIRE(peers_[ap]->get_record(key) == at_eu);
            if (at_us) {
                REQUIRE(at_us == at_eu);
            } else if (at_eu) {
                REQUIRE(at_eu->deleted);
            }
        }
        Command c;
        c.kind = Command::Kind::Purge;
        c.number = max_u64;
        (void)commit(c);
        (void)peers_[eu]->purge_tombstones(max_u64);
        (void)peers_[ap]->purge_tombstones(max_u64);
        require_nodes_identical();
        REQUIRE(peers_[eu]->records_digest() == nodes_[0]->records_digest());
        REQUIRE(peers_[ap]->records_digest() == nodes_[0]->records_digest());
        REQUIRE(peers_[eu]->record_count() == nodes_[0]->record_count());
    }

    struct Saved {
        std::size_t node;
        std::string bytes;
        std::size_t log_position;
    };

    Coverage& cov_;
    std::mt19937_64 rng_;
    std::uint64_t wall_;
    int step_{};
    std::array<std::unique_ptr<ActiveActiveReplicator>, 3> nodes_;
    std::map<std::string, std::unique_ptr<ActiveActiveReplicator>> peers_;
    std::map<std::string, std::uint64_t> sent_to_us_{{eu, 0}, {ap, 0}};
    std::map<std::string, std::uint64_t> sent_from_us_{{eu, 0}, {ap, 0}};
    std::vector<std::uint64_t> stashed_;
    std::vector<Command> log_;
    std::vector<Typed> log_results_;
    std::optional<Saved> saved_;
};

} // namespace

// ---- determinism under a random log ------------------------------------------------------------

TEST_CASE("three nodes of a region with skewed clocks applying the same log give the same "
          "outcome for every command, end with byte-identical snapshots, and converge with "
          "their peer regions",
          "[state_machine][determinism]") {
    constexpr std::uint64_t seeds = 60;
    constexpr int commands = 400;
    for (auto mode : both_modes) {
        Coverage cov;
        for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
            CAPTURE(geo_test::mode_name(mode), seed);
            Simulation sim(mode, seed, cov);
            sim.run(commands);
        }
        CAPTURE(geo_test::mode_name(mode), cov.local_committed, cov.local_rejected,
                cov.remote_committed, cov.remote_rejected, cov.already_applied, cov.out_of_order,
                cov.purged, cov.acks_past_newest, cov.restores_from_other, cov.replays,
                cov.replayed_commands, cov.stale_stamps, cov.lifted);
        CHECK(cov.local_committed > 0);
        CHECK(cov.remote_committed > 0);
        CHECK(cov.remote_rejected > 0);
        CHECK(cov.already_applied > 0);
        CHECK(cov.out_of_order > 0);
        CHECK(cov.purged > 0);
        CHECK(cov.acks_past_newest > 0);
        CHECK(cov.restores_from_other > 0);
        CHECK(cov.replays > 0);
        CHECK(cov.replayed_commands > 0);
        CHECK(cov.stale_stamps > 0);
        if (mode == ConflictResolutionMode::LastWriterWins) {
            CHECK(cov.local_rejected > 0); // a local write below a stored later write
            CHECK(cov.lifted == 0);
        } else {
            CHECK(cov.lifted > 0); // a log stamp at or below the stored record's
        }
    }
}

// ---- deterministic apply -----------------------------------------------------------------------

TEST_CASE("the same put(k, v, ts) sequence on replicas with very different physical clocks "
          "stores identical records and answers identical outcomes",
          "[state_machine][deterministic_apply]") {
    for (auto mode : both_modes) {
        CAPTURE(geo_test::mode_name(mode));
        std::vector<std::unique_ptr<ActiveActiveReplicator>> nodes;
        for (std::uint64_t clock : {std::uint64_t{0}, start_ms, std::uint64_t{1} << 62}) {
            nodes.push_back(frozen_replica(us, mode, clock));
        }
        // Timestamps out of order, repeated, and a remote write in between.
        struct Write {
            const char* key;
            const char* value; // nullptr: erase
            std::uint64_t ts;
        };
        const std::vector<Write> writes = {{"a", "1", start_ms + 10},
                                           {"b", "2", start_ms + 5},
                                           {"a", "3", start_ms + 7},
                                           {"a", nullptr, start_ms + 7},
                                           {"c", "4", 1},
                                           {"b", "5", start_ms + 5},
                                           {"c", nullptr, 0},
                                           {"d", "6", start_ms + 100}};
        const FanoutEntry remote =
            geo_test::entry(eu, "b", "eu", start_ms + 50, 1, geo::VectorClock{{200, 1}});
        std::vector<std::vector<GeoWriteOutcome>> outcomes(nodes.size());
        for (std::size_t n = 0; n < nodes.size(); ++n) {
            for (std::size_t i = 0; i < writes.size(); ++i) {
                if (i == 4) {
                    outcomes[n].push_back(nodes[n]->apply_remote(eu, remote));
                }
                const Write& w = writes[i];
                outcomes[n].push_back(w.value ? nodes[n]->put(w.key, w.value, w.ts)
                                              : nodes[n]->erase(w.key, w.ts));
            }
        }
        for (std::size_t n = 1; n < nodes.size(); ++n) {
            CAPTURE(n);
            INFO(text(outcomes[0]) << "\n" << text(outcomes[n]));
            REQUIRE(outcomes[n] == outcomes[0]);
            for (const char* key : {"a", "b", "c", "d"}) {
                CAPTURE(key);
                REQUIRE(nodes[n]->get_record(key) == nodes[0]->get_record(key));
            }
            REQUIRE(nodes[n]->records_digest() == nodes[0]->records_digest());
            GEO_REQUIRE_SAME_BYTES(snapshot_bytes(*nodes[n]), snapshot_bytes(*nodes[0]));
            REQUIRE(nodes[n]->peek_fanout(us, eu) == nodes[0]->peek_fanout(us, eu));
        }
        // The log's timestamp is stored (lifted only in vector-clock mode, only above the
        // stored record's): never the node's clock.
        REQUIRE(nodes[0]->get_record("d")->timestamp_ms == start_ms + 100);
        REQUIRE(nodes[0]->get_record("c")->timestamp_ms ==
                (mode == ConflictResolutionMode::VectorClock ? 2 : 1));
    }
}

TEST_CASE("in LWW mode, put(k, v, ts) with ts below a stored remote write's timestamp answers "
          "RejectedByConflict identically on every node and changes nothing",
          "[state_machine][deterministic_apply][lww]") {
    std::vector<std::unique_ptr<ActiveActiveReplicator>> nodes;
    for (std::uint64_t clock : {std::uint64_t{1}, start_ms, start_ms + 86'400'000}) {
        nodes.push_back(frozen_replica(us, ConflictResolutionMode::LastWriterWins, clock));
    }
    const FanoutEntry remote = geo_test::entry(eu, "k", "eu", start_ms + 1000, 1);
    for (auto& node : nodes) {
        REQUIRE(node->apply_remote(eu, remote) == GeoWriteOutcome(Committed{eu, 1}));
        const std::string before = geo_test::sm::replicated_state(*node);
        REQUIRE(node->put("k", "late", start_ms + 999) ==
                GeoWriteOutcome(RejectedByConflict{us, eu, start_ms + 1000}));
        REQUIRE(node->erase("k", start_ms) ==
                GeoWriteOutcome(RejectedByConflict{us, eu, start_ms + 1000}));
        REQUIRE(geo_test::sm::replicated_state(*node) == before); // no seq taken, nothing queued
        REQUIRE(node->region_sequences().at(us) == 0);
        REQUIRE(node->get("k") == std::optional<std::string>("eu"));
        // At the same millisecond the greater region id wins: us-east-1 over eu-west-1.
        REQUIRE(node->put("k", "tie", start_ms + 1000) == GeoWriteOutcome(Committed{us, 1}));
    }
    GEO_REQUIRE_SAME_BYTES(snapshot_bytes(*nodes[1]), snapshot_bytes(*nodes[0]));
    GEO_REQUIRE_SAME_BYTES(snapshot_bytes(*nodes[2]), snapshot_bytes(*nodes[0]));
    // The peer agrees with the tie.
    auto peer = frozen_replica(eu, ConflictResolutionMode::LastWriterWins);
    REQUIRE(is<Committed>(peer->apply_local_write(eu, "k", "eu", start_ms + 1000)));
    geo_test::ship(*nodes[0], *peer);
    REQUIRE(peer->get_record("k") == nodes[0]->get_record("k"));
}

TEST_CASE("in vector-clock mode, put(k, v, ts) with ts at or below the stored record's "
          "timestamp stores the stored timestamp + 1, and replicas with skewed clocks converge",
          "[state_machine][deterministic_apply][vector_clock]") {
    const auto mode = ConflictResolutionMode::VectorClock;
    std::vector<std::unique_ptr<ActiveActiveReplicator>> nodes;
    for (std::uint64_t clock : {start_ms - 5000, start_ms, start_ms + 7000}) {
        nodes.push_back(frozen_replica(us, mode, clock));
    }
    auto peer = frozen_replica(eu, mode, start_ms + 60'000);
    REQUIRE(is<Committed>(peer->put("k", "eu"))); // stamped start + 60 s by eu's clock
    const auto batch = peer->peek_fanout(eu, us);
    const std::uint64_t eu_ts = batch.at(0).record.timestamp_ms;
    REQUIRE(eu_ts == start_ms + 60'000);
    for (auto& node : nodes) {
        REQUIRE(node->apply_remote(eu, batch) == std::vector<GeoWriteOutcome>{Committed{eu, 1}});
        REQUIRE(node->put("k", "below", start_ms + 10) == GeoWriteOutcome(Committed{us, 1}));
        const auto stored = node->get_record("k");
        REQUIRE(stored->timestamp_ms == eu_ts + 1);
        REQUIRE(stored->value == "below");
        REQUIRE(stored->clock == geo::VectorClock{{100, 1}, {200, 1}});
        // Equal to the stored timestamp: lifted as well.
        REQUIRE(node->put("k", "equal", eu_ts + 1) == GeoWriteOutcome(Committed{us, 2}));
        REQUIRE(node->get_record("k")->timestamp_ms == eu_ts + 2);
        // Above it: kept.
        REQUIRE(node->erase("k", eu_ts + 10) == GeoWriteOutcome(Committed{us, 3}));
        REQUIRE(node->get_record("k")->timestamp_ms == eu_ts + 10);
        // next_timestamp() follows the lifted stamps.
        REQUIRE(node->next_timestamp() > eu_ts + 10);
    }
    GEO_REQUIRE_SAME_BYTES(snapshot_bytes(*nodes[1]), snapshot_bytes(*nodes[0]));
    GEO_REQUIRE_SAME_BYTES(snapshot_bytes(*nodes[2]), snapshot_bytes(*nodes[0]));
    // The peer takes the group's writes as following its own (no conflict) and converges.
    geo_test::ship(*nodes[0], *peer);
    REQUIRE(peer->conflict_count() == 0);
    REQUIRE(peer->records_digest() == nodes[0]->records_digest());
    REQUIRE(peer->get_record("k") == nodes[0]->get_record("k"));
}

TEST_CASE("in vector-clock mode, put(k, v, ts) over a record stamped 2^64-1 is refused with "
          "RejectedByConflict on every node and changes nothing",
          "[state_machine][deterministic_apply][vector_clock]") {
    const auto mode = ConflictResolutionMode::VectorClock;
    for (std::uint64_t clock : {std::uint64_t{0}, start_ms}) {
        auto node = frozen_replica(us, mode, clock);
        REQUIRE(is<Committed>(node->apply_remote(
            eu, geo_test::entry(eu, "k", "top", max_u64, 1, geo::VectorClock{{200, 1}}))));
        const std::string before = geo_test::sm::replicated_state(*node);
        REQUIRE(node->put("k", "v", start_ms) ==
                GeoWriteOutcome(RejectedByConflict{us, eu, max_u64}));
        REQUIRE(node->put("k", "v", max_u64) ==
                GeoWriteOutcome(RejectedByConflict{us, eu, max_u64}));
        REQUIRE(node->erase("k", max_u64) == GeoWriteOutcome(RejectedByConflict{us, eu, max_u64}));
        REQUIRE(geo_test::sm::replicated_state(*node) == before);
    }
}

TEST_CASE("in LWW mode, a local write after a remote write stamped 2^64-1 is stored only if "
          "every peer would store it too, so the regions converge",
          "[state_machine][deterministic_apply][lww][saturation]") {
    const auto mode = ConflictResolutionMode::LastWriterWins;
    // Every ordered pair of regions: the top-stamped write's origin and the local region
    // (region ids order us-east-1 > eu-west-1 > ap-northeast-1 at equal timestamps).
    for (const auto& origin : geo_test::all_regions()) {
        for (const auto& local : geo_test::all_regions()) {
            if (origin == local) {
                continue;
            }
            for (int variant = 0; variant < 3; ++variant) {
                CAPTURE(origin, local, variant);
                auto writer = frozen_replica(origin, mode);
                auto node = frozen_replica(local, mode);
                REQUIRE(is<Committed>(writer->apply_local_write(origin, "k", "top", max_u64)));
                geo_test::ship(*writer, *node);
                REQUIRE(node->get("k") == std::optional<std::string>("top"));
                GeoWriteOutcome outcome;
                if (variant == 0) {
                    outcome = node->put("k", "local"); // the hybrid clock saturates
                } else if (variant == 1) {
                    outcome = node->put("k", "local", max_u64);
                } else {
                    outcome = node->erase("k", max_u64);
                }
                INFO(text(outcome));
                // Whatever the outcome, both regions end with the same record.
                geo_test::ship(*node, *writer);
                geo_test::ship(*writer, *node);
                REQUIRE(writer->get_record("k") == node->get_record("k"));
                REQUIRE(writer->records_digest() == node->records_digest());
                // And the local outcome said what happened.
                const bool stored_local = node->get_record("k")->region == local;
                REQUIRE(stored_local == is<Committed>(outcome));
                REQUIRE(stored_local == (local > origin)); // the greater id wins the tie
                // A second local write at the top of the range: the same rule again.
                const auto again = node->put("k", "again", max_u64);
                geo_test::ship(*node, *writer);
                REQUIRE(writer->get_record("k") == node->get_record("k"));
                REQUIRE(writer->records_digest() == node->records_digest());
                REQUIRE(is<Committed>(again) == (local > origin));
            }
        }
    }
}

TEST_CASE("purge_tombstones(now) with now below tombstone_grace purges nothing, not even a "
          "tombstone stamped 0",
          "[state_machine][deterministic_apply][tombstone]") {
    for (auto mode : both_modes) {
        CAPTURE(geo_test::mode_name(mode));
        // A frozen clock far in the future: purge_tombstones(now) must not look at it.
        auto node = frozen_replica(us, mode, max_u64 / 2, std::chrono::milliseconds(1000));
        REQUIRE(is<Committed>(node->apply_remote(
            eu, geo_test::entry(eu, "remote", "", 0, 1, geo::VectorClock{{200, 1}}, true))));
        REQUIRE(is<Committed>(node->erase("local", 0)));
        REQUIRE(node->acknowledge_fanout(us, eu, max_u64) == 1);
        REQUIRE(node->acknowledge_fanout(us, ap, max_u64) == 1);
        REQUIRE(node->get_record("remote")->timestamp_ms == 0);
        const std::string before = snapshot_bytes(*node);
        for (std::uint64_t now : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{999}}) {
            CAPTURE(now);
            REQUIRE(node->purge_tombstones(now) == 0);
            GEO_REQUIRE_SAME_BYTES(snapshot_bytes(*node), before);
        }
        REQUIRE(node->record_count() == 2);
        // At the grace period itself, a tombstone stamped 0 is old enough.
        REQUIRE(node->purge_tombstones(1000) == 2);
        REQUIRE(node->record_count() == 0);
    }
}

TEST_CASE("purge_tombstones(now) decides by the log time alone, so nodes with different clocks "
          "purge the same tombstones",
          "[state_machine][deterministic_apply][tombstone]") {
    for (auto mode : both_modes) {
        CAPTURE(geo_test::mode_name(mode));
        std::vector<std::unique_ptr<ActiveActiveReplicator>> nodes;
        for (std::uint64_t clock : {std::uint64_t{0}, start_ms, max_u64 / 2}) {
            nodes.push_back(frozen_replica(us, mode, clock, std::chrono::milliseconds(1000)));
        }
        for (auto& node : nodes) {
            for (std::uint64_t i = 1; i <= 5; ++i) {
                REQUIRE(is<Committed>(node->apply_remote(
                    eu, geo_test::entry(eu, "t" + std::to_string(i), "", start_ms + 100 * i, i,
                                        geo::VectorClock{{200, i}}, true))));
            }
            REQUIRE(node->purge_tombstones(start_ms + 1000 + 250) == 2);
            REQUIRE(node->purge_tombstones(start_ms + 1000 + 250) == 0);
            REQUIRE(node->record_count() == 3);
        }
        GEO_REQUIRE_SAME_BYTES(snapshot_bytes(*nodes[1]), snapshot_bytes(*nodes[0]));
        GEO_REQUIRE_SAME_BYTES(snapshot_bytes(*nodes[2]), snapshot_bytes(*nodes[0]));
    }
}

TEST_CASE("next_timestamp is strictly increasing and above every timestamp applied, whatever "
          "the physical clock does",
          "[state_machine][deterministic_apply][clock]") {
    for (auto mode : both_modes) {
        CAPTURE(geo_test::mode_name(mode));
        std::uint64_t physical = start_ms;
        auto node = make_replica(us, mode, [&physical] { return physical; });
        std::uint64_t last = node->next_timestamp();
        REQUIRE(last >= start_ms);
        auto next = [&](std::uint64_t must_exceed) {
            const std::uint64_t t = node->next_timestamp();
            CAPTURE(t, last, must_exceed);
            REQUIRE(t > last);
            REQUIRE(t > must_exceed);
            last = t;
        };
        next(0);
        physical -= 60'000; // the wall clock steps back
        next(0);
        next(0);
        // A remote write far ahead.
        REQUIRE(
            is<Committed>(node->apply_remote(eu, geo_test::entry(eu, "r", "v", start_ms + 3'600'000,
                                                                 1, geo::VectorClock{{200, 1}}))));
        next(start_ms + 3'600'000);
        // A log write further ahead.
        REQUIRE(is<Committed>(node->put("l", "v", start_ms + 7'200'000)));
        next(start_ms + 7'200'000);
        REQUIRE(is<Committed>(node->erase("m", start_ms + 7'300'000)));
        next(start_ms + 7'300'000);
        // A write lifted above the stored record (vector-clock mode) or refused (LWW).
        const auto outcome = node->put("l", "again", start_ms);
        const std::uint64_t stored = node->get_record("l")->timestamp_ms;
        REQUIRE(stored == (mode == ConflictResolutionMode::VectorClock ? start_ms + 7'200'001
                                                                       : start_ms + 7'200'000));
        REQUIRE(is<Committed>(outcome) == (mode == ConflictResolutionMode::VectorClock));
        next(stored);
        physical += 10 * 3'600'000; // the wall clock jumps ahead
        next(physical - 1);
        for (int i = 0; i < 1000; ++i) {
            next(0);
        }
    }
}

// A leader proposing more than one write a millisecond: next_timestamp() would run its clock,
// and through it every region's, ahead of physical time by the surplus (and make lag read 0).
TEST_CASE("proposal_timestamp keeps to physical time at many writes a millisecond, stays above "
          "every timestamp applied, and writes sharing a stamp apply in log order everywhere",
          "[state_machine][deterministic_apply][clock]") {
    for (auto mode : both_modes) {
        CAPTURE(geo_test::mode_name(mode));
        std::uint64_t physical = start_ms;
        auto leader = make_replica(us, mode, [&physical] { return physical; });
        auto follower = make_replica(us, mode, [] { return start_ms - 60'000; });
        std::uint64_t last = 0;
        for (int i = 0; i < 5000; ++i) {
            if (i % 5 == 0) {
                ++physical; // five writes a millisecond
            }
            const std::uint64_t ts = leader->proposal_timestamp();
            REQUIRE(ts >= last);
            REQUIRE(ts == physical); // not a millisecond ahead
            last = ts;
            // Distinct keys within a millisecond: in vector-clock mode a key's second write of
            // one millisecond is lifted above the first ("clock order implies timestamp order").
            const std::string key = "k" + std::to_string(i % 7);
            for (auto* node : {leader.get(), follower.get()}) {
                REQUIRE(is<Committed>(node->put(key, "v" + std::to_string(i), ts)));
            }
        }
        // One key written several times under one stamp: the later in the log wins.
        const std::uint64_t shared = leader->proposal_timestamp();
        for (int i = 0; i < 4; ++i) {
            for (auto* node : {leader.get(), follower.get()}) {
                REQUIRE(is<Committed>(node->put("hot", "h" + std::to_string(i), shared)));
            }
        }
        REQUIRE(leader->get("hot") == "h3");
        REQUIRE(leader->get("k1") == "v4999"); // 4999 % 7 == 1
        GEO_REQUIRE_SAME_BYTES(snapshot_bytes(*follower), snapshot_bytes(*leader));

        // Above what was applied, however far ahead, and never back when the wall clock is.
        REQUIRE(is<Committed>(
            leader->apply_remote(eu, geo_test::entry(eu, "r", "v", physical + 3'600'000, 1,
                                                     geo::VectorClock{{200, 1}}))));
        REQUIRE(leader->proposal_timestamp() > physical + 3'600'000);
        physical -= 60'000;
        REQUIRE(leader->proposal_timestamp() > physical + 3'660'000);
    }
}
