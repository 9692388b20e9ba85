#include "router/supervisor.h"

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <string_view>
#include <variant>

#include "common/control_protocol.h"
#include "http/client.h"

namespace hangar::router {
namespace {

// A worker's stderr line, logged by the router with the model's name. A hangar worker's text
// log line ("2026-11-25 10:32:02.918 I message") keeps its level and loses its timestamp (the
// router's own stands in front); any other line is logged as info, unchanged.
void log_worker_line(const std::string& model, std::string_view line) {
  static constexpr std::string_view kShape = "0000-00-00 00:00:00.000 L ";
  bool ours = line.size() >= kShape.size() && line[kShape.size() - 1] == ' ';
  for (size_t i = 0; ours && i + 2 < kShape.size(); ++i) {
    const bool digit = line[i] >= '0' && line[i] <= '9';
    ours = kShape[i] == '0' ? digit : line[i] == kShape[i];
  }
  spdlog::level::level_enum level = spdlog::level::info;
  if (ours) {
    switch (line[kShape.size() - 2]) {
      case 'T': level = spdlog::level::trace; break;
      case 'D': level = spdlog::level::debug; break;
      case 'I': level = spdlog::level::info; break;
      case 'W': level = spdlog::level::warn; break;
      case 'E': level = spdlog::level::err; break;
      case 'C': level = spdlog::level::critical; break;
      default: ours = false;
    }
    if (ours) line.remove_prefix(kShape.size());
  }
  spdlog::log(level, "[{}] {}", model, line);
}

}  // namespace

struct Supervisor::Worker {
  ~Worker() { process.reset(); }  // joins the monitor thread before the fields it reads go

  ModelConfig config;  // what it was started with
  std::vector<std::string> argv;
  bool backend = false;
  std::chrono::milliseconds stop_timeout{10'000};
  // Fields below are guarded by Supervisor::mu_.
  http::Address address;  // where it serves (empty until known)
  bool ready = false;
  bool stop_requested = false;
  bool stalled = false;
  bool unresponsive = false;  // killed by the liveness check
  int missed_health = 0;      // liveness checks in a row without an answer
  bool exited = false;
  std::string error_event;                    // the worker's last error event
  std::map<std::string, uint64_t> measured;   // the same, per device (bytes)
  std::chrono::steady_clock::time_point last_health_change;
  int last_health_status = 0;
  std::unique_ptr<WorkerProcess> process;  // set once after spawn
};

Supervisor::Supervisor(SupervisorOptions options, SupervisorEvents* events, TaskLoop* loop)
    : options_(std::move(options)), events_(events), loop_(loop) {}

Supervisor::~Supervisor() { shutdown(); }

void Supervisor::start(const ModelConfig& config, const std::vector<std::string>& argv,
                       bool backend, const http::Address& address,
                       std::chrono::milliseconds stop_timeout) {
  const std::string id = config.id;
  auto w = std::make_shared<Worker>();
  w->config = config;
  w->argv = argv;
  w->backend = backend;
  w->address = address;
  w->stop_timeout = stop_timeout;
  w->last_health_change = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    workers_[id] = w;
  }
  std::weak_ptr<Worker> weak = w;
  WorkerCallbacks cb;
  Worker* raw = w.get();
  cb.on_control = [this, weak](const std::string& line) {
    if (auto s = weak.lock()) on_control(s, line);
  };
  cb.on_log = [id](const std::string& line) { log_worker_line(id, line); };
  // on_exit runs on the monitor thread, which the Worker's destructor joins: the Worker is alive.
  cb.on_exit = [this, raw](const WorkerExit& exit) {
    std::shared_ptr<Worker> s;
    {
      std::lock_guard lock(mu_);
      for (auto& [k, v] : workers_) {
        if (v.get() == raw) s = v;
      }
    }
    if (s) on_exit(s, exit);
    // Last touch of the supervisor from this thread.
    std::lock_guard lock(monitors_mu_);
    --monitors_;
    monitors_cv_.notify_all();
  };
  {
    std::lock_guard lock(monitors_mu_);
    ++monitors_;
  }
  spdlog::info("router: starting '{}': {}", id, fmt::join(w->argv, " "));
  auto proc = WorkerProcess::spawn(w->argv, !backend, id, std::move(cb));
  if (!proc.ok()) {
    {
      std::lock_guard lock(monitors_mu_);
      --monitors_;
    }
    {
      std::lock_guard lock(mu_);
      if (workers_[id] == w) workers_.erase(id);
    }
    events_->worker_exited(id, -1, true, proc.status().message());
    return;
  }
  {
    std::lock_guard lock(mu_);
    w->process = std::move(proc).value();
  }
  loop_->post_at(std::chrono::steady_clock::now() + options_.load_timeout,
                 [this, weak] { check_stall(weak); });
  if (backend) {
    loop_->post_at(std::chrono::steady_clock::now() + std::chrono::milliseconds(50),
                   [this, weak] { poll_health(weak); });
  }
}

void Supervisor::stop(const std::string& id) {
  std::shared_ptr<Worker> w;
  {
    std::lock_guard lock(mu_);
    auto it = workers_.find(id);
    if (it == workers_.end()) return;
    w = it->second;
    w->stop_requested = true;
    if (!w->process || w->exited) return;
  }
  spdlog::info("router: stopping '{}' (SIGTERM; SIGKILL after {} ms)", id,
               w->stop_timeout.count());
  w->process->terminate();
  std::weak_ptr<Worker> weak = w;
  loop_->post_at(std::chrono::steady_clock::now() + w->stop_timeout, [weak, id] {
    auto s = weak.lock();
    if (!s || !s->process || s->process->exited()) return;
    spdlog::warn("router: '{}' did not exit after SIGTERM; sending SIGKILL", id);
    s->process->kill();
  });
}

void Supervisor::check_stall(std::weak_ptr<Worker> weak) {
  auto w = weak.lock();
  if (!w) return;
  std::chrono::steady_clock::time_point last;
  {
    std::lock_guard lock(mu_);
    if (w->ready || w->exited || w->stop_requested || !w->process) return;
    last = std::max(w->process->last_event(), w->last_health_change);
  }
  const auto now = std::chrono::steady_clock::now();
  if (now - last >= options_.load_timeout) {
    spdlog::warn("router: '{}' made no progress for {} ms while loading (--load-timeout); killing",
                 w->config.id, options_.load_timeout.count());
    {
      std::lock_guard lock(mu_);
      w->stalled = true;
    }
    if (w->process) w->process->kill();
    return;
  }
  loop_->post_at(last + options_.load_timeout, [this, weak] { check_stall(weak); });
}

void Supervisor::liveness_loop() {
  std::unique_lock lock(liveness_mu_);
  while (!liveness_stop_) {
    liveness_cv_.wait_for(lock, options_.liveness_interval);
    if (liveness_stop_) break;
    lock.unlock();
    std::vector<std::pair<std::shared_ptr<Worker>, http::Address>> ready;
    {
      std::lock_guard wl(mu_);
      for (auto& [id, w] : workers_) {
        if (w->ready && !w->exited && !w->stop_requested && !w->address.empty()) {
          ready.emplace_back(w, w->address);
        }
      }
    }
    for (auto& [w, address] : ready) {
      auto r = health(address, options_.liveness_timeout);
      bool kill = false;
      {
        std::lock_guard wl(mu_);
        w->missed_health = r.ok() ? 0 : w->missed_health + 1;
        if (w->missed_health >= options_.liveness_failures && !w->exited && !w->unresponsive) {
          w->unresponsive = true;
          kill = true;
        }
      }
      if (kill) {
        spdlog::warn("router: '{}' did not answer /health {} times in a row ({} ms each); "
                     "killing it",
                     w->config.id, options_.liveness_failures, options_.liveness_timeout.count());
        if (w->process) w->process->kill();
      }
    }
    lock.lock();
  }
}

StatusOr<http::Response> Supervisor::health(const http::Address& address,
                                            std::chrono::milliseconds timeout) const {
  http::FetchOptions o;
  o.headers = options_.worker_auth;
  o.timeout = timeout;
  o.unix_socket = address.unix_path;
  return http::fetch("http://" + address.host_header() + "/health", o);
}

void Supervisor::poll_health(std::weak_ptr<Worker> weak) {
  auto w = weak.lock();
  if (!w) return;
  http::Address address;
  {
    std::lock_guard lock(mu_);
    if (w->ready || w->exited || w->stop_requested) return;
    address = w->address;
  }
  auto r = health(address, std::chrono::milliseconds(500));
  int status = r.ok() ? r->status : 0;
  bool ready = status == 200;
  {
    std::lock_guard lock(mu_);
    if (status != w->last_health_status) {
      w->last_health_status = status;
      w->last_health_change = std::chrono::steady_clock::now();
    }
    if (ready) w->ready = true;
  }
  if (ready) {
    const std::map<std::string, uint64_t> measured = measure(*w);
    {
      std::lock_guard lock(mu_);
      w->measured = measured;
    }
    events_->worker_ready(w->config.id, address, measured);
    return;
  }
  // A fixed poll interval: the backend has no other way to tell us it is ready.
  loop_->post_at(std::chrono::steady_clock::now() + std::chrono::milliseconds(100),
                [this, weak] { poll_health(weak); });
}

void Supervisor::on_control(const std::shared_ptr<Worker>& w, const std::string& line) {
  auto event = control::decode(line);
  if (!event.ok()) {
    spdlog::warn("[{}] {}", w->config.id, event.status().message());
    return;
  }
  if (const auto* e = std::get_if<control::Listening>(&*event)) {
    std::lock_guard lock(mu_);
    w->address = e->unix_path.empty() ? http::Address::tcp("127.0.0.1", e->port)
                                      : http::Address::unix_socket(e->unix_path);
  } else if (const auto* e = std::get_if<control::Loading>(&*event)) {
    events_->worker_progress(w->config.id, e->progress);
  } else if (const auto* e = std::get_if<control::Ready>(&*event)) {
    http::Address address;
    {
      std::lock_guard lock(mu_);
      if (w->stop_requested || w->exited) return;
      w->ready = true;
      w->measured = e->memory;
      address = w->address;
    }
    if (address.empty()) {
      spdlog::warn("[{}] ready before listening; killing it", w->config.id);
      if (w->process) w->process->kill();
      return;
    }
    events_->worker_ready(w->config.id, address, measure(*w));
  } else if (const auto* e = std::get_if<control::Error>(&*event)) {
    spdlog::warn("[{}] error: {}", w->config.id, e->message);
    std::lock_guard lock(mu_);
    w->error_event = e->message;
  }
}

void Supervisor::on_exit(const std::shared_ptr<Worker>& w, const WorkerExit& exit) {
  bool failed;
  std::string error;
  {
    std::lock_guard lock(mu_);
    w->exited = true;
    failed = !w->stop_requested || w->stalled || w->unresponsive;
    if (w->stalled) {
      error = "no progress for " + std::to_string(options_.load_timeout.count() / 1000.0) +
              " s while loading (--load-timeout): killed";
    } else if (w->unresponsive) {
      error = "stopped answering /health (" + std::to_string(options_.liveness_failures) +
              " checks of " + std::to_string(options_.liveness_timeout.count()) +
              " ms): killed";
    } else {
      error = "worker " + exit.how;
    }
    if (!w->error_event.empty()) error += ": " + w->error_event;
    // A worker killed before its server stopped leaves its socket file behind.
    if (w->address.is_unix()) ::unlink(w->address.unix_path.c_str());
  }
  if (failed) {
    std::string lines;
    for (const std::string& l : exit.last_lines) lines += "\n" + l;
    if (!lines.empty()) error += "\nlast log lines:" + lines;
    spdlog::warn("router: '{}' {}", w->config.id, error);
  } else {
    spdlog::info("router: '{}' {}", w->config.id, exit.how);
  }
  // Destroy the Worker on the control thread: its destructor joins this monitor thread.
  loop_->post([this, w] {
    std::lock_guard lock(mu_);
    auto it = workers_.find(w->config.id);
    if (it != workers_.end() && it->second == w) workers_.erase(it);
  });
  exited_cv_.notify_all();
  events_->worker_exited(w->config.id, exit.exit_code, failed, error);
}

std::map<std::string, uint64_t> Supervisor::measure(const Worker& w) const {
  std::map<std::string, uint64_t> out;
  int pid = 0;
  {
    std::lock_guard lock(mu_);
    out = w.measured;
    if (w.process) pid = w.process->pid();
  }
  if (pid <= 0) return out;
  if (out.find("CPU") == out.end()) {
    if (auto pss = devices::process_pss(pid); pss.ok()) out["CPU"] = *pss;
  }
  for (const auto& [device, by_pid] : devices::gpu_process_memory(options_.inventory)) {
    if (auto it = by_pid.find(pid); it != by_pid.end()) out[device] = it->second;
  }
  return out;
}

std::map<std::string, uint64_t> Supervisor::measured_by_device() const {
  std::vector<std::shared_ptr<Worker>> ready;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, w] : workers_) {
      if (w->ready && !w->exited) ready.push_back(w);
    }
  }
  // GPU figures are read now (NVML); host figures are the ones taken at ready.
  const auto gpu = devices::gpu_process_memory(options_.inventory);
  std::map<std::string, uint64_t> out;
  for (const auto& w : ready) {
    int pid = 0;
    {
      std::lock_guard lock(mu_);
      for (const auto& [device, bytes] : w->measured) out[device] += bytes;
      if (w->process) pid = w->process->pid();
    }
    for (const auto& [device, by_pid] : gpu) {
      if (auto it = by_pid.find(pid); it != by_pid.end()) out[device] += it->second;
    }
  }
  return out;
}

std::map<std::string, std::map<std::string, uint64_t>> Supervisor::measured_by_model() const {
  std::map<std::string, std::map<std::string, uint64_t>> out;
  std::lock_guard lock(mu_);
  for (const auto& [id, w] : workers_) {
    if (w->ready && !w->exited) out[id] = w->measured;
  }
  return out;
}

void Supervisor::start_liveness() {
  if (options_.liveness_interval.count() <= 0 || liveness_thread_.joinable()) return;
  liveness_thread_ = std::thread([this] { liveness_loop(); });
}

void Supervisor::terminate_all() {
  {
    std::lock_guard lock(liveness_mu_);
    liveness_stop_ = true;
  }
  liveness_cv_.notify_all();
  if (liveness_thread_.joinable()) liveness_thread_.join();
  // Running workers get SIGTERM now (in-flight requests still finish: the worker drains them),
  // SIGKILL after their stop-timeout.
  std::chrono::milliseconds longest{0};
  std::vector<std::shared_ptr<Worker>> workers;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, w] : workers_) {
      workers.push_back(w);
      w->stop_requested = true;
      longest = std::max(longest, w->stop_timeout);
    }
  }
  for (auto& w : workers) {
    if (w->process) w->process->terminate();
  }
  {
    std::unique_lock lock(mu_);
    exited_cv_.wait_for(lock, longest, [&] {
      for (auto& w : workers) {
        if (!w->exited) return false;
      }
      return true;
    });
  }
  for (auto& w : workers) {
    if (w->process) w->process->kill();
  }
}

void Supervisor::shutdown() {
  {
    std::lock_guard lock(liveness_mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  terminate_all();
  {
    std::unique_lock lock(monitors_mu_);
    if (!monitors_cv_.wait_for(lock, std::chrono::seconds(30), [&] { return monitors_ == 0; })) {
      spdlog::error("router: {} worker monitors still running at shutdown", monitors_);
    }
  }
  // Destroying the workers joins their monitor threads (each exits once its process is gone).
  std::map<std::string, std::shared_ptr<Worker>> left;
  {
    std::lock_guard lock(mu_);
    left.swap(workers_);
  }
  left.clear();
}

}  // namespace hangar::router
