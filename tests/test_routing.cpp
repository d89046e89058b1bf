#include <geo/config.hpp>
#include <geo/routing.hpp>

#include "geo_test.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

using geo::ActiveActiveGeoConfig;
using geo::ConsistencyLevel;
using geo::RegionRoutingRule;
using geo::WriteRoutingDecision;

namespace {

// Longer than any small-string buffer, so a view of a destroyed copy cannot match by luck.
const std::string eu_prefix = "https://eu.example.org/datasets/";
const std::string acme = "acme-corporation-tenant-0001";

RegionRoutingRule rule(std::string name, std::optional<std::string> prefix,
                       std::optional<std::string> tenant, std::string target,
                       ConsistencyLevel consistency) {
    return RegionRoutingRule{std::move(name), std::move(prefix), std::move(tenant),
                             std::move(target), consistency};
}

/// us-east-1 (local), eu-west-1, ap-south-1; writes of tenant acme under eu_prefix go to
/// eu-west-1 with EachQuorum, other writes under eu_prefix to ap-south-1, the rest fall through.
ActiveActiveGeoConfig tenant_config() {
    ActiveActiveGeoConfig config;
    config.regions = {"us-east-1", "eu-west-1", "ap-south-1"};
    config.local_region = "us-east-1";
    config.routing_rules = {
        rule("eu-acme", eu_prefix, acme, "eu-west-1", ConsistencyLevel::EachQuorum),
        rule("eu-other", eu_prefix, std::nullopt, "ap-south-1", ConsistencyLevel::AllQuorum),
    };
    return config;
}

const WriteRoutingDecision to_eu{
    "eu-west-1", {"us-east-1", "ap-south-1"}, ConsistencyLevel::EachQuorum};
const WriteRoutingDecision to_ap{
    "ap-south-1", {"us-east-1", "eu-west-1"}, ConsistencyLevel::AllQuorum};
const WriteRoutingDecision to_local{
    "us-east-1", {"eu-west-1", "ap-south-1"}, ConsistencyLevel::LocalAsync};

} // namespace

// ---- host write types ------------------------------------------------------------------------

namespace host {

/// A host's own write type, routed through a RoutingTraits specialization.
struct Triple {
    std::string iri;
    std::optional<std::string> owner;
};

/// A write type with accessor members, as a host typically writes one.
class Mutation {
public:
    Mutation(std::string subject, std::optional<std::string> tenant)
        : subject_(std::move(subject)), tenant_(std::move(tenant)) {}
    [[nodiscard]] const std::string& subject() const { return subject_; }
    [[nodiscard]] const std::optional<std::string>& tenant() const { return tenant_; }

private:
    std::string subject_;
    std::optional<std::string> tenant_;
};

/// Accessors that hand out views.
struct ViewWrite {
    std::string s;
    std::optional<std::string> t;
    [[nodiscard]] std::string_view subject() const { return s; }
    [[nodiscard]] std::optional<std::string_view> tenant() const {
        return t ? std::optional<std::string_view>(*t) : std::nullopt;
    }
};

/// No tenant() at all: routes as a write without a tenant.
struct UntenantedWrite {
    std::string s;
    [[nodiscard]] const std::string& subject() const { return s; }
};

} // namespace host

template <>
struct geo::RoutingTraits<host::Triple> {
    static std::string_view subject(const host::Triple& t) { return t.iri; }
    static std::optional<std::string_view> tenant(const host::Triple& t) {
        return t.owner ? std::optional<std::string_view>(*t.owner) : std::nullopt;
    }
};

// ---- RegionRoutingRule -----------------------------------------------------------------------

TEST_CASE("default_to builds the catch-all rule named default") {
    const RegionRoutingRule r =
        RegionRoutingRule::default_to("eu-west-1", ConsistencyLevel::AllQuorum);
    CHECK(r.name == "default");
    CHECK_FALSE(r.subject_prefix.has_value());
    CHECK_FALSE(r.tenant_id.has_value());
    CHECK(r.target_region == "eu-west-1");
    CHECK(r.consistency == ConsistencyLevel::AllQuorum);
}

TEST_CASE("the default rule matches every subject, with or without a tenant") {
    const RegionRoutingRule r =
        RegionRoutingRule::default_to("us-east-1", ConsistencyLevel::LocalAsync);
    CHECK(r.matches(""));
    CHECK(r.matches("https://anything/"));
    CHECK(r.matches("https://anything/", std::string_view("acme")));
    CHECK(r.matches("", std::string_view("")));
}

TEST_CASE("a prefix rule matches subjects that start with the prefix") {
    const RegionRoutingRule r = rule("eu", "https://eu.example.org/", std::nullopt, "eu-west-1",
                                     ConsistencyLevel::EachQuorum);
    CHECK(r.matches("https://eu.example.org/"));
    CHECK(r.matches("https://eu.example.org/resource/1"));
    CHECK_FALSE(r.matches("https://us.example.org/resource/1"));
    CHECK_FALSE(r.matches("https://eu.example.org"));            // shorter than the prefix
    CHECK_FALSE(r.matches("x-https://eu.example.org/resource")); // contains, does not start with
    CHECK_FALSE(r.matches(""));
}

TEST_CASE("an empty prefix matches every subject") {
    const RegionRoutingRule r =
        rule("all", "", std::nullopt, "eu-west-1", ConsistencyLevel::LocalAsync);
    CHECK(r.matches(""));
    CHECK(r.matches("anything"));
}

TEST_CASE("a tenant rule matches only writes of that tenant") {
    const RegionRoutingRule r =
        rule("acme", std::nullopt, "acme", "eu-west-1", ConsistencyLevel::EachQuorum);
    CHECK(r.matches("s", std::string_view("acme")));
    CHECK_FALSE(r.matches("s", std::string_view("globex")));
    CHECK_FALSE(r.matches("s", std::string_view("acme2")));
    CHECK_FALSE(r.matches("s", std::string_view("acm")));
}

TEST_CASE("a rule with a tenant never matches a write without one") {
    const RegionRoutingRule r =
        rule("acme", std::nullopt, "acme", "eu-west-1", ConsistencyLevel::EachQuorum);
    CHECK_FALSE(r.matches("s"));
    CHECK_FALSE(r.matches("s", std::nullopt));
    const RegionRoutingRule empty_tenant =
        rule("empty", std::nullopt, "", "eu-west-1", ConsistencyLevel::EachQuorum);
    CHECK_FALSE(empty_tenant.matches("s"));
    CHECK(empty_tenant.matches("s", std::string_view("")));
}

TEST_CASE("a rule without a tenant matches writes with any tenant") {
    const RegionRoutingRule r =
        rule("eu", "https://eu/", std::nullopt, "eu-west-1", ConsistencyLevel::EachQuorum);
    CHECK(r.matches("https://eu/x"));
    CHECK(r.matches("https://eu/x", std::string_view("acme")));
    CHECK(r.matches("https://eu/x", std::string_view("globex")));
}

TEST_CASE("a rule with prefix and tenant needs both to match") {
    const RegionRoutingRule r =
        rule("eu-acme", "https://eu/", "acme", "eu-west-1", ConsistencyLevel::EachQuorum);
    CHECK(r.matches("https://eu/x", std::string_view("acme")));
    CHECK_FALSE(r.matches("https://us/x", std::string_view("acme")));
    CHECK_FALSE(r.matches("https://eu/x", std::string_view("globex")));
    CHECK_FALSE(r.matches("https://eu/x"));
}

TEST_CASE("rules compare equal field by field") {
    const RegionRoutingRule a = rule("r", "p", "t", "eu-west-1", ConsistencyLevel::EachQuorum);
    CHECK(a == rule("r", "p", "t", "eu-west-1", ConsistencyLevel::EachQuorum));
    CHECK(a != rule("x", "p", "t", "eu-west-1", ConsistencyLevel::EachQuorum));
    CHECK(a != rule("r", std::nullopt, "t", "eu-west-1", ConsistencyLevel::EachQuorum));
    CHECK(a != rule("r", "p", std::nullopt, "eu-west-1", ConsistencyLevel::EachQuorum));
    CHECK(a != rule("r", "p", "t", "us-east-1", ConsistencyLevel::EachQuorum));
    CHECK(a != rule("r", "p", "t", "eu-west-1", ConsistencyLevel::AllQuorum));
}

// ---- routing a host's own write type ---------------------------------------------------------

TEST_CASE("route takes a host write type through a RoutingTraits specialization") {
    const ActiveActiveGeoConfig config = tenant_config();
    CHECK(config.route(host::Triple{eu_prefix + "x", acme}) == to_eu);
    CHECK(config.route(host::Triple{eu_prefix + "x", std::nullopt}) == to_ap);
    CHECK(config.route(host::Triple{eu_prefix + "x", std::string("globex-industries-tenant-02")}) ==
          to_ap);
    CHECK(config.route(host::Triple{"https://us.example.org/x", acme}) == to_local);
}

TEST_CASE("route takes a write type with subject() and tenant() members returning references") {
    const ActiveActiveGeoConfig config = tenant_config();
    CHECK(config.route(host::Mutation(eu_prefix + "x", acme)) == to_eu);
    CHECK(config.route(host::Mutation(eu_prefix + "x", std::nullopt)) == to_ap);
    CHECK(config.route(host::Mutation("https://us.example.org/x", acme)) == to_local);
}

TEST_CASE("route takes a write type whose members return views") {
    const ActiveActiveGeoConfig config = tenant_config();
    CHECK(config.route(host::ViewWrite{eu_prefix + "x", acme}) == to_eu);
    CHECK(config.route(host::ViewWrite{eu_prefix + "x", std::nullopt}) == to_ap);
    CHECK(config.route(host::ViewWrite{"https://us.example.org/x", acme}) == to_local);
}

TEST_CASE("a write type without tenant() routes as a write without a tenant") {
    const ActiveActiveGeoConfig config = tenant_config();
    CHECK(config.route(host::UntenantedWrite{eu_prefix + "x"}) == to_ap);
    CHECK(config.route(host::UntenantedWrite{"https://us.example.org/x"}) == to_local);
}

TEST_CASE("routing a host write type agrees with routing its strings") {
    const ActiveActiveGeoConfig config = tenant_config();
    const std::vector<host::Triple> writes{
        {eu_prefix + "a", acme},
        {eu_prefix + "b", std::nullopt},
        {"https://elsewhere/", acme},
        {eu_prefix, std::string("other-tenant-with-a-long-name")},
    };
    for (const auto& w : writes) {
        CAPTURE(w.iri);
        const WriteRoutingDecision by_strings =
            w.owner ? config.route(w.iri, std::string_view(*w.owner)) : config.route(w.iri);
        CHECK(config.route(w) == by_strings);
    }
}
