// Translation unit B of the multiple-definition check: see main.cpp.
#include <geo/geo.hpp>
#include <geo/json.hpp>

#include <nlohmann/json.hpp>

#include <variant>
#include <vector>

int geo_multiple_tu_b() {
    geo::ActiveActiveReplicator replicator(
        geo::ActiveActiveGeoConfig::multi_region("us-east-1", {"us-east-1", "eu-west-1"}),
        std::vector<geo::RegionRaftGroup>{});
    const auto outcome = replicator.apply_local_write("us-east-1", "k", "v", 1, geo::VectorClock{});

    const auto record = replicator.get_record("k");
    if (!record) {
        return 1;
    }
    const nlohmann::json j = *record;
    const bool ok = std::holds_alternative<geo::Committed>(outcome) &&
                    replicator.record_count() == 1 && j.at("value") == "v";
    return ok ? 0 : 1;
}
