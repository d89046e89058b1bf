#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <mutex>
#include <string_view>
#include <vector>

#include "../record.hpp"
#include "../types.hpp"
#include "fanout_queue.hpp"
#include "missed_writes.hpp"
#include "replica.hpp"

namespace geo::detail {

/// The outgoing streams of a Replica, by region index: what is owed, handed out and
/// acknowledged, how far behind a target is, and which peers hold a given write.
struct Streams {
    [[nodiscard]] static std::vector<FanoutEntry> peek(const Replica& rep, std::size_t s,
                                                       std::size_t t, std::size_t max_entries,
                                                       std::uint64_t after_seq) {
        std::vector<FanoutEntry> batch;
        if (s != t) {
            const FanoutQueue& queue = rep.regions[s]->queue;
            std::lock_guard<SpinMutex> lock(queue.mutex());
            queue.collect(t, max_entries, rep.config.regions, batch, after_seq);
        }
        return batch;
    }

    static std::size_t acknowledge(Replica& rep, std::size_t s, std::size_t t,
                                   std::uint64_t up_to_seq) {
        if (s == t) {
            return 0;
        }
        RegionState& state = *rep.regions[s];
        std::lock_guard<SpinMutex> lock(state.queue.mutex());
        return state.queue.acknowledge(t, up_to_seq, state.stream.seq());
    }

    [[nodiscard]] static std::vector<FanoutEntry> drain(Replica& rep, std::size_t s,
                                                        std::size_t t) {
        std::vector<FanoutEntry> batch;
        if (s != t) {
            FanoutQueue& queue = rep.regions[s]->queue;
            std::lock_guard<SpinMutex> lock(queue.mutex());
            queue.collect(t, std::numeric_limits<std::size_t>::max(), rep.config.regions, batch);
            if (!batch.empty()) {
                queue.acknowledge_drained(t, batch.back().seq, rep.regions[s]->stream.seq());
            }
        }
        return batch;
    }

    [[nodiscard]] static std::size_t queued(const Replica& rep, std::size_t s) {
        const FanoutQueue& queue = rep.regions[s]->queue;
        std::lock_guard<SpinMutex> lock(queue.mutex());
        return queue.queued();
    }

    [[nodiscard]] static std::size_t owed(const Replica& rep, std::size_t s, std::size_t t) {
        if (s == t) {
            return 0;
        }
        const FanoutQueue& queue = rep.regions[s]->queue;
        std::lock_guard<SpinMutex> lock(queue.mutex());
        return queue.owed(t);
    }

    /// The stream from `s` to `t` at `now_ms` (a region is never behind itself).
    [[nodiscard]] static StreamStatus status(const Replica& rep, std::size_t s, std::size_t t,
                                             std::uint64_t now_ms) {
        StreamStatus status{rep.config.regions[s],
                            rep.config.regions[t],
                            0,
                            0,
                            0,
                            std::chrono::milliseconds(0),
                            false};
        const RegionState& state = *rep.regions[s];
        std::lock_guard<SpinMutex> lock(state.queue.mutex());
        status.last_seq = state.stream.seq();
        if (s == t) {
            status.acknowledged_seq = status.last_seq;
            return status;
        }
        status.owed = state.queue.owed(t);
        status.acknowledged_seq = state.queue.acked(t); // capped when acknowledged
        const Missed oldest = state.queue.oldest_missed(t);
        const std::uint64_t lag = oldest.pinned() ? lag_ms(now_ms, oldest.since_ms) : 0;
        status.lag = to_lag(lag);
        status.stale = is_stale(lag, rep.config.max_lag);
        return status;
    }

    /// Every stream (source != target), by source then target in configured order.
    [[nodiscard]] static std::vector<StreamStatus> statuses(const Replica& rep,
                                                            std::uint64_t now_ms) {
        std::vector<StreamStatus> all;
        for (std::size_t s = 0; s < rep.regions.size(); ++s) {
            for (std::size_t t = 0; t < rep.regions.size(); ++t) {
                if (s != t) {
                    all.push_back(status(rep, s, t, now_ms));
                }
            }
        }
        return all;
    }

    /// How many peers hold write `seq` of `key` by region `s` (see FanoutQueue::holders): none
    /// for a seq `s` has not committed; every peer once no entry of the key is queued (each
    /// acknowledged its last one).
    [[nodiscard]] static std::size_t remote_acks(const Replica& rep, std::size_t s,
                                                 std::string_view key, std::uint64_t seq) {
        const std::size_t hash = rep.keys.hash(key);
        const KeyShard& shard = rep.keys.shard_for(hash);
        std::lock_guard<SpinMutex> shard_lock(shard.mutex()); // the documented order
        const RegionState& state = *rep.regions[s];
        std::lock_guard<SpinMutex> lock(state.queue.mutex());
        if (seq == 0 || seq > state.stream.seq()) {
            return 0;
        }
        const Slot* slot = shard.find(key, hash);
        const QueueEntry* entry = slot != nullptr && slot->region == s && slot->is_linked()
                                      ? slot
                                      : state.queue.copy_of(key);
        return entry != nullptr ? state.queue.holders(*entry, seq) : rep.regions.size() - 1;
    }
    [[nodiscard]] static bool is_durable(const Replica& rep, std::size_t s, std::string_view key,
                                         std::uint64_t seq, ConsistencyLevel level) {
        return remote_acks(rep, s, key, seq) >= min_remote_acks(level, rep.regions.size() - 1);
    }
};

/// Wakes threads waiting for acknowledgements (wait_durable): a notifier that finds no waiter
/// pays one atomic load.
class AckSignal {
public:
    /// After an acknowledgement (or anything else that may make a write durable) is applied.
    void notify() {
        if (waiters_.load(std::memory_order_seq_cst) == 0) {
            return;
        }
        {
            std::lock_guard<std::mutex> lock(mu_);
            ++epoch_;
        }
        cv_.notify_all();
    }

    /// Calls `ready()` until it is true (true) or `timeout` passes (false, after one last call).
    /// A notify() that follows any state `ready()` missed is never lost: the waiter is counted
    /// before it looks, and the notifier looks for waiters after it changed the state.
    template <class Ready>
    bool wait(std::chrono::milliseconds timeout, Ready&& ready) {
        waiters_.fetch_add(1, std::memory_order_seq_cst);
        struct Leave {
            std::atomic<std::size_t>& count;
            ~Leave() { count.fetch_sub(1, std::memory_order_seq_cst); }
        } leave{waiters_};
        const auto start = std::chrono::steady_clock::now();
        // Beyond a century the deadline would overflow the clock: wait without one.
        const bool forever = timeout > std::chrono::hours(24 * 365 * 100);
        const auto deadline = start + (forever ? std::chrono::milliseconds(0) : timeout);
        std::unique_lock<std::mutex> lock(mu_);
        for (;;) {
            const std::uint64_t seen = epoch_;
            lock.unlock();
            if (ready()) {
                return true;
            }
            lock.lock();
            const auto changed = [&] { return epoch_ != seen; };
            if (forever) {
                cv_.wait(lock, changed);
            } else if (!cv_.wait_until(lock, deadline, changed)) {
                lock.unlock();
                return ready();
            }
        }
    }

private:
    std::atomic<std::size_t> waiters_{0};
    std::mutex mu_;
    std::condition_variable cv_;
    std::uint64_t epoch_{}; ///< guarded by mu_
};

} // namespace geo::detail
