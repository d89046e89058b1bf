// FanoutQueue on its own: one source region's writes owed to its peers, with a cursor per
// target. Random operation sequences, as the write path issues them, are checked against a
// naive model after every step; directed tests spell out the rules one by one.

#include <geo/detail/entry.hpp>
#include <geo/detail/fanout_queue.hpp>

#include "geo_test.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using geo::FanoutEntry;
using geo::GeoRecord;
using geo::VectorClock;
using geo::detail::copy_entry;
using geo::detail::EntryPtr;
using geo::detail::FanoutQueue;
using geo::detail::new_entry;
using geo::detail::QueueEntry;
using geo::detail::Slot;
using geo::detail::SlotPtr;

namespace {

constexpr std::size_t all = std::numeric_limits<std::size_t>::max();

const std::vector<std::string> region_ids{"us-east-1", "eu-west-1", "ap-northeast-1", "sa-east-1"};

/// Writes `seq` of region `region` into a slot, as the write path's store() does.
void store(QueueEntry& e, std::size_t region, std::uint64_t seq, std::size_t value_size,
           bool deleted) {
    e.timestamp_ms = 1000 + seq;
    e.seq = seq;
    e.region = static_cast<std::uint32_t>(region);
    e.deleted = deleted;
    e.value.assign(value_size, static_cast<char>('a' + seq % 26));
    e.clock = seq % 4 != 1 ? VectorClock{} : VectorClock{{region + 1, seq}, {9, seq / 2}};
}

/// What collect() must return for an entry holding `e`'s current record that follows `prev`.
FanoutEntry travelling(const QueueEntry& e, std::uint64_t prev = 0) {
    return FanoutEntry{std::string(e.key), geo::detail::record_of(e, region_ids), e.seq, prev};
}

std::string describe(const FanoutEntry& e) {
    std::ostringstream out;
    out << "{key '" << e.key << "' seq " << e.seq << " region " << e.record.region << " ts "
        << e.record.timestamp_ms << " value '" << e.record.value << "' deleted " << e.record.deleted
        << " clock size " << e.record.clock.entries().size() << "}";
    return out.str();
}

std::string describe(const std::vector<FanoutEntry>& batch) {
    std::string out = "[";
    for (const auto& e : batch) {
        out += describe(e) + " ";
    }
    return out + "]";
}

/// The naive model: the queue as an ordered list of (key, seq, is_copy) with the record each
/// entry must travel with, plus the highest seq each target acknowledged.
struct Model {
    struct Item {
        std::string key;
        std::uint64_t seq;
        bool copy;
        FanoutEntry expected;
    };

    std::size_t self;
    std::vector<Item> items;          ///< ascending seq
    std::vector<std::uint64_t> acked; ///< per target
    std::uint64_t issued = 0;         ///< the highest seq handed out so far

    Model(std::size_t self_index, std::size_t regions) : self(self_index), acked(regions, 0) {}

    [[nodiscard]] bool owes(std::size_t target, const Item& item) const {
        return target != self && item.seq > acked[target];
    }

    [[nodiscard]] std::size_t owed(std::size_t target) const {
        return static_cast<std::size_t>(std::count_if(
            items.begin(), items.end(), [&](const Item& i) { return owes(target, i); }));
    }

    /// Owed entries follow the target's acknowledged seq, then each other.
    [[nodiscard]] std::vector<FanoutEntry> collect(std::size_t target, std::size_t max) const {
        std::vector<FanoutEntry> out;
        std::uint64_t prev = acked[target];
        for (const auto& item : items) {
            if (out.size() < max && owes(target, item)) {
                out.push_back(item.expected);
                out.back().prev_seq = prev;
                prev = item.seq;
            }
        }
        return out;
    }

    /// Whether `batch` from `from` on is what collect(target, max) must append (without
    /// copying the expected entries: this runs after every step).
    [[nodiscard]] bool collected(std::size_t target, std::size_t max,
                                 const std::vector<FanoutEntry>& batch, std::size_t from) const {
        std::size_t at = from;
        std::uint64_t prev = acked[target];
        for (const auto& item : items) {
            if (at - from < max && owes(target, item)) {
                if (at == batch.size() || batch[at].prev_seq != prev ||
                    batch[at].seq != item.expected.seq || batch[at].key != item.expected.key ||
                    batch[at].record != item.expected.record) {
                    return false;
                }
                prev = item.seq;
                ++at;
            }
        }
        return at == batch.size();
    }

    [[nodiscard]] bool holds_copy(const std::string& key) const {
        return std::any_of(items.begin(), items.end(),
                           [&](const Item& i) { return i.copy && i.key == key; });
    }

    [[nodiscard]] bool slot_linked(const std::string& key) const {
        return std::any_of(items.begin(), items.end(),
                           [&](const Item& i) { return !i.copy && i.key == key; });
    }

    void erase(const std::string& key, bool copy) {
        items.erase(std::remove_if(items.begin(), items.end(),
                                   [&](const Item& i) { return i.copy == copy && i.key == key; }),
                    items.end());
    }

    /// An acknowledgement covers what was issued so far: entries pushed later are owed again.
    /// Returns how many entries stopped being owed to `target`.
    std::size_t acknowledge(std::size_t target, std::uint64_t up_to) {
        if (target == self) {
            return 0;
        }
        const std::uint64_t before = acked[target];
        acked[target] = std::max(before, std::min(up_to, issued));
        const auto released =
            static_cast<std::size_t>(std::count_if(items.begin(), items.end(), [&](const Item& i) {
                return i.seq > before && i.seq <= acked[target];
            }));
        // Entries nobody is owed any more leave the queue.
        items.erase(std::remove_if(items.begin(), items.end(),
                                   [&](const Item& i) {
                                       for (std::size_t t = 0; t < acked.size(); ++t) {
                                           if (owes(t, i)) {
                                               return false;
                                           }
                                       }
                                       return true;
                                   }),
                    items.end());
        return released;
    }
};

/// A FanoutQueue driven like the write path drives it, with the model alongside. The test owns
/// the slots (as the key store does); the queue owns its detached copies.
class Harness {
public:
    Harness(std::uint32_t seed, std::size_t regions, std::size_t self,
            const std::vector<std::string>& keys)
        : rng_(seed), regions_(regions), keys_(keys), model_(self, regions) {
        for (const auto& key : keys_) {
            slots_.emplace_back(new_entry<Slot>(key));
        }
        queue_ = std::make_unique<FanoutQueue>(self, regions);
    }

    Harness(const Harness&) = delete;
    Harness& operator=(const Harness&) = delete;
    ~Harness() { queue_.reset(); } // before the slots it may still link

    /// A commit of key `k` by this region: the slot leaves the queue if it is in it, a copy
    /// of the key's earlier write is dropped, and the slot is pushed with the next seq (seqs
    /// may skip: the stream also counts writes that never enter this queue).
    std::string commit(std::size_t k) {
        Slot& slot = *slots_[k];
        const std::uint64_t seq = model_.issued + 1 + pick(3) / 2;
        model_.issued = seq;
        std::lock_guard<geo::detail::SpinMutex> lock(queue_->mutex());
        if (slot.is_linked()) {
            queue_->unlink(slot);
            model_.erase(keys_[k], false);
        }
        queue_->drop_copy(keys_[k]);
        model_.erase(keys_[k], true);
        store(slot, model_.self, seq, value_size(), pick(4) == 0);
        queue_->push(slot);
        model_.items.push_back(Model::Item{keys_[k], seq, false, travelling(slot)});
        return "commit '" + keys_[k] + "' seq " + std::to_string(seq);
    }

    /// Another region's write displaces key `k`'s record: a linked slot is replaced in the
    /// queue by a copy, and then rewritten (it now belongs to that other region).
    std::string displace(std::size_t k) {
        Slot& slot = *slots_[k];
        std::lock_guard<geo::detail::SpinMutex> lock(queue_->mutex());
        if (!slot.is_linked()) {
            return "displace '" + keys_[k] + "' (not queued: nothing to do)";
        }
        queue_->keep_copy(slot, copy_entry(slot));
        for (auto& item : model_.items) {
            if (!item.copy && item.key == keys_[k]) {
                item.copy = true;
            }
        }
        store(slot, (model_.self + 1) % regions_, 100000 + pick(1000), value_size(), pick(2) == 0);
        return "displace '" + keys_[k] + "'";
    }

    std::string unlink(std::size_t k) {
        Slot& slot = *slots_[k];
        std::lock_guard<geo::detail::SpinMutex> lock(queue_->mutex());
        if (!slot.is_linked()) {
            return "unlink '" + keys_[k] + "' (not queued: nothing to do)";
        }
        queue_->unlink(slot);
        model_.erase(keys_[k], false);
        return "unlink '" + keys_[k] + "'";
    }

    std::string drop_copy(std::size_t k) {
        std::lock_guard<geo::detail::SpinMutex> lock(queue_->mutex());
        queue_->drop_copy(keys_[k]);
        model_.erase(keys_[k], true);
        return "drop_copy '" + keys_[k] + "'";
    }

    /// Acknowledges below, at, inside or past the queue (now and then as the region itself).
    std::string acknowledge() {
        const std::size_t target = pick(10) == 0 ? model_.self : pick(regions_);
        std::uint64_t up_to = 0;
        const std::uint64_t first = model_.items.empty() ? 0 : model_.items.front().seq;
        switch (pick(5)) {
        case 0: // below the queue
            up_to = first == 0 ? 0 : pick(static_cast<std::size_t>(first));
            break;
        case 1: // exactly an entry
            up_to = model_.items.empty() ? 0 : model_.items[pick(model_.items.size())].seq;
            break;
        case 2: // anywhere up to the newest seq (between entries, or a seq that left)
            up_to = pick(static_cast<std::size_t>(model_.issued) + 1);
            break;
        case 3: // past the newest entry
            up_to = model_.issued + pick(3);
            break;
        default: // far past
            up_to = std::numeric_limits<std::uint64_t>::max() - pick(2);
            break;
        }
        std::lock_guard<geo::detail::SpinMutex> lock(queue_->mutex());
        // As the replicator does: capped at the source's latest commit.
        const std::size_t released = queue_->acknowledge(target, up_to, model_.issued);
        const std::size_t expected = model_.acknowledge(target, up_to);
        std::string what =
            "acknowledge(" + std::to_string(target) + ", " + std::to_string(up_to) + ")";
        if (released != expected) {
            return what + " returned " + std::to_string(released) + ", model " +
                   std::to_string(expected) + " [MISMATCH]";
        }
        return what;
    }

    std::string step() {
        const std::size_t k = pick(keys_.size());
        switch (pick(10)) {
        case 0:
        case 1:
        case 2:
            return commit(k);
        case 3:
        case 4:
            return displace(k);
        case 5:
            return unlink(k);
        case 6:
            return drop_copy(k);
        default:
            return acknowledge();
        }
    }

    /// Every observable against the model; empty if they all agree, else the first mismatch.
    std::string mismatch() {
        std::lock_guard<geo::detail::SpinMutex> lock(queue_->mutex());
        const FanoutQueue& q = *queue_;
        if (q.queued() != model_.items.size()) {
            return "queued() " + std::to_string(q.queued()) + ", model " +
                   std::to_string(model_.items.size());
        }
        const QueueEntry* head = q.head();
        if ((head == nullptr) != model_.items.empty() ||
            (head != nullptr && head->seq != model_.items.front().seq)) {
            return "head() does not hold the oldest entry";
        }
        for (std::size_t t = 0; t < regions_; ++t) {
            if (t != model_.self && q.acked(t) != model_.acked[t]) {
                return "acked(" + std::to_string(t) + ") " + std::to_string(q.acked(t)) +
                       ", model " + std::to_string(model_.acked[t]);
            }
            if (q.owed(t) != model_.owed(t)) {
                return "owed(" + std::to_string(t) + ") " + std::to_string(q.owed(t)) + ", model " +
                       std::to_string(model_.owed(t));
            }
            const std::size_t max = pick(3) == 0 ? all : pick(5);
            // collect appends: whatever the batch held stays in front.
            batch_.resize(1);
            q.collect(t, max, region_ids, batch_);
            if (!model_.collected(t, max, batch_, 1) || batch_[0].key != "earlier") {
                std::vector<FanoutEntry> expected{FanoutEntry{"earlier", GeoRecord{}, 0}};
                const auto owed = model_.collect(t, max);
                expected.insert(expected.end(), owed.begin(), owed.end());
                return "collect(" + std::to_string(t) + ", " + std::to_string(max) + ") " +
                       describe(batch_) + ", model " + describe(expected);
            }
        }
        for (std::size_t k = 0; k < keys_.size(); ++k) {
            if (q.holds_copy(keys_[k]) != model_.holds_copy(keys_[k])) {
                return "holds_copy('" + keys_[k] + "') " + std::to_string(q.holds_copy(keys_[k]));
            }
            if (slots_[k]->is_linked() != model_.slot_linked(keys_[k])) {
                return "slot '" + keys_[k] + "' is_linked() " +
                       std::to_string(slots_[k]->is_linked());
            }
        }
        return {};
    }

private:
    /// Mostly short values, now and then a long one (allocated, unlike short strings).
    std::size_t value_size() { return pick(8) == 0 ? 16 + pick(40) : pick(12); }

    std::size_t pick(std::size_t n) {
        return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
    }

    std::mt19937 rng_;
    std::size_t regions_;
    std::vector<std::string> keys_;
    Model model_;
    std::vector<SlotPtr> slots_;
    std::unique_ptr<FanoutQueue> queue_;
    std::vector<FanoutEntry> batch_{FanoutEntry{"earlier", GeoRecord{}, 0}};
};

/// Pushes a fresh slot with `seq` into `q` (caller keeps the slot).
SlotPtr pushed(FanoutQueue& q, std::size_t self, const std::string& key, std::uint64_t seq) {
    SlotPtr slot(new_entry<Slot>(key));
    store(*slot, self, seq, 8, false);
    q.push(*slot);
    return slot;
}

std::vector<std::uint64_t> seqs_owed(const FanoutQueue& q, std::size_t target) {
    std::vector<std::uint64_t> seqs;
    q.for_each_owed(target, all, 0,
                    [&](const QueueEntry& e, std::uint64_t) { seqs.push_back(e.seq); });
    return seqs;
}

} // namespace

TEST_CASE("FanoutQueue agrees with a naive model on random operation sequences", "[fanout_queue]") {
    // Keys that share prefixes, differ only in length, or are empty: the copies are indexed
    // by key bytes.
    const std::vector<std::string> key_pool{
        "", "k", "k1", "k10", "a-longer-key-of-24-bytes", "a-longer-key-of-24-bytez"};
    constexpr std::uint32_t seeds = 500;
    constexpr int steps = 300;
    for (std::uint32_t seed = 1; seed <= seeds; ++seed) {
        const std::size_t regions = 2 + seed % 3;
        const std::size_t self = (seed / 3) % regions;
        const std::size_t key_count = 2 + (seed / 7) % (key_pool.size() - 1);
        const std::vector<std::string> keys(
            key_pool.begin(), key_pool.begin() + static_cast<std::ptrdiff_t>(key_count));
        Harness h(seed, regions, self, keys);
        std::vector<std::string> history;
        for (int i = 0; i < steps; ++i) {
            history.push_back(h.step());
            std::string problem = h.mismatch();
            if (history.back().find("[MISMATCH]") != std::string::npos) {
                problem = history.back();
            }
            if (!problem.empty()) {
                std::ostringstream out;
                out << "seed " << seed << ", " << regions << " regions, self " << self << ", step "
                    << i << ": " << problem << "\nlast steps:";
                for (std::size_t j = history.size() > 12 ? history.size() - 12 : 0;
                     j < history.size(); ++j) {
                    out << "\n  " << history[j];
                }
                FAIL(out.str());
            }
        }
    }
}

TEST_CASE("an entry acknowledged by every target leaves the queue", "[fanout_queue]") {
    FanoutQueue q(0, 3);
    std::lock_guard<geo::detail::SpinMutex> lock(q.mutex());
    SlotPtr a = pushed(q, 0, "a", 1);
    SlotPtr b = pushed(q, 0, "b", 2);
    REQUIRE(q.queued() == 2);
    REQUIRE(q.owed(1) == 2);
    REQUIRE(q.owed(2) == 2);

    REQUIRE(q.acknowledge(1, 1) == 1);
    // Still owed to region 2: it stays, and only region 1's view moved on.
    REQUIRE(q.queued() == 2);
    REQUIRE(a->is_linked());
    REQUIRE(q.head() == a.get());
    REQUIRE(seqs_owed(q, 1) == std::vector<std::uint64_t>{2});
    REQUIRE(seqs_owed(q, 2) == std::vector<std::uint64_t>{1, 2});

    REQUIRE(q.acknowledge(2, 1) == 1);
    REQUIRE(q.queued() == 1);
    REQUIRE_FALSE(a->is_linked());
    REQUIRE(b->is_linked());
    REQUIRE(q.head() == b.get());
    REQUIRE(q.owed(1) == 1);
    REQUIRE(q.owed(2) == 1);

    // Acknowledging again, or below, changes nothing.
    REQUIRE(q.acknowledge(2, 1) == 0);
    REQUIRE(q.acknowledge(1, 0) == 0);
    REQUIRE(q.queued() == 1);

    REQUIRE(q.acknowledge(2, 2) == 1);
    REQUIRE(q.acknowledge(1, 2) == 1);
    REQUIRE(q.queued() == 0);
    REQUIRE(q.head() == nullptr);
    REQUIRE_FALSE(b->is_linked());

    // The emptied queue takes new entries, owed to every target again.
    SlotPtr c = pushed(q, 0, "c", 3);
    REQUIRE(q.queued() == 1);
    REQUIRE(q.owed(1) == 1);
    REQUIRE(q.owed(2) == 1);
    REQUIRE(q.head() == c.get());
}

TEST_CASE("a detached copy stays owed until every target acknowledges it, then is freed",
          "[fanout_queue]") {
    // ASan/LSan check "freed": a copy deleted twice or never fails the sanitizer build.
    FanoutQueue q(1, 3);
    std::lock_guard<geo::detail::SpinMutex> lock(q.mutex());
    SlotPtr slot = pushed(q, 1, "key", 1);
    SlotPtr later = pushed(q, 1, "later", 2);
    const FanoutEntry displaced = travelling(*slot);

    q.keep_copy(*slot, copy_entry(*slot));
    REQUIRE_FALSE(slot->is_linked());
    REQUIRE(q.holds_copy("key"));
    REQUIRE_FALSE(q.holds_copy("ke"));
    REQUIRE(q.queued() == 2);
    REQUIRE(q.owed(0) == 2);
    REQUIRE(q.owed(2) == 2);
    // The slot is rewritten by another region; the copy still ships the displaced write.
    store(*slot, 2, 77, 30, true);
    std::vector<FanoutEntry> batch;
    q.collect(0, all, region_ids, batch);
    REQUIRE(batch.size() == 2);
    REQUIRE(batch[0] == displaced);
    REQUIRE(batch[1] == travelling(*later, displaced.seq));

    REQUIRE(q.acknowledge(0, 1) == 1);
    REQUIRE(q.holds_copy("key"));
    REQUIRE(q.queued() == 2);
    REQUIRE(q.acknowledge(2, 1) == 1);
    REQUIRE_FALSE(q.holds_copy("key"));
    REQUIRE(q.queued() == 1);
    REQUIRE(q.head() == later.get());
}

TEST_CASE("a newer commit drops the copy of the key's displaced write", "[fanout_queue]") {
    FanoutQueue q(0, 2);
    std::lock_guard<geo::detail::SpinMutex> lock(q.mutex());
    SlotPtr slot = pushed(q, 0, "key", 1);
    q.keep_copy(*slot, copy_entry(*slot));
    q.drop_copy("other"); // another key's: nothing happens
    REQUIRE(q.holds_copy("key"));
    REQUIRE(q.queued() == 1);

    q.drop_copy("key");
    REQUIRE_FALSE(q.holds_copy("key"));
    REQUIRE(q.queued() == 0);
    REQUIRE(q.owed(1) == 0);
    store(*slot, 0, 2, 8, false);
    q.push(*slot);
    REQUIRE(seqs_owed(q, 1) == std::vector<std::uint64_t>{2});
}

TEST_CASE("copies still owed are freed with the queue", "[fanout_queue]") {
    // Only the sanitizer build can fail this one: LSan reports a copy the destructor leaks.
    SlotPtr slot(new_entry<Slot>("key"));
    {
        FanoutQueue q(0, 3);
        std::lock_guard<geo::detail::SpinMutex> lock(q.mutex());
        store(*slot, 0, 1, 64, false);
        q.push(*slot);
        q.keep_copy(*slot, copy_entry(*slot));
        REQUIRE(q.holds_copy("key"));
    }
    REQUIRE_FALSE(slot->is_linked());
}

TEST_CASE("acknowledging past the newest entry acknowledges everything", "[fanout_queue]") {
    FanoutQueue q(0, 3);
    std::lock_guard<geo::detail::SpinMutex> lock(q.mutex());
    SlotPtr a = pushed(q, 0, "a", 1);
    SlotPtr b = pushed(q, 0, "b", 2);
    SlotPtr c = pushed(q, 0, "c", 5);
    REQUIRE(q.acknowledge(1, 100) == 3);
    REQUIRE(q.owed(1) == 0);
    REQUIRE(seqs_owed(q, 1).empty());
    REQUIRE(q.owed(2) == 3);
    REQUIRE(q.queued() == 3); // region 2 is still owed all of them

    // What is pushed afterwards is owed again.
    SlotPtr d = pushed(q, 0, "d", 6);
    REQUIRE(seqs_owed(q, 1) == std::vector<std::uint64_t>{6});
    REQUIRE(q.owed(1) == 1);

    REQUIRE(q.acknowledge(2, std::numeric_limits<std::uint64_t>::max()) == 4);
    REQUIRE(q.queued() == 1); // d, still owed to region 1
    REQUIRE(q.head() == d.get());
    REQUIRE(q.acknowledge(1, 6) == 1);
    REQUIRE(q.queued() == 0);
    for (const auto* s : {a.get(), b.get(), c.get(), d.get()}) {
        REQUIRE_FALSE(s->is_linked());
    }
}

TEST_CASE("a region owes itself nothing", "[fanout_queue]") {
    const std::size_t self = GENERATE(0, 1, 2);
    FanoutQueue q(self, 3);
    std::lock_guard<geo::detail::SpinMutex> lock(q.mutex());
    SlotPtr a = pushed(q, self, "a", 1);
    SlotPtr b = pushed(q, self, "b", 2);
    REQUIRE(q.owed(self) == 0);
    std::vector<FanoutEntry> batch;
    q.collect(self, all, region_ids, batch);
    REQUIRE(batch.empty());
    REQUIRE(q.acknowledge(self, 2) == 0);
    REQUIRE(q.queued() == 2);

    // Once every other region acknowledged, nothing is left, whatever self did.
    for (std::size_t t = 0; t < 3; ++t) {
        if (t != self) {
            REQUIRE(q.acknowledge(t, 2) == 2);
        }
    }
    REQUIRE(q.queued() == 0);
    REQUIRE_FALSE(a->is_linked());
    REQUIRE_FALSE(b->is_linked());
}

TEST_CASE("collect returns at most max entries, oldest first, as they travel", "[fanout_queue]") {
    FanoutQueue q(2, 3);
    std::lock_guard<geo::detail::SpinMutex> lock(q.mutex());
    std::vector<SlotPtr> slots;
    for (std::uint64_t seq = 1; seq <= 5; ++seq) {
        slots.push_back(pushed(q, 2, "key" + std::to_string(seq), seq * 2));
    }
    std::vector<FanoutEntry> batch;
    q.collect(0, 0, region_ids, batch);
    REQUIRE(batch.empty());
    q.collect(0, 3, region_ids, batch);
    REQUIRE(batch.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        REQUIRE(batch[i] == travelling(*slots[i], i == 0 ? 0 : slots[i - 1]->seq));
        REQUIRE(batch[i].record.region == "ap-northeast-1");
        REQUIRE(batch[i].seq == batch[i].record.seq);
    }
    // Collecting acknowledges nothing.
    REQUIRE(q.owed(0) == 5);
    batch.clear();
    q.acknowledge(0, 7);
    q.collect(0, all, region_ids, batch);
    REQUIRE(batch.size() == 2);
    REQUIRE(batch[0].seq == 8);
    REQUIRE(batch[1].seq == 10);
}
