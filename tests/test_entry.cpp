// The in-memory record: new_entry puts the key's bytes right after the entry, copy_entry
// makes the detached copy a queue keeps, record_of builds the public record.

#include <geo/detail/entry.hpp>

#include "geo_test.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

using geo::GeoRecord;
using geo::VectorClock;
using geo::detail::copy_entry;
using geo::detail::EntryPtr;
using geo::detail::new_entry;
using geo::detail::QueueEntry;
using geo::detail::record_of;
using geo::detail::Slot;
using geo::detail::SlotPtr;

namespace {

const char* bytes_after(const void* entry, std::size_t size) {
    return static_cast<const char*>(entry) + size;
}

} // namespace

TEST_CASE("new_entry stores the key's bytes right after the entry", "[entry]") {
    const std::string key =
        GENERATE(std::string(), std::string("k"), std::string("nul\0in", 6), std::string(100, 'x'));
    std::string source = key; // the entry must not point into the caller's buffer
    SlotPtr slot(new_entry<Slot>(source));
    source.assign(source.size(), '?');
    REQUIRE(slot->key == key);
    REQUIRE(slot->key.size() == key.size());
    REQUIRE(slot->key.data() == bytes_after(slot.get(), sizeof(Slot)));
    // A fresh entry: an empty record, not linked, not a copy.
    REQUIRE_FALSE(slot->is_linked());
    REQUIRE_FALSE(slot->detached);
    REQUIRE(slot->seq == 0);
    REQUIRE(slot->timestamp_ms == 0);
    REQUIRE(slot->value.empty());
    REQUIRE(slot->clock.empty());
    REQUIRE(slot->prev == nullptr);
    REQUIRE(slot->next == nullptr);
}

TEST_CASE("copy_entry copies every field and the key bytes into a detached copy", "[entry]") {
    const bool deleted = GENERATE(false, true);
    const std::string key = GENERATE(std::string(), std::string("a-key-longer-than-16-bytes"),
                                     std::string("nul\0in", 6));
    SlotPtr slot(new_entry<Slot>(key));
    slot->timestamp_ms = 1234;
    slot->seq = 56;
    slot->region = 2;
    slot->deleted = deleted;
    slot->value = std::string(50, 'v');
    slot->clock = VectorClock{{1, 3}, {4, 9}};
    slot->set_linked(true); // as if queued: the copy must not inherit the links
    Slot neighbour("");     // any address will do for the links
    slot->prev = &neighbour;
    slot->next = &neighbour;

    EntryPtr copy = copy_entry(*slot);
    REQUIRE(copy->key == key);
    REQUIRE(copy->key.data() == bytes_after(copy.get(), sizeof(QueueEntry)));
    REQUIRE(copy->timestamp_ms == 1234);
    REQUIRE(copy->seq == 56);
    REQUIRE(copy->region == 2);
    REQUIRE(copy->deleted == deleted);
    REQUIRE(copy->value == std::string(50, 'v'));
    REQUIRE(copy->clock == VectorClock{{1, 3}, {4, 9}});
    REQUIRE(copy->detached);
    REQUIRE_FALSE(copy->is_linked());
    REQUIRE(copy->prev == nullptr);
    REQUIRE(copy->next == nullptr);

    // Independent of the slot from now on.
    slot->value.assign("rewritten");
    slot->clock = VectorClock{};
    REQUIRE(copy->value == std::string(50, 'v'));
    REQUIRE(copy->clock == VectorClock{{1, 3}, {4, 9}});
    slot->prev = slot->next = nullptr;
}

TEST_CASE("record_of maps the region index to its id and copies the record", "[entry]") {
    const std::vector<std::string> regions{"us-east-1", "eu-west-1", "ap-northeast-1"};
    SlotPtr slot(new_entry<Slot>("key"));
    slot->timestamp_ms = 77;
    slot->seq = 5;
    slot->deleted = true;
    slot->value = "value";
    slot->clock = VectorClock{{2, 1}};
    for (std::uint32_t r = 0; r < regions.size(); ++r) {
        slot->region = r;
        REQUIRE(record_of(*slot, regions) ==
                GeoRecord{regions[r], 77, VectorClock{{2, 1}}, "value", 5, true});
    }
}
