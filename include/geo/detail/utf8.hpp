#pragma once

/// UTF-8 validation for keys and values on the write path: a string that is not valid UTF-8
/// cannot be written as JSON (nlohmann's dump throws type_error 316), so a replicator that
/// accepted one could never ship the batches holding it.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace geo::detail {

/// Whether `s` is well-formed UTF-8 as RFC 3629 defines it (Table 3-7 of the Unicode
/// standard): no overlong forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no
/// truncated sequence. NUL is valid. It accepts exactly what nlohmann::json's dump accepts.
///
/// Runs on every write's key and value, which are mostly short and ASCII: eight bytes at a time
/// while they are all ASCII, one code point at a time otherwise.
/// Whether every byte of `s` is ASCII: the words of the string OR-ed together (the last ones
/// overlapping), one test at the end. Branch-light: this runs on every write.
[[nodiscard]] inline bool is_ascii(std::string_view s) noexcept {
    const char* p = s.data();
    const std::size_t n = s.size();
    std::uint64_t any = 0;
    if (n >= 8) {
        // Whole words, then the last word (overlapping what was read): no per-byte tail.
        std::uint64_t w = 0;
        std::size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            std::memcpy(&w, p + i, 8);
            any |= w;
        }
        std::memcpy(&w, p + n - 8, 8);
        any |= w;
    } else if (n >= 4) {
        std::uint32_t c = 0;
        std::uint32_t d = 0;
        std::memcpy(&c, p, 4);
        std::memcpy(&d, p + n - 4, 4);
        any = c | d;
    } else if (n > 0) {
        // One to three bytes: the first, the middle and the last (some may coincide).
        any = static_cast<unsigned char>(p[0]) | static_cast<unsigned char>(p[n / 2]) |
              static_cast<unsigned char>(p[n - 1]);
    }
    return (any & 0x8080808080808080U) == 0;
}

[[nodiscard]] inline bool is_valid_utf8(std::string_view s) noexcept {
    if (is_ascii(s)) {
        return true; // the common case, decided without a branch per word
    }
    constexpr std::uint64_t high_bits = 0x8080808080808080U;
    const char* const data = s.data();
    const std::size_t size = s.size();
    std::size_t i = 0;
    while (i < size) {
        if (size - i >= 8) {
            std::uint64_t chunk = 0;
            std::memcpy(&chunk, data + i, sizeof chunk);
            if ((chunk & high_bits) == 0) {
                i += 8;
                continue;
            }
        }
        const auto lead = static_cast<unsigned char>(data[i]);
        if (lead < 0x80U) {
            ++i;
            continue;
        }
        // The sequence length and the range of its second byte, which is where overlongs,
        // surrogates and code points above U+10FFFF show; later bytes are 0x80..0xBF.
        std::size_t length = 0;
        unsigned lo = 0x80U;
        unsigned hi = 0xBFU;
        if (lead < 0xC2U) { // a continuation byte, or C0/C1 (overlong 2-byte forms)
            return false;
        }
        if (lead < 0xE0U) {
            length = 2;
        } else if (lead < 0xF0U) {
            length = 3;
            if (lead == 0xE0U) {
                lo = 0xA0U; // below: overlong
            } else if (lead == 0xEDU) {
                hi = 0x9FU; // above: surrogates
            }
        } else if (lead < 0xF5U) {
            length = 4;
            if (lead == 0xF0U) {
                lo = 0x90U; // below: overlong
            } else if (lead == 0xF4U) {
                hi = 0x8FU; // above: beyond U+10FFFF
            }
        } else {
            return false;
        }
        if (size - i < length) {
            return false;
        }
        const unsigned second = static_cast<unsigned char>(data[i + 1]);
        if (second < lo || second > hi) {
            return false;
        }
        for (std::size_t k = 2; k < length; ++k) {
            if ((static_cast<unsigned char>(data[i + k]) & 0xC0U) != 0x80U) {
                return false;
            }
        }
        i += length;
    }
    return true;
}

/// `s` with printable ASCII kept and every other byte as \xNN, for error messages.
[[nodiscard]] inline std::string escape_bytes(std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (const char c : s) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte >= 0x20 && byte < 0x7f && byte != '\\') {
            out.push_back(c);
        } else {
            out += "\\x";
            out.push_back(hex[byte >> 4]);
            out.push_back(hex[byte & 0xf]);
        }
    }
    return out;
}

} // namespace geo::detail
