// `hangar run` as the router runs it: a socketpair end as --control-fd, port 0, events as JSON
// lines (listening → loading → ready), SIGTERM or EOF on the control fd → exit 0, a bad model →
// an error event and exit 1.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "http/client.h"
#include "support/test_support.h"

namespace hangar {
namespace {

using nlohmann::json;

constexpr int kHangMs = 60'000;  // a hang detector, not a speed limit

class WorkerProcess {
 public:
  // Starts `hangar run <args> --control-fd 3` with our socketpair end as fd 3.
  explicit WorkerProcess(const std::vector<std::string>& args) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return;
    std::vector<std::string> argv = {testing::hangar_binary(), "run"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--control-fd", "3"});
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
  ~WorkerProcess() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
  }

  // The next event line, or null on EOF / after kHangMs.
  json next_event() {
    for (;;) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return json::parse(line, nullptr, false);
      }
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, kHangMs) <= 0) return nullptr;
      char tmp[4096];
      ssize_t n = read(fd_, tmp, sizeof tmp);
      if (n <= 0) return nullptr;
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }
  // The exit code, waiting up to kHangMs (-1 on timeout or a signal death).
  int wait_exit() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kHangMs);
    // waitpid has no timeout: the control socket's EOF tells us the process is gone.
    while (std::chrono::steady_clock::now() < deadline) {
      if (next_event().is_null()) break;
    }
    int status = 0;
    if (waitpid(pid_, &status, 0) != pid_) return -1;
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  // Blocks until the process exits; the exit code, or -1 for a signal death.
  int reap() {
    int status = 0;
    if (waitpid(pid_, &status, 0) != pid_) return -1;
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  void close_control() {
    close(fd_);
    fd_ = -1;
  }
  pid_t pid() const { return pid_; }
  int fd() const { return fd_; }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  bool reaped_ = false;
  std::string buf_;
};

bool run_registered() {
  // `hangar --help` lists the subcommands, one per line: "  run   Serve one GGUF model...".
  return testing::run_command({testing::hangar_binary(), "--help"}).out.find("\n  run ") !=
         std::string::npos;
}

// Reads events up to "ready"; returns the port (0 on failure).
int wait_ready(WorkerProcess& w) {
  int port = 0;
  for (;;) {
    json ev = w.next_event();
    if (ev.is_null() || ev.is_discarded()) return 0;
    if (ev["event"] == "listening") port = ev["port"].get<int>();
    if (ev["event"] == "loading") {
      EXPECT_GE(ev["progress"].get<double>(), 0.0);
      EXPECT_LE(ev["progress"].get<double>(), 1.0);
    }
    if (ev["event"] == "ready") {
      EXPECT_EQ(ev["model"]["id"], "tiny");
      EXPECT_GT(ev["memory"]["CPU"].get<int64_t>(), 0);
      return port;
    }
    if (ev["event"] == "error") {
      ADD_FAILURE() << ev.dump();
      return 0;
    }
  }
}

TEST(WorkerRunTest, ServesAfterReadyAndExitsZeroOnSigterm) {
  HANGAR_REQUIRE_FIXTURES();
  if (!run_registered()) GTEST_SKIP() << "`hangar run` is not registered in src/cli/main.cc yet";
  WorkerProcess w({"-m", fixtures + "/models/llama-spm-q4_0.gguf", "-c", "256", "-np", "2", "-t",
                   "1", "-a", "tiny", "-ngl", "99"});
  const int port = wait_ready(w);
  ASSERT_GT(port, 0);
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  auto h = http::fetch(base + "/health");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->status, 200);
  auto c = http::fetch("POST", base + "/v1/chat/completions",
                       R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":4})", {},
                       std::chrono::seconds(60));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->status, 200) << c->body;
  kill(w.pid(), SIGTERM);
  EXPECT_EQ(w.wait_exit(), 0);
}

TEST(WorkerRunTest, ExitsWhenTheControlFdCloses) {
  HANGAR_REQUIRE_FIXTURES();
  if (!run_registered()) GTEST_SKIP() << "`hangar run` is not registered in src/cli/main.cc yet";
  WorkerProcess w(
      {"-m", fixtures + "/models/llama-spm-q4_0.gguf", "-c", "128", "-t", "1", "-a", "tiny"});
  ASSERT_GT(wait_ready(w), 0);
  w.close_control();
  // The worker exits on EOF; a hang here is caught by ctest's timeout.
  EXPECT_EQ(w.reap(), 0);
}

TEST(WorkerRunTest, BadModelReportsAnErrorEventAndExitsOne) {
  if (!run_registered()) GTEST_SKIP() << "`hangar run` is not registered in src/cli/main.cc yet";
  WorkerProcess w({"-m", "/nonexistent/model.gguf"});
  bool saw_error = false;
  for (;;) {
    json ev = w.next_event();
    if (ev.is_null()) break;
    if (ev["event"] == "error") {
      saw_error = true;
      EXPECT_NE(ev["message"].get<std::string>().find("/nonexistent/model.gguf"),
                std::string::npos);
    }
  }
  EXPECT_TRUE(saw_error);
  EXPECT_EQ(w.wait_exit(), 1);
}

}  // namespace
}  // namespace hangar
