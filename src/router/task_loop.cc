#include "router/task_loop.h"

namespace hangar::router {

TaskLoop::TaskLoop(std::function<std::optional<Clock::time_point>()> next_deadline,
                   std::function<void(Clock::time_point)> on_deadline)
    : next_deadline_(std::move(next_deadline)), on_deadline_(std::move(on_deadline)) {
  thread_ = std::thread([this] { run(); });
}

TaskLoop::~TaskLoop() { stop(); }

void TaskLoop::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void TaskLoop::post(std::function<void()> fn) { post_at(Clock::time_point::min(), std::move(fn)); }

void TaskLoop::post_at(Clock::time_point when, std::function<void()> fn) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    tasks_.emplace(when, std::move(fn));
  }
  cv_.notify_all();
}

void TaskLoop::wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void TaskLoop::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    const Clock::time_point now = Clock::now();
    if (!tasks_.empty() && tasks_.begin()->first <= now) {
      auto fn = std::move(tasks_.begin()->second);
      tasks_.erase(tasks_.begin());
      lock.unlock();
      fn();
      lock.lock();
      continue;
    }
    woken_ = false;
    lock.unlock();
    std::optional<Clock::time_point> deadline;
    if (next_deadline_) deadline = next_deadline_();
    if (deadline && *deadline <= now) {
      if (on_deadline_) on_deadline_(now);
      lock.lock();
      continue;
    }
    lock.lock();
    if (stopping_ || woken_) continue;
    Clock::time_point until = Clock::time_point::max();
    if (!tasks_.empty()) until = tasks_.begin()->first;
    if (deadline && *deadline < until) until = *deadline;
    if (until == Clock::time_point::max()) {
      cv_.wait(lock, [&] { return stopping_ || woken_ || !tasks_.empty(); });
    } else {
      cv_.wait_until(lock, until);
    }
  }
}

}  // namespace hangar::router
