#include <geo/detail/utf8.hpp>

#include "geo_test.hpp"

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

using geo::detail::is_valid_utf8;

namespace {

/// The reference: whether nlohmann::json can write `s` with its default (strict) error
/// handler, which throws type_error 316 for invalid UTF-8.
bool nlohmann_accepts(const std::string& s) {
    try {
        (void)nlohmann::json(s).dump();
        return true;
    } catch (const nlohmann::json::type_error& e) {
        if (e.id != 316) {
            throw;
        }
        return false;
    }
}

std::string bytes(std::initializer_list<unsigned> values) {
    std::string s;
    for (unsigned v : values) {
        s += static_cast<char>(static_cast<unsigned char>(v));
    }
    return s;
}

/// `cp` in the UTF-8 bit layout of `length` bytes, whether or not that is well formed: with a
/// longer length than needed it is an overlong form, and surrogates or values above U+10FFFF
/// encode like any other value.
std::string encode(std::uint32_t cp, int length) {
    if (length == 1) {
        return bytes({cp});
    }
    static constexpr unsigned lead_marks[] = {0, 0, 0xC0U, 0xE0U, 0xF0U};
    std::string s(static_cast<std::size_t>(length), '\0');
    for (int k = length - 1; k > 0; --k) {
        s[static_cast<std::size_t>(k)] =
            static_cast<char>(static_cast<unsigned char>(0x80U | (cp & 0x3FU)));
        cp >>= 6;
    }
    s[0] = static_cast<char>(static_cast<unsigned char>(lead_marks[length] | cp));
    return s;
}

/// The shortest encoding of `cp` (up to U+1FFFFF).
std::string encode(std::uint32_t cp) {
    return encode(cp, cp < 0x80U ? 1 : cp < 0x800U ? 2 : cp < 0x10000U ? 3 : 4);
}

std::string hex(const std::string& s) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string out;
    for (char c : s) {
        const auto b = static_cast<unsigned char>(c);
        out += digits[b >> 4];
        out += digits[b & 0xFU];
        out += ' ';
    }
    return out;
}

struct EdgeCase {
    const char* description;
    std::string text;
    bool valid;
};

std::vector<EdgeCase> edge_cases() {
    return {
        {"empty", "", true},
        {"ASCII", "user:42/profile", true},
        {"embedded NUL", std::string("a\0b", 3), true},
        {"only NULs, more than a chunk", std::string(19, '\0'), true},
        {"U+007F", bytes({0x7F}), true},
        {"U+0080", bytes({0xC2, 0x80}), true},
        {"U+07FF", bytes({0xDF, 0xBF}), true},
        {"U+0800", bytes({0xE0, 0xA0, 0x80}), true},
        {"U+D7FF, below the surrogates", bytes({0xED, 0x9F, 0xBF}), true},
        {"U+E000, above the surrogates", bytes({0xEE, 0x80, 0x80}), true},
        {"U+FFFF", bytes({0xEF, 0xBF, 0xBF}), true},
        {"U+10000", bytes({0xF0, 0x90, 0x80, 0x80}), true},
        {"U+10FFFF", bytes({0xF4, 0x8F, 0xBF, 0xBF}), true},
        {"mixed scripts and emoji", "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80", true},
        {"overlong 2-byte NUL", bytes({0xC0, 0x80}), false},
        {"overlong 2-byte U+007F", bytes({0xC1, 0xBF}), false},
        {"overlong 3-byte NUL", bytes({0xE0, 0x80, 0x80}), false},
        {"overlong 3-byte U+07FF", bytes({0xE0, 0x9F, 0xBF}), false},
        {"overlong 4-byte NUL", bytes({0xF0, 0x80, 0x80, 0x80}), false},
        {"overlong 4-byte U+FFFF", bytes({0xF0, 0x8F, 0xBF, 0xBF}), false},
        {"surrogate U+D800", bytes({0xED, 0xA0, 0x80}), false},
        {"surrogate U+DBFF", bytes({0xED, 0xAF, 0xBF}), false},
        {"surrogate U+DC00", bytes({0xED, 0xB0, 0x80}), false},
        {"surrogate U+DFFF", bytes({0xED, 0xBF, 0xBF}), false},
        {"surrogate pair (CESU-8)", bytes({0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80}), false},
        {"U+110000", bytes({0xF4, 0x90, 0x80, 0x80}), false},
        {"lead F5", bytes({0xF5, 0x80, 0x80, 0x80}), false},
        {"lead F7, U+1FFFFF", bytes({0xF7, 0xBF, 0xBF, 0xBF}), false},
        {"5-byte form", bytes({0xF8, 0x88, 0x80, 0x80, 0x80}), false},
        {"6-byte form", bytes({0xFC, 0x84, 0x80, 0x80, 0x80, 0x80}), false},
        {"byte FE", bytes({0xFE}), false},
        {"byte FF", bytes({0xFF}), false},
        {"lone continuation 80", bytes({0x80}), false},
        {"lone continuation BF", bytes({0xBF}), false},
        {"continuation between ASCII", "a\x80z", false},
        {"continuation after a complete character", bytes({0xC3, 0xA9, 0xA9}), false},
        {"truncated 2-byte at the end", "abc" + bytes({0xC3}), false},
        {"truncated 3-byte at the end", "abc" + bytes({0xE2, 0x82}), false},
        {"truncated 4-byte at the end", "abc" + bytes({0xF0, 0x9F, 0x98}), false},
        {"truncated 3-byte before ASCII", bytes({0xE2, 0x82}) + "A", false},
        {"truncated 4-byte before a lead", bytes({0xF0, 0x9F, 0xC3, 0xA9}), false},
        {"multi-byte after a full ASCII chunk", "12345678" + bytes({0xC3, 0xA9}), true},
        {"multi-byte across a chunk boundary", "1234567" + bytes({0xF0, 0x9F, 0x98, 0x80}), true},
        {"truncated after a full ASCII chunk", "12345678" + bytes({0xC3}), false},
        {"invalid byte after two ASCII chunks", "1234567890abcdef" + bytes({0xFF}), false},
        {"invalid byte inside the second chunk", "1234567890" + bytes({0x80}) + "bcdef", false},
    };
}

} // namespace

TEST_CASE("is_valid_utf8 and nlohmann agree on the edge cases", "[utf8]") {
    for (const auto& edge : edge_cases()) {
        INFO(edge.description << ": " << hex(edge.text));
        CHECK(is_valid_utf8(edge.text) == edge.valid);
        CHECK(nlohmann_accepts(edge.text) == edge.valid);
    }
}

TEST_CASE("is_valid_utf8 reads only the bytes of its view", "[utf8]") {
    const std::string text = "abcdefgh" + bytes({0xC3, 0xA9});
    CHECK(is_valid_utf8(std::string_view(text.data(), 9)) == false); // cuts the character
    CHECK(is_valid_utf8(std::string_view(text.data(), 8)));
    CHECK(is_valid_utf8(std::string_view(text.data() + 8, 2)));
    CHECK(is_valid_utf8(std::string_view()));
}

TEST_CASE("every code point's shortest encoding is valid unless it is a surrogate", "[utf8]") {
    std::size_t mismatches = 0;
    for (std::uint32_t cp = 0; cp <= 0x10FFFFU; ++cp) {
        const bool surrogate = cp >= 0xD800U && cp <= 0xDFFFU;
        const std::string text = encode(cp);
        if (is_valid_utf8(text) == surrogate) {
            ++mismatches;
            INFO("U+" << std::hex << cp);
            CHECK(false);
        }
        if (cp % 61 == 0 || surrogate) {
            INFO("U+" << std::hex << cp);
            CHECK(nlohmann_accepts(text) == !surrogate);
        }
    }
    CHECK(mismatches == 0);
    // Above U+10FFFF the 4-byte layout is never valid, nor is any overlong form.
    for (std::uint32_t cp : {0x110000U, 0x13FFFFU, 0x140000U, 0x1FFFFFU}) {
        CHECK_FALSE(is_valid_utf8(encode(cp, 4)));
    }
    for (std::uint32_t cp : {0x0U, 0x41U, 0x7FFU, 0xFFFFU}) {
        for (int length = (cp < 0x80U ? 2 : cp < 0x800U ? 3 : 4); length <= 4; ++length) {
            INFO("U+" << std::hex << cp << " in " << length << " bytes");
            CHECK_FALSE(is_valid_utf8(encode(cp, length)));
        }
    }
}

TEST_CASE("is_valid_utf8 agrees with nlohmann on every 1- and 2-byte string", "[utf8]") {
    std::size_t disagreements = 0;
    for (unsigned a = 0; a < 256; ++a) {
        const std::string one = bytes({a});
        disagreements += is_valid_utf8(one) != nlohmann_accepts(one) ? 1U : 0U;
        for (unsigned b = 0; b < 256; ++b) {
            const std::string two = bytes({a, b});
            if (is_valid_utf8(two) != nlohmann_accepts(two)) {
                ++disagreements;
                INFO(hex(two));
                CHECK(false);
            }
        }
    }
    CHECK(disagreements == 0);
}

TEST_CASE("is_valid_utf8 agrees with nlohmann on 3- and 4-byte strings around every lead byte",
          "[utf8]") {
    // Every lead byte (a 2-byte lead followed by anything is covered above) and second byte;
    // the later bytes at the edges of the continuation range.
    const unsigned later[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
    const unsigned last[] = {0x7F, 0x80, 0xBF, 0xC0};
    std::size_t checked = 0;
    std::size_t disagreements = 0;
    const auto compare = [&](const std::string& text) {
        ++checked;
        if (is_valid_utf8(text) != nlohmann_accepts(text)) {
            ++disagreements;
            INFO(hex(text));
            CHECK(false);
        }
    };
    for (unsigned lead = 0xC0; lead < 0x100; ++lead) {
        for (unsigned second = 0; second < 256; ++second) {
            for (unsigned third : later) {
                compare(bytes({lead, second, third}));
                if (lead >= 0xF0U && lead < 0xF8U) {
                    for (unsigned fourth : last) {
                        compare(bytes({lead, second, third, fourth}));
                    }
                }
            }
        }
    }
    CHECK(checked > 250000);
    CHECK(disagreements == 0);
}

TEST_CASE("is_valid_utf8 agrees with nlohmann wherever a defect sits relative to a chunk",
          "[utf8]") {
    const std::string defects[] = {bytes({0x80}),       bytes({0xC0, 0x80}),
                                   bytes({0xED, 0xA0, 0x80}), bytes({0xF4, 0x90, 0x80, 0x80}),
                                   bytes({0xE2, 0x82}), bytes({0xFF})};
    const std::string fine[] = {bytes({0xC3, 0xA9}), bytes({0xE2, 0x82, 0xAC}),
                                bytes({0xF0, 0x9F, 0x98, 0x80})};
    for (std::size_t prefix = 0; prefix <= 24; ++prefix) {
        for (std::size_t suffix : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{8},
                                   std::size_t{13}}) {
            const std::string before(prefix, 'k');
            const std::string after(suffix, 'v');
            for (const auto& defect : defects) {
                const std::string text = before + defect + after;
                INFO(hex(text));
                CHECK_FALSE(is_valid_utf8(text));
                CHECK_FALSE(nlohmann_accepts(text));
            }
            for (const auto& character : fine) {
                const std::string text = before + character + after;
                INFO(hex(text));
                CHECK(is_valid_utf8(text));
                CHECK(nlohmann_accepts(text));
            }
        }
    }
}

TEST_CASE("is_valid_utf8 agrees with nlohmann on random strings biased toward multi-byte forms",
          "[utf8]") {
    constexpr std::uint32_t seed = 0x6E0u;
    std::mt19937 rng(seed);
    const auto pick = [&rng](std::size_t n) {
        return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
    };
    // Code points at the boundaries of the encoding lengths, the surrogates and the range.
    const std::uint32_t edges[] = {0x0,    0x7F,   0x80,    0x7FF,   0x800,    0xFFF,
                                   0x1000, 0xD7FF, 0xD800,  0xDBFF,  0xDC00,   0xDFFF,
                                   0xE000, 0xFFFD, 0xFFFF,  0x10000, 0x3FFFF,  0x40000,
                                   0xFFFFF, 0x100000, 0x10FFFF, 0x110000, 0x13FFFF, 0x1FFFFF};
    const unsigned interesting[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                    0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE,
                                    0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF7, 0xF8, 0xFE, 0xFF};
    const auto random_code_point = [&]() -> std::uint32_t {
        switch (pick(3)) {
        case 0: {
            const std::uint32_t edge = edges[pick(std::size(edges))];
            const auto delta = static_cast<std::uint32_t>(pick(3));
            return pick(2) == 0 || edge < delta ? edge + delta : edge - delta;
        }
        case 1:
            return static_cast<std::uint32_t>(pick(0x110000));
        default:
            return static_cast<std::uint32_t>(0x80 + pick(0x800 - 0x80));
        }
    };
    std::size_t valid = 0;
    std::size_t invalid = 0;
    constexpr int rounds = 40000;
    for (int round = 0; round < rounds; ++round) {
        std::string text;
        const std::size_t pieces = 1 + pick(6);
        for (std::size_t p = 0; p < pieces; ++p) {
            switch (pick(10)) {
            case 0:
            case 1: // an ASCII run, often long enough for a whole chunk
                text.append(pick(12), static_cast<char>('a' + pick(26)));
                break;
            case 2:
            case 3:
            case 4: // a code point, shortest form (may be a surrogate or beyond U+10FFFF)
                text += encode(random_code_point());
                break;
            case 5: { // a code point in a random length: often overlong or ill-formed
                const std::uint32_t cp = random_code_point();
                text += encode(cp & 0x1FFFFFU, static_cast<int>(2 + pick(3)));
                break;
            }
            case 6: { // a valid character cut short
                const std::string whole = encode(random_code_point());
                text += whole.substr(0, whole.size() > 1 ? 1 + pick(whole.size() - 1) : 1);
                break;
            }
            case 7:
            case 8: // a byte from the edges of the lead and continuation ranges
                text += bytes({interesting[pick(std::size(interesting))]});
                break;
            default: // any byte
                text += bytes({static_cast<unsigned>(pick(256))});
                break;
            }
        }
        const bool ours = is_valid_utf8(text);
        if (ours != nlohmann_accepts(text)) {
            INFO("seed " << seed << ", round " << round << ": " << hex(text));
            CHECK(false);
        }
        (ours ? valid : invalid) += 1;
    }
    // Both answers must be common, or the comparison would prove little.
    CHECK(valid > rounds / 10);
    CHECK(invalid > rounds / 10);
}
