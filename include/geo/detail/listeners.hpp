#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "spin_mutex.hpp"

namespace geo::detail {

/// Callbacks for one kind of event, copy-on-write: a delivery runs over the set as it was
/// when it started, so listeners may add or remove listeners (or write to the replicator)
/// while they run, and no lock is held while they do.
///
/// Invariant (guarded by the set's lock): `list_` holds the registered listeners in
/// registration order, each with a distinct id; `any_` is whether the list is non-empty.
template <class Event>
class ListenerSet {
public:
    using Listener = std::function<void(const Event&)>;
    using Id = std::uint64_t;

    /// Registers `listener`; its id is never reused.
    Id add(Listener listener) {
        std::lock_guard<SpinMutex> lock(mu_);
        auto next = std::make_shared<List>(list_ ? *list_ : List{});
        next->emplace_back(last_id_ + 1, std::move(listener));
        list_ = std::move(next);
        any_.store(true, std::memory_order_release);
        return ++last_id_;
    }

    /// Unregisters; false if `id` is not registered. A delivery already under way may still
    /// call it once.
    bool remove(Id id) {
        std::lock_guard<SpinMutex> lock(mu_);
        if (!list_) {
            return false;
        }
        auto it = std::find_if(list_->begin(), list_->end(),
                               [id](const auto& entry) { return entry.first == id; });
        if (it == list_->end()) {
            return false;
        }
        auto next = std::make_shared<List>(*list_);
        next->erase(next->begin() + (it - list_->begin()));
        any_.store(!next->empty(), std::memory_order_release);
        list_ = std::move(next);
        return true;
    }

    /// Cheap check on a write path: build events only when someone listens.
    [[nodiscard]] bool any() const noexcept { return any_.load(std::memory_order_acquire); }

    /// Calls every listener for every event, in order. The caller must hold no lock a listener
    /// might take. A listener's exception is caught and counted; the others still run.
    void deliver(const std::vector<Event>& events) noexcept {
        if (events.empty()) {
            return;
        }
        std::shared_ptr<const List> list;
        {
            std::lock_guard<SpinMutex> lock(mu_);
            list = list_;
        }
        if (!list) {
            return;
        }
        for (const auto& event : events) {
            for (const auto& entry : *list) {
                try {
                    entry.second(event);
                } catch (...) {
                    errors_.fetch_add(1, std::memory_order_relaxed);
                }
            }
        }
    }

    /// Exceptions thrown by listeners and swallowed.
    [[nodiscard]] std::uint64_t errors() const noexcept {
        return errors_.load(std::memory_order_relaxed);
    }

private:
    using List = std::vector<std::pair<Id, Listener>>;

    SpinMutex mu_;
    std::shared_ptr<const List> list_;
    Id last_id_{};
    std::atomic<bool> any_{false};
    std::atomic<std::uint64_t> errors_{0};
};

} // namespace geo::detail
