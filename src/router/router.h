#pragma once
// Router: `hangar serve` (design §1, §3, §6, §7; issue 5). It owns the registry (which models
// exist), the scheduler (which run), one worker process per running model (supervised through
// WorkerProcess), the HTTP server with llama.cpp's router API, and the streaming proxy to the
// workers. The router never computes tokens.
//
// Threads: the http::Server's io threads run handlers and the proxy (no blocking there); one
// control thread (TaskLoop) spawns and signals workers, polls --backend health and fires the
// scheduler's deadlines; one monitor thread per worker reads its events and output.
//
// Thread-safety: create() and start() from one thread; shutdown() and the destructor from that
// thread too. model_status() and port() from any thread.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "router/registry.h"
#include "router/scheduler.h"

namespace hangar::router {

struct RouterOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0 = any free port (tests)
  int http_threads = 2;
  // hangar's own workers listen on Unix sockets in a private directory (design §6), so no other
  // local user can reach them past --api-key; false: on 127.0.0.1 (a test or bench baseline).
  bool worker_unix_sockets = true;
  // The status page at GET / and /ui (issue 15); --no-ui turns it off.
  bool ui = true;
  size_t max_connections = 0;                    // 0 = soft RLIMIT_NOFILE − 128 (http::Server)
  size_t max_body_memory = 256ull * 1024 * 1024;  // request bodies held at once, all clients
  RegistrySources sources;
  int models_max = 4;
  // Per device: budget = free at start − margin (design §4). 0 = no memory check.
  uint64_t memory_margin_mib = 1024;
  std::string devices_file;  // replaces the inventory (tests, what-if planning)
  // Re-read free memory this often (0 = never): budget = free now + what hangar's own workers
  // hold − margin, so other programs' use is seen (design §4).
  std::chrono::milliseconds memory_refresh{0};
  // Downloads and the model cache (issue 13) go through sources.download; sources.scan_cache
  // lists what the cache already holds.
  bool models_autoload = true;
  std::string api_key;  // "" = no authentication
  std::chrono::milliseconds queue_timeout{300'000};
  size_t queue_max = 64;
  std::chrono::milliseconds load_timeout{300'000};  // no control event or health change this long
  std::vector<std::string> preload;                 // ids/aliases loaded at start
  // "" = hangar workers. Otherwise a llama-server-compatible command line template with
  // {model}, {port}, {args} and optionally {api_key} (a random key only the router knows, sent
  // with every proxied request), e.g. "llama-server -m {model} --port {port} --api-key {api_key}
  // {args}".
  std::string backend;
  std::string worker_bin;  // the `hangar` binary for workers; "" = this executable
  // Passed to hangar workers as --log-level / --log-format ("" = not passed): workers never
  // read the router's HANGAR_* environment (it is removed from theirs).
  std::string worker_log_level;
  std::string worker_log_format;
  // Liveness of ready workers: GET /health every `liveness_interval` (0 = never); a worker that
  // gives no answer within `liveness_timeout` that many times in a row is killed (a deadlock,
  // SIGSTOP, a swap storm) and its requests fail instead of hanging.
  std::chrono::milliseconds liveness_interval{10'000};
  std::chrono::milliseconds liveness_timeout{5'000};
  int liveness_failures = 3;
  // Overrides every model's preset stop-timeout when set (tests).
  std::optional<std::chrono::milliseconds> stop_timeout;
};

// What-if planning (`hangar serve --dry-run`): each device's budget, then every model the
// router knows with its estimate per device and whether it fits alone, or why it never can.
// Text for people, or one JSON object. *preloads_fit is false when a --preload or
// load-on-startup model can never fit.
StatusOr<std::string> dry_run_report(const RouterOptions& options, bool as_json,
                                     bool* preloads_fit);

class Router {
 public:
  // Reads the registry (start-up errors: preset and name problems) and prepares the server.
  static StatusOr<std::unique_ptr<Router>> create(RouterOptions options);
  ~Router();  // shutdown(5 s) when still running
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Listens, then loads load-on-startup and --preload models. Returns the bound port.
  StatusOr<uint16_t> start();
  uint16_t port() const;
  // Stops accepting, unloads every model (drain, SIGTERM, SIGKILL after stop-timeout) and
  // waits up to `grace` for in-flight requests. Idempotent.
  void shutdown(std::chrono::milliseconds grace);

  std::vector<ModelStatus> model_status() const;

  struct Impl;

 private:
  explicit Router(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hangar::router
