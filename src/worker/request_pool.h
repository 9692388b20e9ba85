#pragma once
// RequestPool: the threads that prepare a worker's requests — parse the body, render the chat
// template, tokenize — so that none of that runs on an HTTP io thread. Tokenizing a prompt is
// linear in its bytes (seconds for megabytes); on an io thread it would stall every connection
// that thread serves, including health checks and other clients' streams.
//
// Jobs run in FIFO order on a fixed set of threads. The queue is bounded: post() refuses a job
// when `max_queued` are already waiting (the caller answers 503). shutdown() drops the jobs not
// started (each gets its `on_drop`) and joins the threads after the running ones finish.
//
// Thread-safety: post() and shutdown() from any thread. Jobs run concurrently with each other.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace hangar::worker {

class RequestPool {
 public:
  RequestPool(int n_threads, size_t max_queued);
  ~RequestPool();  // shutdown()
  RequestPool(const RequestPool&) = delete;
  RequestPool& operator=(const RequestPool&) = delete;

  // Queues `run`. False (nothing queued, nothing called) when the queue is full or the pool is
  // shutting down. `on_drop` runs instead of `run` if shutdown() comes first.
  bool post(std::function<void()> run, std::function<void()> on_drop);

  // Drops queued jobs (calling their on_drop on this thread), waits for the running ones and
  // joins the threads. Idempotent.
  void shutdown();

 private:
  struct Job {
    std::function<void()> run;
    std::function<void()> on_drop;
  };
  void loop();

  const size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;  // threads wait here for a job or for stopping_
  std::deque<Job> queue_;       // guarded by mu_
  bool stopping_ = false;       // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace hangar::worker
