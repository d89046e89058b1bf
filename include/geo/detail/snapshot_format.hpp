#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <istream>
#include <memory>
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

/// A cast that is a no-op on 64-bit targets and a narrowing on 32-bit ones (a template, so
/// -Wuseless-cast does not flag the 64-bit case).
template <class To, class From>
[[nodiscard]] constexpr To cast_to(From v) noexcept {
    return static_cast<To>(v);
}

/// A growable byte array that, unlike std::string, does not zero what it grows into: the
/// snapshot writes every byte it reserves, and restore reads every byte into it.
class ByteBuffer {
public:
    ByteBuffer() = default;

    /// `n` more bytes at the end, uninitialised; the pointer is valid until the next growth.
    [[nodiscard]] char* extend(std::size_t n) {
        if (n > cap_ - size_) {
            reserve(std::max(size_ + n, cap_ * 2));
        }
        char* at = data_.get() + size_;
        size_ += n;
        return at;
    }

    void reserve(std::size_t n) {
        if (n <= cap_) {
            return;
        }
        std::unique_ptr<char[]> fresh(new char[n]);
        if (size_ != 0) {
            std::memcpy(fresh.get(), data_.get(), size_);
        }
        data_ = std::move(fresh);
        cap_ = n;
    }

    void append(std::string_view s) {
        if (!s.empty()) {
            std::memcpy(extend(s.size()), s.data(), s.size());
        }
    }

    void shrink_to(std::size_t n) noexcept { size_ = std::min(n, size_); }
    void clear() noexcept { size_ = 0; }
    [[nodiscard]] const char* data() const noexcept { return data_.get(); }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] std::string_view view() const noexcept { return {data_.get(), size_}; }

private:
    std::unique_ptr<char[]> data_;
    std::size_t size_{};
    std::size_t cap_{};
};

/// Little-endian fixed-width integers and length-prefixed bytes, stored at `p`; each returns
/// the position after what it wrote. (Byte by byte, which compilers turn into one store.)
inline char* store_u64(char* p, std::uint64_t v) noexcept {
    for (int i = 0; i < 8; ++i) {
        p[i] = static_cast<char>(v >> (8 * i));
    }
    return p + 8;
}

inline char* store_u32(char* p, std::uint32_t v) noexcept {
    for (int i = 0; i < 4; ++i) {
        p[i] = static_cast<char>(v >> (8 * i));
    }
    return p + 4;
}

inline char* store_u8(char* p, std::uint8_t v) noexcept {
    *p = static_cast<char>(v);
    return p + 1;
}

inline char* store_bytes(char* p, std::string_view s) noexcept {
    p = store_u64(p, s.size());
    if (!s.empty()) {
        std::memcpy(p, s.data(), s.size());
    }
    return p + s.size();
}

inline void put_u64(ByteBuffer& out, std::uint64_t v) {
    store_u64(out.extend(8), v);
}
inline void put_u32(ByteBuffer& out, std::uint32_t v) {
    store_u32(out.extend(4), v);
}
inline void put_u8(ByteBuffer& out, std::uint8_t v) {
    store_u8(out.extend(1), v);
}
inline void put_bytes(ByteBuffer& out, std::string_view s) {
    store_bytes(out.extend(8 + s.size()), s);
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
    explicit ChunkWriter(std::ostream& out) : out_(out) { buffer_.reserve(2 * max_chunk); }

    /// The buffer to append encoded bytes to; flush_if_full() after each item.
    [[nodiscard]] ByteBuffer& buffer() noexcept { return buffer_; }

    void flush_if_full() {
        if (buffer_.size() >= max_chunk) {
            flush();
        }
    }

    /// Ends the body: the last chunk, the terminator, the checksum. Throws Error if the
    /// stream failed.
    void finish() {
        flush();
        char tail[12];
        store_u64(store_u32(tail, 0), checksum_);
        out_.write(tail, sizeof tail);
        if (!out_) {
            throw Error("snapshot: the output stream failed");
        }
    }

private:
    void flush() {
        std::string_view rest = buffer_.view();
        while (!rest.empty()) {
            const std::string_view chunk = rest.substr(0, max_chunk);
            char header[4];
            store_u32(header, static_cast<std::uint32_t>(chunk.size()));
            out_.write(header, 4);
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
    ByteBuffer buffer_;
    std::uint64_t checksum_ = checksum_seed;
};

/// Reads a chunked body and verifies its checksum; returns the body. ParseError when the
/// input is truncated, a chunk is too long, or the checksum does not match.
[[nodiscard]] inline ByteBuffer read_chunks(std::istream& in) {
    ByteBuffer body;
    // What the stream already holds (all of it for a string stream): one allocation instead
    // of doublings. Only a hint, bounded by real bytes, so a corrupt header cannot inflate it.
    if (const std::streamsize held = in.rdbuf() != nullptr ? in.rdbuf()->in_avail() : 0; held > 0) {
        body.reserve(cast_to<std::size_t>(held));
    }
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
        char* into = body.extend(size);
        if (!in.read(into, static_cast<std::streamsize>(size))) {
            throw ParseError("snapshot: truncated (chunk shorter than its header says)");
        }
        checksum = hash_key(std::string_view(body.data() + at, size), checksum);
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
    /// A length read from the body, as a count of `unit`-byte items that must still be there.
    std::size_t length(std::uint64_t n, std::size_t unit = 1) {
        if (n > rest_.size() / unit) {
            throw ParseError("snapshot: corrupt (a length runs past the end)");
        }
        return cast_to<std::size_t>(n);
    }

    /// `n` raw bytes (no length prefix).
    std::string_view raw(std::size_t n) { return take(n); }
    std::string_view bytes() {
        const std::uint64_t size = u64();
        if (size > rest_.size()) {
            throw ParseError("snapshot: corrupt (a string runs past the end)");
        }
        return take(static_cast<std::size_t>(size));
    }
    /// A count of items each at least `min_item_bytes` (> 0) long: bounded by what is left,
    /// so it fits memory and a size_t.
    std::size_t count(std::size_t min_item_bytes) {
        const std::uint64_t n = u64();
        const std::size_t most = rest_.size() / min_item_bytes;
        if (n > most) {
            throw ParseError("snapshot: corrupt (a count larger than the data)");
        }
        return cast_to<std::size_t>(n);
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
