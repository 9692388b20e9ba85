#pragma once
// WorkerProcess: one supervised child process (a `hangar run` worker or a --backend program).
//
// spawn() forks and execs argv with stdin = /dev/null, stdout and stderr = one pipe, and (for
// hangar workers) one end of a socketpair as fd 3 (`--control-fd 3` in argv is the caller's
// job). The child leads its own process group: terminate()/kill() signal the group, and the
// group is SIGKILLed once the process itself has exited, so a wrapper's children never outlive
// it. The child sets PR_SET_PDEATHSIG(SIGKILL) before exec, so killing the router kills its
// workers (no orphans); it closes every other inherited fd. A monitor thread per process reads
// the control socket (JSON lines → on_control) and the output pipe (lines → on_log), keeps the
// last 20 log lines, and notices the exit through a pidfd at any time (→ on_exit, once, after
// the remaining output was read). It reaps the child itself. The child's environment is the
// router's minus the router-only variables (is_router_only_env).
//
// PR_SET_PDEATHSIG fires when the *thread* that forked exits: call spawn() from a thread that
// lives as long as the workers (the router's control thread).
//
// Thread-safety: terminate(), kill(), close_control() and the accessors may be called from any
// thread. Callbacks run on the monitor thread, one at a time; they must not call the destructor.
// The destructor SIGKILLs a still-running child and joins the monitor thread.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"

namespace hangar::router {

// True for an environment entry ("NAME=value") that configures the router and is removed from
// every worker's environment: HANGAR_* and llama.cpp's router-owned LLAMA_ARG_* variables.
bool is_router_only_env(std::string_view entry);

struct WorkerExit {
  int exit_code = 0;  // the exit status, or -N when killed by signal N
  std::string how;    // "exited with code 1", "killed by signal 9 (Killed)"
  std::vector<std::string> last_lines;  // the last 20 lines of its output
};

struct WorkerCallbacks {
  std::function<void(const std::string& line)> on_control;  // one JSON line from the worker
  std::function<void(const std::string& line)> on_log;     // one output line
  std::function<void(const WorkerExit& exit)> on_exit;
};

class WorkerProcess {
 public:
  static constexpr int kControlFd = 3;
  static constexpr size_t kKeptLines = 20;

  // Starts argv[0] (looked up in PATH when it has no '/'). with_control: pass a socketpair end
  // as fd kControlFd. `log_name` prefixes nothing here; it names the process in messages.
  static StatusOr<std::unique_ptr<WorkerProcess>> spawn(const std::vector<std::string>& argv,
                                                        bool with_control,
                                                        const std::string& log_name,
                                                        WorkerCallbacks callbacks);
  ~WorkerProcess();
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Sends SIGTERM / SIGKILL unless the process was already reaped.
  void terminate();
  void kill();
  // Closes our end of the control socket (the worker sees EOF and exits).
  void close_control();
  bool exited() const { return exited_.load(); }
  // When the process last wrote a control event (or was spawned). Log lines do not count: a
  // worker that only logs makes no progress (design §6, --load-timeout).
  std::chrono::steady_clock::time_point last_event() const;

 private:
  WorkerProcess() = default;
  void monitor();
  void signal(int sig);
  void handle_lines(std::string& buffer, bool control, bool flush);

  pid_t pid_ = -1;
  int pidfd_ = -1;
  int control_fd_ = -1;  // our end; guarded by mu_ for close
  int output_fd_ = -1;
  std::string log_name_;
  WorkerCallbacks callbacks_;
  std::thread thread_;
  std::atomic<bool> exited_{false};
  std::atomic<int64_t> last_event_ns_{0};

  mutable std::mutex mu_;
  bool reaped_ = false;              // guarded by mu_: no signal after the pid may be reused
  std::deque<std::string> last_lines_;  // monitor thread only
};

}  // namespace hangar::router
