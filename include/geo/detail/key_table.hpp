#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

namespace geo::detail {

/// The hash every key goes through once per operation: it picks the shard and the bucket.
[[nodiscard]] inline std::size_t hash_key(std::string_view key) noexcept {
    return std::hash<std::string_view>{}(key);
}

/// Open-addressing (linear probing) table of heap nodes keyed by `Node::key`.
///
/// Why not std::unordered_map: lookups by string_view without building a std::string (C++17
/// has no heterogeneous lookup), one hash per operation shared with shard selection, and
/// nodes that never move, so other structures may link them intrusively.
template <class Node>
class KeyTable {
public:
    KeyTable() = default;
    KeyTable(const KeyTable&) = delete;
    KeyTable& operator=(const KeyTable&) = delete;
    ~KeyTable() {
        for (auto& bucket : buckets_) {
            delete bucket.node;
        }
    }

    [[nodiscard]] Node* find(std::string_view key, std::size_t hash) const noexcept {
        if (size_ == 0) {
            return nullptr;
        }
        for (std::size_t i = hash & mask_;; i = (i + 1) & mask_) {
            const Bucket& bucket = buckets_[i];
            if (bucket.node == nullptr) {
                return nullptr;
            }
            if (bucket.hash == hash && bucket.node->key == key) {
                return bucket.node;
            }
        }
    }

    /// Takes ownership of a node whose key is not in the table. Strong guarantee.
    Node* insert(std::unique_ptr<Node> node, std::size_t hash) {
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
        delete node;
        --size_;
    }

    [[nodiscard]] std::size_t size() const noexcept { return size_; }

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
