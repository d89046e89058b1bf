#pragma once

/// Test-side shim: one include for every geo test, whichever Catch2 major
/// version the build found (Debian ships v2, FetchContent brings v3).
/// tests/CMakeLists.txt defines GEO_CATCH2_V3 to 0 or 1.

#include <string>

#if defined(GEO_CATCH2_V3) && GEO_CATCH2_V3
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif

namespace geo_test {

/// Matcher for "the string contains `needle`", for REQUIRE_THAT and
/// REQUIRE_THROWS_WITH (v2 calls it Contains, v3 ContainsSubstring).
inline auto contains(const std::string& needle) {
#if defined(GEO_CATCH2_V3) && GEO_CATCH2_V3
    return Catch::Matchers::ContainsSubstring(needle);
#else
    return Catch::Matchers::Contains(needle);
#endif
}

} // namespace geo_test
