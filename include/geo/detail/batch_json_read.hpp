#pragma once

/// The reader of the batch fast path (detail/batch_json.hpp, whose comment says what it accepts
/// and where it gives up): a recursive descent over the text that builds the FanoutEntry values
/// directly. Include <geo/json.hpp>, not this header.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../record.hpp"
#include "../types.hpp"
#include "../vector_clock.hpp"
#include "json_read.hpp"
#include "utf8.hpp"

namespace geo::detail {

/// Reads one batch text; read() gives up (nullopt) where the DOM path must decide.
class BatchJsonReader {
public:
    explicit BatchJsonReader(std::string_view text) noexcept
        : p_(text.data()), end_(text.data() + text.size()) {}

    [[nodiscard]] std::optional<std::vector<FanoutEntry>> read() {
        std::vector<FanoutEntry> batch;
        skip_space();
        if (!take('[')) {
            return std::nullopt;
        }
        skip_space();
        if (!take(']')) {
            do {
                skip_space();
                FanoutEntry entry;
                if (!read_entry(entry)) {
                    return std::nullopt;
                }
                batch.push_back(std::move(entry));
                skip_space();
            } while (take(','));
            if (!take(']')) {
                return std::nullopt;
            }
        }
        skip_space();
        if (p_ != end_) {
            return std::nullopt;
        }
        return batch;
    }

private:
    /// JSON's whitespace: exactly these four, as nlohmann's lexer skips.
    void skip_space() noexcept {
        while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) {
            ++p_;
        }
    }

    [[nodiscard]] bool take(char c) noexcept {
        if (p_ != end_ && *p_ == c) {
            ++p_;
            return true;
        }
        return false;
    }

    /// An object whose members `member(name)` reads (after the colon); false if it gives up.
    template <class Member>
    [[nodiscard]] bool read_object(Member&& member) {
        if (!take('{')) {
            return false;
        }
        skip_space();
        if (take('}')) {
            return true;
        }
        do {
            skip_space();
            std::string_view name;
            if (!read_name(name)) {
                return false;
            }
            skip_space();
            if (!take(':')) {
                return false;
            }
            skip_space();
            if (!member(name)) {
                return false;
            }
            skip_space();
        } while (take(','));
        return take('}');
    }

    /// A member name, as its raw bytes: the names we know need no escape, so one that has one
    /// is not recognised (the DOM path decides what it is).
    [[nodiscard]] bool read_name(std::string_view& name) noexcept {
        if (!take('"')) {
            return false;
        }
        const char* start = p_;
        while (p_ != end_ && *p_ != '"' && *p_ != '\\') {
            ++p_;
        }
        if (p_ == end_ || *p_ != '"') {
            return false;
        }
        name = std::string_view(start, static_cast<std::size_t>(p_ - start));
        ++p_;
        return true;
    }

    [[nodiscard]] bool read_entry(FanoutEntry& entry) {
        unsigned seen = 0;
        const bool read = read_object([&](std::string_view name) {
            if (name == "key") {
                return first(seen, 1U) && read_string(entry.key);
            }
            if (name == "record") {
                return first(seen, 2U) && read_record(entry.record);
            }
            if (name == "seq") {
                return first(seen, 4U) && read_uint(entry.seq);
            }
            if (name == "prev_seq") { // optional: 0 when missing
                return first(seen, 8U) && read_uint(entry.prev_seq);
            }
            return false;
        });
        return read && (seen & 7U) == 7U;
    }

    [[nodiscard]] bool read_record(GeoRecord& record) {
        unsigned seen = 0;
        const bool read = read_object([&](std::string_view name) {
            if (name == "region") {
                return first(seen, 1U) && read_string(record.region);
            }
            if (name == "timestamp_ms") {
                return first(seen, 2U) && read_uint(record.timestamp_ms);
            }
            if (name == "clock") {
                return first(seen, 4U) && read_clock(record.clock);
            }
            if (name == "value") {
                return first(seen, 8U) && read_string(record.value);
            }
            if (name == "seq") { // optional, as `deleted`: the Rust module's records lack them
                return first(seen, 16U) && read_uint(record.seq);
            }
            if (name == "deleted") {
                return first(seen, 32U) && read_bool(record.deleted);
            }
            return false;
        });
        return read && (seen & 15U) == 15U;
    }

    /// `{"clocks": {"<node>": counter, ...}}`, read as from_json(VectorClock) reads it: zero
    /// counters dropped. It gives up on a node named twice, where the DOM path keeps the last of
    /// two equal keys but the larger counter of "7" and "07".
    [[nodiscard]] bool read_clock(VectorClock& clock) {
        bool has_clocks = false;
        entries_.clear();
        const bool read = read_object([&](std::string_view name) {
            if (name != "clocks" || has_clocks) {
                return false;
            }
            has_clocks = true;
            return read_object([&](std::string_view key) {
                const auto node = parse_node_id(key);
                std::uint64_t counter = 0;
                if (!node || !read_uint(counter)) {
                    return false;
                }
                entries_.emplace_back(*node, counter);
                return true;
            });
        });
        if (!read || !has_clocks) {
            return false;
        }
        std::sort(entries_.begin(), entries_.end());
        for (std::size_t i = 0; i < entries_.size(); ++i) {
            if (i != 0 && entries_[i].first == entries_[i - 1].first) {
                return false;
            }
            if (entries_[i].second != 0) {
                clock.set(entries_[i].first, entries_[i].second);
            }
        }
        return true;
    }

    /// Digits only, no leading zero, within uint64: what the DOM reads as an unsigned integer
    /// (a sign, fraction or exponent after them fails at the caller's next token).
    [[nodiscard]] bool read_uint(std::uint64_t& out) noexcept {
        if (p_ == end_ || *p_ < '0' || *p_ > '9') {
            return false;
        }
        if (*p_ == '0') {
            ++p_;
            out = 0;
            return p_ == end_ || *p_ < '0' || *p_ > '9';
        }
        std::uint64_t value = 0;
        while (p_ != end_ && *p_ >= '0' && *p_ <= '9') {
            const auto digit = static_cast<std::uint64_t>(*p_ - '0');
            if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) {
                return false;
            }
            value = value * 10 + digit;
            ++p_;
        }
        out = value;
        return true;
    }

    [[nodiscard]] bool read_bool(bool& out) noexcept {
        const auto rest = static_cast<std::size_t>(end_ - p_);
        if (rest >= 4 && std::string_view(p_, 4) == "true") {
            p_ += 4;
            out = true;
            return true;
        }
        if (rest >= 5 && std::string_view(p_, 5) == "false") {
            p_ += 5;
            out = false;
            return true;
        }
        return false;
    }

    /// A string value, unescaped. Checking UTF-8 on the decoded bytes is checking it on the raw
    /// ones: an escape decodes to a whole code point, which cannot complete a raw partial one.
    [[nodiscard]] bool read_string(std::string& out) {
        if (!take('"')) {
            return false;
        }
        const char* start = p_;
        while (p_ != end_ && *p_ != '"' && *p_ != '\\' && static_cast<unsigned char>(*p_) >= 0x20) {
            ++p_;
        }
        out.assign(start, static_cast<std::size_t>(p_ - start));
        while (p_ != end_) {
            const char c = *p_++;
            if (c == '"') {
                return is_valid_utf8(out);
            }
            if (static_cast<unsigned char>(c) < 0x20) {
                return false; // raw control characters are not JSON
            }
            if (c != '\\') {
                out += c;
                continue;
            }
            if (p_ == end_) {
                return false;
            }
            const char escape = *p_++;
            // JSON's short escapes (\uXXXX aside): the character after the backslash, and what
            // it stands for at the same index.
            static constexpr std::string_view names("\"\\/bfnrt");
            static constexpr std::string_view meanings("\"\\/\b\f\n\r\t");
            if (const auto k = names.find(escape); k != std::string_view::npos) {
                out += meanings[k];
            } else if (escape != 'u' || !read_escaped_code_point(out)) {
                return false;
            }
        }
        return false;
    }

    /// After `\u`: four hex digits, a surrogate pair as two escapes; appended as UTF-8.
    [[nodiscard]] bool read_escaped_code_point(std::string& out) {
        std::uint32_t cp = 0;
        if (!read_hex4(cp) || (cp >= 0xDC00 && cp <= 0xDFFF)) {
            return false;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            std::uint32_t low = 0;
            if (!take('\\') || !take('u') || !read_hex4(low) || low < 0xDC00 || low > 0xDFFF) {
                return false;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        const auto byte = [](std::uint32_t bits) { return static_cast<char>(bits); };
        if (cp < 0x80) {
            out += byte(cp);
        } else if (cp < 0x800) {
            out += byte(0xC0 | (cp >> 6));
            out += byte(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += byte(0xE0 | (cp >> 12));
            out += byte(0x80 | ((cp >> 6) & 0x3F));
            out += byte(0x80 | (cp & 0x3F));
        } else {
            out += byte(0xF0 | (cp >> 18));
            out += byte(0x80 | ((cp >> 12) & 0x3F));
            out += byte(0x80 | ((cp >> 6) & 0x3F));
            out += byte(0x80 | (cp & 0x3F));
        }
        return true;
    }

    [[nodiscard]] bool read_hex4(std::uint32_t& out) noexcept {
        if (end_ - p_ < 4) {
            return false;
        }
        std::uint32_t value = 0;
        for (int i = 0; i < 4; ++i) {
            const char c = *p_++;
            std::uint32_t digit = 0;
            if (c >= '0' && c <= '9') {
                digit = static_cast<std::uint32_t>(c - '0');
            } else if (c >= 'a' && c <= 'f') {
                digit = static_cast<std::uint32_t>(c - 'a' + 10);
            } else if (c >= 'A' && c <= 'F') {
                digit = static_cast<std::uint32_t>(c - 'A' + 10);
            } else {
                return false;
            }
            value = value * 16 + digit;
        }
        out = value;
        return true;
    }

    /// Marks `bit` in `seen`; false if it was already there (a repeated member).
    [[nodiscard]] static bool first(unsigned& seen, unsigned bit) noexcept {
        const bool was = (seen & bit) != 0;
        seen |= bit;
        return !was;
    }

    const char* p_;
    const char* end_;
    std::vector<std::pair<NodeId, std::uint64_t>> entries_; // reused by every clock
};

} // namespace geo::detail
