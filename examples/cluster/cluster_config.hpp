// The cluster description every node reads: regions, nodes, routing rules, link overrides.
#pragma once

#include <geo/geo.hpp>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace cluster {

struct NodeInfo {
    std::string region;
    std::uint64_t id{};
    std::string raft_address;   ///< IPv4 host:port of the Raft transport
    std::string client_address; ///< IPv4 host:port of the line protocol (clients, peers)
};

/// Parsed from a text file, one declaration a line ('#' starts a comment):
///   region <name>
///   node <region> <id> <raft host:port> <client host:port>
///   rule <name> <key prefix> <target region> <LocalAsync|LocalQuorum|EachQuorum|AllQuorum>
///   default <level>              (the level of writes no rule matches; LocalQuorum if absent)
///   link <from region> <node id> <host:port>
/// A link line makes nodes of <from region> reach node <id> at another address (a proxy that
/// injects faults between regions); without one they use the node's client address.
struct ClusterConfig {
    std::vector<std::string> regions;
    std::vector<NodeInfo> nodes;
    std::vector<geo::RegionRoutingRule> rules;
    geo::ConsistencyLevel default_level{geo::ConsistencyLevel::LocalQuorum};
    std::map<std::tuple<std::string, std::uint64_t>, std::string> links;

    [[nodiscard]] static ClusterConfig load(const std::string& path) {
        std::ifstream in(path);
        if (!in) {
            throw std::runtime_error("cannot read cluster file " + path);
        }
        ClusterConfig config;
        std::string line;
        int number = 0;
        while (std::getline(in, line)) {
            ++number;
            line = line.substr(0, line.find('#'));
            std::istringstream words(line);
            std::string kind;
            if (!(words >> kind)) {
                continue;
            }
            const auto fail = [&](const std::string& why) {
                return std::runtime_error(path + ":" + std::to_string(number) + ": " + why);
            };
            if (kind == "region") {
                std::string name;
                if (!(words >> name)) {
                    throw fail("region <name>");
                }
                config.regions.push_back(name);
            } else if (kind == "node") {
                NodeInfo node;
                if (!(words >> node.region >> node.id >> node.raft_address >>
                      node.client_address)) {
                    throw fail("node <region> <id> <raft host:port> <client host:port>");
                }
                config.nodes.push_back(node);
            } else if (kind == "rule") {
                geo::RegionRoutingRule rule;
                std::string prefix, level;
                if (!(words >> rule.name >> prefix >> rule.target_region >> level)) {
                    throw fail("rule <name> <prefix> <region> <level>");
                }
                rule.subject_prefix = prefix;
                rule.consistency = parse_level(level, fail);
                config.rules.push_back(rule);
            } else if (kind == "default") {
                std::string level;
                if (!(words >> level)) {
                    throw fail("default <level>");
                }
                config.default_level = parse_level(level, fail);
            } else if (kind == "link") {
                std::string from, address;
                std::uint64_t id = 0;
                if (!(words >> from >> id >> address)) {
                    throw fail("link <from region> <node id> <host:port>");
                }
                config.links[{from, id}] = address;
            } else {
                throw fail("unknown declaration '" + kind + "'");
            }
        }
        return config;
    }

    [[nodiscard]] const NodeInfo* node(std::uint64_t id) const {
        for (const auto& n : nodes) {
            if (n.id == id) {
                return &n;
            }
        }
        return nullptr;
    }

    [[nodiscard]] std::vector<const NodeInfo*> members(std::string_view region) const {
        std::vector<const NodeInfo*> out;
        for (const auto& n : nodes) {
            if (n.region == region) {
                out.push_back(&n);
            }
        }
        return out;
    }

    /// Where a node of `from` reaches `to`'s line protocol.
    [[nodiscard]] std::string address_from(const std::string& from, const NodeInfo& to) const {
        const auto it = links.find({from, to.id});
        return it == links.end() ? to.client_address : it->second;
    }

    /// geo's configuration for `local`: every region in one "primary" tier, the rules, then a
    /// default rule that keeps unmatched writes in the region that received them.
    [[nodiscard]] geo::ActiveActiveGeoConfig geo_config(const std::string& local) const {
        auto config = geo::ActiveActiveGeoConfig::multi_region(local, regions);
        config.routing_rules = rules;
        config.routing_rules.push_back(geo::RegionRoutingRule::default_to(local, default_level));
        return config;
    }

    /// One Raft group per region; its group id is the region's position + 1.
    [[nodiscard]] std::vector<geo::RegionRaftGroup> groups() const {
        std::vector<geo::RegionRaftGroup> out;
        for (std::size_t i = 0; i < regions.size(); ++i) {
            std::vector<geo::NodeId> ids;
            for (const auto* n : members(regions[i])) {
                ids.push_back(n->id);
            }
            out.emplace_back(regions[i], i + 1, ids);
        }
        return out;
    }

private:
    template <class Fail>
    static geo::ConsistencyLevel parse_level(const std::string& text, const Fail& fail) {
        const auto level = geo::consistency_level_from_string(text);
        if (!level) {
            throw fail("unknown consistency level '" + text + "'");
        }
        return *level;
    }
};

} // namespace cluster
