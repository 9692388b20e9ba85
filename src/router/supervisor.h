#pragma once
// Supervisor: the router's worker processes (design §1 "supervisor", §6). It starts a worker
// for a model (a `hangar run` with a control socket, or a --backend program it polls on
// /health), reads its control events (common/control_protocol.h), kills it when loading makes no
// progress for --load-timeout or when a ready worker stops answering /health (liveness), stops
// it (SIGTERM, SIGKILL after its stop-timeout) and measures what it holds per device. It reports
// to its owner through SupervisorEvents and knows nothing of scheduling, HTTP routes or models
// beyond the one it runs.
//
// Threads: start() and stop() run on the router's control thread (TaskLoop), which also runs
// the supervisor's timers (stall checks, backend health polls); one monitor thread per worker
// reads its pipes; one liveness thread polls ready workers. Events are delivered on those
// threads, never under the supervisor's lock.
//
// Thread-safety: every public method may be called from any thread, except where noted. State is
// guarded by mu_.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "devices/devices.h"
#include "http/address.h"
#include "http/client.h"
#include "http/message.h"
#include "router/registry.h"
#include "router/task_loop.h"
#include "router/worker_process.h"

namespace hangar::router {

class SupervisorEvents {
 public:
  virtual ~SupervisorEvents() = default;
  // A hangar worker's loading progress, 0..1.
  virtual void worker_progress(const std::string& id, double progress) = 0;
  // The worker serves at `address`; `measured` is what it holds per device (bytes).
  virtual void worker_ready(const std::string& id, const http::Address& address,
                            const std::map<std::string, uint64_t>& measured) = 0;
  // The process is gone. `failed`: not because we stopped it (or we killed it for a stall or
  // for not answering). `error` says how, with the worker's last log lines when it failed.
  virtual void worker_exited(const std::string& id, int exit_code, bool failed,
                             const std::string& error) = 0;
};

struct SupervisorOptions {
  std::chrono::milliseconds load_timeout{300'000};  // no control event or health change
  std::chrono::milliseconds liveness_interval{10'000};  // 0 = no liveness checks
  std::chrono::milliseconds liveness_timeout{5'000};
  int liveness_failures = 3;
  http::Headers worker_auth;                 // sent with every health check ({api_key})
  devices::InventoryOptions inventory;       // where GPU per-process use is read (NVML)
};

class Supervisor {
 public:
  Supervisor(SupervisorOptions options, SupervisorEvents* events, TaskLoop* loop);
  ~Supervisor();  // shutdown()
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Control thread. Starts `argv` for model `config.id`: a hangar worker (control socket; it
  // says where it listens) or, with `backend`, a program expected to serve `address` (polled on
  // /health). A failure to start is reported through worker_exited.
  void start(const ModelConfig& config, const std::vector<std::string>& argv, bool backend,
             const http::Address& address, std::chrono::milliseconds stop_timeout);
  // Control thread. SIGTERM now, SIGKILL after the worker's stop-timeout.
  void stop(const std::string& id);
  // Starts the liveness thread (when an interval is set).
  void start_liveness();

  // What ready workers hold per device: host figures from their ready event (or Pss), GPU
  // figures read now from NVML.
  std::map<std::string, uint64_t> measured_by_device() const;
  // Per ready model: what it held per device when it became ready (bytes), for /models.
  std::map<std::string, std::map<std::string, uint64_t>> measured_by_model() const;

  // Shutdown, in the router's order: terminate_all() (SIGTERM every worker, wait up to the
  // longest stop-timeout, then SIGKILL); once the control thread has stopped, shutdown() waits
  // for the monitor threads and releases every record. Idempotent.
  void terminate_all();
  void shutdown();

 private:
  struct Worker;
  void check_stall(std::weak_ptr<Worker> weak);
  void poll_health(std::weak_ptr<Worker> weak);
  // GET /health of a worker at `address`, with the worker's key.
  StatusOr<http::Response> health(const http::Address& address,
                                  std::chrono::milliseconds timeout) const;
  void on_control(const std::shared_ptr<Worker>& w, const std::string& line);
  void on_exit(const std::shared_ptr<Worker>& w, const WorkerExit& exit);
  void liveness_loop();
  std::map<std::string, uint64_t> measure(const Worker& w) const;

  const SupervisorOptions options_;
  SupervisorEvents* const events_;
  TaskLoop* const loop_;

  mutable std::mutex mu_;
  std::condition_variable exited_cv_;                        // a worker exited
  std::map<std::string, std::shared_ptr<Worker>> workers_;  // guarded by mu_

  // Monitor threads that may still call into us (spawned, on_exit not yet returned).
  std::mutex monitors_mu_;
  std::condition_variable monitors_cv_;
  int monitors_ = 0;  // guarded by monitors_mu_

  std::thread liveness_thread_;
  std::mutex liveness_mu_;
  std::condition_variable liveness_cv_;
  bool liveness_stop_ = false;  // guarded by liveness_mu_
  bool shut_down_ = false;      // guarded by liveness_mu_
};

}  // namespace hangar::router
