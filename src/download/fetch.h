#pragma once
// One file from the hub into blobs/<oid>, shared by every caller that needs it (single flight,
// keyed by the blob's path). The transfer runs on a thread of its own, so no caller's
// cancellation stops it while another caller still waits; when the last one leaves it stops and
// removes its partial file.
//
// A transfer: blobs/<oid>.downloadInProgress is resumed with Range (kept when the server answers
// 206 from the right byte, restarted from 0 on a 200), hashed as it grows, and renamed to
// blobs/<oid> only when its size and digest match the hub's; a mismatch deletes it. Network
// errors, 429, 5xx, a body cut short and a stall are retried with doubling delays.
//
// Thread-safety: start_or_join() and every Flight method may be called from any thread.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"
#include "download/download.h"

namespace hangar::download {

struct FileJob {
  std::string url;   // where the bytes are ({ep}{repo}/resolve/{commit}/{path})
  std::string blob;  // final path: <root>/models--o--r/blobs/<oid>
  RemoteFile file;   // expected size and digest
  Options options;   // token, timeouts, retries (already resolved from the environment)
};

class Flight {
 public:
  explicit Flight(FileJob job) : job_(std::move(job)) {}
  const FileJob& job() const { return job_; }

  // Bytes of the file on disk now (may fall to 0 when a server ignores Range).
  uint64_t done() const;
  // Waits up to `timeout` for the end; true once finished. result() is then final.
  bool wait_for(std::chrono::milliseconds timeout);
  Status result() const;

  // The caller no longer waits; the last one to leave an unfinished flight cancels it (then
  // returns true: the caller may wait for the partial file's removal).
  bool leave();

  // internal: run by the flight's thread.
  void run(std::shared_ptr<Flight> previous);
  bool join();  // false when already finished or cancelled
  bool finished() const;

 private:
  Status transfer_with_retries();
  Status attempt(bool* retryable);
  bool cancelled() const;

  const FileJob job_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t done_ = 0;      // guarded by mu_
  int waiters_ = 0;        // guarded by mu_
  bool cancel_ = false;    // guarded by mu_
  bool finished_ = false;  // guarded by mu_
  Status result_;          // guarded by mu_
};

// The unfinished flight for job.blob, joined, or a new one started for it. The caller must call
// leave() on it unless it waited until finished().
std::shared_ptr<Flight> start_or_join(const FileJob& job);

}  // namespace hangar::download
