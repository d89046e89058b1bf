#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace geo::detail {

/// The configured region ids, looked up on every write: matched by packed words rather than a
/// string comparison per region, and ranked so the LWW order compares two integers instead of
/// two ids.
class RegionNames {
public:
    RegionNames() = default;

    /// `names` must outlive this object (the replicator's own config holds them).
    explicit RegionNames(const std::vector<std::string>& names) {
        names_.reserve(names.size());
        packed_.reserve(names.size());
        for (const auto& name : names) {
            names_.emplace_back(name);
            packed_.push_back(pack(name));
        }
        std::vector<std::size_t> order(names.size());
        for (std::size_t i = 0; i < order.size(); ++i) {
            order[i] = i;
        }
        // The same order as std::string_view::compare, which the public lww_less uses.
        std::sort(order.begin(), order.end(),
                  [&](std::size_t a, std::size_t b) { return names_[a] < names_[b]; });
        rank_.resize(names.size());
        for (std::size_t r = 0; r < order.size(); ++r) {
            rank_[order[r]] = static_cast<std::uint32_t>(r);
        }
    }

    /// Index of `name`, or size() when it is not configured.
    [[nodiscard]] std::size_t find(std::string_view name) const noexcept {
        const std::size_t n = name.size();
        std::uint64_t head = 0;
        std::uint64_t tail = 0;
        if (n >= 8) {
            std::memcpy(&head, name.data(), 8);
            std::memcpy(&tail, name.data() + n - 8, 8);
        } else if (n > 0) {
            std::memcpy(&head, name.data(), n);
        }
        const Packed* first = packed_.data();
        for (const Packed& q : packed_) {
            // Up to 16 bytes the two words cover every byte; longer ids compare in full.
            if (q.head == head && q.tail == tail && q.size == n &&
                (n <= 16 || names_[static_cast<std::size_t>(&q - first)] == name)) {
                return static_cast<std::size_t>(&q - first);
            }
        }
        return packed_.size();
    }

    /// Position of region `index` among the ids sorted as strings.
    [[nodiscard]] std::uint32_t rank(std::size_t index) const noexcept { return rank_[index]; }

    [[nodiscard]] std::size_t size() const noexcept { return packed_.size(); }

private:
    struct Packed {
        std::size_t size{};
        std::uint64_t head{}; ///< the first 8 bytes (zero-padded when shorter)
        std::uint64_t tail{}; ///< the last 8 bytes, overlapping head when shorter than 16
    };

    static Packed pack(std::string_view s) noexcept {
        Packed p;
        p.size = s.size();
        if (s.size() >= 8) {
            std::memcpy(&p.head, s.data(), 8);
            std::memcpy(&p.tail, s.data() + s.size() - 8, 8);
        } else if (!s.empty()) {
            std::memcpy(&p.head, s.data(), s.size());
        }
        return p;
    }

    std::vector<std::string_view> names_;
    std::vector<Packed> packed_;
    std::vector<std::uint32_t> rank_;
};

} // namespace geo::detail
