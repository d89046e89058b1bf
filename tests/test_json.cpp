#include <geo/json.hpp>

#include "geo_test.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// Examples of what the Rust module writes (the active-active geo replication module of
// oxirs-cluster 0.3.1, whose JSON format geo keeps; docs/design.md describes the wire format).
// The record and group are verbatim; the config is verbatim except that its elisions
// (`[...]`, `, ...`) are filled in.
constexpr const char* config_fixture =
    R"({"regions":["us-east-1","eu-west-1","ap-south-1"],"local_region":"us-east-1","primary_tier":{"primary":["us-east-1","eu-west-1","ap-south-1"]},"routing_rules":[{"name":"eu","subject_prefix":"https://eu.example.org/","tenant_id":"acme","target_region":"eu-west-1","consistency":"EachQuorum"}, {"name":"default","subject_prefix":null,"tenant_id":null,"target_region":"us-east-1","consistency":"LocalAsync"}],"conflict_mode":"LastWriterWins","max_lag":{"secs":5,"nanos":0}})";
constexpr const char* record_fixture =
    R"({"region":"eu-west-1","timestamp_ms":1700000000123,"clock":{"clocks":{"1":2,"7":1}},"value":"hello"})";
constexpr const char* group_fixture =
    R"({"region_id":"us-east-1","group_id":1000,"members":[1,2,3],"committed_seq":0})";

template <class T>
T round_trip(const T& value) {
    return json(value).get<T>();
}

template <class T>
T round_trip_text(const T& value) {
    return geo::from_json_text<T>(geo::to_json_text(value));
}

geo::GeoRecord sample_record() {
    geo::GeoRecord record;
    record.region = "ap-south-1";
    record.timestamp_ms = 1700000000999;
    record.clock = geo::VectorClock{{3, 4}, {1000, 9}};
    record.value = "caf\xC3\xA9 \"quoted\"\n";
    record.seq = 42;
    record.deleted = true;
    return record;
}

/// One malformed input: the type read, the text, and the path its ParseError must name.
struct BadInput {
    std::string description;
    std::function<void(const std::string&)> parse;
    std::string text;
    std::string expected_path;
};

template <class T>
std::function<void(const std::string&)> parser() {
    return [](const std::string& text) { (void)geo::from_json_text<T>(text); };
}

std::string mutated_config(const std::function<void(json&)>& mutate) {
    json j = json::parse(config_fixture);
    mutate(j);
    return j.dump();
}

std::string mutated_record(const std::function<void(json&)>& mutate) {
    json j = json::parse(record_fixture);
    mutate(j);
    return j.dump();
}

std::string mutated_group(const std::function<void(json&)>& mutate) {
    json j = json::parse(group_fixture);
    mutate(j);
    return j.dump();
}

std::string fanout_entry_with_record(const std::function<void(json&)>& mutate) {
    json record = json::parse(record_fixture);
    mutate(record);
    return json{{"key", "k"}, {"record", record}, {"seq", 1}}.dump();
}

void check_rejected(const std::vector<BadInput>& cases) {
    for (const auto& c : cases) {
        INFO(c.description << "\ninput: " << c.text);
        REQUIRE_THROWS_AS(c.parse(c.text), geo::ParseError);
        REQUIRE_THROWS_AS(c.parse(c.text), geo::Error);
        REQUIRE_THROWS_WITH(c.parse(c.text), geo_test::contains(c.expected_path));
    }
}

} // namespace

// ---- the Rust module's own output ---------------------------------------------------------

TEST_CASE("the Rust module's config example parses field by field", "[json][fixture]") {
    const auto config = geo::parse_config(config_fixture);
    CHECK(config.regions == std::vector<geo::RegionId>{"us-east-1", "eu-west-1", "ap-south-1"});
    CHECK(config.local_region == "us-east-1");
    REQUIRE(config.primary_tier.size() == 1);
    CHECK(config.primary_tier.at("primary") == config.regions);
    REQUIRE(config.routing_rules.size() == 2);
    const auto& eu = config.routing_rules[0];
    CHECK(eu.name == "eu");
    CHECK(eu.subject_prefix == std::optional<std::string>("https://eu.example.org/"));
    CHECK(eu.tenant_id == std::optional<std::string>("acme"));
    CHECK(eu.target_region == "eu-west-1");
    CHECK(eu.consistency == geo::ConsistencyLevel::EachQuorum);
    CHECK(config.routing_rules[1] ==
          geo::RegionRoutingRule::default_to("us-east-1", geo::ConsistencyLevel::LocalAsync));
    CHECK(config.conflict_mode == geo::ConflictResolutionMode::LastWriterWins);
    CHECK(config.max_lag == 5s);
    CHECK_NOTHROW(config.validate());
}

TEST_CASE("the config example written back equals the example plus the added fields at defaults",
          "[json][fixture]") {
    const json original = json::parse(config_fixture);
    json written = geo::parse_config(config_fixture);
    CHECK(written["tombstone_grace"] == json{{"secs", 86400}, {"nanos", 0}});
    CHECK(written["conflict_log_capacity"] == 1024);
    CHECK(written["max_clock_offset"] == json{{"secs", 0}, {"nanos", 0}});
    CHECK(written["tier_order"] == json::array());
    written.erase("tier_order");
    written.erase("tombstone_grace");
    written.erase("conflict_log_capacity");
    written.erase("max_clock_offset");
    CHECK(written == original);
}

TEST_CASE("the Rust module's record example parses, with seq 0 and not deleted",
          "[json][fixture]") {
    const auto record = geo::from_json_text<geo::GeoRecord>(record_fixture);
    CHECK(record.region == "eu-west-1");
    CHECK(record.timestamp_ms == 1700000000123ULL);
    CHECK(record.clock == geo::VectorClock{{1, 2}, {7, 1}});
    CHECK(record.clock.get(1) == 2);
    CHECK(record.clock.get(7) == 1);
    CHECK(record.value == "hello");
    CHECK(record.seq == 0);
    CHECK_FALSE(record.deleted);
}

TEST_CASE("the record example written back equals the example plus seq and deleted",
          "[json][fixture]") {
    json written = geo::from_json_text<geo::GeoRecord>(record_fixture);
    CHECK(written["seq"] == 0);
    CHECK(written["deleted"] == false);
    written.erase("seq");
    written.erase("deleted");
    CHECK(written == json::parse(record_fixture));
}

TEST_CASE("the Rust module's group example parses and is written back unchanged",
          "[json][fixture]") {
    const auto group = geo::from_json_text<geo::RegionRaftGroup>(group_fixture);
    CHECK(group == geo::RegionRaftGroup("us-east-1", 1000, {1, 2, 3}));
    CHECK(group.committed_seq == 0);
    CHECK(json(group) == json::parse(group_fixture));
}

// ---- shapes and round trips ---------------------------------------------------------------

TEST_CASE("enums are written as their variant names and read back", "[json][enum]") {
    using geo::ConsistencyLevel;
    for (auto level : {ConsistencyLevel::LocalAsync, ConsistencyLevel::LocalQuorum,
                       ConsistencyLevel::EachQuorum, ConsistencyLevel::AllQuorum}) {
        CHECK(json(level) == std::string(geo::to_string(level)));
        CHECK(round_trip(level) == level);
    }
    CHECK(json(ConsistencyLevel::EachQuorum) == "EachQuorum");
    CHECK(json(geo::ConflictResolutionMode::LastWriterWins) == "LastWriterWins");
    CHECK(json(geo::ConflictResolutionMode::VectorClock) == "VectorClock");
    CHECK(round_trip(geo::ConflictResolutionMode::VectorClock) ==
          geo::ConflictResolutionMode::VectorClock);
}

TEST_CASE("a vector clock is an object of decimal node ids under \"clocks\"", "[json][clock]") {
    CHECK(json(geo::VectorClock{{1, 2}, {7, 1}}) == json::parse(R"({"clocks":{"1":2,"7":1}})"));
    CHECK(json(geo::VectorClock{}) == json::parse(R"({"clocks":{}})"));

    SECTION("empty, small and extreme clocks survive a round trip") {
        const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
        for (const auto& clock :
             {geo::VectorClock{}, geo::VectorClock{{1, 1}},
              geo::VectorClock{{2, 5}, {10, 3}, {100, 1}}, geo::VectorClock{{0, 1}, {max, max}}}) {
            CHECK(round_trip(clock) == clock);
            CHECK(round_trip_text(clock) == clock);
        }
    }
    SECTION("zero counters are dropped when read, since a missing entry means 0") {
        const auto clock = geo::from_json_text<geo::VectorClock>(R"({"clocks":{"9":0,"3":4}})");
        CHECK(clock == geo::VectorClock{{3, 4}});
        CHECK(clock.entries().size() == 1);
        CHECK(geo::from_json_text<geo::VectorClock>(R"({"clocks":{"9":0}})") == geo::VectorClock{});
    }
    SECTION("keys with leading zeros name the same node; the larger counter is kept") {
        CHECK(geo::from_json_text<geo::VectorClock>(R"({"clocks":{"7":3,"007":5}})") ==
              geo::VectorClock{{7, 5}});
    }
}

TEST_CASE("durations are {secs, nanos} and keep their nanoseconds", "[json][duration]") {
    using geo::detail::duration_from_json;
    using geo::detail::duration_to_json;
    CHECK(duration_to_json(5s) == json{{"secs", 5}, {"nanos", 0}});
    CHECK(duration_to_json(1500ms) == json{{"secs", 1}, {"nanos", 500000000}});
    CHECK(duration_to_json(7ns) == json{{"secs", 0}, {"nanos", 7}});
    for (auto d : {0ns, 1ns, 999999999ns, std::chrono::nanoseconds(5s + 123ns),
                   std::chrono::nanoseconds(std::numeric_limits<std::int64_t>::max())}) {
        CHECK(duration_from_json(duration_to_json(d)) == d);
    }
    CHECK_THROWS_AS(duration_to_json(-1ns), geo::ConfigError);
}

TEST_CASE("routing rules write absent options as null and read missing or null ones as absent",
          "[json][routing]") {
    const geo::RegionRoutingRule full{"eu", "https://eu.example.org/", "acme", "eu-west-1",
                                      geo::ConsistencyLevel::EachQuorum};
    const geo::RegionRoutingRule prefix_only{"p", "urn:", std::nullopt, "us-east-1",
                                             geo::ConsistencyLevel::AllQuorum};
    const geo::RegionRoutingRule tenant_only{"t", std::nullopt, "", "us-east-1",
                                             geo::ConsistencyLevel::LocalQuorum};
    const auto bare =
        geo::RegionRoutingRule::default_to("us-east-1", geo::ConsistencyLevel::LocalAsync);
    for (const auto& rule : {full, prefix_only, tenant_only, bare}) {
        CHECK(round_trip(rule) == rule);
    }
    const json written = bare;
    CHECK(written["subject_prefix"].is_null());
    CHECK(written["tenant_id"].is_null());
    CHECK(json(tenant_only)["tenant_id"] == ""); // present-but-empty stays present
    CHECK(geo::from_json_text<geo::RegionRoutingRule>(
              R"({"name":"default","target_region":"us-east-1","consistency":"LocalAsync"})") ==
          bare);
}

TEST_CASE("a routing decision survives a round trip", "[json][routing]") {
    const auto config =
        geo::ActiveActiveGeoConfig::multi_region("us-east-1", {"eu-west-1", "ap-south-1"});
    const auto decision = config.route("https://example.org/s");
    CHECK(
        json(decision) ==
        json::parse(
            R"({"primary_region":"us-east-1","fanout_regions":["eu-west-1","ap-south-1"],"consistency":"LocalAsync","failed_over":false})"));
    CHECK(round_trip(decision) == decision);
    const geo::WriteRoutingDecision lonely{"solo", {}, geo::ConsistencyLevel::AllQuorum};
    CHECK(round_trip(lonely) == lonely);
}

TEST_CASE("configs survive a round trip, vector-clock mode and added fields included",
          "[json][config]") {
    auto config =
        geo::ActiveActiveGeoConfig::multi_region("eu-west-1", {"us-east-1", "ap-south-1"});
    config.conflict_mode = geo::ConflictResolutionMode::VectorClock;
    config.max_lag = 2s + 250ms + 3ns;
    config.tombstone_grace = 90min + 1ns;
    config.conflict_log_capacity = 0;
    config.max_clock_offset = 500ms;
    config.primary_tier["secondary"] = {"ap-south-1"};
    config.routing_rules.insert(config.routing_rules.begin(),
                                geo::RegionRoutingRule{"acme", "https://acme/", "acme", "us-east-1",
                                                       geo::ConsistencyLevel::EachQuorum});
    CHECK(round_trip(config) == config);
    CHECK(round_trip_text(config) == config);
    CHECK(geo::parse_config(geo::to_json_text(config, 2)) == config);

    const geo::ActiveActiveGeoConfig empty;
    CHECK(round_trip(empty) == empty);
    CHECK(round_trip(geo::ActiveActiveGeoConfig::single_region("x")) ==
          geo::ActiveActiveGeoConfig::single_region("x"));
}

TEST_CASE("a config with a negative duration cannot be written", "[json][config]") {
    auto config = geo::ActiveActiveGeoConfig::single_region("x");
    config.tombstone_grace = -1s;
    REQUIRE_THROWS_AS(json(config), geo::ConfigError);
    REQUIRE_THROWS_WITH(json(config), geo_test::contains("tombstone_grace"));
}

TEST_CASE("groups survive a round trip", "[json][config]") {
    geo::RegionRaftGroup group("eu-west-1", std::numeric_limits<std::uint64_t>::max(), {});
    group.committed_seq = 77;
    CHECK(round_trip(group) == group);
    CHECK(round_trip(geo::RegionRaftGroup{}) == geo::RegionRaftGroup{});
}

TEST_CASE("records, tombstones included, survive a round trip", "[json][record]") {
    const auto record = sample_record();
    CHECK(round_trip(record) == record);
    CHECK(round_trip_text(record) == record);
    CHECK(json(record)["seq"] == 42);
    CHECK(json(record)["deleted"] == true);
    const geo::GeoRecord blank;
    CHECK(round_trip(blank) == blank);
    CHECK(json(blank)["clock"] == json::parse(R"({"clocks":{}})"));
}

TEST_CASE("fanout entries and conflict events nest records", "[json][record]") {
    const geo::FanoutEntry entry{"user:1", sample_record(), 42};
    const json written = entry;
    CHECK(written["key"] == "user:1");
    CHECK(written["seq"] == 42);
    CHECK(written["record"] == json(sample_record()));
    CHECK(round_trip(entry) == entry);

    auto loser = sample_record();
    loser.region = "us-east-1";
    loser.deleted = false;
    const geo::ConflictEvent event{"user:1", sample_record(), loser};
    CHECK(json(event)["winner"]["region"] == "ap-south-1");
    CHECK(json(event)["loser"]["region"] == "us-east-1");
    CHECK(round_trip(event) == event);

    const std::vector<geo::FanoutEntry> batch{entry, geo::FanoutEntry{"k", geo::GeoRecord{}, 0}};
    CHECK(round_trip_text(batch) == batch);
}

TEST_CASE("outcome structs use their field names as keys", "[json][outcome]") {
    const geo::Committed committed{"eu-west-1", 7};
    const geo::RejectedByConflict rejected{"eu-west-1", "us-east-1", 1700000000123};
    const geo::AlreadyApplied applied{"ap-south-1", 3};
    CHECK(json(committed) == json::parse(R"({"region":"eu-west-1","seq":7})"));
    CHECK(
        json(rejected) ==
        json::parse(
            R"({"region":"eu-west-1","winner_region":"us-east-1","winner_timestamp_ms":1700000000123})"));
    CHECK(json(applied) == json::parse(R"({"region":"ap-south-1","seq":3})"));
    CHECK(round_trip(committed) == committed);
    CHECK(round_trip(rejected) == rejected);
    CHECK(round_trip(applied) == applied);

    const geo::OutOfOrder out_of_order{"ap-south-1", 12, 10};
    CHECK(json(out_of_order) ==
          json::parse(R"({"region":"ap-south-1","seq":12,"applied_seq":10})"));
    CHECK(round_trip(out_of_order) == out_of_order);
    CHECK(round_trip_text(out_of_order) == out_of_order);
}

TEST_CASE("a write outcome is externally tagged by its alternative's name", "[json][outcome]") {
    const geo::GeoWriteOutcome committed = geo::Committed{"x", 1};
    const geo::GeoWriteOutcome rejected = geo::RejectedByConflict{"x", "y", 5};
    const geo::GeoWriteOutcome applied = geo::AlreadyApplied{"x", 1};
    const geo::GeoWriteOutcome out_of_order = geo::OutOfOrder{"x", 9, 7};
    CHECK(json(committed) == json::parse(R"({"Committed":{"region":"x","seq":1}})"));
    CHECK(
        json(rejected) ==
        json::parse(
            R"({"RejectedByConflict":{"region":"x","winner_region":"y","winner_timestamp_ms":5}})"));
    CHECK(json(applied) == json::parse(R"({"AlreadyApplied":{"region":"x","seq":1}})"));
    CHECK(json(out_of_order) ==
          json::parse(R"({"OutOfOrder":{"region":"x","seq":9,"applied_seq":7}})"));
    for (const auto& outcome : {committed, rejected, applied, out_of_order}) {
        CHECK(round_trip(outcome) == outcome);
        CHECK(round_trip_text(outcome) == outcome);
    }
}

// ---- compatibility ------------------------------------------------------------------------

TEST_CASE("unknown fields are ignored", "[json][compat]") {
    const auto config = geo::parse_config(mutated_config([](json& j) {
        j["future_option"] = {{"nested", true}};
        j["routing_rules"][0]["weight"] = 3;
        j["max_lag"]["unit"] = "s";
    }));
    CHECK(config == geo::parse_config(config_fixture));

    const auto record = geo::from_json_text<geo::GeoRecord>(
        mutated_record([](json& j) { j["origin_host"] = "node-7"; }));
    CHECK(record == geo::from_json_text<geo::GeoRecord>(record_fixture));

    CHECK(geo::from_json_text<geo::GeoWriteOutcome>(
              R"({"Committed":{"region":"x","seq":1,"extra":null}})") ==
          geo::GeoWriteOutcome(geo::Committed{"x", 1}));
}

TEST_CASE("a config without the added fields loads with the member defaults", "[json][compat]") {
    const auto config = geo::parse_config(config_fixture);
    const geo::ActiveActiveGeoConfig defaults;
    CHECK(config.tombstone_grace == defaults.tombstone_grace);
    CHECK(config.conflict_log_capacity == defaults.conflict_log_capacity);
    CHECK(config.max_clock_offset == defaults.max_clock_offset);

    const auto tuned = geo::parse_config(mutated_config([](json& j) {
        j["tombstone_grace"] = {{"secs", 60}, {"nanos", 5}};
        j["conflict_log_capacity"] = 8;
        j["max_clock_offset"] = {{"secs", 0}, {"nanos", 500000000}};
    }));
    CHECK(tuned.tombstone_grace == 60s + 5ns);
    CHECK(tuned.conflict_log_capacity == 8);
    CHECK(tuned.max_clock_offset == 500ms);
}

TEST_CASE("a record without seq and deleted loads as seq 0, not deleted", "[json][compat]") {
    const auto entry =
        geo::from_json_text<geo::FanoutEntry>(fanout_entry_with_record([](json&) {}));
    CHECK(entry.record.seq == 0);
    CHECK_FALSE(entry.record.deleted);
    const auto tombstone =
        geo::from_json_text<geo::GeoRecord>(mutated_record([](json& j) { j["deleted"] = true; }));
    CHECK(tombstone.deleted);
    CHECK(tombstone.seq == 0);
}

// ---- errors -------------------------------------------------------------------------------

TEST_CASE("an unknown consistency level in a rule is reported with the rule's path",
          "[json][error]") {
    const auto text =
        mutated_config([](json& j) { j["routing_rules"][1]["consistency"] = "Sometimes"; });
    REQUIRE_THROWS_AS(geo::parse_config(text), geo::ParseError);
    REQUIRE_THROWS_WITH(
        geo::parse_config(text),
        geo_test::contains(
            R"(routing_rules[1].consistency: unknown consistency level "Sometimes")"));
}

TEST_CASE("malformed configs throw ParseError naming the field's path", "[json][error]") {
    const auto config = parser<geo::ActiveActiveGeoConfig>();
    check_rejected({
        {"unknown conflict mode", config,
         mutated_config([](json& j) { j["conflict_mode"] = "Newest"; }), "conflict_mode"},
        {"missing field the Rust module requires", config,
         mutated_config([](json& j) { j.erase("local_region"); }), "local_region: missing"},
        {"nanos beyond u32", config,
         mutated_config([](json& j) { j["max_lag"]["nanos"] = 4294967296ULL; }),
         "max_lag.nanos: 4294967296 does not fit u32"},
        {"negative secs", config, mutated_config([](json& j) { j["max_lag"]["secs"] = -1; }),
         "max_lag.secs"},
        {"nanos carried into secs overflow u64", config, mutated_config([](json& j) {
             j["max_lag"] = {{"secs", 18446744073709551615ULL}, {"nanos", 1000000000}};
         }),
         "max_lag: secs 18446744073709551615 plus the 1 s in nanos overflows u64"},
        {"duration array of the wrong length", config,
         mutated_config([](json& j) { j["max_lag"] = {5, 0, 0}; }),
         "max_lag: expected 2 elements [secs, nanos], found 3"},
        {"duration array with a bad element", config,
         mutated_config([](json& j) { j["tombstone_grace"] = {5, "0"}; }), "tombstone_grace[1]"},
        {"duration neither object nor array", config,
         mutated_config([](json& j) { j["max_clock_offset"] = "5s"; }),
         "max_clock_offset: expected a {secs, nanos} object"},
        {"added field present with the wrong type", config,
         mutated_config([](json& j) { j["tombstone_grace"] = 30; }), "tombstone_grace"},
        {"capacity negative", config,
         mutated_config([](json& j) { j["conflict_log_capacity"] = -4; }), "conflict_log_capacity"},
        {"wrong type deep in a map of arrays", config,
         mutated_config([](json& j) { j["primary_tier"]["primary"][1] = 5; }),
         "primary_tier.primary[1]"},
        {"array expected", config, mutated_config([](json& j) { j["regions"] = "us-east-1"; }),
         "regions"},
        {"rule field with the wrong type", config,
         mutated_config([](json& j) { j["routing_rules"][0]["subject_prefix"] = 17; }),
         "routing_rules[0].subject_prefix"},
        {"rule missing its target", config,
         mutated_config([](json& j) { j["routing_rules"][1].erase("target_region"); }),
         "routing_rules[1].target_region"},
        {"consistency not a string", config,
         mutated_config([](json& j) { j["routing_rules"][0]["consistency"] = 2; }),
         "routing_rules[0].consistency"},
    });
}

TEST_CASE("malformed groups and records throw ParseError naming the field's path",
          "[json][error]") {
    const auto group = parser<geo::RegionRaftGroup>();
    const auto record = parser<geo::GeoRecord>();
    const auto entry = parser<geo::FanoutEntry>();
    check_rejected({
        {"negative group id", group, mutated_group([](json& j) { j["group_id"] = -1000; }),
         "group_id"},
        {"member not a number", group, mutated_group([](json& j) { j["members"][2] = "three"; }),
         "members[2]"},
        {"fractional member", group, mutated_group([](json& j) { j["members"][0] = 1.5; }),
         "members[0]"},
        {"missing committed_seq", group, mutated_group([](json& j) { j.erase("committed_seq"); }),
         "committed_seq"},
        {"timestamp as a string", record,
         mutated_record([](json& j) { j["timestamp_ms"] = "1700000000123"; }), "timestamp_ms"},
        {"deleted not a boolean", record, mutated_record([](json& j) { j["deleted"] = "yes"; }),
         "deleted"},
        {"clock without clocks", record,
         mutated_record([](json& j) { j["clock"] = json::object(); }), "clock.clocks"},
        {"clock key not a number", entry,
         fanout_entry_with_record([](json& j) { j["clock"]["clocks"]["abc"] = 1; }),
         "record.clock.clocks.abc"},
        {"clock key beyond uint64", entry, fanout_entry_with_record([](json& j) {
             j["clock"]["clocks"]["18446744073709551616"] = 1;
         }),
         "record.clock.clocks.18446744073709551616"},
        {"negative clock counter", entry,
         fanout_entry_with_record([](json& j) { j["clock"]["clocks"]["7"] = -1; }),
         "record.clock.clocks.7"},
        {"record value not a string", entry,
         fanout_entry_with_record([](json& j) { j["value"] = json::array(); }), "record.value"},
        {"conflict loser with a numeric region", parser<geo::ConflictEvent>(),
         json{{"key", "k"},
              {"winner", json::parse(record_fixture)},
              {"loser", json::parse(mutated_record([](json& j) { j["region"] = 3; }))}}
             .dump(),
         "loser.region"},
        {"bad element in a batch", parser<std::vector<geo::FanoutEntry>>(),
         "[" + fanout_entry_with_record([](json&) {}) + "," +
             fanout_entry_with_record([](json& j) { j["value"] = false; }) + "]",
         "[1].record.value"},
    });
}

TEST_CASE("malformed outcomes and documents throw ParseError", "[json][error]") {
    const auto outcome = parser<geo::GeoWriteOutcome>();
    check_rejected({
        {"unknown outcome tag", outcome, R"({"Won":{"region":"x","seq":1}})",
         R"(unknown write outcome "Won")"},
        {"two tags", outcome,
         R"({"Committed":{"region":"x","seq":1},"AlreadyApplied":{"region":"x","seq":1}})",
         "exactly one key"},
        {"outcome body missing a field", outcome, R"({"Committed":{"region":"x"}})",
         "Committed.seq: missing"},
        {"OutOfOrder body missing applied_seq", outcome,
         R"({"OutOfOrder":{"region":"x","seq":4}})", "OutOfOrder.applied_seq: missing"},
        {"unknown tag lists OutOfOrder", outcome, R"({"Late":{}})",
         "AlreadyApplied or OutOfOrder)"},
        {"two tags lists OutOfOrder", outcome, R"({"Committed":{},"OutOfOrder":{}})",
         "AlreadyApplied or OutOfOrder), found 2"},
        {"syntax error", parser<geo::GeoRecord>(), R"({"region": "eu-west-1",)", "invalid JSON"},
        {"trailing garbage", parser<geo::RegionRaftGroup>(), std::string(group_fixture) + "}",
         "invalid JSON"},
        {"document is not an object", parser<geo::GeoRecord>(), "[1,2]", "expected an object"},
        {"empty text", parser<geo::ActiveActiveGeoConfig>(), "", "invalid JSON"},
    });
}

TEST_CASE("reading through nlohmann's get also throws ParseError, never a json exception",
          "[json][error]") {
    const json bad = json::parse(mutated_config([](json& j) { j["max_lag"] = {{"secs", 1}}; }));
    REQUIRE_THROWS_AS(bad.get<geo::ActiveActiveGeoConfig>(), geo::ParseError);
    REQUIRE_THROWS_WITH(bad.get<geo::ActiveActiveGeoConfig>(),
                        geo_test::contains("max_lag.nanos: missing required field"));
    json clock = {{"clocks", {{"1", nullptr}}}};
    REQUIRE_THROWS_AS(clock.get<geo::VectorClock>(), geo::ParseError);
    REQUIRE_THROWS_WITH(clock.get<geo::VectorClock>(), geo_test::contains("clocks.1"));
}

TEST_CASE("a failed read leaves the destination exactly as it was", "[json][error]") {
    SECTION("config") {
        auto config = geo::ActiveActiveGeoConfig::multi_region("us-east-1", {"eu-west-1"});
        config.conflict_log_capacity = 3;
        const auto before = config;
        // Most fields are valid and would be assigned by a field-by-field reader; the last is not.
        const json bad = json::parse(mutated_config([](json& j) {
            j["tombstone_grace"] = {{"secs", 1}, {"nanos", 0}};
            j["conflict_log_capacity"] = "many";
        }));
        REQUIRE_THROWS_AS(geo::from_json(bad, config), geo::ParseError);
        CHECK(config == before);
    }
    SECTION("record") {
        auto record = sample_record();
        const json bad = json::parse(mutated_record([](json& j) { j["deleted"] = 1; }));
        REQUIRE_THROWS_AS(geo::from_json(bad, record), geo::ParseError);
        CHECK(record == sample_record());
    }
    SECTION("clock") {
        geo::VectorClock clock{{1, 1}};
        const json bad = json::parse(R"({"clocks":{"2":5,"3":"x"}})");
        REQUIRE_THROWS_AS(geo::from_json(bad, clock), geo::ParseError);
        CHECK(clock == geo::VectorClock{{1, 1}});
    }
    SECTION("outcome") {
        geo::GeoWriteOutcome outcome = geo::AlreadyApplied{"x", 9};
        const json bad = json::parse(R"({"RejectedByConflict":{"region":"y","winner_region":7}})");
        REQUIRE_THROWS_AS(geo::from_json(bad, outcome), geo::ParseError);
        CHECK(outcome == geo::GeoWriteOutcome(geo::AlreadyApplied{"x", 9}));
    }
}

// ---- fanout entries: prev_seq and the Rust module's drain tuples ----------------------------

namespace {

// A batch as the Rust module's drain_fanout returns it, serialized by serde_json: each entry a
// `(String, GeoRecord, u64)` tuple, i.e. a 3-element array. serde_json writes non-ASCII text as
// raw UTF-8 and escapes quotes, backslashes and control characters; the surrogate-pair escape is
// what other JSON writers emit for the same emoji. The u64 values above 2^53 would be rounded by
// a reader that went through double.
const std::string drain_fixture =
    R"([["user:42",{"region":"us-east-1","timestamp_ms":1700000000123,"clock":{"clocks":{"1":3}},"value":"alice@us"},1],)"
    R"(["caf)" "\xC3\xA9:\xE6\x97\xA5\xE6\x9C\xAC" R"(\"k\"",{"region":"us-east-1","timestamp_ms":18446744073709551615,)"
    R"("clock":{"clocks":{"1":9007199254740993,"18446744073709551615":18446744073709551614}},)"
    R"("value":"line1\nline2\t\"quoted\" back\\slash \u0001 \ud83d\ude00 )" "\xF0\x9F\x98\x80" R"("},9007199254740993],)"
    R"(["",{"region":"us-east-1","timestamp_ms":0,"clock":{"clocks":{}},"value":""},18446744073709551615]])";

std::vector<geo::FanoutEntry> expected_drain() {
    geo::GeoRecord first;
    first.region = "us-east-1";
    first.timestamp_ms = 1700000000123;
    first.clock = geo::VectorClock{{1, 3}};
    first.value = "alice@us";
    geo::GeoRecord second;
    second.region = "us-east-1";
    second.timestamp_ms = 18446744073709551615ULL;
    second.clock = geo::VectorClock{{1, 9007199254740993ULL},
                                    {18446744073709551615ULL, 18446744073709551614ULL}};
    second.value = "line1\nline2\t\"quoted\" back\\slash \x01 \xF0\x9F\x98\x80 \xF0\x9F\x98\x80";
    geo::GeoRecord third;
    third.region = "us-east-1";
    return {
        geo::FanoutEntry{"user:42", first, 1},
        geo::FanoutEntry{"caf\xC3\xA9:\xE6\x97\xA5\xE6\x9C\xAC\"k\"", second, 9007199254740993ULL},
        geo::FanoutEntry{"", third, 18446744073709551615ULL},
    };
}

std::string drain_entry(const std::function<void(json&)>& mutate) {
    json entry = json::array({"k", json::parse(record_fixture), 1});
    mutate(entry);
    return entry.dump();
}

} // namespace

TEST_CASE("prev_seq is written and read back; an entry without it reads as 0", "[json][record]") {
    geo::FanoutEntry entry{"user:1", sample_record(), 42};
    entry.prev_seq = 41;
    CHECK(json(entry)["prev_seq"] == 41);
    CHECK(round_trip(entry) == entry);
    CHECK(round_trip_text(entry).prev_seq == 41);

    entry.prev_seq = 18446744073709551615ULL;
    CHECK(round_trip_text(entry) == entry);

    json without = json(entry);
    without.erase("prev_seq");
    const auto read = without.get<geo::FanoutEntry>();
    CHECK(read.prev_seq == 0);
    CHECK(read.seq == 42);
    CHECK(read.key == "user:1");
}

TEST_CASE("a batch as the Rust module's drain writes it reads as fanout entries",
          "[json][record][fixture]") {
    const auto batch = geo::from_json_text<std::vector<geo::FanoutEntry>>(drain_fixture);
    REQUIRE(batch.size() == 3);
    const auto expected = expected_drain();
    for (std::size_t i = 0; i < batch.size(); ++i) {
        INFO("entry " << i);
        CHECK(batch[i].key == expected[i].key);
        CHECK(batch[i].seq == expected[i].seq);
        CHECK(batch[i].prev_seq == 0);
        CHECK(batch[i].record == expected[i].record);
        CHECK(batch[i] == expected[i]);
    }
    // A single tuple reads as an entry too.
    const json document = json::parse(drain_fixture);
    CHECK(document[1].get<geo::FanoutEntry>() == expected[1]);
}

TEST_CASE("fanout entries are written as objects and read back, from either form",
          "[json][record]") {
    const auto expected = expected_drain();
    const json written = expected;
    REQUIRE(written.is_array());
    for (const auto& entry : written) {
        CHECK(entry.is_object());
        CHECK(entry["prev_seq"] == 0);
    }
    CHECK(geo::from_json_text<std::vector<geo::FanoutEntry>>(written.dump()) == expected);
    CHECK(round_trip_text(expected) == expected);
}

TEST_CASE("a batch may mix the object and the tuple form", "[json][record]") {
    geo::FanoutEntry object_entry{"a", sample_record(), 7};
    object_entry.prev_seq = 6;
    json without_prev = json(geo::FanoutEntry{"c", sample_record(), 9});
    without_prev.erase("prev_seq");
    const json batch = json::array({json(object_entry),
                                    json::array({"b", json::parse(record_fixture), 8}),
                                    without_prev});
    const auto read = geo::from_json_text<std::vector<geo::FanoutEntry>>(batch.dump());
    REQUIRE(read.size() == 3);
    CHECK(read[0] == object_entry);
    CHECK(read[1].key == "b");
    CHECK(read[1].seq == 8);
    CHECK(read[1].prev_seq == 0);
    CHECK(read[1].record == json::parse(record_fixture).get<geo::GeoRecord>());
    CHECK(read[2].key == "c");
    CHECK(read[2].seq == 9);
    CHECK(read[2].prev_seq == 0);
}

TEST_CASE("malformed drain tuples throw ParseError naming the path", "[json][error]") {
    const auto batch = parser<std::vector<geo::FanoutEntry>>();
    const auto entry = parser<geo::FanoutEntry>();
    const std::string good = drain_entry([](json&) {});
    check_rejected({
        {"two elements", batch,
         "[" + good + "," + good + "," + drain_entry([](json& j) { j.erase(2); }) + "]",
         "[2]: expected 3 elements [key, record, seq], found 2"},
        {"four elements", batch, "[" + drain_entry([](json& j) { j.push_back(0); }) + "]",
         "[0]: expected 3 elements [key, record, seq], found 4"},
        {"empty tuple", entry, "[]", "expected 3 elements [key, record, seq], found 0"},
        {"key not a string", batch, "[" + drain_entry([](json& j) { j[0] = 1; }) + "]",
         "[0][0]: expected a string"},
        {"record not an object", batch, "[" + drain_entry([](json& j) { j[1] = "rec"; }) + "]",
         "[0][1]: expected an object"},
        {"record with a bad field, fourth in the batch", batch,
         "[" + good + "," + good + "," + good + "," +
             drain_entry([](json& j) { j[1]["timestamp_ms"] = "soon"; }) + "]",
         "[3][1].timestamp_ms"},
        {"record missing its clock", batch,
         "[" + drain_entry([](json& j) { j[1].erase("clock"); }) + "]",
         "[0][1].clock: missing"},
        {"negative seq", batch, "[" + drain_entry([](json& j) { j[2] = -1; }) + "]", "[0][2]"},
        {"fractional seq", batch, "[" + drain_entry([](json& j) { j[2] = 1.5; }) + "]", "[0][2]"},
        {"seq as a string", batch, "[" + drain_entry([](json& j) { j[2] = "1"; }) + "]", "[0][2]"},
        {"seq beyond u64", batch,
         "[" + good + R"(,["k",)" + std::string(record_fixture) + ",18446744073709551616]]",
         "[1][2]"},
        {"entry neither object nor array", batch, "[" + good + ",5]",
         "[1]: expected an object or a [key, record, seq] array, found 5"},
    });
}

TEST_CASE("a failed read of a drain tuple leaves the destination as it was", "[json][error]") {
    SECTION("one entry") {
        geo::FanoutEntry entry{"before", sample_record(), 3};
        entry.prev_seq = 2;
        const geo::FanoutEntry before = entry;
        // key and record are valid and would be assigned by an element-by-element reader.
        const json bad = json::parse(drain_entry([](json& j) { j[2] = "x"; }));
        REQUIRE_THROWS_AS(geo::from_json(bad, entry), geo::ParseError);
        CHECK(entry == before);
    }
    SECTION("a batch") {
        std::vector<geo::FanoutEntry> batch{geo::FanoutEntry{"kept", sample_record(), 1}};
        const auto before = batch;
        const json bad =
            json::parse("[" + drain_entry([](json&) {}) + "," +
                        drain_entry([](json& j) { j[1]["value"] = 5; }) + "]");
        REQUIRE_THROWS_AS(geo::detail::read_value(bad, batch), geo::ParseError);
        CHECK(batch == before);
    }
}

// ---- durations beyond std::chrono::nanoseconds, and serde's other Duration forms -----------

TEST_CASE("durations beyond nanoseconds saturate, as Rust's Duration::MAX does for never",
          "[json][duration]") {
    using geo::detail::duration_from_json;
    constexpr auto max = std::chrono::nanoseconds::max();
    const json duration_max = {{"secs", 18446744073709551615ULL}, {"nanos", 999999999}};
    const json two_to_63_ns = {{"secs", 9223372036}, {"nanos", 854775808}};
    const json largest_exact = {{"secs", 9223372036}, {"nanos", 854775807}};
    const json just_beyond_secs = {{"secs", 9223372037}, {"nanos", 0}};
    CHECK(duration_from_json(duration_max) == max);
    CHECK(duration_from_json(two_to_63_ns) == max);
    CHECK(duration_from_json(just_beyond_secs) == max);
    CHECK(duration_from_json(largest_exact) == max);
    CHECK(duration_from_json({{"secs", 9223372036}, {"nanos", 854775806}}) == max - 1ns);

    // Writing the saturated value gives the secs and nanos it stands for, which read back equal.
    CHECK(geo::detail::duration_to_json(max) == largest_exact);

    for (const char* field : {"max_lag", "tombstone_grace", "max_clock_offset"}) {
        INFO(field);
        for (const json& value : {duration_max, two_to_63_ns}) {
            const auto config =
                geo::parse_config(mutated_config([&](json& j) { j[field] = value; }));
            const auto& read = std::string(field) == "max_lag"           ? config.max_lag
                               : std::string(field) == "tombstone_grace" ? config.tombstone_grace
                                                                         : config.max_clock_offset;
            CHECK(read == max);
            CHECK_NOTHROW(config.validate());
            const json written = json(config);
            CHECK(written[field] == largest_exact);
            CHECK(round_trip_text(config) == config);
        }
    }
}

TEST_CASE("durations read nanos of a second or more by carrying them into secs, as serde does",
          "[json][duration]") {
    using geo::detail::duration_from_json;
    CHECK(duration_from_json({{"secs", 1}, {"nanos", 1500000000}}) == 2500ms);
    CHECK(duration_from_json({{"secs", 0}, {"nanos", 1000000000}}) == 1s);
    CHECK(duration_from_json({{"secs", 3}, {"nanos", 4294967295U}}) ==
          std::chrono::nanoseconds(7s + 294967295ns));
    // secs at the u64 limit with nanos below a second: no carry, so no overflow; it saturates.
    CHECK(duration_from_json({{"secs", 18446744073709551615ULL}, {"nanos", 0}}) ==
          std::chrono::nanoseconds::max());
    // The carry that lands exactly on u64's limit is accepted too.
    CHECK(duration_from_json({{"secs", 18446744073709551614ULL}, {"nanos", 1000000000}}) ==
          std::chrono::nanoseconds::max());
}

TEST_CASE("durations also read as a [secs, nanos] array, as serde's Duration accepts",
          "[json][duration]") {
    using geo::detail::duration_from_json;
    CHECK(duration_from_json(json::array({5, 0})) == 5s);
    CHECK(duration_from_json(json::array({1, 1500000000})) == 2500ms);
    CHECK(duration_from_json(json::array({18446744073709551615ULL, 999999999})) ==
          std::chrono::nanoseconds::max());
    const auto config = geo::parse_config(mutated_config([](json& j) {
        j["max_lag"] = json::array({2, 500});
    }));
    CHECK(config.max_lag == 2s + 500ns);
    CHECK(json(config)["max_lag"] == json{{"secs", 2}, {"nanos", 500}}); // written as the object
}

// ---- conflict_log_capacity ------------------------------------------------------------------

TEST_CASE("a capacity the reader accepts but the replicator cannot allocate fails validate",
          "[json][config]") {
    const auto at_limit = geo::parse_config(mutated_config([](json& j) {
        j["conflict_log_capacity"] = geo::ActiveActiveGeoConfig::max_conflict_log_capacity;
    }));
    CHECK_NOTHROW(at_limit.validate());

    const auto huge = geo::parse_config(mutated_config([](json& j) {
        j["conflict_log_capacity"] = std::numeric_limits<std::size_t>::max();
    }));
    CHECK(huge.conflict_log_capacity == std::numeric_limits<std::size_t>::max());
    REQUIRE_THROWS_AS(huge.validate(), geo::ConfigError);
    REQUIRE_THROWS_WITH(huge.validate(), geo_test::contains("conflict_log_capacity"));
    REQUIRE_THROWS_WITH(huge.validate(), geo_test::contains(std::to_string(
                                             geo::ActiveActiveGeoConfig::max_conflict_log_capacity)));
}
