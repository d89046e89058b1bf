#include <geo/replicator.hpp>

#include "geo_test.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

using geo::ActiveActiveGeoConfig;
using geo::ActiveActiveReplicator;
using geo::AlreadyApplied;
using geo::Committed;
using geo::ConsistencyLevel;
using geo::FanoutEntry;
using geo::GeoRecord;
using geo::GeoWriteOutcome;
using geo::RegionRaftGroup;
using geo::RejectedByConflict;
using geo::VectorClock;

namespace Catch {
template <>
struct StringMaker<GeoWriteOutcome> {
    static std::string convert(const GeoWriteOutcome& outcome) {
        std::ostringstream out;
        if (const auto* c = std::get_if<Committed>(&outcome)) {
            out << "Committed{" << c->region << ", " << c->seq << "}";
        } else if (const auto* r = std::get_if<RejectedByConflict>(&outcome)) {
            out << "RejectedByConflict{" << r->region << ", " << r->winner_region << ", "
                << r->winner_timestamp_ms << "}";
        } else if (const auto* a = std::get_if<AlreadyApplied>(&outcome)) {
            out << "AlreadyApplied{" << a->region << ", " << a->seq << "}";
        }
        return out.str();
    }
};
template <>
struct StringMaker<GeoRecord> {
    static std::string convert(const GeoRecord& r) {
        std::ostringstream out;
        out << "GeoRecord{" << r.region << ", ts " << r.timestamp_ms << ", seq " << r.seq << ", \""
            << r.value << "\"" << (r.deleted ? ", deleted" : "") << ", clock {";
        for (const auto& [node, counter] : r.clock.entries()) {
            out << node << ":" << counter << " ";
        }
        out << "}}";
        return out.str();
    }
};
} // namespace Catch

namespace {

const std::string us = "us-east-1";
const std::string eu = "eu-west-1";
const std::string ap = "ap-south-1";

ActiveActiveGeoConfig lww_config() {
    return ActiveActiveGeoConfig::multi_region(us, {us, eu, ap});
}

ActiveActiveGeoConfig vc_config() {
    ActiveActiveGeoConfig config = lww_config();
    config.conflict_mode = geo::ConflictResolutionMode::VectorClock;
    return config;
}

std::vector<RegionRaftGroup> three_groups() {
    return {RegionRaftGroup(us, 1000, {1, 2, 3}), RegionRaftGroup(eu, 2000, {4, 5, 6}),
            RegionRaftGroup(ap, 3000, {7, 8, 9})};
}

/// The message of the ConfigError `f` throws, or a marker when it throws none.
template <class F>
std::string config_error(F&& f) {
    try {
        f();
    } catch (const geo::ConfigError& e) {
        return e.what();
    }
    return "<no ConfigError>";
}

template <class T>
const T& expect(const GeoWriteOutcome& outcome) {
    INFO("outcome: " << Catch::StringMaker<GeoWriteOutcome>::convert(outcome));
    REQUIRE(std::holds_alternative<T>(outcome));
    return std::get<T>(outcome);
}

/// Everything a caller can observe of a replicator through its queries, for the given keys.
struct Observed {
    std::size_t record_count{};
    std::map<geo::RegionId, std::uint64_t> sequences;
    std::vector<std::size_t> pending;              // per source
    std::vector<std::vector<FanoutEntry>> owed;    // per (source, target)
    std::vector<std::optional<GeoRecord>> records; // per key
    std::vector<std::uint64_t> committed_seqs;     // per group

    friend bool operator==(const Observed& a, const Observed& b) {
        return a.record_count == b.record_count && a.sequences == b.sequences &&
               a.pending == b.pending && a.owed == b.owed && a.records == b.records &&
               a.committed_seqs == b.committed_seqs;
    }
};

Observed observe(const ActiveActiveReplicator& r, const std::vector<std::string>& keys) {
    Observed o;
    o.record_count = r.record_count();
    o.sequences = r.region_sequences();
    for (const auto& source : r.config().regions) {
        o.pending.push_back(r.pending_fanout_len(source));
        for (const auto& target : r.config().regions) {
            o.owed.push_back(r.peek_fanout(source, target));
        }
    }
    for (const auto& key : keys) {
        o.records.push_back(r.get_record(key));
    }
    for (const auto& group : r.groups()) {
        o.committed_seqs.push_back(group.committed_seq);
    }
    return o;
}

} // namespace

// ---- the nine unit tests of the Rust module (oxirs-cluster 0.3.1), ported -----------------------

TEST_CASE("route default uses local region for unmatched writes") {
    ActiveActiveGeoConfig config = lww_config();
    config.routing_rules = {geo::RegionRoutingRule{"eu", std::string("https://eu.example.org/"),
                                                   std::nullopt, eu, ConsistencyLevel::EachQuorum}};
    const ActiveActiveReplicator replicator(config, three_groups());
    const geo::WriteRoutingDecision decision =
        replicator.config().route("https://us.example.org/resource/1");
    CHECK(decision.primary_region == us);
    CHECK(decision.fanout_regions == std::vector<geo::RegionId>{eu, ap});
    CHECK(decision.consistency == ConsistencyLevel::LocalAsync);
}

TEST_CASE("route matches subject prefix rule") {
    ActiveActiveGeoConfig config = lww_config();
    config.routing_rules.insert(config.routing_rules.begin(),
                                geo::RegionRoutingRule{"eu", std::string("https://eu.example.org/"),
                                                       std::nullopt, eu,
                                                       ConsistencyLevel::EachQuorum});
    const ActiveActiveReplicator replicator(config, three_groups());
    const geo::WriteRoutingDecision decision =
        replicator.config().route("https://eu.example.org/resource/1");
    CHECK(decision.primary_region == eu);
    CHECK(decision.fanout_regions == std::vector<geo::RegionId>{us, ap});
    CHECK(decision.consistency == ConsistencyLevel::EachQuorum);
    CHECK(replicator.config().route("https://us.example.org/x").primary_region == us);
}

TEST_CASE("local write assigns monotonic seq") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    CHECK(replicator.apply_local_write(us, "a", "1", 1000) == GeoWriteOutcome{Committed{us, 1}});
    CHECK(replicator.apply_local_write(us, "b", "2", 1001) == GeoWriteOutcome{Committed{us, 2}});
    CHECK(replicator.apply_local_write(us, "a", "3", 1002) == GeoWriteOutcome{Committed{us, 3}});
    CHECK(replicator.apply_local_write(eu, "c", "4", 1003) == GeoWriteOutcome{Committed{eu, 1}});
    CHECK(replicator.region_sequences().at(us) == 3);
    CHECK(replicator.region_sequences().at(eu) == 1);
}

TEST_CASE("lww newer timestamp wins") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    expect<Committed>(replicator.apply_local_write(us, "k", "old", 1000));
    const GeoWriteOutcome outcome = replicator.apply_remote_write(eu, "k", "new", 2000);
    CHECK(outcome == GeoWriteOutcome{Committed{eu, 1}});
    const auto record = replicator.get_record("k");
    REQUIRE(record.has_value());
    CHECK(record->value == "new");
    CHECK(record->region == eu);
    CHECK(record->timestamp_ms == 2000);
}

TEST_CASE("lww older timestamp rejected") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    expect<Committed>(replicator.apply_local_write(us, "k", "newer", 2000));
    const GeoWriteOutcome outcome = replicator.apply_remote_write(eu, "k", "older", 1000);
    CHECK(outcome == GeoWriteOutcome{RejectedByConflict{eu, us, 2000}});
    const auto record = replicator.get_record("k");
    REQUIRE(record.has_value());
    CHECK(record->value == "newer");
    CHECK(record->region == us);
    CHECK(record->timestamp_ms == 2000);
}

TEST_CASE("lww tie breaks on region id") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    // "us-east-1" > "eu-west-1": on equal timestamps the us write stays, whichever came first.
    expect<Committed>(replicator.apply_local_write(us, "a", "from-us", 1000));
    CHECK(replicator.apply_remote_write(eu, "a", "from-eu", 1000) ==
          GeoWriteOutcome{RejectedByConflict{eu, us, 1000}});
    CHECK(replicator.get_record("a")->value == "from-us");

    expect<Committed>(replicator.apply_remote_write(eu, "b", "from-eu", 1000));
    expect<Committed>(replicator.apply_local_write(us, "b", "from-us", 1000));
    CHECK(replicator.get_record("b")->value == "from-us");
    CHECK(replicator.get_record("b")->region == us);
}

TEST_CASE("vector clock mode accepts strictly later") {
    ActiveActiveReplicator replicator(vc_config(), three_groups());
    expect<Committed>(replicator.apply_local_write(us, "k", "first", 2000, VectorClock{{1, 1}}));
    // Causally later, with an older wall-clock timestamp: the clock decides.
    const GeoWriteOutcome outcome =
        replicator.apply_remote_write(eu, "k", "second", 1000, VectorClock{{1, 2}});
    CHECK(outcome == GeoWriteOutcome{Committed{eu, 1}});
    const auto record = replicator.get_record("k");
    REQUIRE(record.has_value());
    CHECK(record->value == "second");
    CHECK(record->clock == VectorClock{{1, 2}});
}

TEST_CASE("fanout drain routes only to target") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    expect<Committed>(replicator.apply_local_write(us, "k", "v", 1000));
    CHECK(replicator.pending_fanout_len(us) == 1);

    const std::vector<FanoutEntry> to_eu = replicator.drain_fanout(us, eu);
    REQUIRE(to_eu.size() == 1);
    CHECK(to_eu[0].key == "k");
    CHECK(to_eu[0].record.value == "v");
    CHECK(to_eu[0].record.region == us);
    CHECK(to_eu[0].seq == 1);
    CHECK(replicator.drain_fanout(us, eu).empty());
    CHECK(replicator.pending_fanout_len(us) == 1); // still owed to ap-south-1

    const std::vector<FanoutEntry> to_ap = replicator.drain_fanout(us, ap);
    REQUIRE(to_ap.size() == 1);
    CHECK(to_ap[0] == to_eu[0]);
    CHECK(replicator.drain_fanout(us, ap).empty());
    CHECK(replicator.pending_fanout_len(us) == 0);
    CHECK(replicator.drain_fanout(eu, us).empty());
    CHECK(replicator.drain_fanout(us, us).empty());
}

TEST_CASE("config rejects unknown local region") {
    ActiveActiveGeoConfig config = lww_config();
    config.local_region = "mars-north-1";
    CHECK_THROWS_AS(ActiveActiveReplicator(config, three_groups()), geo::ConfigError);
    CHECK_THAT(config_error([&] { (void)ActiveActiveReplicator(config, three_groups()); }),
               geo_test::contains("mars-north-1"));
}

// ---- construction ----------------------------------------------------------------------------

TEST_CASE("the constructor rejects a group of an unknown region and names the region") {
    std::vector<RegionRaftGroup> groups = three_groups();
    groups.emplace_back("mars-north-1", 4000, std::vector<geo::NodeId>{10});
    CHECK_THROWS_AS(ActiveActiveReplicator(lww_config(), groups), geo::ConfigError);
    CHECK_THAT(config_error([&] { (void)ActiveActiveReplicator(lww_config(), groups); }),
               geo_test::contains("mars-north-1"));
}

TEST_CASE("the constructor rejects two groups for one region and names the region") {
    std::vector<RegionRaftGroup> groups = three_groups();
    groups.emplace_back(eu, 2001, std::vector<geo::NodeId>{10});
    CHECK_THROWS_AS(ActiveActiveReplicator(lww_config(), groups), geo::ConfigError);
    CHECK_THAT(config_error([&] { (void)ActiveActiveReplicator(lww_config(), groups); }),
               geo_test::contains(eu));
}

TEST_CASE("the constructor rejects a config that fails validation") {
    ActiveActiveGeoConfig config = lww_config();
    config.regions.push_back(eu);
    CHECK_THROWS_AS(ActiveActiveReplicator(config, three_groups()), geo::ConfigError);
    config = lww_config();
    config.routing_rules.push_back(
        geo::RegionRoutingRule::default_to("mars-north-1", ConsistencyLevel::LocalAsync));
    CHECK_THAT(config_error([&] { (void)ActiveActiveReplicator(config, three_groups()); }),
               geo_test::contains("mars-north-1"));
}

TEST_CASE("a replicator needs no group for every region") {
    ActiveActiveReplicator replicator(lww_config(), {RegionRaftGroup(us, 1000, {1})});
    CHECK(replicator.apply_local_write(eu, "k", "v", 1000) == GeoWriteOutcome{Committed{eu, 1}});
    CHECK(replicator.groups().size() == 1);
}

TEST_CASE("config() returns the configuration given") {
    const ActiveActiveGeoConfig config = vc_config();
    const ActiveActiveReplicator replicator(config, three_groups());
    CHECK(replicator.config() == config);
}

// ---- unknown regions -------------------------------------------------------------------------

TEST_CASE("every member given an unknown region throws ConfigError and changes nothing") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    expect<Committed>(replicator.apply_local_write(us, "a", "1", 1000));
    expect<Committed>(replicator.apply_local_write(us, "b", "2", 1001));
    expect<Committed>(replicator.apply_remote_write(eu, "c", "3", 1002));
    REQUIRE(replicator.drain_fanout(us, eu).size() == 2); // a partly acknowledged queue
    const std::vector<std::string> keys{"a", "b", "c", "d"};
    const Observed before = observe(replicator, keys);

    const std::string mars = "mars-north-1";
    FanoutEntry entry{"d", GeoRecord{mars, 5000, {}, "x", 1, false}, 1};
    const std::vector<std::pair<const char*, std::function<void()>>> calls{
        {"apply_local_write", [&] { (void)replicator.apply_local_write(mars, "d", "x", 5000); }},
        {"apply_local_delete", [&] { (void)replicator.apply_local_delete(mars, "a", 5000); }},
        {"apply_remote_write", [&] { (void)replicator.apply_remote_write(mars, "d", "x", 5000); }},
        {"apply_remote(entry)", [&] { (void)replicator.apply_remote(mars, entry); }},
        {"apply_remote(batch)",
         [&] { (void)replicator.apply_remote(mars, std::vector<FanoutEntry>{entry}); }},
        {"peek_fanout source", [&] { (void)replicator.peek_fanout(mars, eu); }},
        {"peek_fanout target", [&] { (void)replicator.peek_fanout(us, mars); }},
        {"acknowledge_fanout source", [&] { (void)replicator.acknowledge_fanout(mars, ap, 100); }},
        {"acknowledge_fanout target", [&] { (void)replicator.acknowledge_fanout(us, mars, 100); }},
        {"drain_fanout source", [&] { (void)replicator.drain_fanout(mars, ap); }},
        {"drain_fanout target", [&] { (void)replicator.drain_fanout(us, mars); }},
        {"pending_fanout_len", [&] { (void)replicator.pending_fanout_len(mars); }},
        {"pending_fanout_len source", [&] { (void)replicator.pending_fanout_len(mars, ap); }},
        {"pending_fanout_len target", [&] { (void)replicator.pending_fanout_len(us, mars); }},
    };
    for (const auto& [name, call] : calls) {
        INFO("member: " << name);
        CHECK_THAT(config_error(call), geo_test::contains(mars));
        CHECK(observe(replicator, keys) == before);
    }
}

TEST_CASE("apply_remote of an empty batch from an unknown region throws ConfigError") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    CHECK_THROWS_AS(replicator.apply_remote("mars-north-1", std::vector<FanoutEntry>{}),
                    geo::ConfigError);
}

TEST_CASE("an unknown region error is a geo::Error") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    CHECK_THROWS_AS(replicator.apply_local_write("mars-north-1", "k", "v", 1), geo::Error);
}

// ---- apply_local_write -----------------------------------------------------------------------

TEST_CASE("an accepted local write is stored with its region, timestamp, clock and seq") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    CHECK_FALSE(replicator.get_record("k").has_value());
    expect<Committed>(replicator.apply_local_write(us, "other", "x", 900));
    CHECK(replicator.apply_local_write(us, "k", "value", 1000, VectorClock{{1, 3}}) ==
          GeoWriteOutcome{Committed{us, 2}});
    const auto record = replicator.get_record("k");
    REQUIRE(record.has_value());
    CHECK(record->region == us);
    CHECK(record->timestamp_ms == 1000);
    CHECK(record->clock == VectorClock{{1, 3}});
    CHECK(record->value == "value");
    CHECK(record->seq == 2);
    CHECK_FALSE(record->deleted);
}

TEST_CASE("an accepted local write is queued for every other region") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    expect<Committed>(replicator.apply_local_write(eu, "k", "v", 1000));
    CHECK(replicator.pending_fanout_len(eu) == 1);
    CHECK(replicator.pending_fanout_len(eu, us) == 1);
    CHECK(replicator.pending_fanout_len(eu, ap) == 1);
    CHECK(replicator.pending_fanout_len(eu, eu) == 0);
    CHECK(replicator.pending_fanout_len(us) == 0);
    const std::vector<FanoutEntry> batch = replicator.drain_fanout(eu, us);
    REQUIRE(batch.size() == 1);
    CHECK(batch[0] == FanoutEntry{"k", *replicator.get_record("k"), 1});
    CHECK(replicator.drain_fanout(eu, ap) == batch);
}

TEST_CASE("drained entries come oldest first with the record as stored") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    expect<Committed>(replicator.apply_local_write(us, "a", "1", 1000));
    expect<Committed>(replicator.apply_local_write(us, "b", "2", 1001));
    expect<Committed>(replicator.apply_local_write(us, "c", "3", 1002));
    const std::vector<FanoutEntry> batch = replicator.drain_fanout(us, ap);
    REQUIRE(batch.size() == 3);
    for (std::size_t i = 0; i < batch.size(); ++i) {
        CHECK(batch[i].seq == i + 1);
        CHECK(batch[i].record.seq == batch[i].seq);
        CHECK(batch[i].record == *replicator.get_record(batch[i].key));
    }
    CHECK(batch[0].key == "a");
    CHECK(batch[2].key == "c");
}

TEST_CASE("a write rejected by conflict reports its region and the winner's region and time") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    expect<Committed>(replicator.apply_remote_write(ap, "k", "winner", 5000));
    const GeoWriteOutcome outcome = replicator.apply_local_write(us, "k", "loser", 4000);
    const auto& rejected = expect<RejectedByConflict>(outcome);
    CHECK(rejected.region == us);
    CHECK(rejected.winner_region == ap);
    CHECK(rejected.winner_timestamp_ms == 5000);
}

TEST_CASE("a rejected local write changes no record, sequence or fanout") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    expect<Committed>(replicator.apply_local_write(us, "k", "winner", 5000));
    expect<Committed>(replicator.apply_local_write(us, "j", "other", 5001));
    expect<Committed>(replicator.apply_remote_write(eu, "e", "remote", 5002));
    REQUIRE(replicator.drain_fanout(us, ap).size() == 2);
    const std::vector<std::string> keys{"k", "j", "e"};
    const Observed before = observe(replicator, keys);

    CHECK(replicator.apply_local_write(us, "k", "loser", 4000) ==
          GeoWriteOutcome{RejectedByConflict{us, us, 5000}});
    CHECK(observe(replicator, keys) == before);
    CHECK(replicator.apply_local_write(eu, "k", "loser", 4999) ==
          GeoWriteOutcome{RejectedByConflict{eu, us, 5000}});
    CHECK(observe(replicator, keys) == before);
    // The next accepted write takes the next seq: the rejected ones consumed none.
    CHECK(replicator.apply_local_write(us, "n", "v", 6000) == GeoWriteOutcome{Committed{us, 3}});
}

TEST_CASE("a rejected remote write changes no record, sequence or fanout") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    expect<Committed>(replicator.apply_local_write(us, "k", "winner", 5000));
    expect<Committed>(replicator.apply_remote_write(eu, "e", "remote", 5002));
    const std::vector<std::string> keys{"k", "e"};
    const Observed before = observe(replicator, keys);

    CHECK(replicator.apply_remote_write(ap, "k", "loser", 4000) ==
          GeoWriteOutcome{RejectedByConflict{ap, us, 5000}});
    CHECK(replicator.apply_remote_write(eu, "k", "loser", 5000) ==
          GeoWriteOutcome{RejectedByConflict{eu, us, 5000}});
    CHECK(observe(replicator, keys) == before);
    CHECK(replicator.region_sequences().at(ap) == 0);
    CHECK(replicator.region_sequences().at(eu) == 1);
}

// ---- apply_remote_write ----------------------------------------------------------------------

TEST_CASE("an accepted remote write advances the origin's counter and reports it") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    CHECK(replicator.region_sequences().at(eu) == 0);
    CHECK(replicator.apply_remote_write(eu, "a", "1", 1000) == GeoWriteOutcome{Committed{eu, 1}});
    CHECK(replicator.apply_remote_write(eu, "b", "2", 1001) == GeoWriteOutcome{Committed{eu, 2}});
    CHECK(replicator.apply_remote_write(ap, "c", "3", 1002) == GeoWriteOutcome{Committed{ap, 1}});
    CHECK(replicator.region_sequences().at(eu) == 2);
    CHECK(replicator.region_sequences().at(ap) == 1);
    CHECK(replicator.region_sequences().at(us) == 0);
    const auto record = replicator.get_record("b");
    REQUIRE(record.has_value());
    CHECK(record->region == eu);
    CHECK(record->value == "2");
    CHECK(record->timestamp_ms == 1001);
    CHECK(record->seq == 2);
}

TEST_CASE("a remote write is never queued again") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    expect<Committed>(replicator.apply_local_write(us, "local", "v", 1000));
    expect<Committed>(replicator.apply_local_write(us, "drained", "v", 1001));
    REQUIRE(replicator.drain_fanout(us, eu).size() == 2);
    REQUIRE(replicator.drain_fanout(us, ap).size() == 2);
    expect<Committed>(replicator.apply_local_write(us, "local2", "v", 1002));
    const std::vector<std::size_t> pending_before{replicator.pending_fanout_len(us),
                                                  replicator.pending_fanout_len(eu),
                                                  replicator.pending_fanout_len(ap)};
    const std::vector<FanoutEntry> owed_before = replicator.peek_fanout(us, eu);

    expect<Committed>(replicator.apply_remote_write(eu, "fresh", "r", 2000));   // new key
    expect<Committed>(replicator.apply_remote_write(ap, "fresh2", "r", 2001));  // new key
    expect<Committed>(replicator.apply_remote_write(ap, "drained", "r", 2002)); // overwrite

    CHECK(std::vector<std::size_t>{replicator.pending_fanout_len(us),
                                   replicator.pending_fanout_len(eu),
                                   replicator.pending_fanout_len(ap)} == pending_before);
    CHECK(replicator.peek_fanout(us, eu) == owed_before);
    for (const auto& source : {us, eu, ap}) {
        for (const auto& target : {us, eu, ap}) {
            if (source != us) {
                CHECK(replicator.peek_fanout(source, target).empty());
            }
        }
    }
    CHECK(replicator.get_record("drained")->value == "r");
}

// ---- queries ---------------------------------------------------------------------------------

TEST_CASE("region_sequences has one entry per configured region") {
    ActiveActiveGeoConfig config =
        ActiveActiveGeoConfig::multi_region(us, {us, eu, ap, "sa-east-1"});
    ActiveActiveReplicator replicator(config, {RegionRaftGroup(us, 1000, {1})});
    const std::map<geo::RegionId, std::uint64_t> expected{
        {us, 0}, {eu, 0}, {ap, 0}, {"sa-east-1", 0}};
    CHECK(replicator.region_sequences() == expected);
    expect<Committed>(replicator.apply_local_write(us, "k", "v", 1));
    expect<Committed>(replicator.apply_remote_write("sa-east-1", "j", "v", 2));
    const std::map<geo::RegionId, std::uint64_t> after{{us, 1}, {eu, 0}, {ap, 0}, {"sa-east-1", 1}};
    CHECK(replicator.region_sequences() == after);
}

TEST_CASE("groups keep their ids and members and committed_seq follows local commits") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    std::vector<RegionRaftGroup> groups = replicator.groups();
    REQUIRE(groups.size() == 3);
    CHECK(groups[0] == RegionRaftGroup(us, 1000, {1, 2, 3}));
    CHECK(groups[1] == RegionRaftGroup(eu, 2000, {4, 5, 6}));
    CHECK(groups[2] == RegionRaftGroup(ap, 3000, {7, 8, 9}));

    expect<Committed>(replicator.apply_local_write(us, "a", "1", 1000));
    expect<Committed>(replicator.apply_local_write(us, "b", "2", 1001));
    expect<RejectedByConflict>(replicator.apply_local_write(us, "b", "old", 10));
    expect<Committed>(replicator.apply_local_write(ap, "c", "3", 1002));
    groups = replicator.groups();
    REQUIRE(groups.size() == 3);
    CHECK(groups[0].committed_seq == 2);
    CHECK(groups[1].committed_seq == 0);
    CHECK(groups[2].committed_seq == 1);
    CHECK(groups[0].members == std::vector<geo::NodeId>{1, 2, 3});
    CHECK(groups[0].group_id == 1000);
}

TEST_CASE("record_count counts keys, not writes") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    CHECK(replicator.record_count() == 0);
    expect<Committed>(replicator.apply_local_write(us, "a", "1", 1000));
    expect<Committed>(replicator.apply_local_write(us, "a", "2", 1001));
    expect<Committed>(replicator.apply_remote_write(eu, "a", "3", 1002));
    CHECK(replicator.record_count() == 1);
    expect<Committed>(replicator.apply_remote_write(eu, "b", "4", 1003));
    expect<RejectedByConflict>(replicator.apply_remote_write(ap, "b", "5", 1));
    CHECK(replicator.record_count() == 2);
}

TEST_CASE("get_record of a key never written is nullopt") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    expect<Committed>(replicator.apply_local_write(us, "a", "1", 1000));
    CHECK_FALSE(replicator.get_record("b").has_value());
    CHECK_FALSE(replicator.get_record("").has_value());
    CHECK_FALSE(replicator.get_record("a ").has_value());
    CHECK(replicator.get_record("a").has_value());
}

TEST_CASE("keys are compared as whole byte strings") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    const std::string with_nul("k\0x", 3);
    expect<Committed>(replicator.apply_local_write(us, "k", "short", 1000));
    expect<Committed>(replicator.apply_local_write(us, with_nul, "long", 1000));
    CHECK(replicator.record_count() == 2);
    CHECK(replicator.get_record("k")->value == "short");
    CHECK(replicator.get_record(with_nul)->value == "long");
}

// ---- vector-clock mode -----------------------------------------------------------------------

TEST_CASE("vector clock mode: a write whose clock follows the stored one wins") {
    ActiveActiveReplicator replicator(vc_config(), three_groups());
    expect<Committed>(replicator.apply_local_write(us, "k", "first", 9000, VectorClock{{1, 1}}));
    // Older timestamp and a smaller region id: only the clock can make it win.
    CHECK(replicator.apply_remote_write(ap, "k", "second", 1000, VectorClock{{1, 1}, {7, 1}}) ==
          GeoWriteOutcome{Committed{ap, 1}});
    CHECK(replicator.get_record("k")->value == "second");
}

TEST_CASE("vector clock mode: a write whose clock precedes the stored one loses") {
    ActiveActiveReplicator replicator(vc_config(), three_groups());
    expect<Committed>(
        replicator.apply_local_write(eu, "k", "stored", 1000, VectorClock{{1, 2}, {4, 1}}));
    const std::vector<std::string> keys{"k"};
    const Observed before = observe(replicator, keys);
    // Newer timestamp and a greater region id: only the clock can make it lose.
    CHECK(replicator.apply_remote_write(us, "k", "stale", 9000, VectorClock{{1, 2}}) ==
          GeoWriteOutcome{RejectedByConflict{us, eu, 1000}});
    CHECK(observe(replicator, keys) == before);
    CHECK(replicator.get_record("k")->value == "stored");
}

TEST_CASE("vector clock mode: concurrent clocks fall back to last-writer-wins") {
    ActiveActiveReplicator replicator(vc_config(), three_groups());
    expect<Committed>(replicator.apply_local_write(us, "k", "stored", 5000, VectorClock{{1, 1}}));

    // Concurrent and older: loses.
    CHECK(replicator.apply_remote_write(eu, "k", "older", 4000, VectorClock{{4, 1}}) ==
          GeoWriteOutcome{RejectedByConflict{eu, us, 5000}});
    CHECK(replicator.get_record("k")->value == "stored");

    // Concurrent, same timestamp, smaller region id: loses.
    CHECK(replicator.apply_remote_write(eu, "k", "tie", 5000, VectorClock{{4, 2}}) ==
          GeoWriteOutcome{RejectedByConflict{eu, us, 5000}});

    // Concurrent and newer: wins.
    expect<Committed>(replicator.apply_remote_write(eu, "k", "newer", 6000, VectorClock{{4, 3}}));
    const auto record = replicator.get_record("k");
    REQUIRE(record.has_value());
    CHECK(record->value == "newer");
    CHECK(record->clock == VectorClock{{4, 3}});
}

TEST_CASE("vector clock mode: equal clocks fall back to last-writer-wins") {
    ActiveActiveReplicator replicator(vc_config(), three_groups());
    expect<Committed>(replicator.apply_local_write(us, "k", "stored", 5000, VectorClock{{1, 1}}));
    expect<RejectedByConflict>(
        replicator.apply_remote_write(eu, "k", "older", 4000, VectorClock{{1, 1}}));
    expect<Committed>(replicator.apply_remote_write(eu, "k", "newer", 6000, VectorClock{{1, 1}}));
    CHECK(replicator.get_record("k")->value == "newer");
}

TEST_CASE("last-writer-wins mode ignores vector clocks") {
    ActiveActiveReplicator replicator(lww_config(), three_groups());
    expect<Committed>(replicator.apply_local_write(us, "k", "stored", 5000, VectorClock{{1, 1}}));
    CHECK(replicator.apply_remote_write(eu, "k", "later-clock", 4000, VectorClock{{1, 9}}) ==
          GeoWriteOutcome{RejectedByConflict{eu, us, 5000}});
    expect<Committed>(replicator.apply_remote_write(eu, "k", "newer", 6000, VectorClock{}));
    CHECK(replicator.get_record("k")->value == "newer");
}

// ---- concurrency -----------------------------------------------------------------------------

namespace {

struct CommitLog {
    std::string key;
    std::string value;
    std::uint64_t timestamp_ms{};
    std::uint64_t seq{};
};

/// Thread-safe list of invariant violations seen off the main thread (Catch2 assertions are
/// not thread-safe, so worker threads only record them).
class Violations {
public:
    void add(std::string what) {
        std::lock_guard<std::mutex> lock(mu_);
        if (list_.size() < 20) {
            list_.push_back(std::move(what));
        }
        ++count_;
    }
    [[nodiscard]] std::size_t count() const {
        std::lock_guard<std::mutex> lock(mu_);
        return count_;
    }
    [[nodiscard]] std::string summary() const {
        std::lock_guard<std::mutex> lock(mu_);
        std::string all;
        for (const auto& v : list_) {
            all += v + "\n";
        }
        return all;
    }

private:
    mutable std::mutex mu_;
    std::vector<std::string> list_;
    std::size_t count_{};
};

} // namespace

TEST_CASE("concurrent writers, drainers and readers leave exact totals") {
    const std::vector<geo::RegionId> regions{"r-a", "r-b", "r-c", "r-d"};
    const std::size_t n_regions = regions.size();
    ActiveActiveReplicator replicator(
        ActiveActiveGeoConfig::multi_region("r-a", regions),
        {RegionRaftGroup("r-a", 1, {1}), RegionRaftGroup("r-b", 2, {2}),
         RegionRaftGroup("r-c", 3, {3}), RegionRaftGroup("r-d", 4, {4})});

    // Writers 0 and 1 share region r-a on disjoint keys; writers 2 and 3 own r-b and r-c.
    // r-d never writes. Keys are rewritten many times; every 5th write carries an old
    // timestamp and is rejected unless its key is new or holds only old-timestamp writes.
    struct Writer {
        std::size_t region;
        std::string key_prefix;
    };
    const std::vector<Writer> writers{{0, "a0-"}, {0, "a1-"}, {1, "b-"}, {2, "c-"}};
    constexpr std::size_t writes_per_writer = 3000;
    constexpr std::size_t keys_per_writer = 197;

    std::vector<std::vector<CommitLog>> committed(writers.size());
    std::vector<std::size_t> rejected(writers.size(), 0);
    // drained[source][target]: every entry handed out for the pair, in order.
    std::vector<std::vector<std::vector<FanoutEntry>>> drained(
        n_regions, std::vector<std::vector<FanoutEntry>>(n_regions));
    Violations violations;
    std::atomic<std::size_t> writers_running{writers.size()};
    std::atomic<bool> go{false};

    auto wait_for_go = [&] {
        while (!go.load()) {
            std::this_thread::yield();
        }
    };

    std::vector<std::thread> threads;
    for (std::size_t w = 0; w < writers.size(); ++w) {
        threads.emplace_back([&, w] {
            wait_for_go();
            const Writer& me = writers[w];
            const std::string& region = regions[me.region];
            for (std::size_t j = 0; j < writes_per_writer; ++j) {
                const std::string key = me.key_prefix + std::to_string(j % keys_per_writer);
                const std::string value = "w" + std::to_string(w) + "-" + std::to_string(j);
                const std::uint64_t ts = j % 5 == 0 ? 1 : 1'000'000 + j;
                const GeoWriteOutcome outcome =
                    replicator.apply_local_write(region, key, value, ts);
                if (const auto* c = std::get_if<Committed>(&outcome)) {
                    if (c->region != region) {
                        violations.add("Committed names region " + c->region);
                    }
                    committed[w].push_back(CommitLog{key, value, ts, c->seq});
                } else if (const auto* r = std::get_if<RejectedByConflict>(&outcome)) {
                    ++rejected[w];
                    if (r->region != region || r->winner_region != region) {
                        violations.add("rejection names the wrong regions: " + r->region + ", " +
                                       r->winner_region);
                    }
                } else {
                    violations.add("a local write answered AlreadyApplied");
                }
            }
            writers_running.fetch_sub(1);
        });
    }

    // Each (source, target) pair belongs to one drainer, so its log is sequential.
    // Drainer 0 owns targets r-a and r-c and uses drain_fanout; drainer 1 owns r-b and r-d and
    // uses peek_fanout + acknowledge_fanout with varying batch sizes.
    auto record_batch = [&](std::size_t s, std::size_t t, const std::vector<FanoutEntry>& batch) {
        for (const auto& entry : batch) {
            if (s == t) {
                violations.add("a region owes itself an entry");
            }
            if (entry.record.region != regions[s]) {
                violations.add("entry of " + regions[s] + " carries region " + entry.record.region);
            }
            if (entry.seq != entry.record.seq) {
                violations.add("entry seq differs from record seq");
            }
            drained[s][t].push_back(entry);
        }
    };
    for (std::size_t d = 0; d < 2; ++d) {
        threads.emplace_back([&, d] {
            wait_for_go();
            std::mt19937 rng(static_cast<unsigned>(17 + d));
            std::uniform_int_distribution<std::size_t> batch_size(1, 64);
            const std::vector<std::size_t> targets =
                d == 0 ? std::vector<std::size_t>{0, 2} : std::vector<std::size_t>{1, 3};
            bool last_round = false;
            while (!last_round) {
                last_round = writers_running.load() == 0;
                for (std::size_t s = 0; s < n_regions; ++s) {
                    for (std::size_t t : targets) {
                        if (d == 0) {
                            record_batch(s, t, replicator.drain_fanout(regions[s], regions[t]));
                            continue;
                        }
                        const std::vector<FanoutEntry> batch =
                            replicator.peek_fanout(regions[s], regions[t], batch_size(rng));
                        record_batch(s, t, batch);
                        if (!batch.empty()) {
                            const std::size_t released = replicator.acknowledge_fanout(
                                regions[s], regions[t], batch.back().seq);
                            if (released > batch.size()) {
                                violations.add("acknowledge released entries never handed out");
                            }
                        }
                    }
                }
            }
        });
    }

    for (std::size_t reader = 0; reader < 2; ++reader) {
        threads.emplace_back([&, reader] {
            wait_for_go();
            std::mt19937 rng(static_cast<unsigned>(99 + reader));
            std::uniform_int_distribution<std::size_t> pick_writer(0, writers.size() - 1);
            std::uniform_int_distribution<std::size_t> pick_key(0, keys_per_writer - 1);
            std::size_t last_count = 0;
            std::map<geo::RegionId, std::uint64_t> last_sequences;
            std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> last_seen; // ts, seq
            while (writers_running.load() > 0) {
                const Writer& owner = writers[pick_writer(rng)];
                const std::string key = owner.key_prefix + std::to_string(pick_key(rng));
                const std::optional<GeoRecord> record = replicator.get_record(key);
                const std::map<geo::RegionId, std::uint64_t> sequences =
                    replicator.region_sequences();
                const std::size_t count = replicator.record_count();
                if (record) {
                    if (record->region != regions[owner.region]) {
                        violations.add("key " + key + " holds region " + record->region);
                    }
                    if (record->seq > sequences.at(record->region)) {
                        violations.add("a stored seq is above its region's sequence");
                    }
                    const std::pair<std::uint64_t, std::uint64_t> now{record->timestamp_ms,
                                                                      record->seq};
                    auto [it, fresh] = last_seen.emplace(key, now);
                    if (!fresh) {
                        if (now < it->second) {
                            violations.add("key " + key + " went back in LWW order");
                        }
                        it->second = now;
                    }
                }
                if (count < last_count) {
                    violations.add("record_count decreased");
                }
                last_count = count;
                if (sequences.size() != n_regions) {
                    violations.add("region_sequences lacks a region");
                }
                for (const auto& [region, seq] : sequences) {
                    if (seq < last_sequences[region]) {
                        violations.add("the sequence of " + region + " decreased");
                    }
                    last_sequences[region] = seq;
                }
                for (const auto& group : replicator.groups()) {
                    if (group.committed_seq > replicator.region_sequences().at(group.region_id)) {
                        violations.add("committed_seq ahead of region_sequences");
                    }
                }
            }
        });
    }

    go.store(true);
    for (auto& thread : threads) {
        thread.join();
    }

    // Final drain: whatever is still owed.
    for (std::size_t s = 0; s < n_regions; ++s) {
        for (std::size_t t = 0; t < n_regions; ++t) {
            record_batch(s, t, replicator.drain_fanout(regions[s], regions[t]));
        }
    }

    INFO(violations.summary());
    REQUIRE(violations.count() == 0);

    // Per region: the committed seqs are exactly 1..n, n = region_sequences = Committed count.
    std::vector<std::map<std::uint64_t, CommitLog>> by_seq(n_regions);
    std::set<std::string> distinct_keys;
    for (std::size_t w = 0; w < writers.size(); ++w) {
        CHECK(rejected[w] > 0);
        CHECK(committed[w].size() + rejected[w] == writes_per_writer);
        for (const auto& c : committed[w]) {
            const bool fresh = by_seq[writers[w].region].emplace(c.seq, c).second;
            if (!fresh) {
                FAIL_CHECK("seq " << c.seq << " committed twice in " << regions[writers[w].region]);
            }
            distinct_keys.insert(c.key);
        }
    }
    const std::map<geo::RegionId, std::uint64_t> sequences = replicator.region_sequences();
    for (std::size_t r = 0; r < n_regions; ++r) {
        INFO("region " << regions[r]);
        CHECK(sequences.at(regions[r]) == by_seq[r].size());
        if (!by_seq[r].empty()) {
            CHECK(by_seq[r].begin()->first == 1);
            CHECK(by_seq[r].rbegin()->first == by_seq[r].size());
        }
        CHECK(replicator.pending_fanout_len(regions[r]) == 0);
    }
    CHECK(by_seq[3].empty());
    for (const auto& group : replicator.groups()) {
        CHECK(group.committed_seq == sequences.at(group.region_id));
    }

    // Every key committed is stored, nothing else is, and it holds its newest commit.
    CHECK(replicator.record_count() == distinct_keys.size());
    std::vector<std::map<std::string, std::uint64_t>> newest(n_regions); // key -> newest seq
    for (std::size_t r = 0; r < n_regions; ++r) {
        for (const auto& [seq, c] : by_seq[r]) {
            newest[r][c.key] = seq; // ascending seq: the last one stays
        }
        for (const auto& [key, seq] : newest[r]) {
            const std::optional<GeoRecord> record = replicator.get_record(key);
            REQUIRE(record.has_value());
            const CommitLog& c = by_seq[r].at(seq);
            CHECK(record->region == regions[r]);
            CHECK(record->seq == seq);
            CHECK(record->value == c.value);
            CHECK(record->timestamp_ms == c.timestamp_ms);
        }
    }

    for (std::size_t s = 0; s < n_regions; ++s) {
        for (std::size_t t = 0; t < n_regions; ++t) {
            INFO("source " << regions[s] << ", target " << regions[t]);
            const std::vector<FanoutEntry>& log = drained[s][t];
            if (s == t) {
                CHECK(log.empty());
                continue;
            }
            // Strictly increasing seqs, each one a commit of `s` with the committed content.
            std::map<std::string, const FanoutEntry*> last_per_key;
            std::size_t mismatches = 0;
            for (std::size_t i = 0; i < log.size(); ++i) {
                if (i > 0 && log[i].seq <= log[i - 1].seq) {
                    FAIL_CHECK("seq " << log[i].seq << " follows " << log[i - 1].seq);
                    break;
                }
                const auto it = by_seq[s].find(log[i].seq);
                if (it == by_seq[s].end() || it->second.key != log[i].key ||
                    it->second.value != log[i].record.value ||
                    it->second.timestamp_ms != log[i].record.timestamp_ms) {
                    ++mismatches;
                }
                last_per_key[log[i].key] = &log[i];
            }
            CHECK(mismatches == 0);
            // Every commit reached the target, or a later commit of its key did (a queued entry
            // is superseded by the key's newer commit); the last one per key is the stored record.
            CHECK(last_per_key.size() == newest[s].size());
            std::size_t missing = 0;
            std::size_t stale = 0;
            for (const auto& [key, seq] : newest[s]) {
                const auto it = last_per_key.find(key);
                if (it == last_per_key.end() || it->second->seq != seq) {
                    ++missing;
                } else if (it->second->record != *replicator.get_record(key)) {
                    ++stale;
                }
            }
            CHECK(missing == 0);
            CHECK(stale == 0);
        }
    }
}

TEST_CASE("a remote write stamped beyond max_clock_offset is flagged and still applied") {
    std::uint64_t now_ms = 1'000'000;
    auto config = ActiveActiveGeoConfig::multi_region("us-east-1", {"us-east-1", "eu-west-1"});
    config.max_clock_offset = std::chrono::milliseconds(500);
    ActiveActiveReplicator replica(config, {}, [&now_ms] { return now_ms; });

    CHECK(std::holds_alternative<Committed>(
        replica.apply_remote_write("eu-west-1", "near", "v", now_ms + 500, {})));
    CHECK(replica.clock_offset_violations() == 0);

    CHECK(std::holds_alternative<Committed>(
        replica.apply_remote_write("eu-west-1", "far", "v", now_ms + 501, {})));
    CHECK(replica.clock_offset_violations() == 1);
    CHECK(replica.get("far") == std::optional<std::string>("v"));
}

TEST_CASE("the clock offset check is off unless configured") {
    ActiveActiveReplicator replica(
        ActiveActiveGeoConfig::multi_region("us-east-1", {"us-east-1", "eu-west-1"}), {},
        [] { return std::uint64_t{1000}; });
    replica.apply_remote_write("eu-west-1", "k", "v", 1000 + 3'600'000, {});
    CHECK(replica.clock_offset_violations() == 0);
}

TEST_CASE("a key or value that is not valid UTF-8 is refused when written and changes nothing") {
    const std::string us = "us-east-1";
    const std::string eu = "eu-west-1";
    auto config = ActiveActiveGeoConfig::multi_region(us, {us, eu});
    ActiveActiveReplicator replica(config, {{us, 1, {1}}, {eu, 2, {2}}});
    ActiveActiveReplicator peer(ActiveActiveGeoConfig::multi_region(eu, {us, eu}),
                                {{us, 1, {1}}, {eu, 2, {2}}});
    REQUIRE(std::holds_alternative<Committed>(replica.put("k", "v")));
    REQUIRE(std::holds_alternative<Committed>(peer.put("p", "from eu")));
    const std::string bad_value = std::string("ok\xff", 3);
    const std::string bad_key = std::string("k\xc0\xaf", 3); // an overlong '/'
    const auto before = replica.records_digest();
    const auto sequences = replica.region_sequences();

    CHECK_THROWS_AS(replica.put("k", bad_value), geo::EncodingError);
    CHECK_THROWS_AS(replica.put(bad_key, "v"), geo::EncodingError);
    CHECK_THROWS_AS(replica.put(bad_key, "v", 5), geo::EncodingError);
    CHECK_THROWS_AS(replica.erase(bad_key), geo::EncodingError);
    CHECK_THROWS_AS(replica.apply_local_write(us, "k", bad_value, 10), geo::EncodingError);
    CHECK_THROWS_AS(replica.apply_local_delete(us, bad_key, 10), geo::EncodingError);
    CHECK_THROWS_AS(replica.apply_remote_write(eu, "k", bad_value, 10), geo::EncodingError);
    REQUIRE_THROWS_WITH(replica.put(bad_key, "v"), geo_test::contains("k\\xc0\\xaf"));

    // A batch with one bad entry among good ones applies none of them.
    auto batch = peer.peek_fanout(eu, us);
    REQUIRE(batch.size() == 1);
    FanoutEntry bad = batch.front();
    bad.key = "q";
    bad.record.value = bad_value;
    bad.seq = bad.record.seq = batch.front().seq + 1;
    bad.prev_seq = batch.front().seq;
    batch.push_back(bad);
    CHECK_THROWS_AS(replica.apply_remote(eu, batch), geo::EncodingError);
    CHECK_THROWS_AS(replica.apply_remote(eu, bad), geo::EncodingError);
    CHECK_FALSE(replica.get("p").has_value());

    CHECK(replica.records_digest() == before);
    CHECK(replica.region_sequences() == sequences);
    CHECK(replica.pending_fanout_len(us) == 1);
}

TEST_CASE("LWW ties go to the greater region id whatever the configured order") {
    // Regions configured against their string order, with ids that share prefixes.
    const std::vector<std::string> ids{"zz", "us-east-1", "us-east", "a", "us-east-10"};
    geo::ActiveActiveGeoConfig config;
    config.regions = ids;
    config.local_region = "a";
    geo::ActiveActiveReplicator rep(config, {});
    const std::string greatest = *std::max_element(ids.begin(), ids.end());
    for (const auto& first : ids) {
        for (const auto& second : ids) {
            const std::string key = first + "|" + second;
            REQUIRE(std::holds_alternative<geo::Committed>(
                rep.apply_remote_write(first, key, "from " + first, 1000)));
            const geo::GeoWriteOutcome outcome =
                rep.apply_remote_write(second, key, "from " + second, 1000);
            const std::string expected_winner = std::max(first, second);
            INFO(first << " then " << second);
            REQUIRE(rep.get_record(key)->region == expected_winner);
            if (second > first) {
                REQUIRE(std::holds_alternative<geo::Committed>(outcome));
            } else if (second < first) {
                const auto* rejected = std::get_if<geo::RejectedByConflict>(&outcome);
                REQUIRE(rejected != nullptr);
                REQUIRE(rejected->region == second);
                REQUIRE(rejected->winner_region == first);
                REQUIRE(rejected->winner_timestamp_ms == 1000);
            }
        }
        // And a later timestamp beats every id.
        REQUIRE(std::holds_alternative<geo::Committed>(
            rep.apply_remote_write("a", first + "|" + greatest, "later", 1001)));
    }
}
