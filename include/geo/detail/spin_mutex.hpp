#pragma once

#include <atomic>
#include <thread>

namespace geo::detail {

/// Hints the core that the thread is spin-waiting (x86 `pause`, ARM `yield`).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

/// A one-byte lock for critical sections of tens of nanoseconds (a key's shard, a region's
/// queue, the conflict log).
///
/// Uncontended it costs one atomic exchange to lock and a plain release store to unlock, where
/// std::mutex (glibc) costs an atomic operation and a library call each way; contended, a
/// std::mutex waiter goes to sleep at once and its wake-up costs microseconds, far longer than
/// the critical section. A waiter here spins on a read (no cache-line ping-pong), then yields
/// its core, so a holder that was preempted still gets to run and release.
class SpinMutex {
public:
    void lock() noexcept {
        if (!locked_.exchange(true, std::memory_order_acquire)) {
            return;
        }
        lock_contended();
    }

    bool try_lock() noexcept {
        return !locked_.load(std::memory_order_relaxed) &&
               !locked_.exchange(true, std::memory_order_acquire);
    }

    void unlock() noexcept { locked_.store(false, std::memory_order_release); }

private:
    void lock_contended() noexcept {
        int spins = 0;
        do {
            while (locked_.load(std::memory_order_relaxed)) {
                if (spins < spin_limit) {
                    ++spins;
                    for (int i = 0; i < 8; ++i) {
                        cpu_relax();
                    }
                } else {
                    std::this_thread::yield();
                }
            }
        } while (locked_.exchange(true, std::memory_order_acquire));
    }

    static constexpr int spin_limit = 64; ///< about a microsecond before yielding

    std::atomic<bool> locked_{false};
};

} // namespace geo::detail
