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

bool SpinPool::claim(uint64_t generation, int* share) {
  uint64_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (generation_of(s) != generation || static_cast<int>(s & 0xffffffffu) >= n_threads_)
      return false;
    if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      *share = static_cast<int>(s & 0xffffffffu);
      return true;
    }
  }
}

void SpinPool::run_erased(Call call, void* obj) {
  if (n_threads_ == 1) {
    call(obj, 0, 1);
    return;
  }
  call_.store(call, std::memory_order_relaxed);
  obj_.store(obj, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  // 32 bits of generation in state_; 0 is skipped (a worker starts having seen 0).
  if ((++generation_ & 0xffffffffu) == 0) ++generation_;
  const uint64_t generation = generation_ & 0xffffffffu;
  bool wake;
  {
    // Under the mutex, so a worker about to sleep either sees the new generation or is counted.
    std::lock_guard<std::mutex> lock(mu_);
    state_.store(generation << 32, std::memory_order_release);
    wake = sleepers_ > 0;
  }
  if (wake) wake_cv_.notify_all();
  int share;
  while (claim(generation, &share)) {
    call(obj, share, n_threads_);
    done_.fetch_add(1, std::memory_order_acq_rel);
  }
  // Shares a worker claimed and is still running; nothing else is waited for.
  for (int spins = 0; done_.load(std::memory_order_acquire) != n_threads_; ++spins) {
    if (spins < kSpinsBeforeSleep) {
      cpu_relax();
    } else {
      std::this_thread::yield();  // a worker was descheduled mid-share (a shared machine)
    }
  }
}

void SpinPool::worker_loop(int /*ith*/) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_of(state_.load(std::memory_order_acquire));
    for (int spins = 0; g == seen && !stop_.load(std::memory_order_relaxed); ++spins) {
      if (spins < kSpinsBeforeSleep) {
        cpu_relax();
      } else {
        std::unique_lock<std::mutex> lock(mu_);
        ++sleepers_;
        wake_cv_.wait(lock, [&] {
          return stop_.load(std::memory_order_relaxed) ||
                 generation_of(state_.load(std::memory_order_acquire)) != seen;
        });
        --sleepers_;
        spins = 0;
      }
      g = generation_of(state_.load(std::memory_order_acquire));
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = g;
    int share;
    while (claim(g, &share)) {
      // Read after the claim: the region cannot end (and the pointers change) before done_
      // counts this share.
      const Call call = call_.load(std::memory_order_relaxed);
      void* obj = obj_.load(std::memory_order_relaxed);
      call(obj, share, n_threads_);
      done_.fetch_add(1, std::memory_order_acq_rel);
    }
  }
}

}  // namespace hangar::engine
