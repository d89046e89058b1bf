// The cluster example's pure parts: the log entry framing and the cluster file.

#include "cluster_config.hpp"
#include "entry_codec.hpp"

#include "geo_test.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using cluster::decode_entry;
using cluster::encode_entry;
using cluster::entry_size;

namespace {

std::vector<unsigned char> encoded(const std::string& text) {
    std::vector<unsigned char> bytes(entry_size(text.size()), 0xAB);
    encode_entry(text, bytes.data());
    return bytes;
}

} // namespace

TEST_CASE("every entry is a multiple of 8 bytes, whatever its text's length") {
    for (std::size_t n = 0; n < 40; ++n) {
        CHECK(entry_size(n) % 8 == 0);
        CHECK(entry_size(n) >= n + 8);
        CHECK(entry_size(n) < n + 16);
    }
}

TEST_CASE("an entry decodes to its text, embedded NULs and the empty text included") {
    for (const std::string& text : {std::string(), std::string("P 17 k v"), std::string("abcdefgh"),
                                    std::string("a\0b", 3)}) {
        const auto bytes = encoded(text);
        const auto back = decode_entry(bytes.data(), bytes.size());
        REQUIRE(back.has_value());
        CHECK(*back == text);
    }
}

TEST_CASE("the padding is zeros, so equal commands are equal entries") {
    const auto bytes = encoded("A eu 5");
    CHECK(bytes.size() == 16);
    for (std::size_t i = 8 + 6; i < bytes.size(); ++i) {
        CHECK(bytes[i] == 0);
    }
}

TEST_CASE("an entry whose framing does not add up is refused, not read past its end") {
    auto bytes = encoded("hello world");
    CHECK_FALSE(decode_entry(bytes.data(), bytes.size() - 1).has_value()); // not a multiple of 8
    CHECK_FALSE(decode_entry(bytes.data(), 0).has_value());
    bytes[0] = 200; // a length beyond the buffer
    CHECK_FALSE(decode_entry(bytes.data(), bytes.size()).has_value());
    bytes = encoded("hello world");
    bytes.resize(bytes.size() + 8, 0); // a length that would need less padding than there is
    CHECK_FALSE(decode_entry(bytes.data(), bytes.size()).has_value());
}

TEST_CASE("the cluster file gives regions, nodes, rules, the default level and links") {
    const auto path = std::filesystem::path("cluster_parts_test.conf");
    {
        std::ofstream out(path);
        out << "# two regions\nregion us\nregion eu\n"
               "node us 1 127.0.0.1:1 127.0.0.1:2\nnode eu 2 127.0.0.1:3 127.0.0.1:4  # eu\n"
               "rule each e: eu EachQuorum\ndefault LocalAsync\nlink us 2 127.0.0.1:9\n";
    }
    const auto config = cluster::ClusterConfig::load(path.string());
    std::filesystem::remove(path);
    CHECK(config.regions == std::vector<std::string>{"us", "eu"});
    REQUIRE(config.node(2) != nullptr);
    CHECK(config.node(2)->client_address == "127.0.0.1:4");
    CHECK(config.address_from("us", *config.node(2)) == "127.0.0.1:9");
    CHECK(config.address_from("eu", *config.node(1)) == "127.0.0.1:2");
    const auto us = config.geo_config("us");
    CHECK(us.route("e:1").primary_region == "eu");
    CHECK(us.route("e:1").consistency == geo::ConsistencyLevel::EachQuorum);
    CHECK(us.route("k1").primary_region == "us");
    CHECK(us.route("k1").consistency == geo::ConsistencyLevel::LocalAsync);
    const auto groups = config.groups();
    REQUIRE(groups.size() == 2);
    CHECK(groups[1].group_id == 2);
    CHECK(groups[1].members == std::vector<geo::NodeId>{2});
}

TEST_CASE("a cluster file with an unknown level or declaration is refused with its line") {
    const auto path = std::filesystem::path("cluster_parts_test_bad.conf");
    {
        std::ofstream out(path);
        out << "region us\nrule r x us Quorum\n";
    }
    CHECK_THROWS_WITH(cluster::ClusterConfig::load(path.string()), geo_test::contains(":2:"));
    std::filesystem::remove(path);
}
