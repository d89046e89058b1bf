#pragma once

#include <stdexcept>
#include <string>

namespace geo {

/// Root of every exception the library throws, so a host can catch one type.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// An impossible configuration or an argument naming a region the replicator does not know.
class ConfigError : public Error {
public:
    explicit ConfigError(const std::string& what) : Error("geo config error: " + what) {}
};

/// Malformed wire input; the message names the path of the offending field.
class ParseError : public Error {
public:
    explicit ParseError(const std::string& what) : Error("geo parse error: " + what) {}
};

/// A key or value that cannot travel on the JSON wire (not valid UTF-8), refused when written
/// so it never blocks a stream at shipping time; the message names the key.
class EncodingError : public Error {
public:
    explicit EncodingError(const std::string& what) : Error("geo encoding error: " + what) {}
};

} // namespace geo
