// RegionNames: the configured region ids, packed for lookup by id and ranked in string order
// (LWW ties compare ranks instead of strings).

#include <geo/detail/region_names.hpp>

#include "geo_test.hpp"

#include <cstddef>
#include <string>
#include <vector>

using geo::detail::RegionNames;

namespace {

// Ids that share 8-byte prefixes or suffixes, differ only in length, straddle the 8- and
// 16-byte word boundaries, or are longer than 16 bytes: every case of the packed comparison.
const std::vector<std::string> tricky_ids{
    "",
    "a",
    "us",
    "us-east",
    "us-east-",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "eu-west-1",
    "ap-northeast-1",
    "ap-northeast-10",
    "ap-northeast-1000",
    "ap-northeast-1001",
    "xx-prefix-shared-middle-A-end",
    "xx-prefix-shared-middle-B-end",
    std::string("nul\0byte", 8),
    std::string("nul\0bytf", 8),
};

} // namespace

TEST_CASE("RegionNames finds exactly the configured ids", "[region_names]") {
    const RegionNames names(tricky_ids);
    REQUIRE(names.size() == tricky_ids.size());
    for (std::size_t i = 0; i < tricky_ids.size(); ++i) {
        INFO("id #" << i << " '" << tricky_ids[i] << "'");
        REQUIRE(names.find(tricky_ids[i]) == i);
        // A copy at another address is found too (no pointer identity).
        const std::string copy = tricky_ids[i];
        REQUIRE(names.find(copy) == i);
    }
    for (const std::string missing : {"us-east-3", "US-EAST-1", "us-east-1 ", "ap-northeast-1002",
                                      "xx-prefix-shared-middle-C-end", "ap-northeast", "b"}) {
        INFO("missing '" << missing << "'");
        REQUIRE(names.find(missing) == names.size());
    }
}

TEST_CASE("RegionNames ranks ids in string order", "[region_names]") {
    const RegionNames names(tricky_ids);
    for (std::size_t i = 0; i < tricky_ids.size(); ++i) {
        for (std::size_t j = 0; j < tricky_ids.size(); ++j) {
            INFO("'" << tricky_ids[i] << "' vs '" << tricky_ids[j] << "'");
            REQUIRE((names.rank(i) < names.rank(j)) == (tricky_ids[i] < tricky_ids[j]));
        }
    }
}
