// No write is ever lost (docs/design.md, section 3): one test per way the Rust module
// (oxirs-cluster 0.3.1's active-active geo replication, which geo ports) loses data, each of
// which would fail under that module's behaviour, plus deletes.
#include <geo/replicator.hpp>

#include "geo_test.hpp"
#include "replication_fixtures.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace {

using geo::ActiveActiveReplicator;
using geo::AlreadyApplied;
using geo::OutOfOrder;
using geo::Committed;
using geo::ConflictResolutionMode;
using geo::FanoutEntry;
using geo::GeoRecord;
using geo::GeoWriteOutcome;
using geo::RejectedByConflict;
using geo::VectorClock;
using geo_test::all_groups;
using geo_test::all_regions;
using geo_test::ap;
using geo_test::both_modes;
using geo_test::eu;
using geo_test::mode_name;
using geo_test::ship;
using geo_test::us;

std::unique_ptr<ActiveActiveReplicator> replica(const std::string& local,
                                                ConflictResolutionMode mode,
                                                std::function<std::uint64_t()> physical_ms = {}) {
    auto config = geo::ActiveActiveGeoConfig::multi_region(local, all_regions());
    config.conflict_mode = mode;
    if (physical_ms) {
        return std::make_unique<ActiveActiveReplicator>(config, all_groups(),
                                                        std::move(physical_ms));
    }
    return std::make_unique<ActiveActiveReplicator>(config, all_groups());
}

std::function<std::uint64_t()> fixed_clock(std::uint64_t ms) {
    return [ms] { return ms; };
}

} // namespace

// ---- 1. same-millisecond writes ---------------------------------------------------------------

TEST_CASE("same-millisecond writes of one key in one region: the newest wins on every replica",
          "[loss][same-ms]") {
    constexpr std::uint64_t t = 1'700'000'000'000;
    SECTION("apply_local_write with equal timestamps, the first already shipped") {
        auto a = replica(us, ConflictResolutionMode::LastWriterWins, fixed_clock(t));
        auto b = replica(eu, ConflictResolutionMode::LastWriterWins, fixed_clock(t));
        auto c = replica(ap, ConflictResolutionMode::LastWriterWins, fixed_clock(t));

        REQUIRE(a->apply_local_write(us, "k", "first", t) == GeoWriteOutcome{Committed{us, 1}});
        ship(*a, *b);
        REQUIRE(b->get("k") == "first");

        // The Rust module answers RejectedByConflict here: same timestamp, same region.
        REQUIRE(a->apply_local_write(us, "k", "second", t) == GeoWriteOutcome{Committed{us, 2}});
        ship(*a, *b);
        ship(*a, *c);
        for (auto* r : {a.get(), b.get(), c.get()}) {
            CAPTURE(r->config().local_region);
            REQUIRE(r->get("k") == "second");
            REQUIRE(r->get_record("k")->seq == 2);
            REQUIRE(r->get_record("k")->timestamp_ms == t);
        }
    }
    SECTION("put twice under a frozen clock, in both modes") {
        for (auto mode : both_modes) {
            CAPTURE(mode_name(mode));
            auto a = replica(us, mode, fixed_clock(t));
            auto b = replica(eu, mode, fixed_clock(t));
            REQUIRE(std::holds_alternative<Committed>(a->put("k", "first")));
            ship(*a, *b);
            REQUIRE(std::holds_alternative<Committed>(a->put("k", "second")));
            ship(*a, *b);
            REQUIRE(a->get("k") == "second");
            REQUIRE(b->get("k") == "second");
            REQUIRE(*a->get_record("k") == *b->get_record("k"));
        }
    }
}

// ---- 2. clock skew ----------------------------------------------------------------------------

TEST_CASE("a causally later write from a replica whose clock is behind wins everywhere",
          "[loss][skew]") {
    for (auto mode : both_modes) {
        CAPTURE(mode_name(mode));
        auto ahead = replica(us, mode, fixed_clock(1'700'000'010'000));
        auto behind = replica(eu, mode, fixed_clock(1'700'000'000'000)); // 10 s behind

        REQUIRE(std::holds_alternative<Committed>(ahead->put("k", "earlier")));
        ship(*ahead, *behind);
        REQUIRE(behind->get("k") == "earlier");

        // Written after `behind` observed "earlier": the Rust module stamps it 10 s in the past.
        REQUIRE(std::holds_alternative<Committed>(behind->put("k", "later")));
        REQUIRE(behind->get_record("k")->timestamp_ms > ahead->get_record("k")->timestamp_ms);
        ship(*behind, *ahead);

        REQUIRE(ahead->get("k") == "later");
        REQUIRE(behind->get("k") == "later");
        REQUIRE(*ahead->get_record("k") == *behind->get_record("k"));
    }
}

// ---- 3. destructive drain ---------------------------------------------------------------------

TEST_CASE("peek_fanout leaves entries in place until they are acknowledged", "[loss][fanout]") {
    auto a = replica(us, ConflictResolutionMode::LastWriterWins);
    REQUIRE(std::holds_alternative<Committed>(a->put("k1", "v1")));
    REQUIRE(std::holds_alternative<Committed>(a->put("k2", "v2")));

    const auto first = a->peek_fanout(us, eu);
    REQUIRE(first.size() == 2);
    REQUIRE(a->pending_fanout_len(us) == 2);
    REQUIRE(a->pending_fanout_len(us, eu) == 2);

    // The shipment failed: nothing was acknowledged, so the same entries are handed out again.
    const auto again = a->peek_fanout(us, eu);
    REQUIRE(again == first);
    REQUIRE(a->peek_fanout(us, ap) == first);
}

TEST_CASE("acknowledge_fanout releases the acknowledged entries and nothing else",
          "[loss][fanout]") {
    auto a = replica(us, ConflictResolutionMode::LastWriterWins);
    for (const char* key : {"k1", "k2", "k3"}) {
        REQUIRE(std::holds_alternative<Committed>(a->put(key, "v")));
    }
    const auto batch = a->peek_fanout(us, eu);
    REQUIRE(batch.size() == 3);

    REQUIRE(a->acknowledge_fanout(us, eu, batch[1].seq) == 2);
    const auto rest = a->peek_fanout(us, eu);
    REQUIRE(rest.size() == 1);
    REQUIRE(rest.front() == batch[2]);
    // ap acknowledged nothing: every entry is still owed to it.
    REQUIRE(a->peek_fanout(us, ap) == batch);
    REQUIRE(a->pending_fanout_len(us) == 3);

    REQUIRE(a->acknowledge_fanout(us, ap, batch[1].seq) == 2);
    REQUIRE(a->pending_fanout_len(us) == 1); // only k3 is still owed (to both)
    REQUIRE(a->pending_fanout_len(us, ap) == 1);
}

TEST_CASE("acknowledging past the newest entry acknowledges everything", "[loss][fanout]") {
    auto a = replica(us, ConflictResolutionMode::LastWriterWins);
    REQUIRE(std::holds_alternative<Committed>(a->put("k1", "v")));
    REQUIRE(std::holds_alternative<Committed>(a->put("k2", "v")));
    REQUIRE(a->acknowledge_fanout(us, eu, 1'000'000) == 2);
    REQUIRE(a->acknowledge_fanout(us, ap, 1'000'000) == 2);
    REQUIRE(a->peek_fanout(us, eu).empty());
    REQUIRE(a->peek_fanout(us, ap).empty());
    REQUIRE(a->pending_fanout_len(us) == 0);

    // A later commit is owed again.
    REQUIRE(std::holds_alternative<Committed>(a->put("k3", "v")));
    REQUIRE(a->peek_fanout(us, eu).size() == 1);
    REQUIRE(a->pending_fanout_len(us) == 1);
}

TEST_CASE("a region owes itself nothing", "[loss][fanout]") {
    auto a = replica(us, ConflictResolutionMode::LastWriterWins);
    REQUIRE(std::holds_alternative<Committed>(a->put("k", "v")));
    REQUIRE(a->peek_fanout(us, us).empty());
    REQUIRE(a->drain_fanout(us, us).empty());
    REQUIRE(a->pending_fanout_len(us, us) == 0);
    REQUIRE(a->acknowledge_fanout(us, us, 1'000) == 0);
    REQUIRE(a->pending_fanout_len(us) == 1); // still owed to eu and ap
}

TEST_CASE("pending fanout holds at most one entry per key: the newest commit", "[loss][fanout]") {
    auto a = replica(us, ConflictResolutionMode::LastWriterWins);
    constexpr int keys = 5;
    constexpr int writes = 200;
    for (int i = 0; i < writes; ++i) {
        const std::string key = "k" + std::to_string(i % keys);
        if (i % 7 == 3) {
            REQUIRE(std::holds_alternative<Committed>(a->erase(key)));
        } else {
            REQUIRE(std::holds_alternative<Committed>(a->put(key, "v" + std::to_string(i))));
        }
    }
    REQUIRE(a->pending_fanout_len(us) == keys);
    REQUIRE(a->pending_fanout_len(us, eu) == keys);
    const auto batch = a->peek_fanout(us, eu);
    REQUIRE(batch.size() == keys);
    for (const auto& entry : batch) {
        CAPTURE(entry.key);
        REQUIRE(entry.record == *a->get_record(entry.key));
    }
}

TEST_CASE("peeked entries come in ascending seq, at most max_entries a batch", "[loss][fanout]") {
    auto a = replica(us, ConflictResolutionMode::LastWriterWins);
    for (int i = 0; i < 10; ++i) {
        // Rewriting k0..k2 moves their entries behind the others.
        REQUIRE(std::holds_alternative<Committed>(
            a->put("k" + std::to_string(i % 7), "v" + std::to_string(i))));
    }
    const auto all = a->peek_fanout(us, eu);
    REQUIRE(all.size() == 7);
    for (std::size_t i = 0; i < all.size(); ++i) {
        REQUIRE(all[i].seq == all[i].record.seq);
        REQUIRE(all[i].record.region == us);
        if (i > 0) {
            REQUIRE(all[i - 1].seq < all[i].seq);
        }
    }
    REQUIRE(all.front().key == "k3");
    REQUIRE(all.back().key == "k2");

    const auto three = a->peek_fanout(us, eu, 3);
    REQUIRE(three == std::vector<FanoutEntry>(all.begin(), all.begin() + 3));
    REQUIRE(a->peek_fanout(us, eu, 0).empty());
    REQUIRE(a->peek_fanout(us, eu, 100) == all);

    (void)a->acknowledge_fanout(us, eu, three.back().seq);
    REQUIRE(a->peek_fanout(us, eu, 2) ==
            std::vector<FanoutEntry>(all.begin() + 3, all.begin() + 5));
}

TEST_CASE("drain_fanout hands out everything owed once", "[loss][fanout]") {
    auto a = replica(us, ConflictResolutionMode::LastWriterWins);
    REQUIRE(std::holds_alternative<Committed>(a->put("k1", "v")));
    REQUIRE(std::holds_alternative<Committed>(a->put("k2", "v")));
    const auto peeked = a->peek_fanout(us, eu);
    REQUIRE(a->drain_fanout(us, eu) == peeked);
    REQUIRE(a->drain_fanout(us, eu).empty());
    REQUIRE(a->pending_fanout_len(us, eu) == 0);
    REQUIRE(a->pending_fanout_len(us) == 2); // still owed to ap
}

// ---- 4. duplicates and replays ----------------------------------------------------------------

TEST_CASE("re-delivering an entry answers AlreadyApplied and changes nothing", "[loss][replay]") {
    for (auto mode : both_modes) {
        CAPTURE(mode_name(mode));
        auto a = replica(us, mode);
        auto b = replica(eu, mode);
        REQUIRE(std::holds_alternative<Committed>(a->put("k", "v1")));
        const auto batch = a->peek_fanout(us, eu);
        REQUIRE(batch.size() == 1);
        const FanoutEntry& entry = batch.front();

        REQUIRE(b->apply_remote(us, entry) == GeoWriteOutcome{Committed{us, entry.seq}});
        const auto record = b->get_record("k");
        const auto sequences = b->region_sequences();
        const auto conflicts = b->conflict_count();
        REQUIRE(record == entry.record);

        REQUIRE(b->apply_remote(us, entry) == GeoWriteOutcome{AlreadyApplied{us, entry.seq}});
        REQUIRE(b->get_record("k") == record);
        REQUIRE(b->region_sequences() == sequences);
        REQUIRE(b->conflict_count() == conflicts);
        REQUIRE(b->recent_conflicts().empty());
        REQUIRE(b->record_count() == 1);
    }
}

TEST_CASE("an entry delivered before the one it follows answers OutOfOrder and changes nothing",
          "[loss][replay]") {
    auto a = replica(us, ConflictResolutionMode::LastWriterWins);
    auto b = replica(eu, ConflictResolutionMode::LastWriterWins);
    REQUIRE(std::holds_alternative<Committed>(a->put("k1", "old")));
    REQUIRE(std::holds_alternative<Committed>(a->put("k2", "new")));
    const auto batch = a->peek_fanout(us, eu);
    REQUIRE(batch.size() == 2);
    REQUIRE(batch[1].prev_seq == batch[0].seq);

    REQUIRE(b->apply_remote(us, batch[1]) ==
            GeoWriteOutcome{OutOfOrder{us, batch[1].seq, 0}});
    REQUIRE_FALSE(b->get_record("k2").has_value());
    REQUIRE(b->region_sequences().at(us) == 0);
    // The sender re-sends from the acknowledged cursor: both arrive.
    REQUIRE(std::holds_alternative<Committed>(b->apply_remote(us, batch[0])));
    REQUIRE(std::holds_alternative<Committed>(b->apply_remote(us, batch[1])));
    REQUIRE(b->get("k1") == "old");
    REQUIRE(b->get("k2") == "new");
}

TEST_CASE("an entry without prev_seq older than one already applied answers AlreadyApplied",
          "[loss][replay]") {
    // Senders that do not track prev_seq (0: no check) get the FIFO-stream behaviour.
    auto a = replica(us, ConflictResolutionMode::LastWriterWins);
    auto b = replica(eu, ConflictResolutionMode::LastWriterWins);
    REQUIRE(std::holds_alternative<Committed>(a->put("k1", "old")));
    REQUIRE(std::holds_alternative<Committed>(a->put("k2", "new")));
    auto batch = a->peek_fanout(us, eu);
    REQUIRE(batch.size() == 2);
    for (auto& entry : batch) {
        entry.prev_seq = 0;
    }

    REQUIRE(b->apply_remote(us, batch[1]) == GeoWriteOutcome{Committed{us, batch[1].seq}});
    REQUIRE(b->apply_remote(us, batch[0]) == GeoWriteOutcome{AlreadyApplied{us, batch[0].seq}});
    REQUIRE_FALSE(b->get_record("k1").has_value());
    REQUIRE(b->region_sequences().at(us) == batch[1].seq);
}

TEST_CASE("an entry that loses its conflict still counts as applied", "[loss][replay]") {
    for (auto mode : both_modes) {
        CAPTURE(mode_name(mode));
        // eu's write is later: us's concurrent write loses at the replica that has both.
        auto a = replica(us, mode, fixed_clock(1'700'000'000'000));
        auto b = replica(eu, mode, fixed_clock(1'700'000'005'000));
        auto c = replica(ap, mode, fixed_clock(1'700'000'000'000));
        REQUIRE(std::holds_alternative<Committed>(a->put("k", "from us")));
        REQUIRE(std::holds_alternative<Committed>(b->put("k", "from eu")));
        ship(*b, *c);

        const auto batch = a->peek_fanout(us, ap);
        REQUIRE(batch.size() == 1);
        const auto outcome = c->apply_remote(us, batch.front());
        REQUIRE(std::holds_alternative<RejectedByConflict>(outcome));
        REQUIRE(c->conflict_count() == 1);
        REQUIRE(c->region_sequences().at(us) == batch.front().seq);

        REQUIRE(c->apply_remote(us, batch.front()) ==
                GeoWriteOutcome{AlreadyApplied{us, batch.front().seq}});
        REQUIRE(c->conflict_count() == 1);
        REQUIRE(c->recent_conflicts().size() == 1);
        REQUIRE(c->get("k") == "from eu");
    }
}

TEST_CASE("region_sequences()[origin] is the highest seq applied from origin", "[loss][replay]") {
    auto a = replica(us, ConflictResolutionMode::LastWriterWins);
    auto b = replica(eu, ConflictResolutionMode::LastWriterWins);
    for (int i = 0; i < 6; ++i) {
        REQUIRE(std::holds_alternative<Committed>(a->put("k" + std::to_string(i), "v")));
    }
    REQUIRE(b->region_sequences().at(us) == 0);
    const auto batch = a->peek_fanout(us, eu);
    REQUIRE(batch.size() == 6);
    for (std::size_t i = 0; i < 4; ++i) {
        REQUIRE(b->apply_remote(us, batch[i]) == GeoWriteOutcome{Committed{us, batch[i].seq}});
        REQUIRE(b->region_sequences().at(us) == batch[i].seq);
    }
    REQUIRE(b->apply_remote(us, batch[1]) == GeoWriteOutcome{AlreadyApplied{us, batch[1].seq}});
    REQUIRE(b->region_sequences().at(us) == batch[3].seq);
    REQUIRE(b->region_sequences().at(eu) == 0);
    REQUIRE(b->region_sequences().at(ap) == 0);
    REQUIRE(b->region_sequences().size() == 3);
}

// ---- deletes ----------------------------------------------------------------------------------

namespace {

/// us writes "old"; eu observes it and erases the key. Returns the shipments owed to ap.
struct DeleteAfterWrite {
    std::unique_ptr<ActiveActiveReplicator> a; // us-east-1, wrote "old"
    std::unique_ptr<ActiveActiveReplicator> b; // eu-west-1, erased after seeing it
    GeoRecord tombstone;
    FanoutEntry write;
    FanoutEntry erase;
};

DeleteAfterWrite delete_after_write(ConflictResolutionMode mode) {
    DeleteAfterWrite s;
    s.a = replica(us, mode, fixed_clock(1'700'000'001'000));
    s.b = replica(eu, mode, fixed_clock(1'700'000'002'000));
    REQUIRE(std::holds_alternative<Committed>(s.a->put("k", "old")));
    ship(*s.a, *s.b);
    REQUIRE(std::holds_alternative<Committed>(s.b->erase("k")));
    s.tombstone = *s.b->get_record("k");
    REQUIRE(s.tombstone.deleted);
    const auto write = s.a->peek_fanout(us, ap);
    const auto erase = s.b->peek_fanout(eu, ap);
    REQUIRE(write.size() == 1);
    REQUIRE(erase.size() == 1);
    s.write = write.front();
    s.erase = erase.front();
    return s;
}

} // namespace

TEST_CASE("a delete is not undone by an older write arriving late", "[loss][delete]") {
    for (auto mode : both_modes) {
        CAPTURE(mode_name(mode));
        {
            INFO("the older write arrives through apply_remote");
            auto s = delete_after_write(mode);
            auto c = replica(ap, mode);
            REQUIRE(std::holds_alternative<Committed>(c->apply_remote(eu, s.erase)));
            REQUIRE(std::holds_alternative<RejectedByConflict>(c->apply_remote(us, s.write)));
            REQUIRE_FALSE(c->get("k").has_value());
            REQUIRE(*c->get_record("k") == s.tombstone);
        }
        {
            INFO("the older write arrives through apply_remote_write");
            auto s = delete_after_write(mode);
            auto c = replica(ap, mode);
            REQUIRE(std::holds_alternative<Committed>(c->apply_remote(eu, s.erase)));
            const GeoRecord& old = s.write.record;
            REQUIRE(std::holds_alternative<RejectedByConflict>(
                c->apply_remote_write(us, "k", old.value, old.timestamp_ms, old.clock)));
            REQUIRE_FALSE(c->get("k").has_value());
            REQUIRE(*c->get_record("k") == s.tombstone);
        }
        {
            INFO("the older write arrives again at the replica that erased");
            auto s = delete_after_write(mode);
            const GeoRecord& old = s.write.record;
            REQUIRE(std::holds_alternative<RejectedByConflict>(
                s.b->apply_remote_write(us, "k", old.value, old.timestamp_ms, old.clock)));
            REQUIRE_FALSE(s.b->get("k").has_value());
            REQUIRE(*s.b->get_record("k") == s.tombstone);
        }
    }
}

TEST_CASE("get hides tombstones, get_record shows them and record_count counts them",
          "[loss][delete]") {
    auto a = replica(us, ConflictResolutionMode::LastWriterWins);
    REQUIRE(std::holds_alternative<Committed>(a->put("gone", "v")));
    REQUIRE(std::holds_alternative<Committed>(a->put("kept", "v")));
    REQUIRE(std::holds_alternative<Committed>(a->erase("gone")));

    REQUIRE_FALSE(a->get("gone").has_value());
    REQUIRE(a->get("kept") == "v");
    const auto record = a->get_record("gone");
    REQUIRE(record.has_value());
    REQUIRE(record->deleted);
    REQUIRE(record->region == us);
    REQUIRE(a->record_count() == 2);

    // Received tombstones behave the same.
    auto b = replica(eu, ConflictResolutionMode::LastWriterWins);
    ship(*a, *b);
    REQUIRE_FALSE(b->get("gone").has_value());
    REQUIRE(b->get_record("gone") == record);
    REQUIRE(b->record_count() == 2);
}

TEST_CASE("erasing an absent key still wins over an older concurrent write", "[loss][delete]") {
    for (auto mode : both_modes) {
        CAPTURE(mode_name(mode));
        auto a = replica(us, mode, fixed_clock(1'700'000'001'000));
        auto b = replica(eu, mode, fixed_clock(1'700'000'002'000));
        auto c = replica(ap, mode, fixed_clock(1'700'000'000'000));

        REQUIRE(std::holds_alternative<Committed>(b->erase("k"))); // nothing to erase yet
        REQUIRE(b->get_record("k")->deleted);
        REQUIRE(b->record_count() == 1);
        REQUIRE(std::holds_alternative<Committed>(a->put("k", "older"))); // concurrent, older

        ship(*a, *c);
        REQUIRE(c->get("k") == "older");
        ship(*b, *c);
        ship(*a, *b);
        ship(*b, *a);
        for (auto* r : {a.get(), b.get(), c.get()}) {
            CAPTURE(r->config().local_region);
            REQUIRE_FALSE(r->get("k").has_value());
            REQUIRE(r->get_record("k")->deleted);
            REQUIRE(r->get_record("k")->region == eu);
        }
    }
}
