#pragma once
// ThreadPool: a fixed set of persistent worker threads that run one parallel region at a time
// (the engine's kernels: a matmul split over output rows, attention split over heads).
// The calling thread takes part as thread 0, so a pool of size 1 has no extra threads and runs
// everything inline.
//
// Thread-safety: run() may be called by one thread at a time (the owner of the pool, e.g. one
// engine Context); it blocks until every thread has finished its share. Dispatch never
// allocates: the task is passed by reference, not copied into a std::function.
// Shutdown: the destructor wakes the workers and joins them (their only blocking wait is for
// work or shutdown).

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace hangar {

class ThreadPool {
 public:
  // n_threads: total threads including the caller; values < 1 are taken as 1.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(ith, nth) once on each of the nth = size() threads and returns when all are done.
  template <typename F>
  void run(F&& fn) {
    auto call = [](void* obj, int ith, int nth) { (*static_cast<std::remove_reference_t<F>*>(obj))(ith, nth); };
    run_erased(call, const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // Calls fn(begin, end) over [0, n) split into contiguous chunks, one per thread (the split
  // depends only on n and size(), so results never depend on scheduling).
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

  std::mutex mu_;
  std::condition_variable work_cv_;  // workers wait here for a new generation or shutdown
  std::condition_variable done_cv_;  // the caller waits here for pending_ == 0
  // guarded by mu_
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  Call call_ = nullptr;
  void* obj_ = nullptr;
};

}  // namespace hangar
