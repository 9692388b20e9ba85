#pragma once
// SpinPool: the engine's persistent worker threads. Like common/thread_pool.h (the caller takes
// part as thread 0; run() returns when every thread has finished its share; dispatch never
// allocates), but a worker that has just finished a region spins for the next one for a while
// (about a millisecond) before it blocks on a condition variable: a forward pass runs ~5
// regions per layer, and waking a blocked thread for each would cost more than the region.
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

  // Calls fn(ith, nth) once on each of the nth = size() threads; returns when all are done.
  template <typename F>
  void run(F&& fn) {
    auto call = [](void* obj, int ith, int nth) { (*static_cast<std::remove_reference_t<F>*>(obj))(ith, nth); };
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

  // The region: call_ and obj_ are written before generation_ is released and read after it is
  // acquired.
  Call call_ = nullptr;
  void* obj_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};  // workers still running the current region
  std::atomic<bool> stop_{false};

  std::mutex mu_;
  std::condition_variable wake_cv_;  // sleeping workers wait here for a new generation or stop
  int sleepers_ = 0;                 // guarded by mu_
};

}  // namespace hangar::engine
