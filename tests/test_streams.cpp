// Streams between regions: every fanout entry carries the seq it follows (prev_seq), so a
// receiver detects an entry whose predecessor was lost or reordered (OutOfOrder: nothing
// changes, the sender re-sends from the acknowledged cursor), and a sender may pipeline batches
// (peek_fanout with after_seq) without waiting for acknowledgements.
#include <geo/json.hpp>
#include <geo/replicator.hpp>

#include "geo_test.hpp"
#include "replication_fixtures.hpp"
#include "state_machine_fixtures.hpp"

#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

namespace {

using geo::AlreadyApplied;
using geo::Committed;
using geo::FanoutEntry;
using geo::GeoWriteOutcome;
using geo::OutOfOrder;
using geo_test::ap;
using geo_test::both_modes;
using geo_test::eu;
using geo_test::us;
using geo_test::sm::frozen_replica;
using geo_test::sm::is;
using geo_test::sm::seqs_of;
using geo_test::sm::snapshot_bytes;
using geo_test::sm::start_ms;
using geo_test::sm::text;

constexpr std::uint64_t max_u64 = std::numeric_limits<std::uint64_t>::max();

std::string key(int i) {
    return "k" + std::to_string(i);
}

/// `n` local writes k1..kn at `from`, with log timestamps, each one committed.
void write_keys(geo::ActiveActiveReplicator& from, int first, int last, std::uint64_t ts0) {
    for (int i = first; i <= last; ++i) {
        const auto outcome =
            from.put(key(i), "v" + std::to_string(i), ts0 + static_cast<std::uint64_t>(i));
        REQUIRE(is<Committed>(outcome));
    }
}

/// The receiver holds the same record as the sender for every key in [first, last].
void require_same_records(const geo::ActiveActiveReplicator& a,
                          const geo::ActiveActiveReplicator& b, int first, int last) {
    for (int i = first; i <= last; ++i) {
        CAPTURE(key(i));
        const auto ra = a.get_record(key(i));
        REQUIRE(ra.has_value());
        REQUIRE(b.get_record(key(i)) == ra);
    }
}

} // namespace

TEST_CASE("a batch split and delivered second half first answers OutOfOrder and changes "
          "nothing; a re-send from the acknowledged cursor delivers every write",
          "[streams][prev_seq]") {
    for (auto mode : both_modes) {
        CAPTURE(geo_test::mode_name(mode));
        auto sender = frozen_replica(us, mode);
        auto receiver = frozen_replica(eu, mode);
        write_keys(*sender, 1, 6, start_ms);

        const auto batch = sender->peek_fanout(us, eu);
        REQUIRE(seqs_of(batch) == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6});
        const std::vector<FanoutEntry> first_half(batch.begin(), batch.begin() + 3);
        const std::vector<FanoutEntry> second_half(batch.begin() + 3, batch.end());

        const std::string before = snapshot_bytes(*receiver);
        const auto outcomes = receiver->apply_remote(us, second_half);
        INFO(text(outcomes));
        REQUIRE(outcomes.size() == 3);
        for (std::size_t i = 0; i < outcomes.size(); ++i) {
            REQUIRE(outcomes[i] == GeoWriteOutcome(OutOfOrder{us, 4 + i, 0}));
        }
        GEO_REQUIRE_SAME_BYTES(snapshot_bytes(*receiver), before);
        REQUIRE(receiver->region_sequences().at(us) == 0);
        REQUIRE_FALSE(receiver->get_record(key(4)).has_value());

        // The sender learns nothing was acknowledged and re-sends from the cursor.
        const auto resend = sender->peek_fanout(us, eu);
        REQUIRE(resend == batch);
        const auto delivered = receiver->apply_remote(us, resend);
        INFO(text(delivered));
        for (std::size_t i = 0; i < delivered.size(); ++i) {
            REQUIRE(delivered[i] == GeoWriteOutcome(Committed{us, 1 + i}));
        }
        REQUIRE(sender->acknowledge_fanout(us, eu, receiver->region_sequences().at(us)) == 6);
        require_same_records(*sender, *receiver, 1, 6);
        REQUIRE(sender->pending_fanout_len(us, eu) == 0);
    }
}

TEST_CASE("a batch delivered in reverse order applies the entries whose predecessor arrived "
          "and refuses the others; the re-send completes it",
          "[streams][prev_seq]") {
    auto sender = frozen_replica(us, geo::ConflictResolutionMode::LastWriterWins);
    auto receiver = frozen_replica(eu, geo::ConflictResolutionMode::LastWriterWins);
    write_keys(*sender, 1, 4, start_ms);
    auto batch = sender->peek_fanout(us, eu);
    std::vector<FanoutEntry> reversed(batch.rbegin(), batch.rend());
    const auto outcomes = receiver->apply_remote(us, reversed);
    INFO(text(outcomes));
    // 4, 3, 2 follow entries not yet applied; 1 follows the acknowledged cursor (0).
    REQUIRE(outcomes == std::vector<GeoWriteOutcome>{OutOfOrder{us, 4, 0}, OutOfOrder{us, 3, 0},
                                                     OutOfOrder{us, 2, 0}, Committed{us, 1}});
    const auto again = receiver->apply_remote(us, sender->peek_fanout(us, eu));
    INFO(text(again));
    REQUIRE(again == std::vector<GeoWriteOutcome>{AlreadyApplied{us, 1}, Committed{us, 2},
                                                  Committed{us, 3}, Committed{us, 4}});
    require_same_records(*sender, *receiver, 1, 4);
}

TEST_CASE("pipelined batches with one batch lost - the next batch answers OutOfOrder for its "
          "first entry, the sender re-sends from the acknowledged cursor, and the receiver ends "
          "with every write",
          "[streams][prev_seq][pipeline]") {
    for (auto mode : both_modes) {
        CAPTURE(geo_test::mode_name(mode));
        auto sender = frozen_replica(us, mode);
        auto receiver = frozen_replica(eu, mode);
        write_keys(*sender, 1, 9, start_ms);

        const auto b1 = sender->peek_fanout(us, eu, 3);
        const auto b2 = sender->peek_fanout(us, eu, 3, b1.back().seq);
        const auto b3 = sender->peek_fanout(us, eu, 3, b2.back().seq);
        REQUIRE(seqs_of(b1) == std::vector<std::uint64_t>{1, 2, 3});
        REQUIRE(seqs_of(b2) == std::vector<std::uint64_t>{4, 5, 6});
        REQUIRE(seqs_of(b3) == std::vector<std::uint64_t>{7, 8, 9});

        const auto o1 = receiver->apply_remote(us, b1);
        REQUIRE(o1 ==
                std::vector<GeoWriteOutcome>{Committed{us, 1}, Committed{us, 2}, Committed{us, 3}});
        REQUIRE(sender->acknowledge_fanout(us, eu, receiver->region_sequences().at(us)) == 3);
        // b2 is lost in transit.
        const std::string before = snapshot_bytes(*receiver);
        const auto o3 = receiver->apply_remote(us, b3);
        INFO(text(o3));
        REQUIRE(o3.front() == GeoWriteOutcome(OutOfOrder{us, 7, 3}));
        for (const auto& o : o3) {
            REQUIRE(is<OutOfOrder>(o));
        }
        GEO_REQUIRE_SAME_BYTES(snapshot_bytes(*receiver), before);
        REQUIRE_FALSE(receiver->get_record(key(7)).has_value());

        // Re-send from the acknowledged cursor, pipelining again.
        std::uint64_t sent = 0;
        for (;;) {
            const auto batch = sender->peek_fanout(us, eu, 3, sent);
            if (batch.empty()) {
                break;
            }
            const auto outcomes = receiver->apply_remote(us, batch);
            INFO(text(outcomes));
            for (const auto& o : outcomes) {
                REQUIRE(is<Committed>(o));
            }
            sent = batch.back().seq;
        }
        REQUIRE(sent == 9);
        REQUIRE(sender->acknowledge_fanout(us, eu, receiver->region_sequences().at(us)) == 6);
        require_same_records(*sender, *receiver, 1, 9);
        REQUIRE(receiver->region_sequences().at(us) == 9);
    }
}

TEST_CASE("prev_seq of a pipelined batch's first entry is the seq of the last entry of the "
          "batch before it, and each entry's prev_seq is the entry before it",
          "[streams][prev_seq][pipeline]") {
    auto sender = frozen_replica(us, geo::ConflictResolutionMode::LastWriterWins);
    write_keys(*sender, 1, 7, start_ms);
    const auto b1 = sender->peek_fanout(us, eu, 2);
    const auto b2 = sender->peek_fanout(us, eu, 4, b1.back().seq);
    INFO(text(b1) << "\n" << text(b2));
    REQUIRE(b1.size() == 2);
    REQUIRE(b2.size() == 4);
    REQUIRE(b1[0].prev_seq == 0);
    REQUIRE(b1[1].prev_seq == b1[0].seq);
    REQUIRE(b2[0].prev_seq == b1.back().seq);
    for (std::size_t i = 1; i < b2.size(); ++i) {
        REQUIRE(b2[i].prev_seq == b2[i - 1].seq);
    }
    // after_seq between two entries: the batch starts at the next one and follows the one
    // before it.
    const auto mid = sender->peek_fanout(us, eu, 1, 4);
    REQUIRE(mid.size() == 1);
    REQUIRE(mid[0].seq == 5);
    REQUIRE(mid[0].prev_seq == 4);
    // After the newest entry: nothing.
    REQUIRE(sender->peek_fanout(us, eu, 10, 7).empty());
}

TEST_CASE("prev_seq follows the queue, not seq - 1, so a superseded entry leaves a gap that the "
          "receiver accepts",
          "[streams][prev_seq]") {
    for (auto mode : both_modes) {
        CAPTURE(geo_test::mode_name(mode));
        auto sender = frozen_replica(us, mode);
        auto receiver = frozen_replica(eu, mode);
        REQUIRE(is<Committed>(sender->put("a", "1", start_ms + 1))); // seq 1, superseded
        REQUIRE(is<Committed>(sender->put("b", "2", start_ms + 2))); // seq 2
        REQUIRE(is<Committed>(sender->put("a", "3", start_ms + 3))); // seq 3
        const auto batch = sender->peek_fanout(us, eu);
        INFO(text(batch));
        REQUIRE(seqs_of(batch) == std::vector<std::uint64_t>{2, 3});
        REQUIRE(batch[0].prev_seq == 0);
        REQUIRE(batch[1].prev_seq == 2);
        const auto outcomes = receiver->apply_remote(us, batch);
        REQUIRE(outcomes == std::vector<GeoWriteOutcome>{Committed{us, 2}, Committed{us, 3}});
        REQUIRE(receiver->get_record("a") == sender->get_record("a"));
        REQUIRE(receiver->get_record("b") == sender->get_record("b"));
    }
}

TEST_CASE("a pipelined batch sent before a key was rewritten is refused if lost, and the "
          "re-send carries the rewrite",
          "[streams][prev_seq][pipeline]") {
    auto sender = frozen_replica(us, geo::ConflictResolutionMode::LastWriterWins);
    auto receiver = frozen_replica(eu, geo::ConflictResolutionMode::LastWriterWins);
    REQUIRE(is<Committed>(sender->put("a", "1", start_ms + 1)));
    REQUIRE(is<Committed>(sender->put("b", "2", start_ms + 2)));
    const auto lost = sender->peek_fanout(us, eu); // a@1, b@2: lost in transit
    REQUIRE(seqs_of(lost) == std::vector<std::uint64_t>{1, 2});
    REQUIRE(is<Committed>(sender->put("a", "3", start_ms + 3))); // supersedes a@1
    const auto next = sender->peek_fanout(us, eu, 10, lost.back().seq);
    REQUIRE(seqs_of(next) == std::vector<std::uint64_t>{3});
    REQUIRE(next[0].prev_seq == 2);
    REQUIRE(receiver->apply_remote(us, next) == std::vector<GeoWriteOutcome>{OutOfOrder{us, 3, 0}});
    const auto resend = sender->peek_fanout(us, eu);
    REQUIRE(seqs_of(resend) == std::vector<std::uint64_t>{2, 3});
    REQUIRE(receiver->apply_remote(us, resend) ==
            std::vector<GeoWriteOutcome>{Committed{us, 2}, Committed{us, 3}});
    REQUIRE(receiver->get_record("a") == sender->get_record("a"));
    REQUIRE(receiver->get_record("b") == sender->get_record("b"));
}

TEST_CASE("prev_seq of the first owed entry is the target's acknowledged seq",
          "[streams][prev_seq]") {
    auto sender = frozen_replica(us, geo::ConflictResolutionMode::LastWriterWins);
    write_keys(*sender, 1, 5, start_ms);
    REQUIRE(sender->acknowledge_fanout(us, eu, 2) == 2);
    const auto to_eu = sender->peek_fanout(us, eu);
    const auto to_ap = sender->peek_fanout(us, ap);
    REQUIRE(seqs_of(to_eu) == std::vector<std::uint64_t>{3, 4, 5});
    REQUIRE(to_eu[0].prev_seq == 2);
    REQUIRE(seqs_of(to_ap) == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
    REQUIRE(to_ap[0].prev_seq == 0);

    // An acknowledged seq whose entry was superseded (no longer queued) still is the cursor.
    REQUIRE(is<Committed>(sender->put(key(4), "again", start_ms + 100))); // seq 6, drops 4
    REQUIRE(sender->acknowledge_fanout(us, eu, 4) == 1);                  // entry 3 only
    const auto after = sender->peek_fanout(us, eu);
    INFO(text(after));
    REQUIRE(seqs_of(after) == std::vector<std::uint64_t>{5, 6});
    REQUIRE(after[0].prev_seq == 4);
    // Acknowledgements never move back.
    REQUIRE(sender->acknowledge_fanout(us, eu, 1) == 0);
    REQUIRE(sender->peek_fanout(us, eu)[0].prev_seq == 4);
}

TEST_CASE("acknowledging past the newest entry does not make later entries look out of order",
          "[streams][prev_seq][ack]") {
    for (const std::uint64_t past : {std::uint64_t{4}, std::uint64_t{1000}, max_u64}) {
        CAPTURE(past);
        auto sender = frozen_replica(us, geo::ConflictResolutionMode::LastWriterWins);
        auto receiver = frozen_replica(eu, geo::ConflictResolutionMode::LastWriterWins);
        write_keys(*sender, 1, 3, start_ms);
        (void)receiver->apply_remote(us, sender->peek_fanout(us, eu));
        REQUIRE(sender->acknowledge_fanout(us, eu, past) == 3);
        write_keys(*sender, 4, 5, start_ms + 10);
        const auto batch = sender->peek_fanout(us, eu);
        INFO(text(batch));
        REQUIRE(seqs_of(batch) == std::vector<std::uint64_t>{4, 5});
        REQUIRE(batch[0].prev_seq == 3);
        REQUIRE(receiver->apply_remote(us, batch) ==
                std::vector<GeoWriteOutcome>{Committed{us, 4}, Committed{us, 5}});
        require_same_records(*sender, *receiver, 1, 5);
    }
}

TEST_CASE("acknowledging an empty queue ahead of every commit does not make the first later "
          "entries look out of order",
          "[streams][prev_seq][ack]") {
    auto sender = frozen_replica(us, geo::ConflictResolutionMode::LastWriterWins);
    auto receiver = frozen_replica(eu, geo::ConflictResolutionMode::LastWriterWins);
    REQUIRE(sender->acknowledge_fanout(us, eu, 50) == 0);
    write_keys(*sender, 1, 2, start_ms);
    const auto batch = sender->peek_fanout(us, eu);
    REQUIRE(batch.size() == 2);
    REQUIRE(batch[0].prev_seq == 0);
    REQUIRE(receiver->apply_remote(us, batch) ==
            std::vector<GeoWriteOutcome>{Committed{us, 1}, Committed{us, 2}});
}

TEST_CASE("entries with prev_seq 0 are accepted as from older senders, gaps included; "
          "prev_seq at or below the applied seq is accepted",
          "[streams][prev_seq]") {
    for (auto mode : both_modes) {
        CAPTURE(geo_test::mode_name(mode));
        auto receiver = frozen_replica(eu, mode);
        using geo_test::entry;
        // No check: seq 5 applies although 1-4 never arrived.
        auto e5 = entry(us, "x", "5", start_ms + 5, 5, {{100, 5}});
        REQUIRE(e5.prev_seq == 0);
        REQUIRE(receiver->apply_remote(us, e5) == GeoWriteOutcome(Committed{us, 5}));
        auto e3 = entry(us, "y", "3", start_ms + 3, 3, {{100, 3}});
        REQUIRE(receiver->apply_remote(us, e3) == GeoWriteOutcome(AlreadyApplied{us, 3}));
        // prev_seq equal to the applied seq, then below it: both follow something applied.
        auto e7 = entry(us, "y", "7", start_ms + 7, 7, {{100, 7}});
        e7.prev_seq = 5;
        REQUIRE(receiver->apply_remote(us, e7) == GeoWriteOutcome(Committed{us, 7}));
        auto e9 = entry(us, "z", "9", start_ms + 9, 9, {{100, 9}});
        e9.prev_seq = 6;
        REQUIRE(receiver->apply_remote(us, e9) == GeoWriteOutcome(Committed{us, 9}));
        // Above it: refused, with the applied seq reported.
        auto e12 = entry(us, "z", "12", start_ms + 12, 12, {{100, 12}});
        e12.prev_seq = 10;
        const std::string before = geo_test::sm::snapshot_bytes(*receiver);
        REQUIRE(receiver->apply_remote(us, e12) == GeoWriteOutcome(OutOfOrder{us, 12, 9}));
        GEO_REQUIRE_SAME_BYTES(geo_test::sm::snapshot_bytes(*receiver), before);
        REQUIRE(receiver->get(std::string("z")) == std::optional<std::string>("9"));
        // An already-applied entry answers AlreadyApplied whatever its prev_seq.
        auto dup = e9;
        dup.prev_seq = 1000;
        REQUIRE(receiver->apply_remote(us, dup) == GeoWriteOutcome(AlreadyApplied{us, 9}));
    }
}

TEST_CASE("a re-delivered pipelined batch answers AlreadyApplied and changes nothing",
          "[streams][pipeline]") {
    auto sender = frozen_replica(us, geo::ConflictResolutionMode::VectorClock);
    auto receiver = frozen_replica(eu, geo::ConflictResolutionMode::VectorClock);
    write_keys(*sender, 1, 4, start_ms);
    const auto b1 = sender->peek_fanout(us, eu, 2);
    const auto b2 = sender->peek_fanout(us, eu, 2, b1.back().seq);
    (void)receiver->apply_remote(us, b1);
    (void)receiver->apply_remote(us, b2);
    const std::string before = geo_test::sm::snapshot_bytes(*receiver);
    REQUIRE(receiver->apply_remote(us, b1) ==
            std::vector<GeoWriteOutcome>{AlreadyApplied{us, 1}, AlreadyApplied{us, 2}});
    REQUIRE(receiver->apply_remote(us, b2) ==
            std::vector<GeoWriteOutcome>{AlreadyApplied{us, 3}, AlreadyApplied{us, 4}});
    GEO_REQUIRE_SAME_BYTES(geo_test::sm::snapshot_bytes(*receiver), before);
    require_same_records(*sender, *receiver, 1, 4);
}

TEST_CASE("a JSON round trip of a batch keeps prev_seq; an entry without prev_seq reads 0",
          "[streams][json]") {
    auto sender = frozen_replica(us, geo::ConflictResolutionMode::VectorClock);
    write_keys(*sender, 1, 4, start_ms);
    (void)sender->acknowledge_fanout(us, eu, 1);
    const auto batch = sender->peek_fanout(us, eu, 2, 2);
    REQUIRE(seqs_of(batch) == std::vector<std::uint64_t>{3, 4});
    REQUIRE(batch[0].prev_seq == 2);
    REQUIRE(batch[1].prev_seq == 3);

    const nlohmann::json j = batch;
    REQUIRE(j.at(0).at("prev_seq") == 2);
    const auto back = nlohmann::json::parse(j.dump()).get<std::vector<FanoutEntry>>();
    REQUIRE(back == batch);

    nlohmann::json legacy = j.at(1);
    legacy.erase("prev_seq");
    REQUIRE(legacy.get<FanoutEntry>().prev_seq == 0);

    // The outcome a refused entry answers survives the trip too.
    const GeoWriteOutcome refused = OutOfOrder{us, 7, 3};
    const nlohmann::json oj = refused;
    REQUIRE(oj.get<GeoWriteOutcome>() == refused);
}

TEST_CASE("a drained batch that is lost does not block the entries after it") {
    // drain_fanout acknowledges as it hands out: if that shipment is lost, its writes are
    // lost (as documented), but what follows must still be accepted.
    const auto config_us = geo::ActiveActiveGeoConfig::multi_region(us, {us, eu});
    const auto config_eu = geo::ActiveActiveGeoConfig::multi_region(eu, {us, eu});
    geo::ActiveActiveReplicator a(config_us, {});
    geo::ActiveActiveReplicator b(config_eu, {});
    REQUIRE(std::holds_alternative<geo::Committed>(a.put("lost", "1")));
    REQUIRE(a.drain_fanout(us, eu).size() == 1); // shipped nowhere
    REQUIRE(std::holds_alternative<geo::Committed>(a.put("next", "2")));
    REQUIRE(std::holds_alternative<geo::Committed>(a.put("after", "3")));
    auto batch = a.peek_fanout(us, eu);
    REQUIRE(batch.size() == 2);
    CHECK(batch[0].prev_seq == 0); // follows a drain nobody confirmed: no check
    CHECK(batch[1].prev_seq == batch[0].seq);
    for (const auto& outcome : b.apply_remote(us, batch)) {
        CHECK(std::holds_alternative<geo::Committed>(outcome));
    }
    CHECK(b.get("next") == std::optional<std::string>("2"));
    // Once eu confirms, the stream is checked again, and the flag survives a snapshot.
    a.acknowledge_fanout(us, eu, batch.back().seq);
    REQUIRE(std::holds_alternative<geo::Committed>(a.put("checked", "4")));
    CHECK(a.peek_fanout(us, eu).front().prev_seq == batch.back().seq);
    REQUIRE(a.drain_fanout(us, eu).size() == 1);
    REQUIRE(std::holds_alternative<geo::Committed>(a.put("again", "5")));
    std::stringstream bytes;
    a.snapshot(bytes);
    geo::ActiveActiveReplicator restored(config_us, {});
    restored.restore(bytes);
    CHECK(restored.peek_fanout(us, eu) == a.peek_fanout(us, eu));
    CHECK(restored.peek_fanout(us, eu).front().prev_seq == 0);
}
