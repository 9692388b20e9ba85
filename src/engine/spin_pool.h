#pragma once
// SpinPool: the engine's persistent worker threads. Like common/thread_pool.h (the caller takes
// part; run() returns when every share is done; dispatch never allocates), but a worker that has
// just finished a region spins for the next one for a while (about a millisecond) before it
// blocks on a condition variable: a forward pass runs ~5 regions per layer, and waking a blocked
// thread for each would cost more than the region.
//
// A region's nth shares are claimed, not assigned: each thread, the caller included, takes the
// next unclaimed share until none is left. On a busy machine a worker may not be running when a
// region starts; the caller then does that share itself instead of waiting a scheduler time
// slice for it (generation runs ~110 regions per token). A share's result never depends on
// which thread ran it.
//
// Thread-safety: run() and parallel_for() are called by one thread at a time (the owning
// Context's). Shutdown: the destructor sets stop_, wakes sleeping workers and joins them.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace hangar::engine {

class SpinPool {
 public:
  explicit SpinPool(int n_threads);  // total threads including the caller; < 1 is taken as 1
  ~SpinPool();
  SpinPool(const SpinPool&) = delete;
  SpinPool& operator=(const SpinPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(ith, nth) once for each share ith in [0, nth), nth = size(), on whichever thread
  // claims it (two shares never run at once on one thread); returns when all are done.
  template <typename F>
  void run(F&& fn) {
    auto call = [](void* obj, int ith, int nth) {
      (*static_cast<std::remove_reference_t<F>*>(obj))(ith, nth);
    };
    run_erased(call, const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // fn(begin, end) over [0, n) in one contiguous chunk per thread (the split depends only on n
  // and size()).
  template <typename F>
  void parallel_for(int64_t n, F&& fn) {
    if (n <= 0) return;
    if (n_threads_ == 1 || n == 1) {
      fn(int64_t{0}, n);
      return;
    }
    run([&](int ith, int nth) {
      const int64_t per = (n + nth - 1) / nth;
      const int64_t begin = per * ith;
      const int64_t end = begin + per < n ? begin + per : n;
      if (begin < end) fn(begin, end);
    });
  }

 private:
  using Call = void (*)(void* obj, int ith, int nth);
  void run_erased(Call call, void* obj);
  void worker_loop(int ith);

  const int n_threads_;
  std::vector<std::thread> workers_;

  // Claims the next share of region `generation`; false when that region has none left (or is
  // over).
  bool claim(uint64_t generation, int* share);
  static uint64_t generation_of(uint64_t state) { return state >> 32; }

  // The region: call_ and obj_ are written before state_ is released for a new generation, and
  // read only after a successful claim (which acquires it): a share claimed keeps its region
  // open until done_ counts it, so they cannot change under it.
  std::atomic<Call> call_{nullptr};
  std::atomic<void*> obj_{nullptr};
  std::atomic<uint64_t> state_{0};  // generation << 32 | next unclaimed share
  std::atomic<int> done_{0};        // shares of the current region finished
  uint64_t generation_ = 0;         // the caller's count of regions
  std::atomic<bool> stop_{false};

  std::mutex mu_;
  std::condition_variable wake_cv_;  // sleeping workers wait here for a new generation or stop
  int sleepers_ = 0;                 // guarded by mu_
};

}  // namespace hangar::engine
