#include "worker/run_worker.h"

#include "common/control_protocol.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "common/signals.h"
#include "worker/api_error.h"

namespace hangar::worker {
namespace {

using nlohmann::json;

// Writes one JSON line per event to the control fd (the router's end of a socketpair).
class ControlChannel {
 public:
  explicit ControlChannel(int fd) : fd_(fd) {}
  void send(const control::Event& event) {
    if (fd_ < 0) return;
    std::string line = control::encode(event) + "\n";
    std::lock_guard lk(mu_);
    size_t off = 0;
    while (off < line.size()) {
      ssize_t n = ::write(fd_, line.data() + off, line.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        spdlog::warn("worker: cannot write to control fd {}: errno {}", fd_, errno);
        return;
      }
      off += static_cast<size_t>(n);
    }
  }

 private:
  int fd_;
  std::mutex mu_;  // one line at a time from the loader and main threads
};

}  // namespace

int run_worker(const RunOptions& o) {
  // The router dying must not leave this worker behind: it gets SIGTERM and drains.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  // Signals arrive through a signalfd in the poll loop below; block them in every thread
  // (threads created later inherit the mask).
  const sigset_t set = block_stop_signals();
  const int sfd = signalfd(-1, &set, SFD_CLOEXEC);
  const int efd = eventfd(0, EFD_CLOEXEC);
  if (sfd < 0 || efd < 0) {
    spdlog::error("worker: cannot create signalfd/eventfd: errno {}", errno);
    return 1;
  }

  ControlChannel control(o.control_fd);
  auto fail = [&](const std::string& message) {
    spdlog::error("worker: {}", message);
    control.send(control::Error{message});
    return 1;
  };
  if (o.port < 0 || o.port > 65535) {
    return fail("--port must be between 0 and 65535, got " + std::to_string(o.port));
  }
  std::string unix_path;
  if (!o.listen.empty()) {
    if (!o.listen.starts_with("unix:") || o.listen.size() == 5) {
      return fail("--listen takes unix:PATH, got '" + o.listen + "'");
    }
    unix_path = o.listen.substr(5);
  }

  http::ServerOptions so;
  so.host = o.host;
  so.port = static_cast<uint16_t>(o.port);
  so.unix_path = unix_path;
  so.threads = std::max(1, o.http_threads);
  http::Server server(so);
  WorkerServer worker(o.worker);
  worker.register_routes(server);
  const std::string where =
      unix_path.empty() ? o.host + ":" + std::to_string(o.port) : "unix:" + unix_path;
  StatusOr<uint16_t> port = server.listen();
  if (!port.ok()) return fail("cannot listen on " + where + ": " + port.status().message());
  if (unix_path.empty()) {
    spdlog::info("worker: listening on {}:{}", o.host, *port);
  } else {
    spdlog::info("worker: listening on {}", where);
  }
  control.send(control::Listening{*port, unix_path});

  Status load_status;
  std::thread loader([&] {
    load_status = worker.load([&](float p) {
      control.send(control::Loading{std::clamp(static_cast<double>(p), 0.0, 1.0)});
    });
    const uint64_t one = 1;
    ssize_t n = ::write(efd, &one, sizeof one);
    (void)n;
  });

  bool loaded = false;
  bool stop = false;
  while (!stop) {
    std::vector<pollfd> fds = {{sfd, POLLIN, 0}, {efd, POLLIN, 0}};
    if (o.control_fd >= 0) fds.push_back({o.control_fd, POLLIN, 0});
    // No timeout: a signal, the control fd or the loader always ends this wait.
    int n = ::poll(fds.data(), fds.size(), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      spdlog::error("worker: poll failed: errno {}", errno);
      stop = true;
      break;
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo si{};
      ssize_t r = ::read(sfd, &si, sizeof si);
      (void)r;
      spdlog::info("worker: signal {} received; draining", si.ssi_signo);
      stop = true;
    }
    if (fds[1].revents & POLLIN) {
      uint64_t v = 0;
      ssize_t r = ::read(efd, &v, sizeof v);
      (void)r;
      loader.join();
      if (!load_status.ok()) {
        server.stop();
        server.drain(std::chrono::milliseconds(0));
        return fail("loading '" + o.worker.model_path + "' failed: " + load_status.message());
      }
      loaded = true;
      spdlog::info("worker: ready ({})", worker.model_id());
      control::Ready ready;
      ready.model_json = dump_json(worker.model_info());
      const json memory = WorkerServer::memory_info();
      for (auto it = memory.begin(); it != memory.end(); ++it) {
        if (it->is_number_unsigned()) ready.memory[it.key()] = it->get<uint64_t>();
      }
      control.send(ready);
    }
    if (fds.size() > 2 && (fds[2].revents & (POLLIN | POLLHUP | POLLERR))) {
      char buf[256];
      ssize_t r = ::read(o.control_fd, buf, sizeof buf);
      if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
        spdlog::info("worker: control fd closed; exiting");
        stop = true;
      }
    }
  }

  if (!loaded) {
    // The loader cannot be interrupted mid-load; nothing is being served, so leave now.
    spdlog::info("worker: stopping while loading");
    spdlog::default_logger()->flush();
    std::_Exit(0);
  }
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(o.drain_timeout_s * 1000));
  server.stop();
  const bool drained = server.drain(timeout);
  if (!drained) spdlog::warn("worker: in-flight requests did not finish within the drain timeout");
  worker.shutdown_engine();
  spdlog::info("worker: stopped");
  return 0;
}

}  // namespace hangar::worker
