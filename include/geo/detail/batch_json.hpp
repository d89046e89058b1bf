#pragma once

/// The fast path of geo::to_json_text / geo::from_json_text for `std::vector<FanoutEntry>`, the
/// batch hosts ship between regions (encoded once, parsed by every peer): a direct writer and
/// reader of the wire text, without nlohmann's DOM (a std::map and allocations per object).
///
/// The writer produces exactly the bytes `nlohmann::json(batch).dump()` does: keys in std::map
/// order, strings escaped as nlohmann escapes them (ensure_ascii off). It refuses (returns false)
/// a batch holding a string that is not valid UTF-8, so that the DOM path throws its error.
///
/// The reader accepts the canonical form with any key order and JSON whitespace, and gives up
/// (nullopt) on anything else: unknown or duplicate keys, a missing field, the `[key, record,
/// seq]` tuple form, numbers other than plain uint64 digits, a node named twice in a clock, a
/// BOM, lone surrogates, invalid UTF-8, trailing text. The caller then runs the DOM path, which
/// either reads it or throws the ParseError naming the field. Whatever it accepts reads as the DOM
/// path reads it.

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../record.hpp"
#include "../types.hpp"
#include "../vector_clock.hpp"
#include "batch_json_read.hpp"
#include "utf8.hpp"

namespace geo::detail {

class BatchJsonWriter {
public:
    explicit BatchJsonWriter(std::string& out) noexcept : out_(out) {}

    /// Appends the batch; false (with `out` partly written) if a string is not valid UTF-8.
    [[nodiscard]] bool write(const std::vector<FanoutEntry>& batch) {
        std::size_t estimate = 2;
        for (const auto& entry : batch) {
            // Fixed text plus the numbers of one entry are under 200 bytes with a 3-node clock.
            estimate += 200 + entry.key.size() + entry.record.region.size() +
                        entry.record.value.size() + 32 * entry.record.clock.entries().size();
        }
        out_.reserve(out_.size() + estimate);
        out_ += '[';
        for (std::size_t i = 0; i < batch.size(); ++i) {
            if (i != 0) {
                out_ += ',';
            }
            if (!write_entry(batch[i])) {
                return false;
            }
        }
        out_ += ']';
        return true;
    }

private:
    // A node id as its decimal key; keys sort as strings, as nlohmann's std::map orders them.
    struct ClockKey {
        char digits[20];
        std::uint8_t length;
        std::uint64_t counter;
        [[nodiscard]] std::string_view text() const noexcept { return {digits, length}; }
    };

    [[nodiscard]] bool write_entry(const FanoutEntry& entry) {
        const GeoRecord& record = entry.record;
        out_ += "{\"key\":";
        if (!write_string(entry.key)) {
            return false;
        }
        out_ += ",\"prev_seq\":";
        write_uint(entry.prev_seq);
        out_ += ",\"record\":{\"clock\":{\"clocks\":{";
        write_clock(record.clock);
        out_ +=
            record.deleted ? "}},\"deleted\":true,\"region\":" : "}},\"deleted\":false,\"region\":";
        if (!write_string(record.region)) {
            return false;
        }
        out_ += ",\"seq\":";
        write_uint(record.seq);
        out_ += ",\"timestamp_ms\":";
        write_uint(record.timestamp_ms);
        out_ += ",\"value\":";
        if (!write_string(record.value)) {
            return false;
        }
        out_ += "},\"seq\":";
        write_uint(entry.seq);
        out_ += '}';
        return true;
    }

    void write_clock(const VectorClock& clock) {
        keys_.clear();
        for (const auto& [node, counter] : clock.entries()) {
            ClockKey key{};
            const auto end = std::to_chars(key.digits, key.digits + sizeof key.digits, node).ptr;
            key.length = static_cast<std::uint8_t>(end - key.digits);
            key.counter = counter;
            keys_.push_back(key);
        }
        // Entries come in numeric order, which is string order unless the lengths differ.
        std::sort(keys_.begin(), keys_.end(),
                  [](const ClockKey& a, const ClockKey& b) { return a.text() < b.text(); });
        for (std::size_t i = 0; i < keys_.size(); ++i) {
            if (i != 0) {
                out_ += ',';
            }
            out_ += '"';
            out_ += keys_[i].text();
            out_ += "\":";
            write_uint(keys_[i].counter);
        }
    }

    void write_uint(std::uint64_t value) {
        char digits[20];
        const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
        out_.append(digits, static_cast<std::size_t>(end - digits));
    }

    /// nlohmann's escaping with ensure_ascii off: the short escapes, other control characters
    /// as \u00xx (lowercase hex), every other byte as it is.
    [[nodiscard]] bool write_string(std::string_view s) {
        if (!is_valid_utf8(s)) {
            return false;
        }
        static constexpr char hex[] = "0123456789abcdef";
        out_ += '"';
        std::size_t run = 0; // start of the bytes not yet appended, which need no escape
        for (std::size_t i = 0; i < s.size(); ++i) {
            const auto c = static_cast<unsigned char>(s[i]);
            if (c >= 0x20 && c != '"' && c != '\\') {
                continue;
            }
            out_.append(s.data() + run, i - run);
            run = i + 1;
            // The short escapes nlohmann uses, in the order of `shorts`; else \u00xx.
            static constexpr std::string_view shorts("\"\\\b\f\n\r\t", 7);
            if (const auto k = shorts.find(static_cast<char>(c)); k != std::string_view::npos) {
                out_ += '\\';
                out_ += "\"\\bfnrt"[k];
            } else {
                out_ += "\\u00";
                out_ += hex[c >> 4];
                out_ += hex[c & 0xF];
            }
        }
        out_.append(s.data() + run, s.size() - run);
        out_ += '"';
        return true;
    }

    std::string& out_;
    std::vector<ClockKey> keys_; // reused by every entry's clock
};

/// The batch as `nlohmann::json(batch).dump()` writes it, appended to `out`; false if a string
/// is not valid UTF-8 (then `out` holds a partial text: discard it).
[[nodiscard]] inline bool write_batch_json(const std::vector<FanoutEntry>& batch,
                                           std::string& out) {
    return BatchJsonWriter(out).write(batch);
}

/// The batch `text` holds, or nullopt where the DOM path must decide (see the top of the file).
[[nodiscard]] inline std::optional<std::vector<FanoutEntry>>
read_batch_json(std::string_view text) {
    return BatchJsonReader(text).read();
}

} // namespace geo::detail
