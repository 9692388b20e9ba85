#include "worker/request_pool.h"

#include <algorithm>

namespace hangar::worker {

RequestPool::RequestPool(int n_threads, size_t max_queued) : max_queued_(max_queued) {
  for (int i = 0; i < std::max(1, n_threads); ++i) threads_.emplace_back([this] { loop(); });
}

RequestPool::~RequestPool() { shutdown(); }

bool RequestPool::post(std::function<void()> run, std::function<void()> on_drop) {
  {
    std::lock_guard lk(mu_);
    if (stopping_ || queue_.size() >= max_queued_) return false;
    queue_.push_back({std::move(run), std::move(on_drop)});
  }
  cv_.notify_one();
  return true;
}

void RequestPool::shutdown() {
  std::deque<Job> dropped;
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    dropped.swap(queue_);
  }
  cv_.notify_all();
  for (Job& job : dropped) {
    if (job.on_drop) job.on_drop();
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void RequestPool::loop() {
  for (;;) {
    Job job;
    {
      std::unique_lock lk(mu_);
      // No timeout needed: shutdown() sets stopping_ and wakes every thread.
      cv_.wait(lk, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job.run();
  }
}

}  // namespace hangar::worker
