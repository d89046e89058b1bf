// The key store: KeyShard (a lock and an open-addressing KeyTable of slots) and KeyStore (64
// shards picked by the top bits of a seeded hash_key). Checked against std::unordered_map on
// random sequences, with hashes degraded on purpose so that probe runs collide and wrap.

#include <geo/detail/entry.hpp>
#include <geo/detail/key_store.hpp>
#include <geo/detail/key_table.hpp>

#include "geo_test.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

using geo::detail::hash_key;
using geo::detail::KeyShard;
using geo::detail::KeyStore;
using geo::detail::new_entry;
using geo::detail::Slot;
using geo::detail::SlotPtr;

namespace {

SlotPtr slot_with(const std::string& key, const std::string& value) {
    SlotPtr slot(new_entry<Slot>(key));
    slot->value = value;
    return slot;
}

/// Keys that share 8- and 16-byte prefixes, differ only in length or in their last byte,
/// hold NUL bytes, or are empty.
std::vector<std::string> tricky_keys() {
    std::vector<std::string> keys{"",
                                  "a",
                                  std::string(1, '\0'),
                                  std::string(2, '\0'),
                                  "ab",
                                  "abcdefgh",
                                  "abcdefgh1",
                                  "abcdefgh2",
                                  "abcdefghijklmnop",
                                  "abcdefghijklmnopq",
                                  "abcdefghijklmnopr",
                                  std::string("nul\0byte", 8),
                                  std::string("nul\0bytf", 8)};
    for (std::size_t len = 1; len <= 40; ++len) {
        keys.emplace_back(len, 'k');
    }
    return keys;
}

/// A hash function for the table: the real one, or one degraded so that many keys share a
/// home bucket (few distinct values) or sit at the end of the table (probe runs wrap to 0).
using Hasher = std::function<std::size_t(const std::string&)>;

struct NamedHasher {
    const char* name;
    Hasher hash;
};

std::vector<NamedHasher> hashers() {
    return {
        {"hash_key", [](const std::string& k) { return hash_key(k); }},
        {"8 values", [](const std::string& k) { return hash_key(k) & 7; }},
        {"homes at the table's end",
         [](const std::string& k) { return hash_key(k) | (~std::size_t{0} << 3); }},
        {"one value", [](const std::string&) { return std::size_t{42}; }},
    };
}

/// Random insert/find/erase/erase_if on a shard, checked against std::unordered_map.
void check_against_map(const NamedHasher& hasher, std::uint32_t seed, std::size_t key_space,
                       int steps) {
    INFO("hash " << hasher.name << ", seed " << seed << ", " << key_space << " keys");
    std::mt19937 rng(seed);
    auto pick = [&](std::size_t n) {
        return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
    };
    std::vector<std::string> keys = tricky_keys();
    while (keys.size() < key_space) {
        keys.push_back("key-" + std::to_string(keys.size()));
    }
    keys.resize(key_space);

    KeyShard shard;
    std::unordered_map<std::string, std::string> model;
    std::lock_guard<geo::detail::SpinMutex> lock(shard.mutex());
    for (int step = 0; step < steps; ++step) {
        const std::string& key = keys[pick(keys.size())];
        const std::size_t h = hasher.hash(key);
        Slot* found = shard.find(key, h);
        const auto it = model.find(key);
        REQUIRE((found != nullptr) == (it != model.end()));
        const int op = static_cast<int>(pick(10));
        if (found == nullptr && op < 6) {
            const std::string value = "v" + std::to_string(step);
            Slot* inserted = shard.insert(slot_with(key, value), h);
            REQUIRE(inserted->key == key);
            model.emplace(key, value);
        } else if (found != nullptr && op < 4) {
            REQUIRE(found->key == key);
            REQUIRE(found->value == it->second);
            shard.erase(found, h);
            model.erase(it);
        } else if (op == 9 && pick(20) == 0) {
            // Erase about a third of the keys, picked by value.
            const std::size_t erased =
                shard.erase_if([](const Slot& slot) { return hash_key(slot.value) % 3 == 0; });
            std::size_t expected = 0;
            for (auto m = model.begin(); m != model.end();) {
                if (hash_key(m->second) % 3 == 0) {
                    m = model.erase(m);
                    ++expected;
                } else {
                    ++m;
                }
            }
            REQUIRE(erased == expected);
        }
        REQUIRE(shard.size() == model.size());
        if (step % 50 == 0 || step == steps - 1) {
            // Every key: present ones found with their own value, absent ones not found.
            for (const auto& k : keys) {
                const Slot* s = shard.find(k, hasher.hash(k));
                const auto m = model.find(k);
                REQUIRE((s != nullptr) == (m != model.end()));
                if (s != nullptr) {
                    REQUIRE(s->key == k);
                    REQUIRE(s->value == m->second);
                }
            }
            // for_each visits each stored slot once, with the hash it was stored under.
            std::set<std::string> visited;
            shard.for_each([&](const Slot& slot, std::size_t stored_hash) {
                REQUIRE(stored_hash == hasher.hash(std::string(slot.key)));
                REQUIRE(visited.insert(std::string(slot.key)).second);
            });
            REQUIRE(visited.size() == model.size());
        }
    }
}

} // namespace

TEST_CASE("KeyShard agrees with std::unordered_map on random insert, find and erase",
          "[key_store]") {
    for (const auto& hasher : hashers()) {
        for (std::uint32_t seed = 1; seed <= 8; ++seed) {
            // A small key space keeps the table busy with erase and reinsert; a large one
            // makes it grow several times.
            check_against_map(hasher, seed, 20, 2000);
            check_against_map(hasher, seed, 300, 2000);
        }
    }
}

TEST_CASE("KeyShard tells apart keys with equal prefixes, equal lengths and the empty key",
          "[key_store]") {
    const std::vector<std::string> keys = tricky_keys();
    const std::size_t h = GENERATE(0, 1); // 1: every key under one hash, only bytes decide
    KeyShard shard;
    std::lock_guard<geo::detail::SpinMutex> lock(shard.mutex());
    auto hash_of = [&](const std::string& k) { return h == 0 ? hash_key(k) : std::size_t{7}; };
    for (std::size_t i = 0; i < keys.size(); ++i) {
        REQUIRE(shard.find(keys[i], hash_of(keys[i])) == nullptr);
        shard.insert(slot_with(keys[i], std::to_string(i)), hash_of(keys[i]));
    }
    REQUIRE(shard.size() == keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
        INFO("key #" << i);
        const Slot* s = shard.find(std::string(keys[i]), hash_of(keys[i])); // another address
        REQUIRE(s != nullptr);
        REQUIRE(s->value == std::to_string(i));
        REQUIRE(s->key == keys[i]);
    }
    // A key's slot holds its bytes right after the slot.
    const Slot* empty = shard.find("", hash_of(""));
    REQUIRE(empty != nullptr);
    REQUIRE(empty->key.empty());
    for (const std::string missing : {"abcdefgh3", "abcdefghijklmnopqr", "b", "kk "}) {
        REQUIRE(shard.find(missing, hash_of(missing)) == nullptr);
    }
    // Erasing the empty key leaves every other key in place.
    shard.erase(shard.find("", hash_of("")), hash_of(""));
    REQUIRE(shard.find("", hash_of("")) == nullptr);
    REQUIRE(shard.find(std::string(1, '\0'), hash_of(std::string(1, '\0'))) != nullptr);
    REQUIRE(shard.size() == keys.size() - 1);
}

TEST_CASE("KeyShard::erase_if erases exactly the picked slots", "[key_store]") {
    KeyShard shard;
    std::lock_guard<geo::detail::SpinMutex> lock(shard.mutex());
    for (int i = 0; i < 200; ++i) {
        const std::string key = "key-" + std::to_string(i);
        shard.insert(slot_with(key, std::to_string(i)), hash_key(key));
    }
    REQUIRE(shard.erase_if([](const Slot&) { return false; }) == 0);
    REQUIRE(shard.erase_if([](const Slot& s) { return std::stoi(s.value) % 3 == 0; }) == 67);
    REQUIRE(shard.size() == 133);
    for (int i = 0; i < 200; ++i) {
        const std::string key = "key-" + std::to_string(i);
        REQUIRE((shard.find(key, hash_key(key)) == nullptr) == (i % 3 == 0));
    }

    // A picker that throws erases nothing.
    int calls = 0;
    REQUIRE_THROWS_AS(shard.erase_if([&](const Slot&) {
        if (++calls == 50) {
            throw std::runtime_error("picker failed");
        }
        return true;
    }),
                      std::runtime_error);
    REQUIRE(shard.size() == 133);

    REQUIRE(shard.erase_if([](const Slot&) { return true; }) == 133);
    REQUIRE(shard.size() == 0);
    REQUIRE(shard.find("key-1", hash_key("key-1")) == nullptr);
}

TEST_CASE("KeyStore counts keys across its shards and finds each in its shard", "[key_store]") {
    auto store = std::make_unique<KeyStore>();
    REQUIRE(store->size() == 0);
    constexpr int keys = 5000;
    for (int i = 0; i < keys; ++i) {
        const std::string key = "user:" + std::to_string(i);
        const std::size_t h = store->hash(key);
        REQUIRE(h == store->hash(std::string(key))); // a function of the bytes
        geo::detail::KeyShard& shard = store->shard_for(h);
        std::lock_guard<geo::detail::SpinMutex> lock(shard.mutex());
        REQUIRE(shard.find(key, h) == nullptr);
        shard.insert(slot_with(key, key), h);
    }
    REQUIRE(store->size() == keys);
    std::size_t summed = 0;
    store->for_each_shard([&](KeyShard& shard) {
        std::lock_guard<geo::detail::SpinMutex> lock(shard.mutex());
        summed += shard.size();
        // Every key in a shard is one shard_for sends there.
        shard.for_each([&](const Slot& slot, std::size_t h) {
            REQUIRE(&store->shard_for(h) == &shard);
            REQUIRE(h == store->hash(slot.key));
        });
    });
    REQUIRE(summed == keys);
    for (int i = 0; i < keys; i += 7) {
        const std::string key = "user:" + std::to_string(i);
        const std::size_t h = store->hash(key);
        const KeyStore& view = *store;
        std::lock_guard<geo::detail::SpinMutex> lock(view.shard_for(h).mutex());
        const Slot* slot = view.shard_for(h).find(key, h);
        REQUIRE(slot != nullptr);
        REQUIRE(slot->value == key);
    }
}

TEST_CASE("KeyStore::shard_for spreads keys over all its shards", "[key_store]") {
    auto store = std::make_unique<KeyStore>();
    constexpr std::size_t keys = 1 << 14;
    std::vector<std::size_t> per_shard(KeyStore::shard_count);
    std::vector<const KeyShard*> shard_addresses;
    store->for_each_shard([&](KeyShard& shard) { shard_addresses.push_back(&shard); });
    REQUIRE(shard_addresses.size() == KeyStore::shard_count);
    for (std::size_t i = 0; i < keys; ++i) {
        const std::string key = "http://example.org/resource/" + std::to_string(i);
        const KeyShard* shard = &store->shard_for(store->hash(key));
        const auto at = std::find(shard_addresses.begin(), shard_addresses.end(), shard);
        REQUIRE(at != shard_addresses.end());
        ++per_shard[static_cast<std::size_t>(at - shard_addresses.begin())];
    }
    // Expected 256 per shard; the bounds are many standard deviations wide for a uniform
    // hash, and fail if the shard ignores the hash's top bits or uses too few of them.
    const auto [least, most] = std::minmax_element(per_shard.begin(), per_shard.end());
    REQUIRE(*least > 150);
    REQUIRE(*most < 380);

    // Two stores hash with different secret seeds.
    auto other = std::make_unique<KeyStore>();
    std::size_t same = 0;
    for (int i = 0; i < 100; ++i) {
        const std::string key = "k" + std::to_string(i);
        same += store->hash(key) == other->hash(key) ? 1 : 0;
    }
    REQUIRE(same == 0);
}

TEST_CASE("hash_key spreads similar keys over shards and buckets", "[key_store]") {
    // The replicator takes the shard from the top bits and the bucket from the low bits; keys
    // that differ only in a trailing counter must still spread over both.
    constexpr std::size_t keys = 1 << 16;
    constexpr std::size_t shards = 64;
    constexpr std::size_t buckets = 1 << 12;
    std::vector<std::size_t> per_shard(shards);
    std::vector<std::size_t> per_bucket(buckets);
    std::set<std::size_t> distinct;
    const std::uint64_t seed = GENERATE(0ULL, 0x5eed5eed5eed5eedULL, geo::detail::random_seed());
    for (std::size_t i = 0; i < keys; ++i) {
        const std::string key = "http://example.org/resource/" + std::to_string(i);
        const std::size_t h = geo::detail::hash_key(key, seed);
        REQUIRE(h == geo::detail::hash_key(std::string(key), seed)); // a function of the bytes
        distinct.insert(h);
        ++per_shard[(static_cast<std::uint64_t>(h) >> 48) % shards];
        ++per_bucket[h & (buckets - 1)];
    }
    REQUIRE(distinct.size() == keys);
    // Expected 1024 per shard and 16 per bucket; these bounds are many standard deviations
    // wide for a uniform hash, and fail for one that ignores the counter's bytes.
    const auto [shard_min, shard_max] = std::minmax_element(per_shard.begin(), per_shard.end());
    REQUIRE(*shard_min > 850);
    REQUIRE(*shard_max < 1200);
    const auto [bucket_min, bucket_max] = std::minmax_element(per_bucket.begin(), per_bucket.end());
    REQUIRE(*bucket_min > 0);
    REQUIRE(*bucket_max < 45);
}

TEST_CASE("hash_key with a secret seed resists keys built to collide", "[key_store]") {
    // Without a seed, a word equal to the first mixing constant is multiplied by zero, so keys
    // of 9 to 16 bytes that start with it collide whatever their other bytes.
    constexpr std::uint64_t k1 = 0xc2b2ae3d27d4eb4fULL;
    std::string prefix(8, '\0');
    for (std::size_t i = 0; i < 8; ++i) {
        prefix[i] = static_cast<char>((k1 >> (8 * i)) & 0xff); // little-endian word
    }
    std::set<std::size_t> unseeded;
    std::set<std::size_t> seeded;
    const std::uint64_t seed = geo::detail::random_seed();
    for (int i = 0; i < 1000; ++i) {
        const std::string key = prefix + std::to_string(1000 + i);
        unseeded.insert(geo::detail::hash_key(key));
        seeded.insert(geo::detail::hash_key(key, seed));
    }
    // Little-endian machines only show the weakness; the seeded hash must spread either way.
    REQUIRE(seeded.size() == 1000);
    if (geo::detail::load_word(prefix.data()) == k1) {
        REQUIRE(unseeded.size() < 10);
    }
    // Two seeds give unrelated hashes.
    REQUIRE(geo::detail::random_seed() != geo::detail::random_seed());
    std::size_t same = 0;
    for (int i = 0; i < 1000; ++i) {
        const std::string key = "http://example.org/resource/" + std::to_string(i);
        same += geo::detail::hash_key(key, 1) == geo::detail::hash_key(key, 2) ? 1 : 0;
    }
    REQUIRE(same == 0);
}

TEST_CASE("hash_key depends on every byte and on the length", "[key_store]") {
    std::set<std::size_t> seen;
    std::size_t made = 0;
    for (std::size_t len = 0; len <= 40; ++len) {
        const std::string base(len, 'k');
        seen.insert(geo::detail::hash_key(base));
        ++made;
        for (std::size_t pos = 0; pos < len; ++pos) {
            std::string flipped = base;
            flipped[pos] = 'j';
            seen.insert(geo::detail::hash_key(flipped));
            ++made;
        }
    }
    REQUIRE(seen.size() == made);
}
