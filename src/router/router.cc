#include "router/router.h"

#include <limits.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "common/control_protocol.h"
#include "http/client.h"
#include "router/router_impl.h"

namespace hangar::router {
namespace {

using json = nlohmann::json;

std::string self_exe() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "hangar";
  return std::string(buf, static_cast<size_t>(n));
}

// A free TCP port on 127.0.0.1 for a --backend program (the kernel picks; we release it just
// before the program binds it).
StatusOr<uint16_t> pick_free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return internal_error("socket() failed picking a backend port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return internal_error("bind() failed picking a backend port");
  }
  uint16_t port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

// A new directory only this user can enter (mode 0700), for the workers' Unix sockets: in
// $XDG_RUNTIME_DIR when set (a per-user tmpfs), else in $TMPDIR or /tmp.
StatusOr<std::string> make_private_dir() {
  std::string base = "/tmp";
  for (const char* name : {"XDG_RUNTIME_DIR", "TMPDIR"}) {
    const char* v = std::getenv(name);
    if (v != nullptr && v[0] == '/' && std::strlen(v) < 64 && access(v, W_OK | X_OK) == 0) {
      base = v;
      break;
    }
  }
  std::string templ = base + "/hangar-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) {
    return unavailable_error(fmt::format("cannot create a socket directory in {}: {}", base,
                                         std::strerror(errno)));
  }
  return templ;
}

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

SchedulerOptions scheduler_options(const RouterOptions& o,
                                   const std::vector<devices::Device>& inventory) {
  SchedulerOptions so;
  so.models_max = o.models_max;
  so.queue_max = o.queue_max;
  so.queue_timeout = o.queue_timeout;
  so.devices = device_limits(inventory, o.memory_margin_mib);
  return so;
}

}  // namespace

std::vector<DeviceLimit> device_limits(const std::vector<devices::Device>& inventory,
                                       uint64_t margin_mib) {
  std::vector<DeviceLimit> out;
  const uint64_t margin = margin_mib << 20;
  for (const devices::Device& d : inventory) {
    std::optional<uint64_t> budget;
    if (margin_mib > 0) budget = d.free > margin ? d.free - margin : 0;
    out.push_back({d.name, budget});
  }
  return out;
}

Router::Impl::Impl(RouterOptions o, std::vector<devices::Device> inv)
    : options(std::move(o)),
      inventory(std::move(inv)),
      scheduler(scheduler_options(options, inventory), this) {
  worker_bin = options.worker_bin.empty() ? self_exe() : options.worker_bin;
  if (options.backend.find("{api_key}") != std::string::npos) {
    worker_key = random_key();
    if (worker_key.empty()) spdlog::error("router: cannot read /dev/urandom for {{api_key}}");
  }
  created_unix = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
}

std::shared_ptr<const Registry> Router::Impl::registry() const {
  std::lock_guard lock(registry_mu_);
  return registry_;
}

std::chrono::milliseconds Router::Impl::stop_timeout_of(const ModelConfig& m) const {
  if (options.stop_timeout) return *options.stop_timeout;
  return std::chrono::seconds(m.stop_timeout_s);
}

std::vector<std::string> Router::Impl::worker_argv(const ModelConfig& m,
                                                  const http::Address& address) const {
  if (options.backend.empty()) {
    // Where the worker listens is always given here: it must not come from anywhere else.
    std::vector<std::string> argv = {worker_bin, "run", "-m", m.path, "--control-fd",
                                     std::to_string(WorkerProcess::kControlFd), "--alias", m.id};
    if (address.is_unix()) {
      argv.insert(argv.end(), {"--listen", "unix:" + address.unix_path});
    } else {
      argv.insert(argv.end(), {"--host", "127.0.0.1", "--port", "0"});
    }
    if (!options.worker_log_level.empty()) {
      argv.insert(argv.end(), {"--log-level", options.worker_log_level});
    }
    if (!options.worker_log_format.empty()) {
      argv.insert(argv.end(), {"--log-format", options.worker_log_format});
    }
    if (!m.mmproj.empty()) {
      argv.push_back("--mmproj");
      argv.push_back(m.mmproj);
    }
    argv.insert(argv.end(), m.worker_args.begin(), m.worker_args.end());
    return argv;
  }
  std::vector<std::string> argv;
  for (const std::string& word : split_words(options.backend)) {
    if (word == "{args}") {
      argv.insert(argv.end(), m.worker_args.begin(), m.worker_args.end());
      continue;
    }
    std::string w = word;
    for (auto [key, value] : {std::pair<std::string, std::string>{"{model}", m.path},
                              {"{port}", std::to_string(address.port)},
                              {"{api_key}", worker_key}}) {
      for (size_t p = w.find(key); p != std::string::npos; p = w.find(key, p + value.size())) {
        w.replace(p, key.size(), value);
      }
    }
    argv.push_back(w);
  }
  return argv;
}

// --- SchedulerHooks -------------------------------------------------------------------------

void Router::Impl::spawn(const std::string& id) {
  loads_total.fetch_add(1);
  loop->post([this, id] { do_spawn(id); });
}

void Router::Impl::stop(const std::string& id) {
  loop->post([this, id] { supervisor->stop(id); });
}

void Router::Impl::state_changed(const std::string& id, ModelState state) {
  spdlog::info("router: model '{}' is {}", id, model_state_name(state));
  json data = {{"status", model_state_name(state)}};
  if (state == ModelState::kUnloaded) {
    if (auto s = scheduler.status(id); s && s->failed) {
      data["failed"] = true;
      data["exit_code"] = s->exit_code;
    }
  }
  const std::string payload = json_text(data);
  publish(id, "model_status", payload);
  publish(id, "status_change", payload);
}

void Router::Impl::deadline_changed() {
  if (loop) loop->wake();
}

// --- Downloads ----------------------------------------------------------------------------------

void Router::Impl::download(const std::string& id) {
  auto reg = registry();
  const ModelConfig* m = reg ? reg->resolve(id) : nullptr;
  if (m == nullptr || m->id != id) {
    scheduler.on_downloaded(id, not_found_error("model '" + id + "' is no longer known"));
    return;
  }
  start_download(*m, true);
}

void Router::Impl::cancel_download(const std::string& id) {
  std::lock_guard lock(downloads_mu_);
  if (auto it = download_tokens_.find(id); it != download_tokens_.end()) it->second.cancel();
}

void Router::Impl::start_download(const ModelConfig& m, bool in_registry) {
  std::lock_guard lock(downloads_mu_);
  if (downloads_closed_) return;
  download::CancelToken token;
  download_tokens_[m.id] = token;
  download_threads_.emplace_back([this, m, in_registry, token] { run_download(m, in_registry, token); });
}

void Router::Impl::run_download(ModelConfig m, bool in_registry, download::CancelToken token) {
  const std::string id = m.id;
  spdlog::info("router: downloading '{}' ({})", id, m.hf_repo.empty() ? m.model_url : m.hf_repo);
  // Progress: /models and the scheduler at every call, /models/sse at most every 250 ms.
  auto last_event = std::chrono::steady_clock::time_point{};
  auto progress = [&](const download::Progress& p) {
    json files = json::array();
    for (const download::FileProgress& f : p.files) {
      files.push_back({{"path", f.path}, {"done", f.done}, {"total", f.total}});
    }
    const json value = {{"done", p.done}, {"total", p.total}, {"files", files}};
    {
      std::lock_guard lock(downloads_mu_);
      download_progress_[id] = json_text(value);
    }
    if (in_registry && p.total > 0) {
      scheduler.on_progress(id, static_cast<double>(p.done) / static_cast<double>(p.total));
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_event >= std::chrono::milliseconds(250) || p.done == p.total) {
      last_event = now;
      publish(id, "download_progress", json_text({{"status", "downloading"}, {"progress", value}}));
    }
  };
  Status result;
  if (!m.hf_repo.empty()) {
    auto local = download::ensure_downloaded(m.hf_repo, options.sources.download, progress, token);
    if (local.ok()) {
      std::lock_guard lock(downloads_mu_);
      downloaded_[id] = *local;
    } else {
      result = local.status();
    }
  } else {
    auto path = download::ensure_url(m.model_url, options.sources.download, progress, token);
    if (path.ok()) {
      download::LocalModel local;
      local.id = id;
      local.path = *path;
      std::lock_guard lock(downloads_mu_);
      downloaded_[id] = local;
    } else {
      result = path.status();
    }
  }
  {
    std::lock_guard lock(downloads_mu_);
    download_progress_.erase(id);
    download_tokens_.erase(id);
  }
  if (result.ok()) {
    spdlog::info("router: '{}' downloaded", id);
    publish(id, "download_finished", "{}");
  } else {
    spdlog::warn("router: downloading '{}' failed: {}", id, result.message());
    publish(id, "download_failed", json_text({{"error", result.message()}}));
  }
  if (!in_registry) {
    // A fetch of a new repository (POST /models): it appears through the cache listing.
    if (result.ok()) {
      if (Status s = reload_registry(); !s.ok()) spdlog::warn("router: reload: {}", s.message());
    }
    return;
  }
  if (result.ok()) {
    // The files are here: estimate (design §5: download → estimate → admission).
    const NeedEstimate need =
        estimator.estimate(effective(m), !options.backend.empty(), gpu_count(inventory));
    scheduler.set_need(id, need.bytes, need.error);
  }
  scheduler.on_downloaded(id, result);
}

void Router::Impl::refresh_memory() {
  std::vector<devices::Device> devs;
  {
    std::lock_guard lock(live_mu_);
    devs = live_inventory_;
  }
  if (Status s = devices::refresh_free(inventory_options, &devs); !s.ok()) {
    spdlog::debug("router: memory refresh: {}", s.message());
  }
  const std::map<std::string, uint64_t> held = measured_by_device();
  const uint64_t margin = options.memory_margin_mib << 20;
  std::vector<std::optional<uint64_t>> budgets;
  for (const devices::Device& d : devs) {
    if (options.memory_margin_mib == 0) {
      budgets.emplace_back();
      continue;
    }
    auto h = held.find(d.name);
    const uint64_t available = d.free + (h == held.end() ? 0 : h->second);
    budgets.emplace_back(available > margin ? available - margin : 0);
  }
  scheduler.set_budgets(budgets);
  {
    std::lock_guard lock(live_mu_);
    live_inventory_ = std::move(devs);
  }
  loop->post_at(std::chrono::steady_clock::now() + options.memory_refresh,
                [this] { refresh_memory(); });
}

http::Headers Router::Impl::worker_auth() const {
  http::Headers h;
  if (!worker_key.empty()) h.set("Authorization", "Bearer " + worker_key);
  return h;
}

// 32 random bytes as hex, from the kernel's generator.
std::string random_key() {
  unsigned char bytes[32] = {};
  std::FILE* f = std::fopen("/dev/urandom", "rb");
  size_t got = 0;
  if (f != nullptr) {
    got = std::fread(bytes, 1, sizeof bytes, f);
    std::fclose(f);
  }
  if (got != sizeof bytes) return "";
  std::string out;
  for (unsigned char b : bytes) out += fmt::format("{:02x}", b);
  return out;
}

ModelConfig Router::Impl::effective(const ModelConfig& m) const {
  if (!m.path.empty()) return m;
  ModelConfig out = m;
  std::lock_guard lock(downloads_mu_);
  if (auto it = downloaded_.find(m.id); it != downloaded_.end()) {
    out.path = it->second.path;
    if (out.mmproj.empty()) out.mmproj = it->second.mmproj;
  }
  return out;
}

void Router::Impl::mark_downloads(const Registry& reg) {
  for (const ModelConfig& m : reg.models()) {
    const bool remote = !m.hf_repo.empty() || !m.model_url.empty();
    scheduler.set_needs_download(m.id, remote && effective(m).path.empty());
  }
}

// --- Control thread -------------------------------------------------------------------------

void Router::Impl::do_spawn(const std::string& id) {
  auto reg = registry();
  const ModelConfig* m = reg ? reg->resolve(id) : nullptr;
  if (m == nullptr || m->id != id) {
    scheduler.on_exit(id, -1, true, "model '" + id + "' is no longer in the registry");
    return;
  }
  const ModelConfig config = effective(*m);
  if (config.path.empty()) {
    scheduler.on_exit(id, -1, true, "model '" + id + "' has no local file");
    return;
  }
  const bool backend = !options.backend.empty();
  http::Address address;  // a hangar worker on TCP says which port it got
  if (backend) {
    auto p = pick_free_port();
    if (!p.ok()) {
      scheduler.on_exit(id, -1, true, p.status().message());
      return;
    }
    address = http::Address::tcp("127.0.0.1", *p);
  } else if (!socket_dir_.empty()) {
    // A fresh name per start: a socket a killed worker left behind is never reused.
    address = http::Address::unix_socket(
        fmt::format("{}/w{}.sock", socket_dir_, ++sockets_started_));
  }
  supervisor->start(config, worker_argv(config, address), backend, address,
                    stop_timeout_of(config));
}

// --- SupervisorEvents -----------------------------------------------------------------------

void Router::Impl::worker_progress(const std::string& id, double progress) {
  scheduler.on_progress(id, progress);
  json data = {{"status", "loading"}, {"progress", {{"value", progress}}}};
  publish(id, "model_status", json_text(data));
}

void Router::Impl::worker_ready(const std::string& id, const http::Address& address,
                                const std::map<std::string, uint64_t>& measured) {
  scheduler.on_ready(id, address);
  scheduler.on_measured(id, measured);
}

void Router::Impl::worker_exited(const std::string& id, int exit_code, bool failed,
                                 const std::string& error) {
  if (failed) failures_total.fetch_add(1);
  drop_upstream(id);
  scheduler.on_exit(id, exit_code, failed, error);
}

// --- Registry ---------------------------------------------------------------------------------

Status Router::Impl::reload_registry() {
  std::lock_guard reloading(reload_mu_);  // one reload at a time (HTTP and finished downloads)
  HANGAR_ASSIGN_OR_RETURN(Registry fresh, Registry::scan(options.sources));
  auto next = std::make_shared<const Registry>(std::move(fresh));
  auto old = registry();
  {
    std::lock_guard lock(registry_mu_);
    registry_ = next;
  }
  for (const ModelConfig& m : old->models()) {
    const ModelConfig* now = next->resolve(m.id);
    if (now == nullptr || now->id != m.id) {
      scheduler.remove_model(m.id);
      publish(m.id, "model_remove", "{}");
    }
  }
  estimate_all(*next);
  mark_downloads(*next);
  for (const ModelConfig& m : next->models()) {
    const ModelConfig* before = old->resolve(m.id);
    // Running with another config: unload (not running: fine). A download filling in the path
    // is not another config.
    if (before != nullptr && before->id == m.id && !(effective(*before) == effective(m))) {
      (void)scheduler.unload(m.id);
    }
  }
  publish("*", "models_reload", "{}");
  return ok_status();
}

void Router::Impl::estimate_all(const Registry& reg) {
  for (const ModelConfig& listed : reg.models()) {
    const ModelConfig m = effective(listed);
    scheduler.add_model(m.id, m.pin, m.ttl_s, stop_timeout_of(m));
    if (m.path.empty() && m.memory_mib.empty()) {
      scheduler.set_need(m.id, {}, "model '" + m.id + "' is not downloaded yet");
      continue;
    }
    const NeedEstimate need = estimator.estimate(m, !options.backend.empty(), gpu_count(inventory));
    if (!need.error.empty()) spdlog::warn("router: {}", need.error);
    for (const auto& [device, bytes] : need.bytes) {
      spdlog::debug("router: '{}' needs {} on {} ({})", m.id, mib(bytes), device, need.source);
    }
    scheduler.set_need(m.id, need.bytes, need.error);
  }
}

std::map<std::string, uint64_t> Router::Impl::measured_by_device() const {
  return supervisor->measured_by_device();
}

std::string Router::Impl::devices_json() const {
  const std::map<std::string, uint64_t> measured = measured_by_device();
  const std::vector<Scheduler::DeviceUse> use = scheduler.device_use();
  json list = json::array();
  std::vector<devices::Device> live;
  {
    std::lock_guard lock(live_mu_);
    live = live_inventory_;
  }
  for (size_t i = 0; i < live.size() && i < use.size(); ++i) {
    const devices::Device& d = live[i];
    auto m = measured.find(d.name);
    list.push_back({{"name", d.name},
                    {"type", std::string(devices::device_type_name(d.type))},
                    {"description", d.description},
                    {"total", d.total},
                    {"free", d.free},
                    {"margin", options.memory_margin_mib << 20},
                    {"budget", use[i].budget ? json(*use[i].budget) : json(nullptr)},
                    {"reserved", use[i].reserved},
                    {"measured", m == measured.end() ? 0 : m->second}});
  }
  return json_text(json{{"devices", list}});
}

// --- Router -----------------------------------------------------------------------------------

Router::Router(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

StatusOr<std::unique_ptr<Router>> Router::create(RouterOptions options) {
  HANGAR_ASSIGN_OR_RETURN(Registry reg, Registry::scan(options.sources));
  for (const std::string& name : options.preload) {
    if (reg.resolve(name) == nullptr) {
      return not_found_error("--preload names model '" + name + "', which is not known");
    }
  }
  devices::InventoryOptions io;
  io.devices_file = options.devices_file;
  std::string note;
  HANGAR_ASSIGN_OR_RETURN(std::vector<devices::Device> inventory,
                          devices::take_inventory(io, &note));
  if (!note.empty()) spdlog::info("router: {}", note);
  auto impl = std::make_unique<Impl>(std::move(options), std::move(inventory));
  impl->inventory_options = io;
  impl->live_inventory_ = impl->inventory;
  for (const Scheduler::DeviceUse& d : impl->scheduler.device_use()) {
    spdlog::info("router: device {}: budget {}", d.name,
                 d.budget ? mib(*d.budget) : std::string("unlimited (no memory check)"));
  }
  impl->registry_ = std::make_shared<const Registry>(std::move(reg));
  impl->estimate_all(*impl->registry_);
  impl->mark_downloads(*impl->registry_);
  http::ServerOptions so;
  so.host = impl->options.host;
  so.port = impl->options.port;
  so.threads = std::max(1, impl->options.http_threads);
  so.max_connections = impl->options.max_connections;
  so.max_body_memory = impl->options.max_body_memory;
  // The key is checked as soon as a request's head is read: an unauthenticated client never
  // makes the router read (and hold) its body.
  so.check_head = [raw = impl.get()](const http::Request& head) -> std::optional<http::Response> {
    if (raw->authorized(head)) return std::nullopt;
    return http::error_response(401, "Invalid API Key", "authentication_error");
  };
  impl->server = std::make_unique<http::Server>(so);
  Impl* raw = impl.get();
  impl->loop = std::make_unique<TaskLoop>([raw] { return raw->scheduler.next_deadline(); },
                                          [raw](TaskLoop::Clock::time_point now) {
                                            raw->scheduler.tick(now);
                                          });
  SupervisorOptions sup;
  sup.load_timeout = impl->options.load_timeout;
  sup.liveness_interval = impl->options.liveness_interval;
  sup.liveness_timeout = impl->options.liveness_timeout;
  sup.liveness_failures = impl->options.liveness_failures;
  sup.worker_auth = impl->worker_auth();
  sup.inventory = impl->inventory_options;
  impl->supervisor = std::make_unique<Supervisor>(std::move(sup), impl.get(), impl->loop.get());
  impl->install_routes();
  return std::unique_ptr<Router>(new Router(std::move(impl)));
}

StatusOr<uint16_t> Router::start() {
  // Before listening: request handlers read socket_dir_ (in /models), never while it is set.
  if (impl_->options.backend.empty() && impl_->options.worker_unix_sockets) {
    auto dir = make_private_dir();
    if (dir.ok()) {
      impl_->socket_dir_ = *dir;
      spdlog::debug("router: workers listen on Unix sockets in {}", *dir);
    } else {
      spdlog::warn("router: {}; workers listen on 127.0.0.1 instead", dir.status().message());
    }
  }
  auto listened = impl_->server->listen();
  if (!listened.ok()) {
    if (!impl_->socket_dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(impl_->socket_dir_, ec);
      impl_->socket_dir_.clear();
    }
    return listened.status();
  }
  const uint16_t port = *listened;
  if (impl_->options.memory_refresh.count() > 0) {
    impl_->loop->post_at(std::chrono::steady_clock::now() + impl_->options.memory_refresh,
                         [impl = impl_.get()] { impl->refresh_memory(); });
  }
  impl_->supervisor->start_liveness();
  spdlog::info("router: listening on http://{}:{} ({} models)", impl_->options.host, port,
               impl_->registry()->models().size());
  auto reg = impl_->registry();
  for (const ModelConfig& m : reg->models()) {
    // --no-models-autoload wins over load-on-startup, as in llama.cpp.
    if (m.load_on_startup && impl_->options.models_autoload) (void)impl_->scheduler.load(m.id);
  }
  for (const std::string& name : impl_->options.preload) {
    if (const ModelConfig* m = reg->resolve(name)) (void)impl_->scheduler.load(m->id);
  }
  return port;
}

uint16_t Router::port() const { return impl_->server->port(); }

std::vector<ModelStatus> Router::model_status() const { return impl_->scheduler.status(); }

void Router::shutdown(std::chrono::milliseconds grace) {
  if (impl_->shut_down) return;
  impl_->shut_down = true;
  std::vector<std::thread> downloads;
  {
    std::lock_guard lock(impl_->downloads_mu_);
    impl_->downloads_closed_ = true;
    for (auto& [id, token] : impl_->download_tokens_) token.cancel();
    downloads.swap(impl_->download_threads_);
  }
  for (auto& t : downloads) t.join();  // a cancelled download returns promptly
  impl_->server->stop();
  // Unload everything: SIGTERM now (in-flight proxied requests still finish: the worker drains
  // them), SIGKILL after the longest stop-timeout.
  impl_->supervisor->terminate_all();
  {
    // /models/sse streams never end on their own: end them so drain() waits only for requests.
    std::lock_guard lock(impl_->sse_mu_);
    for (auto& s : impl_->subscribers_) s->finish();
    impl_->subscribers_.clear();
  }
  impl_->server->drain(grace);
  // Stopping the control thread also SIGKILLs any worker it spawned meanwhile (PDEATHSIG is
  // tied to the thread that forked).
  impl_->loop->stop();
  impl_->supervisor->shutdown();  // waits for the monitor threads, releases the records
  {
    std::lock_guard lock(impl_->sse_mu_);
    impl_->subscribers_.clear();
  }
  {
    std::lock_guard lock(impl_->upstream_mu_);
    impl_->upstreams_.clear();
  }
  if (!impl_->socket_dir_.empty()) {
    std::error_code ec;  // every worker is gone: so are the sockets it may have left
    std::filesystem::remove_all(impl_->socket_dir_, ec);
  }
}

Router::~Router() { shutdown(std::chrono::seconds(5)); }

}  // namespace hangar::router
