#pragma once
// Helpers for the end-to-end tests of `hangar run`: start a worker as the router does (a
// socketpair end as --control-fd 3, port 0), wait for its "ready" event, talk to it over real
// HTTP (plain and SSE), and stop it with SIGTERM. Header-only: each e2e test is its own binary.
//
// Thread-safety: a WorkerProcess belongs to one thread; post_json()/post_sse() are reentrant.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "http/client.h"
#include "http/sse.h"
#include "support/test_support.h"

namespace hangar::e2e {

using nlohmann::json;

// A hang detector, never a speed limit: tiny models answer in well under a second.
inline constexpr int kHangMs = 120'000;

class WorkerProcess {
 public:
  // Starts `hangar run <args> --control-fd 3 --log-level warn`.
  explicit WorkerProcess(const std::vector<std::string>& args) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return;
    std::vector<std::string> argv = {testing::hangar_binary(), "run"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--control-fd", "3", "--log-level", "warn"});
    pid_ = fork();
    if (pid_ == 0) {
      dup2(sv[1], 3);  // dup2 clears CLOEXEC on the new fd
      std::vector<char*> cargv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      execv(cargv[0], cargv.data());
      _exit(127);
    }
    close(sv[1]);
    fd_ = sv[0];
  }
  ~WorkerProcess() { stop(); }
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  // Reads events up to "ready" and returns the base URL ("" on an error event, EOF or a hang).
  std::string wait_ready() {
    for (;;) {
      json ev = next_event();
      if (ev.is_null() || ev.is_discarded()) return "";
      if (ev["event"] == "listening") port_ = ev["port"].get<int>();
      if (ev["event"] == "ready") {
        ready_event_ = ev;
        return base_url();
      }
      if (ev["event"] == "error") {
        ADD_FAILURE() << "worker error event: " << ev.dump();
        return "";
      }
    }
  }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const json& ready_event() const { return ready_event_; }
  pid_t pid() const { return pid_; }

  // SIGTERM, then wait for the exit (the control socket's EOF bounds the wait); SIGKILL if
  // the worker hangs. Returns the exit code (-1 for a signal death).
  int stop() {
    if (pid_ <= 0 || reaped_) return exit_code_;
    kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kHangMs);
    while (fd_ >= 0 && std::chrono::steady_clock::now() < deadline) {
      if (next_event().is_null()) break;
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
    reaped_ = true;
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return exit_code_;
  }

  // Closes our end of the control socket, as a dying router would.
  void close_control() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  // Waits for the exit without signalling: up to `timeout_ms` (then -2), else the exit code
  // (-1 for a signal death). Polls a pidfd, so it wakes the moment the process is gone.
  int wait_exit(int timeout_ms = kHangMs) {
    if (pid_ <= 0 || reaped_) return exit_code_;
    const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd < 0) return -1;
    pollfd p{pidfd, POLLIN, 0};
    const int ready = poll(&p, 1, timeout_ms);
    close(pidfd);
    if (ready <= 0) return -2;
    int status = 0;
    if (waitpid(pid_, &status, 0) != pid_) return -1;
    reaped_ = true;
    close_control();
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return exit_code_;
  }

  // The next event line, or null on EOF or after `timeout_ms`.
  json next_event(int timeout_ms = kHangMs) {
    for (;;) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return json::parse(line, nullptr, false);
      }
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, timeout_ms) <= 0) return nullptr;
      char tmp[4096];
      ssize_t n = read(fd_, tmp, sizeof tmp);
      if (n <= 0) return nullptr;
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  int port_ = 0;
  bool reaped_ = false;
  int exit_code_ = -1;
  std::string buf_;
  json ready_event_;
};

struct JsonReply {
  int status = 0;
  json body;         // discarded when the body is not JSON
  std::string text;  // the raw body
};

inline JsonReply http_call(const std::string& method, const std::string& url,
                           const std::string& body = {}) {
  JsonReply r;
  auto res = http::fetch(method, url, body, {}, std::chrono::milliseconds(kHangMs));
  EXPECT_TRUE(res.ok()) << method << " " << url << ": " << res.status().to_string();
  if (!res.ok()) return r;
  r.status = res->status;
  r.text = res->body;
  r.body = json::parse(res->body, nullptr, false);
  return r;
}
inline JsonReply post_json(const std::string& url, const json& body) {
  return http_call("POST", url, body.dump());
}
inline JsonReply get_json(const std::string& url) { return http_call("GET", url); }

struct SseReply {
  int status = 0;
  std::string content_type;
  std::vector<json> events;  // every data: payload but [DONE], parsed
  bool done = false;         // `data: [DONE]` came, and last
  bool data_after_done = false;
};

// POSTs `body` and reads the whole event stream.
inline SseReply post_sse(const std::string& url, const json& body) {
  SseReply r;
  http::FetchOptions o;
  o.method = "POST";
  o.body = body.dump();
  o.headers.set("Content-Type", "application/json");
  o.timeout = std::chrono::milliseconds(kHangMs);
  http::SseParser parser;
  Status s = http::fetch_stream(
      url, o,
      [&](int status, const http::Headers& h) {
        r.status = status;
        r.content_type = h.get_or("Content-Type", "");
      },
      [&](std::string_view piece) {
        parser.feed(piece, [&](const http::SseEvent& ev) {
          if (r.done) r.data_after_done = true;
          if (ev.data == "[DONE]") {
            r.done = true;
            return;
          }
          r.events.push_back(json::parse(ev.data, nullptr, false));
        });
        return true;
      });
  EXPECT_TRUE(s.ok()) << url << ": " << s.to_string();
  return r;
}

}  // namespace hangar::e2e
