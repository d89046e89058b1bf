// Three regions accept writes at the same time, ship their committed writes to each other, and
// end with identical state. Read top to bottom; run it with scripts/run-demo.sh.

#include <geo/geo.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace {

const std::vector<geo::RegionId> regions = {"us-east-1", "eu-west-1", "ap-northeast-1"};

// A fake wall clock so the demo prints the same table on every run; a real host omits it.
std::uint64_t demo_time_ms = 1'700'000'000'000;

std::string describe(const geo::GeoWriteOutcome& outcome) {
    if (const auto* ok = std::get_if<geo::Committed>(&outcome)) {
        return "committed as " + ok->region + " #" + std::to_string(ok->seq);
    }
    if (const auto* lost = std::get_if<geo::RejectedByConflict>(&outcome)) {
        return "lost to " + lost->winner_region + " @" + std::to_string(lost->winner_timestamp_ms);
    }
    return "already applied";
}

} // namespace

int main() {
    // 1. One replicator per region, as each region's process would hold it.
    std::vector<geo::RegionRaftGroup> groups = {
        {"us-east-1", 1, {1, 2, 3}}, {"eu-west-1", 2, {4, 5, 6}}, {"ap-northeast-1", 3, {7, 8, 9}}};
    std::map<geo::RegionId, std::unique_ptr<geo::ActiveActiveReplicator>> replica;
    for (const auto& region : regions) {
        auto config = geo::ActiveActiveGeoConfig::multi_region(region, regions);
        // Orders are written in us-east-1 and confirmed once another region holds them; if
        // us-east-1 is down they fail over within the "primary" tier first.
        config.routing_rules.insert(config.routing_rules.begin(),
                                    geo::RegionRoutingRule{"orders", "order:", std::nullopt,
                                                           "us-east-1",
                                                           geo::ConsistencyLevel::EachQuorum});
        config.primary_tier = {{"primary", {"us-east-1", "eu-west-1"}},
                               {"backup", {"ap-northeast-1"}}};
        replica[region] = std::make_unique<geo::ActiveActiveReplicator>(
            config, groups, [] { return demo_time_ms; });
        replica[region]->on_conflict([region](const geo::ConflictEvent& c) {
            std::printf("  [%s] conflict on %s: %s's \"%s\" lost to %s's \"%s\"\n", region.c_str(),
                        c.key.c_str(), c.loser.region.c_str(), c.loser.value.c_str(),
                        c.winner.region.c_str(), c.winner.value.c_str());
        });
    }

    // 2. Concurrent writes to overlapping keys, before any region hears from another.
    std::printf("local writes:\n");
    replica["us-east-1"]->put("user:42", "alice@us");
    demo_time_ms += 5;
    replica["eu-west-1"]->put("user:42", "alice@eu"); // later: it will win everywhere
    replica["ap-northeast-1"]->put("cart:7", "3 items");
    replica["eu-west-1"]->put("cart:7", "2 items");
    replica["us-east-1"]->put("session:9", "active");
    replica["us-east-1"]->erase("session:9"); // a delete is a tombstone that replicates too
    // us-east-1 made three writes but queues two entries: a newer commit of a key replaces the
    // key's queued entry (the peer only needs the newest state), so queues grow with keys, not
    // with writes.
    for (const auto& region : regions) {
        std::printf("  %-15s queued %zu entries\n", region.c_str(),
                    replica[region]->pending_fanout_len(region));
    }

    // 3. Ship every region's queue to every peer, over whatever transport the host has.
    //    peek + acknowledge is at-least-once: a batch that fails to arrive is sent again.
    //    A lost write is reported on the replica where it arrives after the winner: it is
    //    rejected and logged there as a ConflictEvent (the [region] lines below). Where the
    //    winner arrives second, it simply supersedes the stored record (last-writer-wins
    //    reports nothing there).
    std::printf("shipping:\n");
    for (const auto& source : regions) {
        for (const auto& target : regions) {
            std::vector<geo::FanoutEntry> batch = replica[source]->peek_fanout(source, target);
            for (const auto& entry : batch) {
                auto outcome = replica[target]->apply_remote(source, entry);
                std::printf("  %-15s -> %-15s %-10s %s\n", source.c_str(), target.c_str(),
                            entry.key.c_str(), describe(outcome).c_str());
            }
            if (!batch.empty()) {
                replica[source]->acknowledge_fanout(source, target, batch.back().seq);
            }
        }
    }

    // 4. A duplicate delivery (a re-sent batch) changes nothing.
    const auto resent = geo::FanoutEntry{"user:42", *replica["eu-west-1"]->get_record("user:42"),
                                         replica["eu-west-1"]->get_record("user:42")->seq};
    std::printf("re-sent eu-west-1's user:42 to us-east-1: %s\n",
                describe(replica["us-east-1"]->apply_remote("eu-west-1", resent)).c_str());

    // 5. Every region now holds the same records.
    std::printf("\n%-10s", "key");
    for (const auto& region : regions) {
        std::printf(" | %-22s", region.c_str());
    }
    std::printf("\n");
    bool converged = true;
    for (const char* key : {"user:42", "cart:7", "session:9"}) {
        std::printf("%-10s", key);
        for (const auto& region : regions) {
            auto record = replica[region]->get_record(key);
            std::string shown = !record           ? "(none)"
                                : record->deleted ? "(deleted by " + record->region + ")"
                                                  : record->value + " (" + record->region + ")";
            std::printf(" | %-22s", shown.c_str());
            converged = converged && record == replica[regions[0]]->get_record(key);
        }
        std::printf("\n");
    }
    std::printf("\n%s\n", converged ? "all three regions converged" : "REGIONS DIFFER");

    // 6. Consistency levels, lag and failover. ap-northeast-1 stops acknowledging; an order
    //    routed at EachQuorum is answered once one other region holds it.
    geo::ActiveActiveReplicator& us = *replica.at("us-east-1");
    geo::ActiveActiveReplicator& eu = *replica.at("eu-west-1");
    const geo::WriteRoutingDecision order = us.route("order:1001");
    const std::uint64_t seq = std::get<geo::Committed>(us.put("order:1001", "paid")).seq;
    std::printf("\norder:1001 committed in %s as #%llu, level %s\n", order.primary_region.c_str(),
                static_cast<unsigned long long>(seq),
                std::string(geo::to_string(order.consistency)).c_str());
    demo_time_ms += 6000; // six seconds without an acknowledgement; max_lag is 5 s
    const auto print_streams = [&] {
        for (const geo::StreamStatus& s : us.stream_statuses()) {
            if (s.source == "us-east-1") {
                std::printf("  us-east-1 -> %-15s owed %zu, lag %5lld ms%s\n", s.target.c_str(),
                            s.owed, static_cast<long long>(s.lag.count()),
                            s.stale ? "  STALE" : "");
            }
        }
    };
    print_streams();
    // The client's answer waits for EachQuorum while the eu-west-1 link delivers on its own
    // thread; a timeout would be answered as a timeout (the write stays committed).
    std::thread eu_link([&] {
        const auto batch = us.peek_fanout("us-east-1", "eu-west-1");
        (void)eu.apply_remote("us-east-1", batch);
        us.acknowledge_fanout("us-east-1", "eu-west-1", batch.back().seq);
    });
    const bool durable = us.wait_durable("us-east-1", "order:1001", seq, order.consistency,
                                         std::chrono::seconds(10));
    eu_link.join();
    std::printf("order:1001 %s at EachQuorum (%zu of 2 peers hold it)\n",
                durable ? "durable" : "TIMED OUT", us.remote_acks("us-east-1", "order:1001", seq));
    print_streams();

    // The host feeds region health to routing: here eu-west-1 learns that us-east-1 is down.
    eu.set_region_available("us-east-1", false);
    const geo::WriteRoutingDecision moved = eu.route("order:1002");
    std::printf("us-east-1 down: order:1002 routes to %s (failed over: %s), same level %s\n",
                moved.primary_region.c_str(), moved.failed_over ? "yes" : "no",
                std::string(geo::to_string(moved.consistency)).c_str());
    return converged && durable && moved.failed_over ? 0 : 1;
}
