#pragma once
// TaskLoop: one thread that runs posted tasks and timed tasks in order. The router's control
// thread: it spawns workers (so PR_SET_PDEATHSIG is tied to a thread that lives as long as they
// do), sends signals, polls --backend health and fires the scheduler's deadlines. Tasks must not
// block for long.
//
// Thread-safety: post(), post_at() and wake() from any thread, including from a task. The
// destructor (or stop()) runs no further tasks and joins the thread.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

namespace hangar::router {

class TaskLoop {
 public:
  using Clock = std::chrono::steady_clock;

  // `next_deadline` (may be empty) is asked after every wake-up; at that time `on_deadline` runs.
  TaskLoop(std::function<std::optional<Clock::time_point>()> next_deadline,
           std::function<void(Clock::time_point)> on_deadline);
  ~TaskLoop();

  void post(std::function<void()> fn);
  void post_at(Clock::time_point when, std::function<void()> fn);
  // Re-reads next_deadline (it became earlier).
  void wake();
  void stop();

 private:
  void run();

  std::function<std::optional<Clock::time_point>()> next_deadline_;
  std::function<void(Clock::time_point)> on_deadline_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<Clock::time_point, std::function<void()>> tasks_;  // guarded by mu_
  bool stopping_ = false;                                          // guarded by mu_
  bool woken_ = false;                                             // guarded by mu_
  std::thread thread_;
};

}  // namespace hangar::router
