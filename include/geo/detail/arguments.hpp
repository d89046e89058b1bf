#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "../error.hpp"
#include "../record.hpp"
#include "regions.hpp"
#include "replica.hpp"
#include "utf8.hpp"

namespace geo::detail {

/// The facade's argument checks: each throws a geo::Error naming the problem before anything
/// changes. The common case stays small and inline; building a message is out of line.
struct Arguments {
    /// The index of a configured region; ConfigError naming the configured ones otherwise.
    [[nodiscard]] static std::size_t region_index(const Replica& rep, std::string_view region) {
        const std::size_t i = rep.names.find(region);
        if (i == rep.names.size()) {
            throw_unknown_region(rep, region);
        }
        return i;
    }

    /// Keys and values travel as JSON strings: what is not valid UTF-8 is refused up front.
    static void check_text(std::string_view key, std::string_view value) {
        if (!is_ascii(key) || !is_ascii(value)) {
            check_utf8(key, value); // rare: out of line
        }
    }

    /// A fanout entry from origin `o`: text, seq range, and the region that wrote it.
    static void check_entry(const Replica& rep, std::size_t o, const FanoutEntry& entry) {
        check_text(entry.key, entry.record.value);
        if (entry.record.seq != 0 && entry.record.seq != entry.seq) {
            throw ParseError("entry for key '" + escape_bytes(entry.key) + "' has seq " +
                             std::to_string(entry.seq) + " but its record has seq " +
                             std::to_string(entry.record.seq));
        }
        if (entry.seq >= max_seq) {
            throw ParseError("entry for key '" + escape_bytes(entry.key) + "' has seq " +
                             std::to_string(entry.seq) + ", at or above the limit 2^63");
        }
        if (entry.record.region != rep.config.regions[o]) {
            throw ConfigError("entry for key '" + entry.key + "' was written in region '" +
                              entry.record.region + "' but arrived from '" + rep.config.regions[o] +
                              "'");
        }
    }

    /// Vector-clock mode keys the local region's clock entry by its group id.
    static void check_local_group(const Replica& rep) {
        if (rep.config.conflict_mode == ConflictResolutionMode::VectorClock &&
            !rep.regions[rep.local]->group_id) {
            throw ConfigError("vector-clock mode needs a Raft group for local region '" +
                              rep.config.local_region + "' to key its clock entry");
        }
    }

private:
    [[noreturn]]
#if defined(__GNUC__)
    __attribute__((cold, noinline))
#endif
    static void
    throw_unknown_region(const Replica& rep, std::string_view region) {
        std::string known;
        for (const auto& r : rep.config.regions) {
            known += (known.empty() ? "" : ", ") + r;
        }
        throw ConfigError("unknown region '" + std::string(region) + "' (configured: " + known +
                          ")");
    }

#if defined(__GNUC__)
    __attribute__((noinline))
#endif
    static void
    check_utf8(std::string_view key, std::string_view value) {
        if (!is_valid_utf8(key)) {
            throw EncodingError("key is not valid UTF-8 (bytes: " + escape_bytes(key) + ")");
        }
        if (!is_valid_utf8(value)) {
            throw EncodingError("value of key '" + escape_bytes(key) + "' is not valid UTF-8");
        }
    }
};

} // namespace geo::detail
