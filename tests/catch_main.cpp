// Catch2 v2 only: the test runner's main(), compiled once and shared by every
// test executable. With Catch2 v3 the tests link Catch2::Catch2WithMain instead.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
