// Translation unit A of the multiple-definition check: see main.cpp.
#include <geo/geo.hpp>
#include <geo/json.hpp>

#include <nlohmann/json.hpp>

int geo_multiple_tu_a() {
    geo::VectorClock clock;
    clock.increment(1);
    clock.increment(1);

    const auto config =
        geo::ActiveActiveGeoConfig::multi_region("us-east-1", {"us-east-1", "eu-west-1"});
    const nlohmann::json j = config;
    const auto round_trip = j.get<geo::ActiveActiveGeoConfig>();

    const bool ok = clock.get(1) == 2 && round_trip.local_region == "us-east-1" &&
                    round_trip.regions.size() == 2;
    return ok ? 0 : 1;
}
