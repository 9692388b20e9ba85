#include "common/thread_pool.h"

namespace hangar {

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  workers_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_erased(Call call, void* obj) {
  if (n_threads_ == 1) {
    call(obj, 0, 1);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    call_ = call;
    obj_ = obj;
    pending_ = n_threads_ - 1;
    ++generation_;
  }
  work_cv_.notify_all();
  call(obj, 0, n_threads_);
  std::unique_lock<std::mutex> lock(mu_);
  // Bounded by the workers' share of the same computation; they never wait on anything else.
  done_cv_.wait(lock, [this] { return pending_ == 0; });
}

void ThreadPool::worker_loop(int ith) {
  uint64_t seen = 0;
  for (;;) {
    Call call;
    void* obj;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      call = call_;
      obj = obj_;
    }
    call(obj, ith, n_threads_);
    bool last;
    {
      std::lock_guard<std::mutex> lock(mu_);
      last = --pending_ == 0;
    }
    if (last) done_cv_.notify_one();
  }
}

}  // namespace hangar
