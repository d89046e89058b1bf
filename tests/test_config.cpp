#include <geo/config.hpp>
#include <geo/json.hpp>
#include <geo/replicator.hpp>

#include "geo_test.hpp"

#include <chrono>
#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

using geo::ActiveActiveGeoConfig;
using geo::ConsistencyLevel;
using geo::RegionRaftGroup;
using geo::RegionRoutingRule;
using geo::WriteRoutingDecision;
using namespace std::chrono_literals;

namespace {

/// The message of the ConfigError `validate()` throws, or a marker when it throws none.
std::string validation_error(const ActiveActiveGeoConfig& config) {
    try {
        config.validate();
    } catch (const geo::ConfigError& e) {
        return e.what();
    }
    return "<no ConfigError>";
}

ActiveActiveGeoConfig three_regions() {
    return ActiveActiveGeoConfig::multi_region("us-east-1",
                                               {"us-east-1", "eu-west-1", "ap-south-1"});
}

RegionRoutingRule rule(std::string name, std::optional<std::string> prefix,
                       std::optional<std::string> tenant, std::string target,
                       ConsistencyLevel consistency) {
    return RegionRoutingRule{std::move(name), std::move(prefix), std::move(tenant),
                             std::move(target), consistency};
}

} // namespace

// ---- route -----------------------------------------------------------------------------------

TEST_CASE("route sends a write to the first matching rule's region") {
    ActiveActiveGeoConfig config = three_regions();
    config.routing_rules = {
        rule("eu", "https://eu/", std::nullopt, "eu-west-1", ConsistencyLevel::EachQuorum),
        rule("eu-data", "https://eu/data/", std::nullopt, "ap-south-1",
             ConsistencyLevel::AllQuorum),
        RegionRoutingRule::default_to("us-east-1", ConsistencyLevel::LocalQuorum),
    };
    // Both eu rules match; the first one listed wins even though the second is more specific.
    const WriteRoutingDecision d = config.route("https://eu/data/1");
    CHECK(d.primary_region == "eu-west-1");
    CHECK(d.consistency == ConsistencyLevel::EachQuorum);

    const WriteRoutingDecision fallback = config.route("https://us/1");
    CHECK(fallback.primary_region == "us-east-1");
    CHECK(fallback.consistency == ConsistencyLevel::LocalQuorum);
}

TEST_CASE("route fans out to every other region in config order") {
    ActiveActiveGeoConfig config;
    config.regions = {"r3", "r1", "r4", "r2"};
    config.local_region = "r1";
    config.routing_rules = {rule("to-r4", "x", std::nullopt, "r4", ConsistencyLevel::AllQuorum)};
    CHECK(config.route("x1").fanout_regions == std::vector<geo::RegionId>{"r3", "r1", "r2"});
    CHECK(config.route("y1").fanout_regions == std::vector<geo::RegionId>{"r3", "r4", "r2"});
}

TEST_CASE("route without a matching rule goes to the local region with LocalAsync") {
    ActiveActiveGeoConfig config = three_regions();
    config.routing_rules = {
        rule("eu", "https://eu/", std::nullopt, "eu-west-1", ConsistencyLevel::EachQuorum),
        rule("acme", std::nullopt, "acme", "ap-south-1", ConsistencyLevel::AllQuorum),
    };
    const WriteRoutingDecision expected{
        "us-east-1", {"eu-west-1", "ap-south-1"}, ConsistencyLevel::LocalAsync};
    CHECK(config.route("https://us/1") == expected);
    CHECK(config.route("https://us/1", std::string_view("globex")) == expected);
    config.routing_rules.clear();
    CHECK(config.route("https://eu/1") == expected);
}

TEST_CASE("route honours the tenant of the write") {
    ActiveActiveGeoConfig config = three_regions();
    config.routing_rules = {
        rule("acme", std::nullopt, "acme", "ap-south-1", ConsistencyLevel::AllQuorum),
        rule("eu", "https://eu/", std::nullopt, "eu-west-1", ConsistencyLevel::EachQuorum),
    };
    CHECK(config.route("https://eu/1", std::string_view("acme")).primary_region == "ap-south-1");
    CHECK(config.route("https://eu/1", std::string_view("globex")).primary_region == "eu-west-1");
    CHECK(config.route("https://eu/1").primary_region == "eu-west-1");
    CHECK(config.route("https://us/1").primary_region == "us-east-1");
}

TEST_CASE("matching_rule returns the first matching rule or nullptr") {
    ActiveActiveGeoConfig config = three_regions();
    config.routing_rules = {
        rule("eu", "https://eu/", std::nullopt, "eu-west-1", ConsistencyLevel::EachQuorum),
    };
    const RegionRoutingRule* hit = config.matching_rule("https://eu/1");
    REQUIRE(hit != nullptr);
    CHECK(hit->name == "eu");
    CHECK(config.matching_rule("https://us/1") == nullptr);
}

// ---- factories -------------------------------------------------------------------------------

TEST_CASE("single_region has one region, one tier and a default rule to it") {
    const ActiveActiveGeoConfig config = ActiveActiveGeoConfig::single_region("us-east-1");
    CHECK(config.regions == std::vector<geo::RegionId>{"us-east-1"});
    CHECK(config.local_region == "us-east-1");
    REQUIRE(config.primary_tier.size() == 1);
    CHECK(config.primary_tier.at("primary") == std::vector<geo::RegionId>{"us-east-1"});
    REQUIRE(config.routing_rules.size() == 1);
    CHECK(config.routing_rules[0] ==
          RegionRoutingRule::default_to("us-east-1", ConsistencyLevel::LocalAsync));
    CHECK(config.conflict_mode == geo::ConflictResolutionMode::LastWriterWins);
    CHECK(config.max_lag == 5s);
    CHECK_NOTHROW(config.validate());
    const WriteRoutingDecision d = config.route("anything");
    CHECK(d.primary_region == "us-east-1");
    CHECK(d.fanout_regions.empty());
}

TEST_CASE("multi_region puts the local region first when it is missing") {
    const ActiveActiveGeoConfig config =
        ActiveActiveGeoConfig::multi_region("us-east-1", {"eu-west-1", "ap-south-1"});
    CHECK(config.regions == std::vector<geo::RegionId>{"us-east-1", "eu-west-1", "ap-south-1"});
    CHECK(config.local_region == "us-east-1");
    CHECK_NOTHROW(config.validate());
}

TEST_CASE("multi_region keeps the given order when the local region is listed") {
    const ActiveActiveGeoConfig config =
        ActiveActiveGeoConfig::multi_region("eu-west-1", {"us-east-1", "eu-west-1", "ap-south-1"});
    CHECK(config.regions == std::vector<geo::RegionId>{"us-east-1", "eu-west-1", "ap-south-1"});
    CHECK(config.local_region == "eu-west-1");
}

TEST_CASE("multi_region has a primary tier of every region, a default rule to local and 5 s lag") {
    const ActiveActiveGeoConfig config =
        ActiveActiveGeoConfig::multi_region("us-east-1", {"eu-west-1", "ap-south-1"});
    REQUIRE(config.primary_tier.size() == 1);
    CHECK(config.primary_tier.at("primary") == config.regions);
    REQUIRE(config.routing_rules.size() == 1);
    const RegionRoutingRule& r = config.routing_rules[0];
    CHECK(r.name == "default");
    CHECK_FALSE(r.subject_prefix.has_value());
    CHECK_FALSE(r.tenant_id.has_value());
    CHECK(r.target_region == "us-east-1");
    CHECK(r.consistency == ConsistencyLevel::LocalAsync);
    CHECK(config.conflict_mode == geo::ConflictResolutionMode::LastWriterWins);
    CHECK(config.max_lag == std::chrono::nanoseconds(5'000'000'000));
    const WriteRoutingDecision d = config.route("https://anything/", std::string_view("acme"));
    CHECK(d == WriteRoutingDecision{
                   "us-east-1", {"eu-west-1", "ap-south-1"}, ConsistencyLevel::LocalAsync});
}

TEST_CASE("has_region reports configured regions only") {
    const ActiveActiveGeoConfig config = three_regions();
    CHECK(config.has_region("eu-west-1"));
    CHECK_FALSE(config.has_region("mars-1"));
    CHECK_FALSE(config.has_region(""));
}

TEST_CASE("configs compare equal field by field") {
    const ActiveActiveGeoConfig a = three_regions();
    ActiveActiveGeoConfig b = three_regions();
    CHECK(a == b);
    b.max_lag = 6s;
    CHECK(a != b);
    b = three_regions();
    b.conflict_mode = geo::ConflictResolutionMode::VectorClock;
    CHECK(a != b);
    b = three_regions();
    b.routing_rules.push_back(
        RegionRoutingRule::default_to("eu-west-1", ConsistencyLevel::EachQuorum));
    CHECK(a != b);
}

TEST_CASE("a Raft group starts at committed_seq 0") {
    const RegionRaftGroup group("us-east-1", 1000, {1, 2, 3});
    CHECK(group.region_id == "us-east-1");
    CHECK(group.group_id == 1000);
    CHECK(group.members == std::vector<geo::NodeId>{1, 2, 3});
    CHECK(group.committed_seq == 0);
}

// ---- validate --------------------------------------------------------------------------------

TEST_CASE("validate accepts the factory configs") {
    CHECK_NOTHROW(three_regions().validate());
    CHECK_NOTHROW(ActiveActiveGeoConfig::single_region("eu-west-1").validate());
}

TEST_CASE("validate rejects an empty region list") {
    ActiveActiveGeoConfig config;
    config.local_region = "us-east-1";
    CHECK_THROWS_AS(config.validate(), geo::ConfigError);
    CHECK_THAT(validation_error(config), geo_test::contains("regions"));
    CHECK_THAT(validation_error(config), geo_test::contains("empty"));
}

TEST_CASE("validate rejects a region listed twice and names it") {
    ActiveActiveGeoConfig config = three_regions();
    config.regions.push_back("eu-west-1");
    CHECK_THROWS_AS(config.validate(), geo::ConfigError);
    CHECK_THAT(validation_error(config), geo_test::contains("eu-west-1"));
    CHECK_THAT(validation_error(config), geo_test::contains("twice"));
}

TEST_CASE("validate rejects an empty region id") {
    ActiveActiveGeoConfig config = three_regions();
    config.regions.push_back("");
    CHECK_THROWS_AS(config.validate(), geo::ConfigError);
    CHECK_THAT(validation_error(config), geo_test::contains("regions[3]"));
}

TEST_CASE("validate rejects a local region that is not configured and names it") {
    ActiveActiveGeoConfig config = three_regions();
    config.local_region = "mars-north-1";
    CHECK_THROWS_AS(config.validate(), geo::ConfigError);
    CHECK_THAT(validation_error(config), geo_test::contains("mars-north-1"));
    CHECK_THAT(validation_error(config), geo_test::contains("local"));
}

TEST_CASE("validate rejects a primary tier naming an unknown region and names both") {
    ActiveActiveGeoConfig config = three_regions();
    config.primary_tier["secondary"] = {"eu-west-1", "mars-north-1"};
    CHECK_THROWS_AS(config.validate(), geo::ConfigError);
    CHECK_THAT(validation_error(config), geo_test::contains("mars-north-1"));
    CHECK_THAT(validation_error(config), geo_test::contains("secondary"));
}

TEST_CASE("validate rejects a routing rule targeting an unknown region and names rule and region") {
    ActiveActiveGeoConfig config = three_regions();
    config.routing_rules = {
        rule("eu", "https://eu/", std::nullopt, "eu-west-1", ConsistencyLevel::EachQuorum),
        rule("mars", "https://mars/", std::nullopt, "mars-north-1", ConsistencyLevel::EachQuorum),
    };
    CHECK_THROWS_AS(config.validate(), geo::ConfigError);
    const std::string message = validation_error(config);
    CHECK_THAT(message, geo_test::contains("routing_rules[1]"));
    CHECK_THAT(message, geo_test::contains("mars-north-1"));
}

TEST_CASE("validate rejects a negative max_lag") {
    ActiveActiveGeoConfig config = three_regions();
    config.max_lag = -1s;
    CHECK_THROWS_AS(config.validate(), geo::ConfigError);
    CHECK_THAT(validation_error(config), geo_test::contains("max_lag"));
}

TEST_CASE("validate bounds conflict_log_capacity and names the field and the limit") {
    constexpr std::size_t limit = ActiveActiveGeoConfig::max_conflict_log_capacity;
    static_assert(limit == std::size_t{1} << 20);
    ActiveActiveGeoConfig config = three_regions();
    config.conflict_log_capacity = 0;
    CHECK_NOTHROW(config.validate());
    config.conflict_log_capacity = limit;
    CHECK_NOTHROW(config.validate());
    for (std::size_t capacity : {limit + 1, std::numeric_limits<std::size_t>::max()}) {
        config.conflict_log_capacity = capacity;
        CHECK_THROWS_AS(config.validate(), geo::ConfigError);
        CHECK_THAT(validation_error(config), geo_test::contains("conflict_log_capacity"));
        CHECK_THAT(validation_error(config), geo_test::contains(std::to_string(capacity)));
        CHECK_THAT(validation_error(config), geo_test::contains(std::to_string(limit)));
    }
}

TEST_CASE("a replicator with an unallocatable conflict log capacity throws ConfigError") {
    const std::vector<RegionRaftGroup> groups = {{"us-east-1", 1, {1}}, {"eu-west-1", 2, {2}}};
    ActiveActiveGeoConfig config =
        ActiveActiveGeoConfig::multi_region("us-east-1", {"us-east-1", "eu-west-1"});
    config.conflict_log_capacity = std::numeric_limits<std::size_t>::max();
    // Not std::length_error from sizing the log: validate() runs first.
    CHECK_THROWS_AS(geo::ActiveActiveReplicator(config, groups), geo::ConfigError);

    // The same through JSON, which accepts any size_t.
    const auto parsed = geo::parse_config(geo::to_json_text(config));
    CHECK(parsed.conflict_log_capacity == std::numeric_limits<std::size_t>::max());
    CHECK_THROWS_AS(parsed.validate(), geo::ConfigError);
    CHECK_THROWS_AS(geo::ActiveActiveReplicator(parsed, groups), geo::ConfigError);
}

TEST_CASE("a replicator runs with durations saturated at nanoseconds::max") {
    const std::vector<RegionRaftGroup> groups = {{"us-east-1", 1, {1}}, {"eu-west-1", 2, {2}}};
    ActiveActiveGeoConfig config =
        ActiveActiveGeoConfig::multi_region("us-east-1", {"us-east-1", "eu-west-1"});
    // What Rust's Duration::MAX ("never") reads as.
    config.max_lag = std::chrono::nanoseconds::max();
    config.tombstone_grace = std::chrono::nanoseconds::max();
    config.max_clock_offset = std::chrono::nanoseconds::max();
    geo::ActiveActiveReplicator replicator(config, groups);
    replicator.put("k", "v");
    replicator.erase("k");
    CHECK(replicator.purge_tombstones() == 0); // the grace never ends
    CHECK_FALSE(replicator.get("k").has_value());
    CHECK(replicator.clock_offset_violations() == 0);
}

TEST_CASE("a config error is a geo::Error") {
    ActiveActiveGeoConfig config;
    CHECK_THROWS_AS(config.validate(), geo::Error);
    CHECK_THROWS_AS(config.validate(), std::runtime_error);
}
