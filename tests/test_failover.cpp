// Tier-ordered failover routing: the failover order (detail/failover.hpp), the decision under
// an availability view, the replicator's availability flags and route, tier_order validation,
// and the JSON of tier_order and failed_over.

#include <geo/detail/failover.hpp>
#include <geo/json.hpp>
#include <geo/replicator.hpp>

#include "geo_test.hpp"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

using geo::ActiveActiveGeoConfig;
using geo::ActiveActiveReplicator;
using geo::ConsistencyLevel;
using geo::RegionId;
using geo::RegionRoutingRule;
using geo::WriteRoutingDecision;
using geo::detail::fail_over;
using geo::detail::failover_order;
using nlohmann::json;

namespace {

using Tiers = std::map<std::string, std::vector<RegionId>>;

ActiveActiveGeoConfig tiered(std::vector<RegionId> regions, Tiers tiers,
                             std::vector<std::string> tier_order = {}) {
    ActiveActiveGeoConfig config;
    config.local_region = regions.front();
    config.regions = std::move(regions);
    config.primary_tier = std::move(tiers);
    config.tier_order = std::move(tier_order);
    config.routing_rules.push_back(
        RegionRoutingRule::default_to(config.local_region, ConsistencyLevel::LocalAsync));
    return config;
}

/// us-east-1 (local), eu-west-1, ap-south-1, sa-east-1: tier "primary" = us-east-1, eu-west-1;
/// tier "backup" = ap-south-1 (sorts before "primary" by name); sa-east-1 in no tier. Writes
/// under "eu/" go to eu-west-1 with EachQuorum, those of tenant acme under "acme/" to
/// ap-south-1 with AllQuorum, the rest to us-east-1 with LocalAsync.
ActiveActiveGeoConfig four_regions() {
    auto config = tiered({"us-east-1", "eu-west-1", "ap-south-1", "sa-east-1"},
                         {{"primary", {"us-east-1", "eu-west-1"}}, {"backup", {"ap-south-1"}}});
    config.routing_rules.insert(
        config.routing_rules.begin(),
        {RegionRoutingRule{"eu", "eu/", std::nullopt, "eu-west-1", ConsistencyLevel::EachQuorum},
         RegionRoutingRule{"acme", "acme/", "acme", "ap-south-1", ConsistencyLevel::AllQuorum}});
    return config;
}

WriteRoutingDecision decision(RegionId primary, std::vector<RegionId> fanout,
                              ConsistencyLevel consistency, bool failed_over) {
    WriteRoutingDecision d{std::move(primary), std::move(fanout), consistency};
    d.failed_over = failed_over;
    return d;
}

/// A host write type routed through its members.
struct HostWrite {
    std::string iri;
    std::optional<std::string> owner;
    [[nodiscard]] const std::string& subject() const { return iri; }
    [[nodiscard]] const std::optional<std::string>& tenant() const { return owner; }
};

} // namespace

// ---- failover order ------------------------------------------------------------------------

TEST_CASE("failover order: tiers in tier_order, then unlisted tiers by name, regions in listed "
          "order, each region at its first place, regions in no tier never",
          "[failover][order]") {
    const std::vector<RegionId> regions{"r1", "r2", "r3", "r4", "r5", "r6"};
    struct Row {
        const char* what;
        Tiers tiers;
        std::vector<std::string> tier_order;
        std::vector<RegionId> expected;
    };
    const std::vector<Row> rows{
        {"empty tier_order: primary first, then the others by name",
         {{"primary", {"r3", "r1"}}, {"zeta", {"r5"}}, {"alpha", {"r2"}}},
         {},
         {"r3", "r1", "r2", "r5"}},
        {"empty tier_order without a primary tier: by name",
         {{"zeta", {"r5"}}, {"alpha", {"r2", "r1"}}},
         {},
         {"r2", "r1", "r5"}},
        {"explicit tier_order decides",
         {{"primary", {"r1"}}, {"gold", {"r2"}}, {"silver", {"r3"}}},
         {"silver", "primary", "gold"},
         {"r3", "r1", "r2"}},
        {"a tier sorting before primary by name but listed after it comes after it",
         {{"primary", {"r1", "r2"}}, {"backup", {"r3"}}},
         {"primary", "backup"},
         {"r1", "r2", "r3"}},
        {"a tier listed before primary comes before it",
         {{"primary", {"r1", "r2"}}, {"west", {"r4"}}},
         {"west", "primary"},
         {"r4", "r1", "r2"}},
        {"tiers tier_order does not list come after, by name (primary too)",
         {{"primary", {"r1"}}, {"b", {"r2"}}, {"a", {"r3"}}, {"c", {"r4"}}},
         {"c"},
         {"r4", "r3", "r2", "r1"}},
        {"a region in several tiers is tried at its first place",
         {{"primary", {"r1", "r2"}}, {"backup", {"r2", "r3", "r1"}}},
         {},
         {"r1", "r2", "r3"}},
        {"a region in several tiers, first place in the earlier tier of tier_order",
         {{"primary", {"r1", "r2"}}, {"backup", {"r2", "r3"}}},
         {"backup", "primary"},
         {"r2", "r3", "r1"}},
        {"regions in no tier are never failover targets",
         {{"primary", {"r2"}}, {"backup", {"r6"}}},
         {},
         {"r2", "r6"}},
        {"no tiers: no failover targets", {}, {}, {}},
    };
    for (const auto& row : rows) {
        INFO(row.what);
        CHECK(failover_order(tiered(regions, row.tiers, row.tier_order)) == row.expected);
    }
}

TEST_CASE("multi_region's failover order is every region in config order", "[failover][order]") {
    const auto config = ActiveActiveGeoConfig::multi_region("b", {"c", "a"});
    CHECK(failover_order(config) == std::vector<RegionId>{"b", "c", "a"});
}

// ---- the decision under an availability view -----------------------------------------------

TEST_CASE("route decisions by availability: the rule's region while it is up, else the first "
          "available region in failover order with every other region as fanout",
          "[failover][route]") {
    const auto config = four_regions(); // failover order: us-east-1, eu-west-1, ap-south-1
    REQUIRE(failover_order(config) ==
            std::vector<RegionId>{"us-east-1", "eu-west-1", "ap-south-1"});
    constexpr auto EQ = ConsistencyLevel::EachQuorum;
    struct Row {
        const char* what;
        std::vector<bool> available; // us-east-1, eu-west-1, ap-south-1, sa-east-1
        WriteRoutingDecision expected;
    };
    const std::vector<Row> rows{
        {"primary up: unchanged",
         {true, true, true, true},
         decision("eu-west-1", {"us-east-1", "ap-south-1", "sa-east-1"}, EQ, false)},
        {"primary up, others down: unchanged",
         {false, true, false, false},
         decision("eu-west-1", {"us-east-1", "ap-south-1", "sa-east-1"}, EQ, false)},
        {"primary down: the first failover region",
         {true, false, true, true},
         decision("us-east-1", {"eu-west-1", "ap-south-1", "sa-east-1"}, EQ, true)},
        {"primary and first failover region down: the next one",
         {false, false, true, true},
         decision("ap-south-1", {"us-east-1", "eu-west-1", "sa-east-1"}, EQ, true)},
        {"every tier member down: a region in no tier is not a target",
         {false, false, false, true},
         decision("eu-west-1", {"us-east-1", "ap-south-1", "sa-east-1"}, EQ, false)},
        {"all down: the original decision, not failed over",
         {false, false, false, false},
         decision("eu-west-1", {"us-east-1", "ap-south-1", "sa-east-1"}, EQ, false)},
    };
    for (const auto& row : rows) {
        INFO(row.what);
        CHECK(fail_over(config, config.route("eu/x"), row.available) == row.expected);
    }
}

TEST_CASE("a failed-over decision keeps the rule's consistency level and the tenant rules",
          "[failover][route]") {
    const auto config = four_regions();
    const std::vector<bool> ap_down{true, true, false, true};
    const std::vector<bool> us_down{false, true, true, true};
    // acme's rule matches only with the tenant; it sends to ap-south-1 with AllQuorum.
    CHECK(fail_over(config, config.route("acme/x", "acme"), ap_down) ==
          decision("us-east-1", {"eu-west-1", "ap-south-1", "sa-east-1"},
                   ConsistencyLevel::AllQuorum, true));
    // Without the tenant the default rule decides: us-east-1, LocalAsync.
    CHECK(fail_over(config, config.route("acme/x"), ap_down) ==
          decision("us-east-1", {"eu-west-1", "ap-south-1", "sa-east-1"},
                   ConsistencyLevel::LocalAsync, false));
    CHECK(fail_over(config, config.route("acme/x", "other"), us_down) ==
          decision("eu-west-1", {"us-east-1", "ap-south-1", "sa-east-1"},
                   ConsistencyLevel::LocalAsync, true));
}

TEST_CASE("failover follows tier_order, and the fanout stays in config order",
          "[failover][route]") {
    auto config = four_regions();
    config.tier_order = {"backup", "primary"};
    REQUIRE(failover_order(config) ==
            std::vector<RegionId>{"ap-south-1", "us-east-1", "eu-west-1"});
    CHECK(fail_over(config, config.route("x"), std::vector<bool>{false, true, true, true}) ==
          decision("ap-south-1", {"us-east-1", "eu-west-1", "sa-east-1"},
                   ConsistencyLevel::LocalAsync, true));
    CHECK(fail_over(config, config.route("x"), std::vector<bool>{false, true, false, true}) ==
          decision("eu-west-1", {"us-east-1", "ap-south-1", "sa-east-1"},
                   ConsistencyLevel::LocalAsync, true));
}

TEST_CASE("the availability predicate is asked at most once per region", "[failover][route]") {
    auto config = four_regions();
    config.primary_tier["backup"] = {"ap-south-1", "eu-west-1", "us-east-1"};
    std::vector<int> asked(config.regions.size(), 0);
    const auto result = fail_over(config, config.route("eu/x"), [&](std::size_t i) {
        ++asked[i];
        return false;
    });
    CHECK_FALSE(result.failed_over);
    CHECK(std::all_of(asked.begin(), asked.end(), [](int n) { return n <= 1; }));
}

// ---- the replicator ------------------------------------------------------------------------

TEST_CASE("every region starts available; set_region_available marks one down and up again",
          "[failover][replicator]") {
    ActiveActiveReplicator replicator(four_regions(), {});
    for (const auto& region : replicator.config().regions) {
        CHECK(replicator.region_available(region));
    }
    replicator.set_region_available("eu-west-1", false);
    CHECK_FALSE(replicator.region_available("eu-west-1"));
    CHECK(replicator.region_available("us-east-1"));
    replicator.set_region_available("eu-west-1", true);
    CHECK(replicator.region_available("eu-west-1"));
}

TEST_CASE("availability of an unknown region is a ConfigError", "[failover][replicator]") {
    ActiveActiveReplicator replicator(four_regions(), {});
    CHECK_THROWS_AS(replicator.set_region_available("mars-1", false), geo::ConfigError);
    CHECK_THROWS_AS((void)replicator.region_available("mars-1"), geo::ConfigError);
    CHECK_THROWS_WITH((void)replicator.region_available("mars-1"),
                      geo_test::contains("unknown region 'mars-1'"));
}

TEST_CASE("replicator route equals config().route while the rule's region is available",
          "[failover][replicator]") {
    ActiveActiveReplicator replicator(four_regions(), {});
    replicator.set_region_available("ap-south-1", false);
    for (const char* subject : {"eu/a", "acme/b", "x"}) {
        CHECK(replicator.route(subject) == replicator.config().route(subject));
    }
}

TEST_CASE("replicator route fails over when the rule's region is marked down, and back when "
          "it is up",
          "[failover][replicator]") {
    ActiveActiveReplicator replicator(four_regions(), {});
    replicator.set_region_available("eu-west-1", false);
    const auto routed = replicator.route("eu/a");
    CHECK(routed == decision("us-east-1", {"eu-west-1", "ap-south-1", "sa-east-1"},
                             ConsistencyLevel::EachQuorum, true));
    replicator.set_region_available("us-east-1", false);
    CHECK(replicator.route("eu/a").primary_region == "ap-south-1");
    replicator.set_region_available("ap-south-1", false);
    CHECK(replicator.route("eu/a") == replicator.config().route("eu/a")); // none left
    replicator.set_region_available("eu-west-1", true);
    CHECK(replicator.route("eu/a") == replicator.config().route("eu/a"));
    CHECK_FALSE(replicator.route("eu/a").failed_over);
}

TEST_CASE("replicator route takes a host write type, tenant included", "[failover][replicator]") {
    ActiveActiveReplicator replicator(four_regions(), {});
    const HostWrite acme{"acme/1", std::string("acme")};
    const HostWrite anonymous{"acme/1", std::nullopt};
    CHECK(replicator.route(acme) == replicator.config().route(acme));
    replicator.set_region_available("ap-south-1", false);
    CHECK(replicator.route(acme) == decision("us-east-1", {"eu-west-1", "ap-south-1", "sa-east-1"},
                                             ConsistencyLevel::AllQuorum, true));
    CHECK(replicator.route(anonymous) == replicator.config().route(anonymous));
    CHECK(replicator.route(acme) == replicator.route("acme/1", "acme"));
}

TEST_CASE("threads toggling availability while others route: every decision is one of the "
          "valid ones",
          "[failover][replicator][concurrency]") {
    const auto config = four_regions();
    ActiveActiveReplicator replicator(config, {});
    // Every decision the pure function gives for some availability pattern.
    std::vector<WriteRoutingDecision> valid;
    for (unsigned mask = 0; mask < 16; ++mask) {
        std::vector<bool> available;
        for (unsigned i = 0; i < 4; ++i) {
            available.push_back(((mask >> i) & 1U) != 0);
        }
        valid.push_back(fail_over(config, config.route("eu/a"), available));
    }
    std::atomic<bool> stop{false};
    std::atomic<int> invalid{0};
    std::atomic<int> failed_over{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
        threads.emplace_back([&, t] {
            unsigned step = static_cast<unsigned>(t) * 7U;
            while (!stop.load()) {
                const auto& region = config.regions[step % config.regions.size()];
                replicator.set_region_available(region, ((step / 3U) & 1U) != 0);
                ++step;
            }
        });
    }
    for (int t = 0; t < 2; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 20000; ++i) {
                const auto routed = replicator.route("eu/a");
                if (std::find(valid.begin(), valid.end(), routed) == valid.end()) {
                    ++invalid;
                }
                if (routed.failed_over) {
                    ++failed_over;
                }
            }
        });
    }
    for (std::size_t i = 2; i < threads.size(); ++i) {
        threads[i].join();
    }
    stop = true;
    threads[0].join();
    threads[1].join();
    CHECK(invalid.load() == 0);
    INFO("failed over: " << failed_over.load());
}

// ---- validation ----------------------------------------------------------------------------

TEST_CASE("validate refuses a tier_order naming a tier not in primary_tier, or one twice",
          "[failover][config]") {
    auto config = four_regions();
    config.tier_order = {"backup", "primary"};
    CHECK_NOTHROW(config.validate());
    config.tier_order = {"primary", "gold"};
    CHECK_THROWS_AS(config.validate(), geo::ConfigError);
    CHECK_THROWS_WITH(config.validate(), geo_test::contains("'gold'"));
    config.tier_order = {"backup", "primary", "backup"};
    CHECK_THROWS_WITH(config.validate(), geo_test::contains("'backup' is listed twice"));
    CHECK_THROWS_AS(ActiveActiveReplicator(config, {}), geo::ConfigError);
}

TEST_CASE("tier_order and failed_over take part in ==", "[failover][config]") {
    auto a = four_regions();
    auto b = a;
    b.tier_order = {"backup"};
    CHECK(a != b);
    const WriteRoutingDecision d{"r", {"s"}, ConsistencyLevel::LocalAsync};
    auto e = d;
    e.failed_over = true;
    CHECK_FALSE(d.failed_over);
    CHECK(d != e);
}

// ---- JSON ----------------------------------------------------------------------------------

TEST_CASE("tier_order and failed_over survive a JSON round trip", "[failover][json]") {
    auto config = four_regions();
    config.tier_order = {"backup", "primary"};
    const json written = config;
    CHECK(written["tier_order"] == json::array({"backup", "primary"}));
    CHECK(written.get<ActiveActiveGeoConfig>() == config);
    CHECK(geo::parse_config(geo::to_json_text(config)) == config);

    const auto failed = decision("us-east-1", {"eu-west-1"}, ConsistencyLevel::EachQuorum, true);
    CHECK(json(failed)["failed_over"] == true);
    CHECK(json(failed).get<WriteRoutingDecision>() == failed);
    CHECK(geo::from_json_text<WriteRoutingDecision>(geo::to_json_text(failed)) == failed);
}

TEST_CASE("the Rust module's config and decision JSON, without tier_order and failed_over, "
          "still read",
          "[failover][json]") {
    const auto config = geo::parse_config(
        R"({"regions":["us-east-1","eu-west-1"],"local_region":"us-east-1","primary_tier":{"primary":["us-east-1","eu-west-1"]},"routing_rules":[{"name":"default","subject_prefix":null,"tenant_id":null,"target_region":"us-east-1","consistency":"LocalAsync"}],"conflict_mode":"LastWriterWins","max_lag":{"secs":5,"nanos":0}})");
    CHECK(config.tier_order.empty());
    CHECK(failover_order(config) == std::vector<RegionId>{"us-east-1", "eu-west-1"});
    const auto read = geo::from_json_text<WriteRoutingDecision>(
        R"({"primary_region":"eu-west-1","fanout_regions":["us-east-1"],"consistency":"EachQuorum"})");
    CHECK(read == decision("eu-west-1", {"us-east-1"}, ConsistencyLevel::EachQuorum, false));
    CHECK_THROWS_AS(
        geo::from_json_text<WriteRoutingDecision>(
            R"({"primary_region":"a","fanout_regions":[],"consistency":"LocalAsync","failed_over":1})"),
        geo::ParseError);
}
