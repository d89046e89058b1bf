#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace geo::detail {

// 64 x 64 -> 128-bit product, halves xor-ed: the mixing step of hash_key. Every input bit
// reaches every output bit.
[[nodiscard]] inline std::uint64_t fold_multiply(std::uint64_t a, std::uint64_t b) noexcept {
#if defined(__SIZEOF_INT128__)
    __extension__ typedef unsigned __int128 wide; // NOLINT(modernize-use-using): __extension__
    const wide product = static_cast<wide>(a) * b;
    return static_cast<std::uint64_t>(product) ^ static_cast<std::uint64_t>(product >> 64);
#else
    const std::uint64_t a_lo = a & 0xffffffffU, a_hi = a >> 32;
    const std::uint64_t b_lo = b & 0xffffffffU, b_hi = b >> 32;
    const std::uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo;
    const std::uint64_t lo_hi = a_lo * b_hi, hi_hi = a_hi * b_hi;
    const std::uint64_t cross = (lo_lo >> 32) + (hi_lo & 0xffffffffU) + lo_hi;
    const std::uint64_t low = (cross << 32) | (lo_lo & 0xffffffffU);
    const std::uint64_t high = hi_hi + (hi_lo >> 32) + (cross >> 32);
    return low ^ high;
#endif
}

/// `word` as a std::size_t: all of it, or its low half where size_t has 32 bits. A template
/// because where size_t is uint64_t the cast is a no-op that g++ -Wuseless-cast flags in plain
/// code (not in a template instantiation), while a plain conversion would be -Wconversion on
/// 32-bit targets.
template <class Word>
[[nodiscard]] constexpr std::size_t low_size_bits(Word word) noexcept {
    static_assert(std::is_unsigned_v<Word> && sizeof(Word) >= sizeof(std::size_t));
    return static_cast<std::size_t>(word);
}

[[nodiscard]] inline std::uint64_t load_word(const char* p) noexcept {
    std::uint64_t word;
    std::memcpy(&word, p, sizeof word);
    return word;
}

/// The hash every key goes through once per operation: it picks the shard (top bits) and the
/// bucket (low bits). Reads 16 bytes per multiply, about a quarter of std::hash's work on
/// typical keys. `seed` is secret per replicator (random_seed): keys chosen to collide, by
/// someone who knows this code, would have to be chosen knowing the seed too.
[[nodiscard]] inline std::size_t hash_key(std::string_view key, std::uint64_t seed = 0) noexcept {
    constexpr std::uint64_t k0 = 0x9e3779b97f4a7c15ULL; // odd constants with mixed bits
    constexpr std::uint64_t k1 = 0xc2b2ae3d27d4eb4fULL;
    constexpr std::uint64_t k2 = 0x165667b19e3779f9ULL;
    const std::uint64_t s1 = k1 ^ seed;
    const char* p = key.data();
    std::size_t n = key.size();
    std::uint64_t h = k0 ^ seed ^ (n * k2); // n (size_t) widens to uint64_t, never narrows
    while (n > 16) {
        h = fold_multiply(load_word(p) ^ s1, load_word(p + 8) ^ h);
        p += 16;
        n -= 16;
    }
    std::uint64_t a = 0;
    std::uint64_t b = 0;
    if (n >= 8) { // the last 16 bytes or fewer, as two possibly overlapping words
        a = load_word(p);
        b = load_word(p + n - 8);
    } else if (n > 0) {
        unsigned char tail[8] = {};
        std::memcpy(tail, p, n);
        std::memcpy(&a, tail, sizeof a);
    }
    h = fold_multiply(a ^ s1, b ^ h);
    return low_size_bits(fold_multiply(h ^ k2, key.size() ^ k0));
}

/// A seed for hash_key, different in every replicator (hashes are never stored or shipped).
[[nodiscard]] inline std::uint64_t random_seed() noexcept {
    std::uint64_t seed = 0;
    try {
        std::random_device device;
        seed = (static_cast<std::uint64_t>(device()) << 32) ^ device();
    } catch (...) {
        // No entropy source: the clock and an address still vary between processes.
    }
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    seed ^= static_cast<std::uint64_t>(now) * 0x9e3779b97f4a7c15ULL;
    seed ^= reinterpret_cast<std::uintptr_t>(&seed); // uintptr_t widens to uint64_t
    return seed;
}

/// Open-addressing (linear probing) table of heap nodes keyed by `Node::key`.
///
/// Why not std::unordered_map: lookups by string_view without building a std::string (C++17
/// has no heterogeneous lookup), one hash per operation shared with shard selection, and
/// nodes that never move, so other structures may link them intrusively.
[[nodiscard]] inline bool same_key(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

template <class Node, class Deleter = std::default_delete<Node>>
class KeyTable {
public:
    KeyTable() = default;
    KeyTable(const KeyTable&) = delete;
    KeyTable& operator=(const KeyTable&) = delete;
    ~KeyTable() {
        for (auto& bucket : buckets_) {
            Deleter{}(bucket.node);
        }
    }

    // Forced inline: on every write, and GCC's size heuristics otherwise keep it out of the
    // larger commit paths (measured: +10 instructions per write as a call).
    [[nodiscard]] [[gnu::always_inline]] Node* find(std::string_view key,
                                                    std::size_t hash) const noexcept {
        if (size_ == 0) {
            return nullptr;
        }
        for (std::size_t i = hash & mask_;; i = (i + 1) & mask_) {
            const Bucket& bucket = buckets_[i];
            if (bucket.node == nullptr) {
                return nullptr;
            }
            if (bucket.hash == hash && same_key(bucket.node->key, key)) {
                return bucket.node;
            }
        }
    }

    /// Takes ownership of a node whose key is not in the table. Strong guarantee.
    Node* insert(std::unique_ptr<Node, Deleter> node, std::size_t hash) {
        if ((size_ + 1) * 4 > buckets_.size() * 3) {
            grow();
        }
        Node* raw = node.release();
        place(Bucket{hash, raw});
        ++size_;
        return raw;
    }

    /// Removes and destroys `node`, which must be in the table under `hash`.
    void erase(Node* node, std::size_t hash) noexcept {
        std::size_t hole = hash & mask_;
        while (buckets_[hole].node != node) {
            hole = (hole + 1) & mask_;
        }
        // Backward-shift deletion: pull later members of the probe run into the hole, so no
        // tombstone buckets accumulate.
        for (std::size_t j = (hole + 1) & mask_; buckets_[j].node != nullptr; j = (j + 1) & mask_) {
            const std::size_t home = buckets_[j].hash & mask_;
            const bool home_in_gap =
                hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
            if (!home_in_gap) {
                buckets_[hole] = buckets_[j];
                hole = j;
            }
        }
        buckets_[hole] = Bucket{};
        Deleter{}(node);
        --size_;
    }

    [[nodiscard]] std::size_t size() const noexcept { return size_; }

    /// Room for `n` keys without growing (restore knows how many are coming). Strong guarantee.
    void reserve(std::size_t n) {
        std::size_t buckets = buckets_.empty() ? 16 : buckets_.size();
        while (n * 4 > buckets * 3) {
            buckets *= 2;
        }
        if (buckets == buckets_.size()) {
            return;
        }
        std::vector<Bucket> old(buckets);
        old.swap(buckets_);
        mask_ = buckets_.size() - 1;
        for (const auto& bucket : old) {
            if (bucket.node != nullptr) {
                place(bucket);
            }
        }
    }

    /// Exchanges contents; both tables must hash keys the same way (same seed).
    void swap(KeyTable& other) noexcept {
        buckets_.swap(other.buckets_);
        std::swap(mask_, other.mask_);
        std::swap(size_, other.size_);
    }

    /// Like for_each, fetching nodes a few buckets ahead of `f`, and calling `deeper(node)`
    /// for nodes half as far ahead (to fetch what they point to): a long scan over nodes
    /// scattered in the heap is bound by cache misses otherwise.
    template <class F, class Deeper>
    void for_each_prefetched(F&& f, Deeper&& deeper) const {
        constexpr std::size_t ahead = 8;
        const std::size_t n = buckets_.size();
        for (std::size_t i = 0; i < n; ++i) {
#if defined(__GNUC__)
            if (i + ahead < n && buckets_[i + ahead].node != nullptr) {
                __builtin_prefetch(buckets_[i + ahead].node);
            }
#endif
            if (i + ahead / 2 < n && buckets_[i + ahead / 2].node != nullptr) {
                deeper(*buckets_[i + ahead / 2].node);
            }
            if (buckets_[i].node != nullptr) {
                f(*buckets_[i].node, buckets_[i].hash);
            }
        }
    }

    template <class F>
    void for_each(F&& f) const {
        for (const auto& bucket : buckets_) {
            if (bucket.node != nullptr) {
                f(*bucket.node, bucket.hash);
            }
        }
    }

private:
    struct Bucket {
        std::size_t hash{};
        Node* node{};
    };

    void place(Bucket bucket) noexcept {
        std::size_t i = bucket.hash & mask_;
        while (buckets_[i].node != nullptr) {
            i = (i + 1) & mask_;
        }
        buckets_[i] = bucket;
    }

    void grow() {
        std::vector<Bucket> old(buckets_.empty() ? 16 : buckets_.size() * 2);
        old.swap(buckets_);
        mask_ = buckets_.size() - 1;
        for (const auto& bucket : old) {
            if (bucket.node != nullptr) {
                place(bucket);
            }
        }
    }

    std::vector<Bucket> buckets_;
    std::size_t mask_{0};
    std::size_t size_{0};
};

} // namespace geo::detail
