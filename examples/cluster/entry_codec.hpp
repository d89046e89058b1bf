// The bytes of one Raft log entry: the command text framed to a multiple of 8 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace cluster {

/// Size of the entry carrying `text_size` bytes: an 8-byte length, the text, zero padding.
/// raft 0.15's libuv backend silently corrupts its log (found only at the next restart) when an
/// entry's length is not a multiple of 8, so every entry is padded and carries its real length.
[[nodiscard]] inline std::size_t entry_size(std::size_t text_size) {
    return 8 + (text_size + 7) / 8 * 8;
}

/// Writes the entry for `text` into `out`, which holds entry_size(text.size()) bytes.
inline void encode_entry(std::string_view text, unsigned char* out) {
    const std::uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) {
        out[i] = static_cast<unsigned char>(n >> (8 * i)); // little-endian on every host
    }
    if (!text.empty()) {
        std::memcpy(out + 8, text.data(), text.size());
    }
    std::memset(out + 8 + text.size(), 0, entry_size(text.size()) - 8 - text.size());
}

/// The command text of an entry, or nullopt when the framing is inconsistent.
[[nodiscard]] inline std::optional<std::string_view> decode_entry(const void* base,
                                                                  std::size_t len) {
    if (len < 8 || len % 8 != 0) {
        return std::nullopt;
    }
    const auto* bytes = static_cast<const unsigned char*>(base);
    std::uint64_t n = 0;
    for (int i = 0; i < 8; ++i) {
        n |= std::uint64_t{bytes[i]} << (8 * i);
    }
    if (n > len - 8 || entry_size(static_cast<std::size_t>(n)) != len) {
        return std::nullopt;
    }
    return std::string_view(reinterpret_cast<const char*>(bytes + 8), static_cast<std::size_t>(n));
}

} // namespace cluster
