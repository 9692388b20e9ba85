#pragma once
// Helpers of the router's end-to-end tests: a `hangar` child process (serve or run) whose output
// is collected by a reader thread (so its pipe never fills) and whose port is read from its
// "listening on 127.0.0.1:PORT" log line; a streamed chat request that returns the text; the
// states /models reports; the ids of a process's children.
//
// Thread-safety: a HangarProcess is driven by one test thread; its reader thread only appends to
// the collected output under mu_.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "http/client.h"
#include "http/sse.h"
#include "support/test_support.h"

namespace hangar::e2e {

using json = nlohmann::json;

// Every wait in these tests is a hang detector, never a speed assertion.
inline constexpr auto kHangDetector = std::chrono::seconds(60);

// Waits up to `timeout` for the process behind `pidfd` to exit. True when it did.
inline bool wait_pidfd(int pidfd, std::chrono::milliseconds timeout) {
  pollfd p{pidfd, POLLIN, 0};
  return poll(&p, 1, static_cast<int>(timeout.count())) == 1;
}

inline int pidfd_of(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

// `hangar <args>` with stdout and stderr on one pipe read by a background thread.
class HangarProcess {
 public:
  // `extra_env`: "NAME=value" entries added to (or replacing) the test's own environment.
  explicit HangarProcess(const std::vector<std::string>& args,
                         std::vector<std::string> extra_env = {}) {
    std::vector<std::string> argv = {testing::hangar_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (std::string& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    std::vector<char*> cenv;
    for (std::string& e : extra_env) cenv.push_back(e.data());
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      std::string_view entry(*e);
      const std::string_view name = entry.substr(0, entry.find('=') + 1);
      bool replaced = false;
      for (const std::string& x : extra_env) replaced = replaced || x.starts_with(name);
      if (!replaced) cenv.push_back(*e);
    }
    cenv.push_back(nullptr);
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) return;
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      // A crashed test leaves no router behind.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      dup2(out[1], 1);
      dup2(out[1], 2);
      execve(cargv[0], cargv.data(), cenv.data());
      _exit(127);
    }
    close(out[1]);
    if (pid_ < 0) {
      close(out[0]);
      return;
    }
    pidfd_ = pidfd_of(pid_);
    reader_ = std::thread([this, fd = out[0]] { read_output(fd); });
  }
  ~HangarProcess() {
    stop(SIGKILL);
    if (reader_.joinable()) reader_.join();
    if (pidfd_ >= 0) close(pidfd_);
  }
  HangarProcess(const HangarProcess&) = delete;
  HangarProcess& operator=(const HangarProcess&) = delete;

  pid_t pid() const { return pid_; }

  // The port of the first output line containing `marker` followed by "127.0.0.1:PORT", e.g.
  // marker "router: listening on http://"; 0 when none came within the hang detector.
  uint16_t wait_for_port(const std::string& marker) {
    std::unique_lock lock(mu_);
    uint16_t port = 0;
    cv_.wait_for(lock, kHangDetector, [&] {
      for (const std::string& line : lines_) {
        size_t at = line.find(marker);
        if (at == std::string::npos) continue;
        size_t host = line.find("127.0.0.1:", at);
        if (host == std::string::npos) continue;
        port = static_cast<uint16_t>(std::atoi(line.c_str() + host + 10));
        return true;
      }
      return eof_;
    });
    return port;
  }

  // Whether an output line containing `marker` came (waits up to the hang detector).
  bool wait_for_line(const std::string& marker) {
    std::unique_lock lock(mu_);
    bool seen = false;
    cv_.wait_for(lock, kHangDetector, [&] {
      for (const std::string& line : lines_) {
        if (line.find(marker) != std::string::npos) seen = true;
      }
      return seen || eof_;
    });
    return seen;
  }

  // Sends `sig` (unless the process is gone) and waits for the exit; SIGKILL when it has not
  // exited within the hang detector. Returns the exit code, or -N for signal N.
  int stop(int sig = SIGTERM) {
    if (pid_ <= 0 || reaped_) return exit_code_;
    kill(pid_, sig);
    if (pidfd_ < 0 || !wait_pidfd(pidfd_, kHangDetector)) kill(pid_, SIGKILL);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return exit_code_;
  }

  std::string output() {
    std::lock_guard lock(mu_);
    std::string all;
    for (const std::string& l : lines_) all += l + "\n";
    return all;
  }

 private:
  void read_output(int fd) {
    std::string buf;
    char tmp[8192];
    for (;;) {
      ssize_t n = read(fd, tmp, sizeof tmp);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      buf.append(tmp, static_cast<size_t>(n));
      std::lock_guard lock(mu_);
      for (size_t nl; (nl = buf.find('\n')) != std::string::npos; buf.erase(0, nl + 1)) {
        lines_.push_back(buf.substr(0, nl));
      }
      cv_.notify_all();
    }
    close(fd);
    std::lock_guard lock(mu_);
    if (!buf.empty()) lines_.push_back(buf);
    eof_ = true;
    cv_.notify_all();
  }

  pid_t pid_ = -1;
  int pidfd_ = -1;
  bool reaped_ = false;
  int exit_code_ = -1;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;  // guarded by mu_
  bool eof_ = false;                // guarded by mu_
};

// `hangar serve --port 0 <args>`, stopped (SIGTERM) by the destructor.
class Serve {
 public:
  explicit Serve(std::vector<std::string> args, std::vector<std::string> env = {})
      : process_(with_serve(std::move(args)), isolated(std::move(env))) {
    port_ = process_.wait_for_port("router: listening on http://");
  }
  uint16_t port() const { return port_; }
  HangarProcess& process() { return process_; }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  // The router lists the models of the Hugging Face cache: a test sees an empty one (no HOME,
  // no LLAMA_CACHE of the machine's user) unless it sets them.
  static std::vector<std::string> isolated(std::vector<std::string> env) {
    for (const char* name : {"HOME=", "LLAMA_CACHE=", "HF_HUB_CACHE=", "HF_HOME=",
                             "XDG_CACHE_HOME=", "HUGGINGFACE_HUB_CACHE="}) {
      bool given = false;
      for (const std::string& e : env) given = given || e.starts_with(name);
      if (!given) env.push_back(std::string(name) + "/nonexistent/hangar-test-cache");
    }
    return env;
  }
  static std::vector<std::string> with_serve(std::vector<std::string> args) {
    args.insert(args.begin(), {"serve", "--host", "127.0.0.1", "--port", "0"});
    return args;
  }
  HangarProcess process_;
  uint16_t port_ = 0;
};

struct StreamedChat {
  int status = 0;
  std::string text;             // the deltas' content, concatenated
  bool first_has_role = false;  // the first chunk carried delta.role == "assistant"
  bool done = false;            // the stream ended with data: [DONE]
  std::string error;
};

// A streamed, greedy chat completion of `max_tokens` for `model` at `base` (http://host:port).
inline StreamedChat stream_chat(const std::string& base, const std::string& model,
                                const std::string& prompt, int max_tokens) {
  StreamedChat out;
  http::FetchOptions o;
  o.method = "POST";
  o.headers.add("Content-Type", "application/json");
  o.timeout = kHangDetector;
  o.body = json{
      {"model", model},
      {"messages", {{{"role", "user"}, {"content", prompt}}}},
      {"max_tokens", max_tokens},
      {"temperature", 0},
      {"stream",
       true}}.dump();
  http::SseParser parser;
  int chunks = 0;
  std::string raw;
  Status s = http::fetch_stream(
      base + "/v1/chat/completions", o,
      [&](int status, const http::Headers&) { out.status = status; },
      [&](std::string_view piece) {
        raw.append(piece);
        parser.feed(piece, [&](const http::SseEvent& e) {
          if (e.data == "[DONE]") {
            out.done = true;
            return;
          }
          json j = json::parse(e.data, nullptr, false);
          if (j.is_discarded() || !j.contains("choices") || j["choices"].empty()) return;
          const json& delta = j["choices"][0].value("delta", json::object());
          if (chunks++ == 0) out.first_has_role = delta.value("role", "") == "assistant";
          if (delta.contains("content") && delta["content"].is_string()) {
            out.text += delta["content"].get<std::string>();
          }
        });
        return true;
      });
  if (!s.ok()) out.error = s.message();
  if (out.status != 200) out.error += " body: " + raw;
  return out;
}

// id → status.value from GET /models at `base`; empty on any failure.
inline std::map<std::string, std::string> model_states(const std::string& base,
                                                       const std::string& query = "") {
  std::map<std::string, std::string> states;
  auto r = http::fetch("GET", base + "/models" + query, {}, {}, kHangDetector);
  if (!r.ok() || r->status != 200) return states;
  json j = json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.contains("data")) return states;
  for (const json& m : j["data"]) {
    states[m.value("id", "")] = m.contains("status") ? m["status"].value("value", "") : "";
  }
  return states;
}

// The pids whose parent is `parent` (from /proc/PID/stat).
inline std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat;
    std::getline(in, stat);
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses; the last ')' ends it.
    size_t close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(stat.c_str() + close_paren + 1, " %c %d", &state, &ppid) != 2) continue;
    if (ppid == parent) out.push_back(static_cast<pid_t>(std::atoi(name.c_str())));
  }
  return out;
}

// The first executable `name` on PATH, or "" (run_command does not search PATH).
inline std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string rest = path ? path : "/usr/bin:/bin";
  for (size_t start = 0; start <= rest.size();) {
    size_t end = rest.find(':', start);
    if (end == std::string::npos) end = rest.size();
    std::string candidate = rest.substr(start, end - start) + "/" + name;
    if (end > start && access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

// A temp models folder with symlinks to the named fixture models ("qwen2-f16" →
// fixtures/models/qwen2-f16.gguf).
inline std::filesystem::path make_models_dir(const std::string& fixtures,
                                             const std::vector<std::string>& names) {
  std::filesystem::path dir = testing::make_temp_dir("hangar-router-e2e");
  for (const std::string& n : names) {
    std::filesystem::create_symlink(std::filesystem::path(fixtures) / "models" / (n + ".gguf"),
                                    dir / (n + ".gguf"));
  }
  return dir;
}

}  // namespace hangar::e2e
