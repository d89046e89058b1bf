#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "../error.hpp"
#include "../record.hpp"
#include "../types.hpp"
#include "regions.hpp"
#include "utf8.hpp"

namespace geo::detail {

/// The replicator's argument checks, out of its facade. Each throws and changes nothing.

/// An unknown region argument. Out of line, so the lookup on every write stays small.
[[noreturn]]
#if defined(__GNUC__)
__attribute__((cold, noinline))
#endif
inline void
throw_unknown_region(std::string_view region, const std::vector<RegionId>& configured) {
    std::string known;
    for (const auto& r : configured) {
        known += (known.empty() ? "" : ", ") + r;
    }
    throw ConfigError("unknown region '" + std::string(region) + "' (configured: " + known + ")");
}

#if defined(__GNUC__)
__attribute__((noinline))
#endif
inline void
check_utf8(std::string_view key, std::string_view value) {
    if (!is_valid_utf8(key)) {
        throw EncodingError("key is not valid UTF-8 (bytes: " + escape_bytes(key) + ")");
    }
    if (!is_valid_utf8(value)) {
        throw EncodingError("value of key '" + escape_bytes(key) + "' is not valid UTF-8");
    }
}

/// Keys and values travel as JSON strings: what is not valid UTF-8 is refused up front.
inline void check_text(std::string_view key, std::string_view value) {
    if (!is_ascii(key) || !is_ascii(value)) {
        check_utf8(key, value); // rare: out of line
    }
}

/// A fanout entry received from `origin`.
inline void check_entry(const FanoutEntry& entry, const RegionId& origin) {
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
    if (entry.record.region != origin) {
        throw ConfigError("entry for key '" + entry.key + "' was written in region '" +
                          entry.record.region + "' but arrived from '" + origin + "'");
    }
}

} // namespace geo::detail
