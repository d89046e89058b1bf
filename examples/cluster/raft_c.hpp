// canonical raft 0.15's headers declare C functions without extern "C". libuv's header is
// C++-aware on its own and must come first: raft/uv.h includes it, and inside an extern "C"
// block its C++ parts would not compile.
#pragma once

#include <uv.h>

extern "C" {
#include <raft.h>
#include <raft/uv.h>
}
