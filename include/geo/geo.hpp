#pragma once

// Umbrella header: every core header. JSON support is separate (geo/json.hpp) so that the core
// depends only on the standard library.

#include "config.hpp"
#include "error.hpp"
#include "hybrid_clock.hpp"
#include "record.hpp"
#include "replicator.hpp"
#include "resolve.hpp"
#include "routing.hpp"
#include "types.hpp"
#include "vector_clock.hpp"
