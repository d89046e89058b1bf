#pragma once

#include <atomic>
#include <chrono>
#include <thread>

#if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <intrin.h>
#endif

namespace geo::detail {

/// Hints the core that the thread is spin-waiting (x86 `pause`, ARM `yield`).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
    _mm_pause();
#elif defined(__aarch64__) || (defined(__ARM_ARCH) && __ARM_ARCH >= 7) || defined(__ARM_ARCH_6K__)
    __asm__ __volatile__("yield"); // older ARM cores have no such hint
#endif
}

/// A one-byte lock for short critical sections (a key's shard, a region's queue, the
/// conflict log).
///
/// Uncontended it costs one atomic exchange to lock and a plain release store to unlock, where
/// std::mutex (glibc) costs an atomic operation and a library call each way; contended, a
/// std::mutex waiter goes to sleep at once and its wake-up costs microseconds, far longer than
/// a typical critical section here. A waiter spins on a read (no cache-line ping-pong), then
/// yields its core, then sleeps in short steps, so a preempted or long holder (a drain of a
/// long queue) neither starves nor keeps the waiters burning CPU.
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
        int waits = 0;
        do {
            while (locked_.load(std::memory_order_relaxed)) {
                if (waits < spin_limit) {
                    for (int i = 0; i < 8; ++i) {
                        cpu_relax();
                    }
                } else if (waits < spin_limit + yield_limit) {
                    std::this_thread::yield();
                } else {
                    // A long holder (a drain of a long queue, a table growing): stop burning
                    // the core.
                    std::this_thread::sleep_for(std::chrono::microseconds(50));
                }
                waits += waits < spin_limit + yield_limit ? 1 : 0;
            }
        } while (locked_.exchange(true, std::memory_order_acquire));
    }

    static constexpr int spin_limit = 64;  ///< about a microsecond of spinning
    static constexpr int yield_limit = 64; ///< then some tens of microseconds of yielding

    std::atomic<bool> locked_{false};
};

} // namespace geo::detail
