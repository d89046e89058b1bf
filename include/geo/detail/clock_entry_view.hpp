#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "../types.hpp"

namespace geo::detail {

/// Read-only view of a VectorClock's entries (VectorClock::EntryView), valid until the clock is
/// next modified or destroyed.
class ClockEntryView {
public:
    using Entry = std::pair<NodeId, std::uint64_t>;
    using value_type = Entry;
    using size_type = std::size_t;
    using const_iterator = const Entry*;
    using iterator = const_iterator;

    constexpr ClockEntryView(const Entry* first, std::size_t count) noexcept
        : data_(first), size_(count) {}

    [[nodiscard]] constexpr const Entry* begin() const noexcept { return data_; }
    [[nodiscard]] constexpr const Entry* end() const noexcept { return data_ + size_; }
    [[nodiscard]] constexpr const Entry* data() const noexcept { return data_; }
    [[nodiscard]] constexpr std::size_t size() const noexcept { return size_; }
    [[nodiscard]] constexpr bool empty() const noexcept { return size_ == 0; }
    [[nodiscard]] constexpr const Entry& operator[](std::size_t i) const noexcept {
        return data_[i];
    }

private:
    const Entry* data_;
    std::size_t size_;
};

} // namespace geo::detail
