#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <istream>
#include <ostream>
#include <string>
#include <string_view>

#include "../error.hpp"
#include "key_table.hpp"

namespace geo::detail {

// The snapshot's framing (docs/snapshot.md): the body travels in chunks, each a 4-byte
// little-endian length (at most max_chunk) and that many bytes; a zero length ends the body,
// and an 8-byte checksum of every chunk follows. The reader knows where the snapshot ends
// without reading past it, and verifies the checksum before it interprets a single byte.

inline constexpr std::size_t max_chunk = std::size_t{1} << 16;
inline constexpr std::uint64_t checksum_seed = 0x67656f736e617073ULL; // "geosnaps"

/// Little-endian fixed-width integers, appended to a byte string.
inline void put_u64(std::string& out, std::uint64_t v) {
    char bytes[8];
    for (int i = 0; i < 8; ++i) {
        bytes[i] = static_cast<char>(v >> (8 * i));
    }
    out.append(bytes, 8);
}

inline void put_u32(std::string& out, std::uint32_t v) {
    char bytes[4];
    for (int i = 0; i < 4; ++i) {
        bytes[i] = static_cast<char>(v >> (8 * i));
    }
    out.append(bytes, 4);
}

inline void put_u8(std::string& out, std::uint8_t v) { out.push_back(static_cast<char>(v)); }

inline void put_bytes(std::string& out, std::string_view s) {
    put_u64(out, s.size());
    out.append(s.data(), s.size());
}

[[nodiscard]] inline std::uint64_t get_u64_at(const char* p) noexcept {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) {
        v = (v << 8) | static_cast<unsigned char>(p[i]);
    }
    return v;
}

[[nodiscard]] inline std::uint32_t get_u32_at(const char* p) noexcept {
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i) {
        v = (v << 8) | static_cast<unsigned char>(p[i]);
    }
    return v;
}

/// Writes the body in chunks and the checksum after it.
class ChunkWriter {
public:
    explicit ChunkWriter(std::ostream& out) : out_(out) { buffer_.reserve(max_chunk + 4096); }

    /// The buffer to append encoded bytes to; flush_if_full() after each item.
    [[nodiscard]] std::string& buffer() noexcept { return buffer_; }

    void flush_if_full() {
        if (buffer_.size() >= max_chunk) {
            flush();
        }
    }

    /// Ends the body: the last chunk, the terminator, the checksum. Throws Error if the
    /// stream failed.
    void finish() {
        flush();
        std::string tail;
        put_u32(tail, 0);
        put_u64(tail, checksum_);
        out_.write(tail.data(), static_cast<std::streamsize>(tail.size()));
        if (!out_) {
            throw Error("snapshot: the output stream failed");
        }
    }

private:
    void flush() {
        std::string_view rest = buffer_;
        while (!rest.empty()) {
            const std::string_view chunk = rest.substr(0, max_chunk);
            std::string header;
            put_u32(header, static_cast<std::uint32_t>(chunk.size()));
            out_.write(header.data(), 4);
            out_.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
            checksum_ = hash_key(chunk, checksum_);
            rest.remove_prefix(chunk.size());
        }
        buffer_.clear();
        if (!out_) {
            throw Error("snapshot: the output stream failed");
        }
    }

    std::ostream& out_;
    std::string buffer_;
    std::uint64_t checksum_ = checksum_seed;
};

/// Reads a chunked body and verifies its checksum; returns the body. ParseError when the
/// input is truncated, a chunk is too long, or the checksum does not match.
[[nodiscard]] inline std::string read_chunks(std::istream& in) {
    std::string body;
    std::uint64_t checksum = checksum_seed;
    char header[8];
    for (;;) {
        if (!in.read(header, 4)) {
            throw ParseError("snapshot: truncated (missing chunk header)");
        }
        const std::size_t size = get_u32_at(header);
        if (size == 0) {
            break;
        }
        if (size > max_chunk) {
            throw ParseError("snapshot: corrupt (chunk of " + std::to_string(size) + " bytes)");
        }
        const std::size_t at = body.size();
        body.resize(at + size);
        if (!in.read(&body[at], static_cast<std::streamsize>(size))) {
            throw ParseError("snapshot: truncated (chunk shorter than its header says)");
        }
        checksum = hash_key(std::string_view(body).substr(at), checksum);
    }
    if (!in.read(header, 8)) {
        throw ParseError("snapshot: truncated (missing checksum)");
    }
    if (get_u64_at(header) != checksum) {
        throw ParseError("snapshot: corrupt (checksum mismatch)");
    }
    return body;
}

/// Reads the fields of a verified body; running past its end is a ParseError.
class BodyReader {
public:
    explicit BodyReader(std::string_view body) noexcept : rest_(body) {}

    std::uint64_t u64() { return get_u64_at(take(8).data()); }
    std::uint32_t u32() { return get_u32_at(take(4).data()); }
    std::uint8_t u8() { return static_cast<std::uint8_t>(take(1)[0]); }
    /// `n` raw bytes (no length prefix).
    std::string_view raw(std::size_t n) { return take(n); }
    std::string_view bytes() {
        const std::uint64_t size = u64();
        if (size > rest_.size()) {
            throw ParseError("snapshot: corrupt (a string runs past the end)");
        }
        return take(static_cast<std::size_t>(size));
    }
    /// A count of items each at least `min_item_bytes` long: bounded by what is left.
    std::uint64_t count(std::size_t min_item_bytes) {
        const std::uint64_t n = u64();
        if (min_item_bytes != 0 && n > rest_.size() / min_item_bytes) {
            throw ParseError("snapshot: corrupt (a count larger than the data)");
        }
        return n;
    }
    [[nodiscard]] bool at_end() const noexcept { return rest_.empty(); }

private:
    std::string_view take(std::size_t n) {
        if (n > rest_.size()) {
            throw ParseError("snapshot: corrupt (ends in the middle of a field)");
        }
        const std::string_view out = rest_.substr(0, n);
        rest_.remove_prefix(n);
        return out;
    }

    std::string_view rest_;
};

} // namespace geo::detail
