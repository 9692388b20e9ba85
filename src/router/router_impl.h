#pragma once
// Router::Impl: the wiring of the router's parts (registry, scheduler, supervisor, proxy, event
// stream, downloads), shared by router.cc (lifecycle, scheduler and supervisor hooks, downloads)
// and router_api.cc (HTTP handlers and proxy). Private to src/router.
//
// Locks, never nested except as noted: registry_mu_ (the current registry), upstream_mu_
// (upstreams_), sse_mu_ (subscribers_), downloads_mu_, live_mu_. Worker processes are the
// supervisor's (its own lock). The scheduler has its
// own lock; none of ours is held while calling into it.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <nlohmann/json.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "devices/devices.h"
#include "download/download.h"
#include "http/responder.h"
#include "http/server.h"
#include "http/upstream.h"
#include "router/estimator.h"
#include "router/registry.h"
#include "router/router.h"
#include "router/scheduler.h"
#include "router/supervisor.h"
#include "router/task_loop.h"

namespace hangar::router {

// JSON text for anything the router writes: bytes that are not valid UTF-8 (a file name, a
// GGUF string) become U+FFFD instead of failing the whole answer (nlohmann's dump() throws).
inline std::string json_text(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Budgets from the inventory (design §4): free at start minus the margin; none at all with
// margin 0 (no memory check).
std::vector<DeviceLimit> device_limits(const std::vector<devices::Device>& inventory,
                                       uint64_t margin_mib);

std::string random_key();

// The GPUs in an inventory.
inline int gpu_count(const std::vector<devices::Device>& inventory) {
  return static_cast<int>(std::count_if(inventory.begin(), inventory.end(), [](const auto& d) {
    return d.type == devices::DeviceType::kGpu;
  }));
}

struct Router::Impl : public SchedulerHooks, public SupervisorEvents {
  Impl(RouterOptions o, std::vector<devices::Device> inventory);

  // SchedulerHooks (called from any thread, outside the scheduler's lock).
  void spawn(const std::string& id) override;
  void stop(const std::string& id) override;
  void state_changed(const std::string& id, ModelState state) override;
  void deadline_changed() override;
  void download(const std::string& id) override;
  void cancel_download(const std::string& id) override;

  // Downloads (design §5, issue 13): each on a thread of its own (the library blocks).
  // `in_registry`: a model the scheduler knows (it hears the outcome); otherwise a POST /models
  // fetch of a new repository, which appears through a registry reload.
  void start_download(const ModelConfig& m, bool in_registry);
  void run_download(ModelConfig m, bool in_registry, download::CancelToken token);
  // The Authorization header for a --backend that takes {api_key}; empty otherwise.
  http::Headers worker_auth() const;
  // `m` with its path filled in from a finished download.
  ModelConfig effective(const ModelConfig& m) const;
  // Tells the scheduler which models must be downloaded before they load.
  void mark_downloads(const Registry& reg);

  // SupervisorEvents (monitor, control and liveness threads).
  void worker_progress(const std::string& id, double progress) override;
  void worker_ready(const std::string& id, const http::Address& address,
                    const std::map<std::string, uint64_t>& measured) override;
  void worker_exited(const std::string& id, int exit_code, bool failed,
                     const std::string& error) override;

  // Control thread: resolves the model's config and command line and starts it.
  void do_spawn(const std::string& id);
  // `address`: where a --backend program or a hangar worker on a Unix socket listens (empty:
  // a hangar worker on TCP, any free port).
  std::vector<std::string> worker_argv(const ModelConfig& m, const http::Address& address) const;
  std::chrono::milliseconds stop_timeout_of(const ModelConfig& m) const;

  // Registry.
  std::shared_ptr<const Registry> registry() const;
  Status reload_registry();
  // Estimates every model of `reg` (cached) and gives the needs to the scheduler.
  void estimate_all(const Registry& reg);

  // Devices (design §4): the inventory read at start, and the measured use per device.
  std::string devices_json() const;
  std::map<std::string, uint64_t> measured_by_device() const;

  // HTTP (router_api.cc).
  void install_routes();
  void proxy(http::Request req, std::shared_ptr<http::Responder> r, const std::string& name);
  void forward_to(const std::string& id, const http::Address& address, http::Request req,
                  std::shared_ptr<http::Responder> r);
  std::shared_ptr<http::Upstream> upstream_for(const std::string& id,
                                               const http::Address& address);
  void drop_upstream(const std::string& id);
  void publish(const std::string& model, const std::string& event, const std::string& data_json);
  std::string models_json() const;
  bool authorized(const http::Request& req) const;

  RouterOptions options;
  const std::vector<devices::Device> inventory;  // read once at start
  devices::InventoryOptions inventory_options;    // how it was read (NVML or a devices file)
  mutable std::mutex live_mu_;
  std::vector<devices::Device> live_inventory_;   // guarded by live_mu_: the last reading
  // --memory-refresh: re-reads free memory, sets new budgets, and schedules itself again.
  void refresh_memory();
  Estimator estimator;
  std::string worker_bin;
  // The key a --backend template's {api_key} gets: random, known only to the router, sent with
  // every request it proxies to that program (other local users cannot use it directly).
  std::string worker_key;
  // hangar's own workers listen on Unix sockets here (design §6): a directory only the router's
  // user can enter, made at start, removed at shutdown. Empty: they listen on 127.0.0.1.
  std::string socket_dir_;
  uint64_t sockets_started_ = 0;  // control thread
  std::unique_ptr<http::Server> server;
  Scheduler scheduler;
  std::unique_ptr<TaskLoop> loop;
  std::unique_ptr<Supervisor> supervisor;  // worker processes; created after the loop
  int64_t created_unix = 0;
  bool shut_down = false;

  std::mutex reload_mu_;  // serializes reload_registry()
  mutable std::mutex registry_mu_;
  std::shared_ptr<const Registry> registry_;  // guarded by registry_mu_

  mutable std::mutex upstream_mu_;
  std::map<std::string, std::shared_ptr<http::Upstream>> upstreams_;  // guarded by upstream_mu_

  // /models/sse streams at once, at most (each holds a connection and a buffer).
  static constexpr size_t kMaxSseSubscribers = 256;
  std::mutex sse_mu_;
  std::vector<std::shared_ptr<http::Responder>> subscribers_;  // guarded by sse_mu_

  mutable std::mutex downloads_mu_;
  std::map<std::string, download::CancelToken> download_tokens_;  // guarded by downloads_mu_
  std::map<std::string, download::LocalModel> downloaded_;        // guarded by downloads_mu_
  std::map<std::string, std::string> download_progress_;           // id → JSON; downloads_mu_
  std::vector<std::thread> download_threads_;                      // guarded by downloads_mu_
  bool downloads_closed_ = false;                                  // guarded by downloads_mu_

  std::atomic<uint64_t> requests_total{0};
  std::atomic<uint64_t> loads_total{0};
  std::atomic<uint64_t> failures_total{0};
};

}  // namespace hangar::router
