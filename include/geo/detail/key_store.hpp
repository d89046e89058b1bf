#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <utility>
#include <vector>

#include "entry.hpp"
#include "key_table.hpp"
#include "spin_mutex.hpp"

namespace geo::detail {

/// One shard of the key store: its lock and the slots of the keys that hash to it.
/// Every method needs mutex() held by the caller.
class alignas(128) KeyShard {
public:
    [[nodiscard]] SpinMutex& mutex() const noexcept { return mu_; }

    [[nodiscard]] [[gnu::always_inline]] Slot* find(std::string_view key,
                                                    std::size_t hash) const noexcept {
        return table_.find(key, hash);
    }
    /// Stores a new key's slot. Strong guarantee.
    Slot* insert(SlotPtr slot, std::size_t hash) { return table_.insert(std::move(slot), hash); }
    void erase(Slot* slot, std::size_t hash) noexcept { table_.erase(slot, hash); }
    [[nodiscard]] std::size_t size() const noexcept { return table_.size(); }

    void reserve(std::size_t n) { table_.reserve(n); }

    /// Exchanges slots with the same shard of a store with the same seed (restore).
    void swap_slots(KeyShard& other) noexcept { table_.swap(other.table_); }

    /// Calls `f(slot, hash)` for every slot; `f` must not insert or erase.
    template <class F>
    void for_each(F&& f) const {
        table_.for_each(std::forward<F>(f));
    }

    /// for_each, fetching slots and their values ahead (a scan of every slot: snapshot,
    /// digest).
    template <class F>
    void for_each_prefetched(F&& f) const {
        table_.for_each_prefetched(std::forward<F>(f), [](const Slot& slot) {
#if defined(__GNUC__)
            __builtin_prefetch(slot.value.data());
#else
            (void)slot;
#endif
        });
    }

    /// Erases every slot `doomed(slot)` picks; returns how many. If picking throws, nothing
    /// is erased.
    template <class Doomed>
    std::size_t erase_if(Doomed&& doomed) {
        std::vector<std::pair<Slot*, std::size_t>> picked;
        table_.for_each([&](Slot& slot, std::size_t hash) {
            if (doomed(static_cast<const Slot&>(slot))) {
                picked.emplace_back(&slot, hash);
            }
        });
        for (const auto& [slot, hash] : picked) {
            table_.erase(slot, hash);
        }
        return picked.size();
    }

private:
    mutable SpinMutex mu_;
    KeyTable<Slot, EntryDeleter> table_;
};

/// Every stored key's slot, in shards with a lock each, hashed with a seed secret to this
/// process (keys chosen to collide would have to be chosen knowing it).
///
/// A key lives in shard_for(hash(key)); its slot's record is guarded by that shard's lock.
class KeyStore {
public:
    static constexpr std::size_t shard_count = 64;

    KeyStore() = default;
    /// A store that hashes like the one whose seed() this is (restore stages into one).
    explicit KeyStore(std::uint64_t seed) noexcept : seed_(seed) {}

    [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }
    [[nodiscard]] KeyShard& shard(std::size_t i) noexcept { return shards_[i]; }
    [[nodiscard]] const KeyShard& shard(std::size_t i) const noexcept { return shards_[i]; }

    [[nodiscard]] std::size_t hash(std::string_view key) const noexcept {
        return hash_key(key, seed_);
    }

    // The top bits pick the shard; the table inside uses the low bits.
    [[nodiscard]] KeyShard& shard_for(std::size_t hash) noexcept {
        return shards_[(hash >> shard_shift) % shard_count];
    }
    [[nodiscard]] const KeyShard& shard_for(std::size_t hash) const noexcept {
        return shards_[(hash >> shard_shift) % shard_count];
    }

    /// Keys stored, each shard counted under its lock.
    [[nodiscard]] std::size_t size() const {
        std::size_t count = 0;
        for (const auto& shard : shards_) {
            std::lock_guard<SpinMutex> lock(shard.mutex());
            count += shard.size();
        }
        return count;
    }

    /// Calls `f(shard)` for every shard, in order, with no lock held.
    template <class F>
    void for_each_shard(F&& f) {
        for (auto& shard : shards_) {
            f(shard);
        }
    }

private:
    static constexpr int shard_shift = static_cast<int>(sizeof(std::size_t) * 8) - 16;

    const std::uint64_t seed_ = random_seed();
    KeyShard shards_[shard_count];
};

} // namespace geo::detail
