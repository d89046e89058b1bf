// The fast path of to_json_text / from_json_text for std::vector<FanoutEntry>
// (detail/batch_json.hpp) against the DOM path it stands in for: the same bytes written, the
// same values read, and wherever the fast reader gives up, the DOM's value or error.

#include <geo/json.hpp>

#include "geo_test.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

using nlohmann::json;

namespace {

using Batch = std::vector<geo::FanoutEntry>;
constexpr std::uint64_t u64_max = std::numeric_limits<std::uint64_t>::max();

/// What reading a text gives: a batch, or the message of the ParseError thrown.
struct Outcome {
    std::optional<Batch> batch;
    std::string error;
    friend bool operator==(const Outcome& a, const Outcome& b) {
        return a.batch == b.batch && a.error == b.error;
    }
};

template <class Read>
Outcome outcome_of(Read&& read) {
    Outcome result;
    try {
        result.batch = read();
    } catch (const geo::ParseError& e) {
        result.error = e.what();
    }
    return result;
}

Outcome dom_read(std::string_view text) {
    return outcome_of([&] { return geo::detail::from_json_text_dom<Batch>(text); });
}

Outcome public_read(std::string_view text) {
    return outcome_of([&] { return geo::from_json_text<Batch>(text); });
}

std::string fast_write(const Batch& batch) {
    std::string text;
    REQUIRE(geo::detail::write_batch_json(batch, text));
    return text;
}

class Random {
public:
    explicit Random(std::uint64_t seed) : engine_(seed) {}

    std::size_t below(std::size_t n) {
        return std::uniform_int_distribution<std::size_t>(0, n - 1)(engine_);
    }
    bool coin() { return below(2) == 0; }

    template <class T>
    const T& pick(const std::vector<T>& items) {
        return items[below(items.size())];
    }

    std::uint64_t number() {
        static const std::vector<std::uint64_t> special{
            0, 1, 9, 10, 99, 1700000000123, u64_max, u64_max - 1};
        return coin() ? pick(special) : std::uniform_int_distribution<std::uint64_t>()(engine_);
    }

    /// Pieces that test escaping: quotes, backslashes, every control character, DEL, slash,
    /// and 2-, 3- and 4-byte UTF-8.
    std::string text() {
        static const std::vector<std::string> pieces = [] {
            std::vector<std::string> p{
                "\"",           "\\", "/",        "\x7f",         "a",
                "key:1",        " ",  "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
                "\xEF\xBF\xBF", "u00"};
            for (int c = 0; c < 0x20; ++c) {
                p.emplace_back(1, static_cast<char>(c));
            }
            return p;
        }();
        std::string s;
        for (std::size_t n = below(6); n > 0; --n) {
            s += pick(pieces);
        }
        return s;
    }

    geo::VectorClock clock() {
        static const std::vector<geo::NodeId> nodes{
            0, 1, 2, 3, 7, 10, 11, 99, 100, 123456789012, u64_max};
        geo::VectorClock clock;
        for (std::size_t n = below(7); n > 0; --n) {
            clock.set(pick(nodes), number());
        }
        return clock;
    }

    Batch batch() {
        Batch batch(below(5));
        for (auto& entry : batch) {
            entry.key = text();
            entry.seq = number();
            entry.prev_seq = number();
            entry.record.region = coin() ? "us-east-1" : text();
            entry.record.timestamp_ms = number();
            entry.record.clock = clock();
            entry.record.value = text();
            entry.record.seq = number();
            entry.record.deleted = coin();
        }
        return batch;
    }

    /// `j` written with its object members in a random order (nlohmann sorts them).
    std::string shuffled(const json& j) {
        if (!j.is_object() && !j.is_array()) {
            return j.dump();
        }
        std::vector<std::string> parts;
        for (auto it = j.begin(); it != j.end(); ++it) {
            parts.push_back((j.is_object() ? json(it.key()).dump() + ":" : "") + shuffled(*it));
        }
        if (j.is_object()) {
            std::shuffle(parts.begin(), parts.end(), engine_);
        }
        std::string out(1, j.is_object() ? '{' : '[');
        for (std::size_t i = 0; i < parts.size(); ++i) {
            out += (i == 0 ? "" : ",") + parts[i];
        }
        return out + (j.is_object() ? '}' : ']');
    }

    /// One random edit: a byte changed, deleted, or text inserted.
    std::string mutated(std::string text) {
        static const std::vector<std::string> inserts{" ",
                                                      "\n",
                                                      "\t",
                                                      "\r",
                                                      "\f",
                                                      ",",
                                                      ":",
                                                      "0",
                                                      "1",
                                                      "-",
                                                      ".5",
                                                      "e1",
                                                      "\"x\":1,",
                                                      "\"seq\":1,",
                                                      "\"prev_seq\":2,",
                                                      "\"deleted\":true,",
                                                      "\"0\":0,",
                                                      "\"07\":3,",
                                                      "\"7\":1,",
                                                      "\\u00e9",
                                                      "\\ud83d\\ude00",
                                                      "\\ud800",
                                                      "\\/",
                                                      "\xEF\xBB\xBF",
                                                      "\xC3",
                                                      "\x01",
                                                      "{",
                                                      "}",
                                                      "[",
                                                      "]",
                                                      "null",
                                                      "\"\"",
                                                      "true"};
        if (text.empty()) {
            return pick(inserts);
        }
        const std::size_t at = below(text.size());
        switch (below(3)) {
        case 0:
            text[at] = static_cast<char>(below(256));
            break;
        case 1:
            text.erase(at, 1 + below(3));
            break;
        default:
            text.insert(at, pick(inserts));
            break;
        }
        return text;
    }

private:
    std::mt19937_64 engine_;
};

} // namespace

TEST_CASE("the fast writer writes the bytes nlohmann's dump writes", "[batch_json]") {
    Random random(1);
    for (int i = 0; i < 3000; ++i) {
        const Batch batch = random.batch();
        const std::string expected = json(batch).dump();
        REQUIRE(fast_write(batch) == expected);
        REQUIRE(geo::to_json_text(batch) == expected);
        REQUIRE(geo::to_json_text(batch, 2) == json(batch).dump(2));
    }
}

TEST_CASE("the fast reader reads written batches as the DOM reads them", "[batch_json]") {
    Random random(2);
    for (int i = 0; i < 3000; ++i) {
        const Batch batch = random.batch();
        const std::string text = json(batch).dump();
        const auto fast = geo::detail::read_batch_json(text);
        REQUIRE(fast.has_value());
        REQUIRE(*fast == batch);
        REQUIRE(dom_read(text).batch == fast);
        // Pretty-printed and with members in any order, it still reads without the DOM.
        const json dom = batch;
        REQUIRE(geo::detail::read_batch_json(dom.dump(2)) == fast);
        REQUIRE(geo::detail::read_batch_json(random.shuffled(dom)) == fast);
    }
}

TEST_CASE("mutated texts: what the fast reader accepts the DOM reads alike, the rest goes to "
          "the DOM",
          "[batch_json]") {
    Random random(3);
    std::size_t accepted = 0;
    std::size_t gave_up = 0;
    for (int i = 0; i < 1500; ++i) {
        const json dom = random.batch();
        const std::string original = random.coin() ? dom.dump() : random.shuffled(dom);
        for (int trial = 0; trial < 12; ++trial) {
            // One or two edits of the original: most mutants stay near valid.
            std::string text = random.mutated(original);
            if (random.coin()) {
                text = random.mutated(text);
            }
            const Outcome expected = dom_read(text);
            const auto fast = geo::detail::read_batch_json(text);
            if (fast) {
                ++accepted;
                INFO(text);
                REQUIRE(expected.batch == fast);
            } else {
                ++gave_up;
            }
            REQUIRE(public_read(text) == expected);
        }
    }
    // Both sides of the property were exercised.
    CHECK(accepted > 500);
    CHECK(gave_up > 500);
}

TEST_CASE("texts the fast reader declines read or fail exactly as through the DOM",
          "[batch_json]") {
    const std::string record =
        R"({"clock":{"clocks":{"1":2}},"region":"r","timestamp_ms":5,"value":"v"})";
    const std::string entry = R"({"key":"k","record":)" + record + R"(,"seq":3})";
    const std::vector<std::string> texts{
        "",
        "null",
        "{}",
        "[1]",
        "[null]",
        "[{}]",
        "[" + entry + ",]",
        "[" + entry + "]x",
        "[" + entry + "] []",
        "\xEF\xBB\xBF[" + entry + "]",                                            // BOM
        R"([["k",)" + record + ",3]]",                                            // tuple form
        R"([{"key":"k","record":)" + record + R"(,"seq":3,"x":1}])",              // unknown key
        R"([{"key":"k","key":"j","record":)" + record + R"(,"seq":3}])",          // duplicate key
        R"([{"record":)" + record + R"(,"seq":3}])",                              // missing key
        R"([{"key":"k","seq":3}])",                                               // missing record
        R"([{"key":"k","record":)" + record + "}]",                               // missing seq
        R"([{"key":"k","record":)" + record + R"(,"seq":-1}])",                   // sign
        R"([{"key":"k","record":)" + record + R"(,"seq":-0}])",                   // DOM reads 0
        R"([{"key":"k","record":)" + record + R"(,"seq":1.0}])",                  // fraction
        R"([{"key":"k","record":)" + record + R"(,"seq":1e2}])",                  // exponent
        R"([{"key":"k","record":)" + record + R"(,"seq":01}])",                   // leading zero
        R"([{"key":"k","record":)" + record + R"(,"seq":18446744073709551616}])", // > u64
        R"([{"key":"k","record":)" + record + R"(,"seq":"3"}])",
        R"([{"key":1,"record":)" + record + R"(,"seq":3}])",
        R"([{"k\u0065y":"k","record":)" + record + R"(,"seq":3}])",  // escaped name: DOM reads
        "[{\"key\":\"a\x01\",\"record\":" + record + ",\"seq\":3}]", // raw control character
        "[{\"key\":\"\xC3\",\"record\":" + record + ",\"seq\":3}]",  // invalid UTF-8
        "[{\"key\":\"\xED\xA0\x80\",\"record\":" + record + ",\"seq\":3}]", // encoded surrogate
        R"([{"key":"\ud800","record":)" + record + R"(,"seq":3}])",         // lone surrogate
        R"([{"key":"\udc00","record":)" + record + R"(,"seq":3}])",
        R"([{"key":"\ud800\u0041","record":)" + record + R"(,"seq":3}])",
        R"([{"key":"\x","record":)" + record + R"(,"seq":3}])",
        R"([{"key":"\u12g4","record":)" + record + R"(,"seq":3}])",
        R"([{"key":"k","record":{"clock":{"clocks":{"1":2}},"region":"r","timestamp_ms":5,)"
        R"("value":"v","deleted":1},"seq":3}])",
        R"([{"key":"k","record":{"clock":{"clocks":{"1":2}},"region":"r","timestamp_ms":5,)"
        R"("value":"v","deleted":null},"seq":3}])",
        R"([{"key":"k","record":{"clock":{"clocks":{"1":2}},"region":"r","value":"v"},"seq":3}])",
        R"([{"key":"k","record":{"clock":{"clocks":{"1":2}},"timestamp_ms":5,"value":"v"},)"
        R"("seq":3}])",
        R"([{"key":"k","record":{"clock":{"clocks":{"7":5,"7":1}},"region":"r","timestamp_ms":5,)"
        R"("value":"v"},"seq":3}])", // the DOM keeps the last of equal keys
        R"([{"key":"k","record":{"clock":{"clocks":{"7":1,"07":5}},"region":"r",)"
        R"("timestamp_ms":5,"value":"v"},"seq":3}])", // one node twice: the DOM keeps the max
        R"([{"key":"k","record":{"clock":{"clocks":{"x":1}},"region":"r","timestamp_ms":5,)"
        R"("value":"v"},"seq":3}])",
        R"([{"key":"k","record":{"clock":{"clocks":{"18446744073709551616":1}},"region":"r",)"
        R"("timestamp_ms":5,"value":"v"},"seq":3}])",
        R"([{"key":"k","record":{"clock":{"clocks":{"1":-1}},"region":"r","timestamp_ms":5,)"
        R"("value":"v"},"seq":3}])",
        R"([{"key":"k","record":{"clock":{},"region":"r","timestamp_ms":5,"value":"v"},"seq":3}])",
        R"([{"key":"k","record":{"clock":{"clocks":{},"x":1},"region":"r","timestamp_ms":5,)"
        R"("value":"v"},"seq":3}])",
        R"([{"key":"k","record":{"clock":{"clocks":[]},"region":"r","timestamp_ms":5,)"
        R"("value":"v"},"seq":3}])",
    };
    for (const auto& text : texts) {
        INFO(text);
        CHECK_FALSE(geo::detail::read_batch_json(text).has_value());
        CHECK(public_read(text) == dom_read(text));
    }
    // Spot checks that the comparison above compares something.
    CHECK(public_read(texts[0]).error ==
          "geo parse error: invalid JSON: parse error at line 1, "
          "column 1: syntax error while parsing value - unexpected end of input; "
          "expected '[', '{', or a literal");
    CHECK(public_read(texts[13]).error == "geo parse error: [0].key: missing required field");
}

TEST_CASE("the fast reader reads the optional fields, escapes and whitespace as the DOM does",
          "[batch_json]") {
    const std::vector<std::string> texts{
        "[]",
        " \t\r\n[ ] \n",
        R"([{"key":"k","record":{"clock":{"clocks":{}},"region":"r","timestamp_ms":5,)"
        R"("value":""},"seq":3}])",
        R"([{"seq":3,"record":{"value":"v","timestamp_ms":0,"region":"","clock":{"clocks":)"
        R"({"10":0,"2":7,"0":1,"012":4}},"deleted":false,"seq":0},"key":"","prev_seq":2}])",
        "[ {\n \"key\" : \"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\\u001F\\u00e9\\u20AC\\ud83d\\ude00\" ,"
        "\"record\":{\"clock\":{\"clocks\":{\"18446744073709551615\":18446744073709551615}},"
        "\"region\":\"\xC3\xA9\",\"timestamp_ms\":18446744073709551615,\"value\":\"\x7f\","
        "\"deleted\":true} , \"seq\":0 } ]",
    };
    for (const auto& text : texts) {
        INFO(text);
        const auto fast = geo::detail::read_batch_json(text);
        REQUIRE(fast.has_value());
        REQUIRE(dom_read(text).batch == fast);
    }
    const Batch escaped = *geo::detail::read_batch_json(texts[4]);
    CHECK(escaped[0].key ==
          std::string("\"\\/\b\f\n\r\t\0\x1f\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 19));
    CHECK(escaped[0].record.clock == geo::VectorClock{{u64_max, u64_max}});
}

TEST_CASE("a string that is not UTF-8 fails to write with the DOM path's error", "[batch_json]") {
    for (const char* bad : {"\xC3", "\xED\xA0\x80", "ok\xFF"}) {
        for (int field = 0; field < 3; ++field) {
            Batch batch(2);
            batch[1].record.clock = geo::VectorClock{{1, 2}};
            (field == 0   ? batch[1].key
             : field == 1 ? batch[1].record.region
                          : batch[1].record.value) = bad;
            std::string text;
            CHECK_FALSE(geo::detail::write_batch_json(batch, text));
            std::string expected;
            try {
                (void)geo::detail::to_json_text_dom(batch);
            } catch (const geo::Error& e) {
                expected = e.what();
            }
            REQUIRE_THAT(expected, geo_test::contains("cannot write JSON: "));
            REQUIRE_THROWS_WITH(geo::to_json_text(batch), expected);
        }
    }
}
