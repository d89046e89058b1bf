#include <geo/types.hpp>

#include "geo_test.hpp"

#include <cstddef>
#include <string>

using geo::ConflictResolutionMode;
using geo::ConsistencyLevel;

TEST_CASE("LocalAsync needs no remote acknowledgement") {
    CHECK(geo::min_remote_acks(ConsistencyLevel::LocalAsync, 0) == 0);
    CHECK(geo::min_remote_acks(ConsistencyLevel::LocalAsync, 1) == 0);
    CHECK(geo::min_remote_acks(ConsistencyLevel::LocalAsync, 3) == 0);
}

TEST_CASE("LocalQuorum needs no remote acknowledgement") {
    CHECK(geo::min_remote_acks(ConsistencyLevel::LocalQuorum, 0) == 0);
    CHECK(geo::min_remote_acks(ConsistencyLevel::LocalQuorum, 1) == 0);
    CHECK(geo::min_remote_acks(ConsistencyLevel::LocalQuorum, 3) == 0);
}

TEST_CASE("EachQuorum needs one remote acknowledgement when a remote region exists") {
    CHECK(geo::min_remote_acks(ConsistencyLevel::EachQuorum, 0) == 0);
    CHECK(geo::min_remote_acks(ConsistencyLevel::EachQuorum, 1) == 1);
    CHECK(geo::min_remote_acks(ConsistencyLevel::EachQuorum, 3) == 1);
}

TEST_CASE("AllQuorum needs every remote region to acknowledge") {
    CHECK(geo::min_remote_acks(ConsistencyLevel::AllQuorum, 0) == 0);
    CHECK(geo::min_remote_acks(ConsistencyLevel::AllQuorum, 1) == 1);
    CHECK(geo::min_remote_acks(ConsistencyLevel::AllQuorum, 3) == 3);
}

TEST_CASE("min_remote_acks is usable in constant expressions") {
    static_assert(geo::min_remote_acks(ConsistencyLevel::AllQuorum, 7) == 7);
    static_assert(geo::min_remote_acks(ConsistencyLevel::EachQuorum, 7) == 1);
    constexpr std::size_t acks = geo::min_remote_acks(ConsistencyLevel::LocalQuorum, 7);
    CHECK(acks == 0);
}

TEST_CASE("consistency levels are named by their variant name") {
    CHECK(geo::to_string(ConsistencyLevel::LocalAsync) == "LocalAsync");
    CHECK(geo::to_string(ConsistencyLevel::LocalQuorum) == "LocalQuorum");
    CHECK(geo::to_string(ConsistencyLevel::EachQuorum) == "EachQuorum");
    CHECK(geo::to_string(ConsistencyLevel::AllQuorum) == "AllQuorum");
}

TEST_CASE("conflict modes are named by their variant name") {
    CHECK(geo::to_string(ConflictResolutionMode::LastWriterWins) == "LastWriterWins");
    CHECK(geo::to_string(ConflictResolutionMode::VectorClock) == "VectorClock");
}

TEST_CASE("the default conflict mode is LastWriterWins") {
    CHECK(ConflictResolutionMode{} == ConflictResolutionMode::LastWriterWins);
}

TEST_CASE("every consistency level reads back from its name") {
    for (auto level : {ConsistencyLevel::LocalAsync, ConsistencyLevel::LocalQuorum,
                       ConsistencyLevel::EachQuorum, ConsistencyLevel::AllQuorum}) {
        CAPTURE(std::string(geo::to_string(level)));
        const auto parsed = geo::consistency_level_from_string(geo::to_string(level));
        REQUIRE(parsed.has_value());
        CHECK(*parsed == level);
    }
}

TEST_CASE("every conflict mode reads back from its name") {
    for (auto mode :
         {ConflictResolutionMode::LastWriterWins, ConflictResolutionMode::VectorClock}) {
        CAPTURE(std::string(geo::to_string(mode)));
        const auto parsed = geo::conflict_mode_from_string(geo::to_string(mode));
        REQUIRE(parsed.has_value());
        CHECK(*parsed == mode);
    }
}

TEST_CASE("an unknown consistency level name reads as nullopt") {
    CHECK_FALSE(geo::consistency_level_from_string("").has_value());
    CHECK_FALSE(geo::consistency_level_from_string("Quorum").has_value());
    CHECK_FALSE(geo::consistency_level_from_string("localasync").has_value());
    CHECK_FALSE(geo::consistency_level_from_string("LocalAsync ").has_value());
    CHECK_FALSE(geo::consistency_level_from_string("VectorClock").has_value());
}

TEST_CASE("an unknown conflict mode name reads as nullopt") {
    CHECK_FALSE(geo::conflict_mode_from_string("").has_value());
    CHECK_FALSE(geo::conflict_mode_from_string("lastwriterwins").has_value());
    CHECK_FALSE(geo::conflict_mode_from_string("LWW").has_value());
    CHECK_FALSE(geo::conflict_mode_from_string("EachQuorum").has_value());
}
