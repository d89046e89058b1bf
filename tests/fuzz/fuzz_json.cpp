// libFuzzer target: every JSON decoder of geo/json.hpp.
//
// Input: one selector byte, then JSON text. `selector % 16` picks the type read (table below);
// the corpus writes it as a printable character ('0'..'9', ':'..'?') so seeds stay readable.
//
// Properties:
//  - from_json_text<T> returns or throws geo::ParseError; nothing else escapes;
//  - a value that parsed writes back (to_json_text, which must not throw), re-reads equal, and
//    the re-read value writes the same text (writing is canonical);
//  - a config that parsed: validate() passes or throws geo::ConfigError; a validated config
//    builds a replicator (or throws geo::Error), routes to a configured region, and accepts a
//    local write;
//  - a batch that parsed is applied to a fresh three-region replicator (LastWriterWins when
//    `selector / 16` is even, VectorClock when odd): apply_remote returns one outcome per entry
//    or throws geo::Error and changes nothing; the resulting state's snapshot restores into a
//    fresh replicator and snapshots to the same bytes;
//  - batches, against the DOM path the fast path stands in for (detail/batch_json.hpp): what
//    the fast reader accepts the DOM reads equal; from_json_text returns the DOM's batch or
//    throws its error message; the fast writer writes the DOM's bytes for what the DOM read.

#include <geo/json.hpp>
#include <geo/replicator.hpp>

#include "fuzz_support.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace {

using geo_fuzz::fail;
using geo_fuzz::must_not_throw;
using geo_fuzz::returns_or_throws;

/// Reads `text` as a T; on success checks the round trip and returns true with `out` set.
template <class T>
bool read_and_round_trip(std::string_view text, const char* type, T& out) {
    const bool parsed = returns_or_throws<geo::ParseError>(
        type, [&] { out = geo::from_json_text<T>(text); });
    if (!parsed) {
        return false;
    }
    std::string written;
    must_not_throw("to_json_text of a parsed value", [&] { written = geo::to_json_text(out); });
    T again{};
    must_not_throw("re-reading to_json_text output", [&] { again = geo::from_json_text<T>(written); });
    if (!(again == out)) {
        fail(std::string(type) + ": round trip changed the value; written as " + written);
    }
    std::string rewritten;
    must_not_throw("to_json_text of the re-read value", [&] { rewritten = geo::to_json_text(again); });
    if (rewritten != written) {
        fail(std::string(type) + ": writing is not canonical: " + written + " then " + rewritten);
    }
    return true;
}

template <class T>
void round_trip_only(std::string_view text, const char* type) {
    T value{};
    (void)read_and_round_trip(text, type, value);
}

void check_config(std::string_view text) {
    geo::ActiveActiveGeoConfig config;
    const bool parsed = returns_or_throws<geo::ParseError>("parse_config", [&] {
        config = geo::parse_config(text);
    });
    if (!parsed) {
        return;
    }
    geo::ActiveActiveGeoConfig round{};
    if (!read_and_round_trip(text, "ActiveActiveGeoConfig", round) || !(round == config)) {
        fail("parse_config and from_json_text<ActiveActiveGeoConfig> disagree");
    }
    if (!returns_or_throws<geo::ConfigError>("validate", [&] { config.validate(); })) {
        return;
    }
    // validate() allows a conflict log of up to 2^20 entries (about 160 MB, allocated when the
    // replicator is built): legal, but it would make every such run slow. Smaller is enough.
    if (config.conflict_log_capacity > 4096) {
        config.conflict_log_capacity = 4096;
    }
    const auto clock = [] { return geo_fuzz::frozen_ms; };
    (void)returns_or_throws<geo::Error>("replicator without groups", [&] {
        geo::ActiveActiveReplicator rep(config, {}, clock);
    });
    std::vector<geo::RegionRaftGroup> groups;
    for (std::size_t i = 0; i < config.regions.size(); ++i) {
        groups.emplace_back(config.regions[i], i + 1, std::vector<geo::NodeId>{i + 1});
    }
    std::unique_ptr<geo::ActiveActiveReplicator> rep;
    if (!returns_or_throws<geo::Error>("replicator with groups", [&] {
            rep = std::make_unique<geo::ActiveActiveReplicator>(config, groups, clock);
        })) {
        fail("a validated config with one distinct group per region was refused");
    }
    for (const char* subject : {"", "user:1", "orders/42"}) {
        geo::WriteRoutingDecision decision;
        must_not_throw("route", [&] { decision = config.route(subject, std::string_view("t1")); });
        if (!config.has_region(decision.primary_region)) {
            fail("a validated config routed to unknown region " + decision.primary_region);
        }
    }
    geo::GeoWriteOutcome outcome;
    must_not_throw("put on a fresh replicator", [&] { outcome = rep->put("k", "v"); });
    const auto* committed = std::get_if<geo::Committed>(&outcome);
    if (committed == nullptr || committed->region != config.local_region || committed->seq != 1) {
        fail("the first put on a fresh replicator was not Committed(local, 1)");
    }
}

/// The batch fast path (detail/batch_json.hpp) against the DOM path it stands in for.
void check_batch_fast_path(std::string_view text) {
    using Batch = std::vector<geo::FanoutEntry>;
    std::optional<Batch> fast;
    must_not_throw("read_batch_json", [&] { fast = geo::detail::read_batch_json(text); });
    std::optional<Batch> dom;
    std::string dom_error;
    must_not_throw("from_json_text_dom (other than ParseError)", [&] {
        try {
            dom = geo::detail::from_json_text_dom<Batch>(text);
        } catch (const geo::ParseError& e) {
            dom_error = e.what();
        }
    });
    if (fast && fast != dom) {
        fail(dom ? "the fast batch reader and the DOM read different batches"
                 : "the fast batch reader accepted what the DOM refuses: " + dom_error);
    }
    try {
        if (geo::from_json_text<Batch>(text) != dom) {
            fail("from_json_text<std::vector<FanoutEntry>> differs from the DOM path's batch");
        }
    } catch (const geo::ParseError& e) {
        if (dom || e.what() != dom_error) {
            fail(std::string("from_json_text's error differs from the DOM path's: ") + e.what());
        }
    }
    if (dom) {
        std::string written;
        if (!geo::detail::write_batch_json(*dom, written) ||
            written != geo::detail::to_json_text_dom(*dom)) {
            fail("the fast batch writer's text differs from the DOM's: " + written);
        }
    }
}

void check_batch(std::string_view text, bool vector_clock) {
    check_batch_fast_path(text);
    std::vector<geo::FanoutEntry> batch;
    if (!read_and_round_trip(text, "std::vector<FanoutEntry>", batch) || batch.empty()) {
        return;
    }
    const auto mode = vector_clock ? geo::ConflictResolutionMode::VectorClock
                                   : geo::ConflictResolutionMode::LastWriterWins;
    auto rep = geo_fuzz::empty_replica(mode);
    const std::string& origin = batch.front().record.region;
    const std::string before = geo_fuzz::snapshot_bytes(*rep);
    std::vector<geo::GeoWriteOutcome> outcomes;
    if (!returns_or_throws<geo::Error>("apply_remote(batch)", [&] {
            outcomes = rep->apply_remote(origin, batch);
        })) {
        if (geo_fuzz::snapshot_bytes(*rep) != before) {
            fail("a refused batch changed the replicator");
        }
        return;
    }
    if (outcomes.size() != batch.size()) {
        fail("apply_remote returned " + std::to_string(outcomes.size()) + " outcomes for " +
             std::to_string(batch.size()) + " entries");
    }
    // Whatever the batch held, the state it made must survive a snapshot round trip.
    const std::string first = geo_fuzz::snapshot_bytes(*rep);
    auto copy = geo_fuzz::empty_replica(mode);
    must_not_throw("restoring a snapshot of an applied batch", [&] {
        std::istringstream in(first);
        copy->restore(in);
    });
    if (geo_fuzz::snapshot_bytes(*copy) != first) {
        fail("snapshot -> restore -> snapshot changed the bytes after applying a batch");
    }
    if (copy->records_digest() != rep->records_digest()) {
        fail("records_digest differs after a snapshot round trip");
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (data[0] % 16) {
    case 0: check_config(text); break;
    case 1: round_trip_only<geo::GeoRecord>(text, "GeoRecord"); break;
    case 2: round_trip_only<geo::VectorClock>(text, "VectorClock"); break;
    case 3: round_trip_only<geo::RegionRaftGroup>(text, "RegionRaftGroup"); break;
    case 4: round_trip_only<geo::RegionRoutingRule>(text, "RegionRoutingRule"); break;
    case 5: round_trip_only<geo::WriteRoutingDecision>(text, "WriteRoutingDecision"); break;
    case 6: round_trip_only<geo::FanoutEntry>(text, "FanoutEntry"); break;
    case 7: check_batch(text, (data[0] / 16) % 2 == 1); break;
    case 8: round_trip_only<geo::ConflictEvent>(text, "ConflictEvent"); break;
    case 9: round_trip_only<geo::GeoWriteOutcome>(text, "GeoWriteOutcome"); break;
    case 10: round_trip_only<geo::Committed>(text, "Committed"); break;
    case 11: round_trip_only<geo::RejectedByConflict>(text, "RejectedByConflict"); break;
    case 12: round_trip_only<geo::AlreadyApplied>(text, "AlreadyApplied"); break;
    case 13: round_trip_only<geo::OutOfOrder>(text, "OutOfOrder"); break;
    case 14: round_trip_only<std::vector<geo::RegionRaftGroup>>(text, "std::vector<RegionRaftGroup>"); break;
    default: round_trip_only<std::vector<geo::ConflictEvent>>(text, "std::vector<ConflictEvent>"); break;
    }
    return 0;
}
