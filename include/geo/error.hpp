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

} // namespace geo
