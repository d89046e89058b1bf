#pragma once

/// The reader machinery behind geo/json.hpp: errors that carry a field path, the generic
/// `read_value`/`read_field` readers, the wire forms several types share (durations, both
/// ways; node id keys; unsigned sizes), and text to and from a value through nlohmann's DOM.
/// Kept apart from the per-type conversions so that json.hpp reads as the wire format, one type
/// after another. Include <geo/json.hpp>, not this header: everything here is an implementation
/// detail.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../error.hpp"
#include "../types.hpp"

namespace geo::detail {

using json = nlohmann::json;

// ---- errors that name the offending field -------------------------------------------------

/// The ParseError every reader here throws: it keeps the field path apart from the reason so
/// that an enclosing reader can prefix its own field name. Catch it as geo::ParseError.
class FieldParseError : public ParseError {
public:
    FieldParseError(std::string path, std::string reason)
        : ParseError(path.empty() ? reason : path + ": " + reason), path_(std::move(path)),
          reason_(std::move(reason)) {}

    /// e.g. `routing_rules[1].consistency`; empty for the document itself.
    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    [[nodiscard]] const std::string& reason() const noexcept { return reason_; }

private:
    std::string path_;
    std::string reason_;
};

/// `segment` is a key (`clock`) or an index (`[1]`); `inner` is the path below it.
[[nodiscard]] inline std::string join_path(std::string_view segment, std::string_view inner) {
    std::string path(segment);
    if (!inner.empty()) {
        if (!path.empty() && inner.front() != '[') {
            path += '.';
        }
        path += inner;
    }
    return path;
}

/// nlohmann's message without its `[json.exception.type_error.302] ` id.
[[nodiscard]] inline std::string nlohmann_reason(std::string_view what) {
    if (!what.empty() && what.front() == '[') {
        if (auto end = what.find("] "); end != std::string_view::npos) {
            what.remove_prefix(end + 2);
        }
    }
    return std::string(what);
}

/// A ParseError's message without the prefix its constructor adds.
[[nodiscard]] inline std::string parse_error_reason(const ParseError& error) {
    const std::string prefix = ParseError("").what();
    std::string_view what = error.what();
    if (what.substr(0, prefix.size()) == prefix) {
        what.remove_prefix(prefix.size());
    }
    return std::string(what);
}

/// Runs `read`, prefixing `segment` to the path of any error it throws; nlohmann's own
/// exceptions become FieldParseError here, so none escapes a reader.
template <class Read>
void within(std::string_view segment, Read&& read) {
    try {
        std::forward<Read>(read)();
    } catch (const FieldParseError& e) {
        throw FieldParseError(join_path(segment, e.path()), e.reason());
    } catch (const ParseError& e) {
        throw FieldParseError(std::string(segment), parse_error_reason(e));
    } catch (const json::exception& e) {
        throw FieldParseError(std::string(segment), nlohmann_reason(e.what()));
    }
}

// ---- message pieces -----------------------------------------------------------------------

/// A short description of a value for messages: scalars verbatim, containers by kind.
[[nodiscard]] inline std::string describe(const json& j) {
    switch (j.type()) {
    case json::value_t::string:
        return "a string";
    case json::value_t::object:
        return "an object";
    case json::value_t::array:
        return "an array";
    case json::value_t::null:
    case json::value_t::boolean:
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
        return j.dump();
    case json::value_t::binary:
    case json::value_t::discarded:
        break;
    }
    return j.type_name();
}

/// A string as a quoted, escaped JSON literal, for messages.
[[nodiscard]] inline std::string quoted(const std::string& text) {
    return json(text).dump(-1, ' ', false, json::error_handler_t::replace);
}

// ---- read_value: one JSON value into one C++ value ----------------------------------------

/// Every object reader starts here, so that a scalar where an object belongs is reported as
/// such rather than as a missing field.
inline void expect_object(const json& j) {
    if (!j.is_object()) {
        throw FieldParseError("", "expected an object, found " + describe(j));
    }
}

// read_value: one overload per field type; every container overload records the element's
// position in the path. All are declared before any is defined, so they find each other.
inline void read_value(const json& j, std::string& out);
inline void read_value(const json& j, std::uint64_t& out);
inline void read_value(const json& j, bool& out);
inline void read_value(const json& j, std::chrono::nanoseconds& out);
template <class T>
void read_value(const json& j, std::optional<T>& out);
template <class T>
void read_value(const json& j, std::vector<T>& out);
template <class T>
void read_value(const json& j, std::map<std::string, T>& out);
template <class T>
void read_value(const json& j, T& out);

inline void read_value(const json& j, std::string& out) {
    if (!j.is_string()) {
        throw FieldParseError("", "expected a string, found " + describe(j));
    }
    out = j.get_ref<const std::string&>();
}

/// Unsigned only: nlohmann would silently wrap -1 to 2^64-1 and truncate 1.5, serde rejects both.
inline void read_value(const json& j, std::uint64_t& out) {
    if (j.is_number_unsigned()) {
        out = j.get<std::uint64_t>();
    } else if (j.is_number_integer() && j.get<std::int64_t>() >= 0) {
        out = static_cast<std::uint64_t>(j.get<std::int64_t>());
    } else {
        throw FieldParseError("", "expected an unsigned integer, found " + describe(j));
    }
}

inline void read_value(const json& j, bool& out) {
    if (!j.is_boolean()) {
        throw FieldParseError("", "expected a boolean, found " + describe(j));
    }
    out = j.get<bool>();
}

/// null is nullopt, as serde reads `Option<T>`.
template <class T>
void read_value(const json& j, std::optional<T>& out) {
    if (j.is_null()) {
        out.reset();
        return;
    }
    T value{};
    read_value(j, value);
    out = std::move(value);
}

template <class T>
void read_value(const json& j, std::vector<T>& out) {
    if (!j.is_array()) {
        throw FieldParseError("", "expected an array, found " + describe(j));
    }
    std::vector<T> items;
    items.reserve(j.size());
    for (std::size_t i = 0; i < j.size(); ++i) {
        T item{};
        within("[" + std::to_string(i) + "]", [&] { read_value(j[i], item); });
        items.push_back(std::move(item));
    }
    out = std::move(items);
}

template <class T>
void read_value(const json& j, std::map<std::string, T>& out) {
    expect_object(j);
    std::map<std::string, T> items;
    for (auto it = j.begin(); it != j.end(); ++it) {
        T item{};
        within(it.key(), [&] { read_value(it.value(), item); });
        items.emplace(it.key(), std::move(item));
    }
    out = std::move(items);
}

/// Every other type through nlohmann, which finds geo's from_json (json.hpp) by ADL when this
/// is instantiated, so this header need not know the wire types.
template <class T>
void read_value(const json& j, T& out) {
    j.get_to(out);
}

// ---- fields of an object ------------------------------------------------------------------

/// Reads the required member `key` of an object into `out`.
template <class T>
void read_field(const json& object, const char* key, T& out) {
    const json* member = nullptr;
    try {
        member = &object.at(key);
    } catch (const json::out_of_range&) {
        throw FieldParseError(key, "missing required field");
    }
    within(key, [&] { read_value(*member, out); });
}

/// Reads `key` if present and leaves `out` as it is otherwise: for the fields this library adds,
/// which data written by the Rust module lacks.
template <class T>
void read_field_if_present(const json& object, const char* key, T& out) {
    if (auto it = object.find(key); it != object.end()) {
        within(key, [&] { read_value(*it, out); });
    }
}

/// An `Option<T>` field: serde reads a missing one as None, and so do we.
template <class T>
void read_optional_field(const json& object, const char* key, std::optional<T>& out) {
    out.reset();
    read_field_if_present(object, key, out);
}

/// A Rust tuple as serde writes it: an array of exactly as many elements as `outs`, read in
/// order, an error naming the element's index. `shape` describes the elements in messages,
/// e.g. "[key, record, seq]".
template <class... Ts>
void read_tuple(const json& j, std::string_view shape, Ts&... outs) {
    constexpr std::size_t arity = sizeof...(Ts);
    if (!j.is_array()) {
        throw FieldParseError("",
                              "expected a " + std::string(shape) + " array, found " + describe(j));
    }
    if (j.size() != arity) {
        throw FieldParseError("", "expected " + std::to_string(arity) + " elements " +
                                      std::string(shape) + ", found " + std::to_string(j.size()));
    }
    std::size_t index = 0;
    const auto read_next = [&j, &index](auto& out) {
        within("[" + std::to_string(index) + "]", [&] { read_value(j[index], out); });
        ++index;
    };
    (read_next(outs), ...);
}

// ---- wire forms several types share -------------------------------------------------------

/// `{"secs": 5, "nanos": 0}`, Rust's `Duration`. `field` names the value in the error a negative
/// duration (which has no wire form) raises. nanoseconds::max(), what a duration too long for
/// it reads as, writes as its own value, {"secs": 9223372036, "nanos": 854775807}.
[[nodiscard]] inline json duration_to_json(std::chrono::nanoseconds duration,
                                           std::string_view field = "duration") {
    if (duration.count() < 0) {
        throw ConfigError(std::string(field) + " is negative; {secs, nanos} cannot represent it");
    }
    const auto count = static_cast<std::uint64_t>(duration.count());
    json j = json::object();
    j["secs"] = count / 1'000'000'000U;
    j["nanos"] = count % 1'000'000'000U;
    return j;
}

/// Inverse of duration_to_json, reading what serde's `Duration` deserializer accepts: the object
/// or a `[secs, nanos]` array; `secs` a u64 and `nanos` a u32 that may exceed a second, its whole
/// seconds carried into `secs` (an error only when that overflows u64, as in serde). A duration
/// beyond std::chrono::nanoseconds (about 292 years, e.g. Rust's `Duration::MAX` for "never")
/// saturates to nanoseconds::max().
[[nodiscard]] inline std::chrono::nanoseconds duration_from_json(const json& j) {
    constexpr std::uint64_t nanos_per_sec = 1'000'000'000U;
    std::uint64_t secs = 0;
    std::uint64_t nanos = 0;
    if (j.is_array()) {
        read_tuple(j, "[secs, nanos]", secs, nanos);
    } else if (j.is_object()) {
        read_field(j, "secs", secs);
        read_field(j, "nanos", nanos);
    } else {
        throw FieldParseError("", "expected a {secs, nanos} object, found " + describe(j));
    }
    const char* const nanos_path = j.is_array() ? "[1]" : "nanos";
    if (nanos > std::numeric_limits<std::uint32_t>::max()) {
        throw FieldParseError(nanos_path, std::to_string(nanos) + " does not fit u32");
    }
    const std::uint64_t carry = nanos / nanos_per_sec;
    if (secs > std::numeric_limits<std::uint64_t>::max() - carry) {
        throw FieldParseError("", "secs " + std::to_string(secs) + " plus the " +
                                      std::to_string(carry) + " s in nanos overflows u64");
    }
    secs += carry;
    nanos %= nanos_per_sec;
    constexpr auto max_count = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (secs > max_count / nanos_per_sec ||
        (secs == max_count / nanos_per_sec && nanos > max_count % nanos_per_sec)) {
        return std::chrono::nanoseconds::max();
    }
    return std::chrono::nanoseconds(static_cast<std::int64_t>(secs * nanos_per_sec + nanos));
}

inline void read_value(const json& j, std::chrono::nanoseconds& out) {
    out = duration_from_json(j);
}

/// A node id key: decimal digits only, within uint64.
[[nodiscard]] inline std::optional<NodeId> parse_node_id(std::string_view text) noexcept {
    if (text.empty()) {
        return std::nullopt;
    }
    NodeId value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        const auto digit = static_cast<NodeId>(c - '0');
        if (value > (std::numeric_limits<NodeId>::max() - digit) / 10) {
            return std::nullopt;
        }
        value = value * 10 + digit;
    }
    return value;
}

/// `value`, read as the wire's uint64, as the unsigned type `To` (e.g. a std::size_t count);
/// throws where `To` is narrower and the value does not fit (32-bit targets). A template because
/// where `To` is uint64_t itself the cast is a no-op, and g++ -Wuseless-cast flags that in plain
/// code but not in a template instantiation; no cast at all would be -Wconversion on 32 bits.
template <class To>
[[nodiscard]] To narrow_unsigned(std::uint64_t value) {
    static_assert(std::is_unsigned_v<To> && !std::is_same_v<To, bool>);
    if (value > std::numeric_limits<To>::max()) {
        throw FieldParseError("", "too large for this platform");
    }
    return static_cast<To>(value);
}

// ---- text through nlohmann's DOM ----------------------------------------------------------

/// What geo::from_json_text does for every type but the FanoutEntry batch, which it reads this
/// way only when its fast reader gives up (detail/batch_json.hpp). Templates: the conversions of
/// geo/json.hpp are found by ADL where they are instantiated.
template <class T>
[[nodiscard]] T from_json_text_dom(std::string_view text) {
    json document;
    try {
        document = json::parse(text.begin(), text.end());
    } catch (const json::exception& e) {
        throw FieldParseError("", "invalid JSON: " + nlohmann_reason(e.what()));
    }
    T value{};
    within("", [&] { read_value(document, value); });
    return value;
}

/// What geo::to_json_text does for every type but a compact FanoutEntry batch.
template <class T>
[[nodiscard]] std::string to_json_text_dom(const T& value, int indent = -1) {
    const json j = value;
    try {
        return j.dump(indent);
    } catch (const json::exception& e) {
        throw Error("cannot write JSON: " + nlohmann_reason(e.what()));
    }
}

} // namespace geo::detail
