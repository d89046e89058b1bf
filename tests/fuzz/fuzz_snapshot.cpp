// libFuzzer target: ActiveActiveReplicator::restore(std::istream&) (docs/snapshot.md).
//
// Input: one mode byte, then bytes. The mode picks the replicator restored into (bit 2:
// LastWriterWins or VectorClock; both hold the same deterministic state, built once, see
// fuzz_support.hpp) and how the bytes reach restore (bits 0-1):
//   0  raw: the bytes are the whole stream, framing and checksum included (random bytes almost
//      never pass the checksum: this exercises the framing reader);
//   1  framed: the bytes are the body; it is wrapped the way snapshot() wraps it (ChunkWriter:
//      chunks of up to 64 KiB, terminator, checksum), so the body parser runs;
//   2  framed in small chunks: as 1, with chunks of 1 + (mode >> 3) bytes (1..32), each with
//      its header, checksum chained over them as ChunkWriter does;
//   3  framed as 1, after a 5-byte prefix the stream is positioned past.
// Framed streams end with a trailer that restore must leave unread.
//
// Properties: restore returns or throws geo::ParseError / geo::ConfigError, nothing else;
// after a throw the state is unchanged (snapshot bytes before == after); after a success,
// snapshot -> restore into a fresh replicator -> snapshot is byte-identical, the records digests
// agree, and the restored state is usable (peek, acknowledge, write, purge, snapshot again).

#include <geo/detail/key_table.hpp>
#include <geo/detail/snapshot_format.hpp>
#include <geo/replicator.hpp>

#include "fuzz_support.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>

namespace {

using geo_fuzz::fail;
using geo_fuzz::must_not_throw;
using geo_fuzz::returns_or_throws;
using geo_fuzz::snapshot_bytes;

constexpr std::string_view trailer = "TRAILER";
constexpr std::string_view prefix = "PREFX";

struct World {
    geo::ConflictResolutionMode mode;
    std::unique_ptr<geo::ActiveActiveReplicator> live;
    std::string base; ///< live's snapshot; restored after every successful run
};

World& world(bool vector_clock) {
    static World lww{geo::ConflictResolutionMode::LastWriterWins,
                     geo_fuzz::populated_replica(geo::ConflictResolutionMode::LastWriterWins), {}};
    static World vc{geo::ConflictResolutionMode::VectorClock,
                    geo_fuzz::populated_replica(geo::ConflictResolutionMode::VectorClock), {}};
    World& w = vector_clock ? vc : lww;
    if (w.base.empty()) {
        w.base = snapshot_bytes(*w.live);
    }
    return w;
}

/// `body` framed as ChunkWriter frames it, in chunks of at most `chunk` bytes.
std::string frame(std::string_view body, std::size_t chunk) {
    geo::detail::ByteBuffer out;
    std::uint64_t checksum = geo::detail::checksum_seed;
    while (!body.empty()) {
        const std::string_view piece = body.substr(0, chunk);
        geo::detail::put_u32(out, static_cast<std::uint32_t>(piece.size()));
        out.append(piece);
        checksum = geo::detail::hash_key(piece, checksum);
        body.remove_prefix(piece.size());
    }
    geo::detail::put_u32(out, 0);
    geo::detail::put_u64(out, checksum);
    return std::string(out.view());
}

/// `body` framed by snapshot()'s own writer.
std::string frame_with_writer(std::string_view body) {
    std::ostringstream out;
    geo::detail::ChunkWriter writer(out);
    // Appended in pieces and flushed as snapshot() does, so bodies over 64 KiB span chunks.
    while (!body.empty()) {
        const std::string_view piece = body.substr(0, 4096);
        writer.buffer().append(std::string_view(piece.data(), piece.size()));
        writer.flush_if_full();
        body.remove_prefix(piece.size());
    }
    writer.finish();
    return out.str();
}

void restore_from(geo::ActiveActiveReplicator& rep, const std::string& bytes, const char* what) {
    must_not_throw(what, [&] {
        std::istringstream in(bytes);
        rep.restore(in);
    });
}

/// The restored state must behave: every queue peeks, acknowledges, takes new writes, purges,
/// and still snapshots to bytes a fresh replicator restores identically.
void exercise(geo::ActiveActiveReplicator& rep, geo::ConflictResolutionMode mode) {
    const auto& regions = rep.config().regions;
    (void)returns_or_throws<geo::Error>("operations on a restored replicator", [&] {
        for (const auto& source : regions) {
            for (const auto& target : regions) {
                const auto batch = rep.peek_fanout(source, target, 8);
                if (batch.size() > rep.pending_fanout_len(source, target)) {
                    fail("peek_fanout returned more than pending_fanout_len");
                }
                if (!batch.empty()) {
                    (void)rep.acknowledge_fanout(source, target, batch.back().seq);
                }
            }
        }
        (void)rep.put("fuzz:new", "value");
        (void)rep.erase("user:1");
        (void)rep.apply_remote(geo_fuzz::eu, rep.peek_fanout(geo_fuzz::eu, geo_fuzz::us));
        (void)rep.purge_tombstones(geo_fuzz::frozen_ms + 10'000);
        for (const auto& source : regions) {
            for (const auto& target : regions) {
                (void)rep.drain_fanout(source, target);
            }
        }
    });
    const std::string bytes = snapshot_bytes(rep);
    auto copy = geo_fuzz::empty_replica(mode);
    restore_from(*copy, bytes, "restoring a snapshot of a restored and exercised replicator");
    if (snapshot_bytes(*copy) != bytes) {
        fail("snapshot of an exercised restored replicator does not round trip");
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const std::uint8_t mode = data[0];
    const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
    World& w = world((mode & 4) != 0);

    std::string stream;
    std::size_t skip = 0;
    const bool framed = (mode & 3) != 0;
    switch (mode & 3) {
    case 0: stream.assign(input); break;
    case 1: stream = frame_with_writer(input); break;
    case 2: stream = frame(input, 1 + (mode >> 3)); break;
    default:
        stream.assign(prefix);
        stream += frame_with_writer(input);
        skip = prefix.size();
        break;
    }
    if (framed) {
        stream += trailer;
    }

    const std::string before = snapshot_bytes(*w.live);
    if (before != w.base) {
        fail("the live replicator does not hold its base state at the start of a run");
    }
    std::istringstream in(stream);
    in.seekg(static_cast<std::streamoff>(skip));
    const bool restored = returns_or_throws<geo::ParseError, geo::ConfigError>(
        "restore", [&] { w.live->restore(in); });
    if (!restored) {
        if (snapshot_bytes(*w.live) != before) {
            fail("a failed restore changed the replicator's state");
        }
        return 0;
    }
    if (framed) {
        const std::string rest{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
        if (rest != trailer) {
            fail("restore did not stop right after the checksum (left " +
                 std::to_string(rest.size()) + " bytes instead of the trailer)");
        }
    }

    const std::string first = snapshot_bytes(*w.live);
    auto fresh = geo_fuzz::empty_replica(w.mode);
    restore_from(*fresh, first, "restoring the snapshot of a restored replicator");
    if (snapshot_bytes(*fresh) != first) {
        fail("snapshot -> restore -> snapshot is not byte-identical");
    }
    if (fresh->records_digest() != w.live->records_digest() ||
        fresh->record_count() != w.live->record_count() ||
        fresh->region_sequences() != w.live->region_sequences()) {
        fail("a snapshot round trip changed records, digest or sequences");
    }
    exercise(*fresh, w.mode);

    restore_from(*w.live, w.base, "restoring the base state");
    return 0;
}
