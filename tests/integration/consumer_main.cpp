// The program every consumer project (tests/integration/*) builds: it uses
// only public names (docs/design.md, section 2), through the headers a user includes.
#include <geo/geo.hpp>
#include <geo/json.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>
#include <variant>
#include <vector>

namespace {

// Deliberately sloppy consumer code: a deprecated call, an unused parameter
// and an unused variable. It warns (deprecated) or would warn under
// -Wall -Wextra, and it must still build: geo::geo may not push -Werror or
// warning flags onto the projects that use it.
[[deprecated("expected warning: the consumer test checks -Werror is not inherited")]] int
legacy_answer() {
    return 42;
}

int sloppy(int unused_parameter) {
    int unused_variable = 0;
    return legacy_answer() - 42;
}

int fail(const char* what) {
    std::fprintf(stderr, "geo consumer: %s\n", what);
    return 1;
}

} // namespace

int main() {
    const auto config =
        geo::ActiveActiveGeoConfig::multi_region("us-east-1", {"us-east-1", "eu-west-1"});
    geo::ActiveActiveReplicator replicator(config, std::vector<geo::RegionRaftGroup>{});

    const geo::GeoWriteOutcome outcome =
        replicator.apply_local_write("us-east-1", "k", "v", 1, geo::VectorClock{});
    if (!std::holds_alternative<geo::Committed>(outcome)) {
        return fail("apply_local_write did not commit");
    }
    if (replicator.record_count() != 1) {
        return fail("record_count() != 1");
    }

    const nlohmann::json j = config;
    if (j.at("local_region") != "us-east-1" || j.at("regions").size() != 2) {
        return fail("unexpected config JSON");
    }
    std::printf("geo consumer ok: %s\n", j.dump().c_str());
    return sloppy(0);
}
