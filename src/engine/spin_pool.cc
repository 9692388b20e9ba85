#include "engine/spin_pool.h"

namespace hangar::engine {
namespace {

// ~1 ms of polling (a pause is some tens of cycles) before a worker sleeps.
constexpr int kSpinsBeforeSleep = 1 << 15;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

SpinPool::SpinPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  workers_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

SpinPool::~SpinPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_release);
  }
  wake_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void SpinPool::run_erased(Call call, void* obj) {
  if (n_threads_ == 1) {
    call(obj, 0, 1);
    return;
  }
  call_ = call;
  obj_ = obj;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  bool wake;
  {
    // Under the mutex, so a worker about to sleep either sees the new generation or is counted.
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_release);
    wake = sleepers_ > 0;
  }
  if (wake) wake_cv_.notify_all();
  call(obj, 0, n_threads_);
  // The workers' share of the same computation; nothing else is waited for.
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < kSpinsBeforeSleep) {
      cpu_relax();
    } else {
      std::this_thread::yield();  // a worker was descheduled (a shared machine)
    }
  }
}

void SpinPool::worker_loop(int ith) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load(std::memory_order_acquire);
    for (int spins = 0; g == seen && !stop_.load(std::memory_order_relaxed); ++spins) {
      if (spins < kSpinsBeforeSleep) {
        cpu_relax();
      } else {
        std::unique_lock<std::mutex> lock(mu_);
        ++sleepers_;
        wake_cv_.wait(lock, [&] {
          return stop_.load(std::memory_order_relaxed) ||
                 generation_.load(std::memory_order_acquire) != seen;
        });
        --sleepers_;
        spins = 0;
      }
      g = generation_.load(std::memory_order_acquire);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = g;
    call_(obj_, ith, n_threads_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace hangar::engine
