#pragma once

#include <mutex>

namespace geo::detail {

/// Hints the core that the thread is spin-waiting (x86 `pause`, ARM `yield`).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

/// A std::mutex that spins briefly before it sleeps.
///
/// Critical sections here last tens of nanoseconds, while a contended std::mutex (glibc's
/// default kind) goes straight to a futex sleep and a wake-up costs microseconds: two writers
/// meeting on one shard would each pay that. Spinning first catches the release; a holder
/// that stays longer (a preempted thread) still lets waiters sleep. Uncontended, it costs what
/// std::mutex costs: one successful try_lock.
class SpinMutex {
public:
    void lock() {
        for (int spin = 0; spin < spin_limit; ++spin) {
            if (mu_.try_lock()) {
                return;
            }
            for (int i = 0; i < 8; ++i) {
                cpu_relax();
            }
        }
        mu_.lock();
    }

    bool try_lock() { return mu_.try_lock(); }
    void unlock() { mu_.unlock(); }

private:
    static constexpr int spin_limit = 64; ///< about a microsecond of waiting

    std::mutex mu_;
};

} // namespace geo::detail
