#include "router/worker_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hangar::router {
namespace {

constexpr size_t kMaxLineBytes = 64 * 1024;  // a longer line is cut there

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

std::string errno_text() { return std::strerror(errno); }

}  // namespace

bool is_router_only_env(std::string_view entry) {
  // HANGAR_* configures the router (every option reads HANGAR_<OPTION>): a worker inheriting
  // HANGAR_PORT would bind the router's port, HANGAR_API_KEY would demand a key the router does
  // not forward. llama.cpp's own router-owned variables are stripped the same way, so a
  // llama-server backend does not take the router's host, port or key either.
  static constexpr std::string_view kPrefixes[] = {
      "HANGAR_", "LLAMA_ARG_HOST=", "LLAMA_ARG_PORT=", "LLAMA_API_KEY=", "LLAMA_ARG_MODELS_"};
  for (std::string_view p : kPrefixes) {
    if (entry.starts_with(p)) return true;
  }
  return false;
}

StatusOr<std::unique_ptr<WorkerProcess>> WorkerProcess::spawn(
    const std::vector<std::string>& argv, bool with_control, const std::string& log_name,
    WorkerCallbacks callbacks) {
  if (argv.empty()) return invalid_argument_error("worker '" + log_name + "': empty command");
  int out_pipe[2] = {-1, -1};
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    return internal_error("worker '" + log_name + "': pipe2: " + errno_text());
  }
  int ctl[2] = {-1, -1};
  if (with_control && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return internal_error("worker '" + log_name + "': socketpair: " + errno_text());
  }
  // Everything the child touches is prepared before fork: after fork only async-signal-safe
  // calls are allowed (other threads may hold malloc's locks).
  std::vector<char*> cargv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::vector<char*> cenv;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (!is_router_only_env(*e)) cenv.push_back(*e);
  }
  cenv.push_back(nullptr);
  const pid_t parent = getpid();

  pid_t pid = fork();
  if (pid < 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    if (with_control) {
      close(ctl[0]);
      close(ctl[1]);
    }
    return internal_error("worker '" + log_name + "': fork: " + errno_text());
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the router died between fork and prctl
    // Its own process group: signals go to the group, so a --backend wrapper (a shell script, a
    // launcher) takes the server it started down with it.
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) ::signal(sig, SIG_DFL);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out_pipe[1], 1);
    dup2(out_pipe[1], 2);
    if (with_control) {
      if (ctl[1] == kControlFd) {
        fcntl(kControlFd, F_SETFD, 0);
      } else {
        dup2(ctl[1], kControlFd);
      }
    }
    const unsigned first_closed = with_control ? kControlFd + 1 : 3;
    if (syscall(SYS_close_range, first_closed, ~0U, 0) != 0) {
      for (int fd = static_cast<int>(first_closed); fd < 4096; ++fd) close(fd);
    }
    execvpe(cargv[0], cargv.data(), cenv.data());
    const char msg[] = "hangar: exec failed: ";
    (void)!write(2, msg, sizeof(msg) - 1);
    const char* err = strerror(errno);
    (void)!write(2, err, strlen(err));
    (void)!write(2, "\n", 1);
    _exit(127);
  }
  close(out_pipe[1]);
  if (with_control) close(ctl[1]);

  std::unique_ptr<WorkerProcess> w(new WorkerProcess());
  w->pid_ = pid;
  w->pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  w->control_fd_ = with_control ? ctl[0] : -1;
  w->output_fd_ = out_pipe[0];
  w->log_name_ = log_name;
  w->callbacks_ = std::move(callbacks);
  w->last_event_ns_ = now_ns();
  set_nonblocking(w->output_fd_);
  if (w->control_fd_ >= 0) set_nonblocking(w->control_fd_);
  w->thread_ = std::thread([raw = w.get()] { raw->monitor(); });
  return w;
}

WorkerProcess::~WorkerProcess() {
  kill();
  if (thread_.joinable()) {
    // The last owner may be released inside on_exit, on the monitor thread itself; the monitor
    // touches nothing of ours after on_exit returns (it runs a copy of the callback).
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }
  if (control_fd_ >= 0) close(control_fd_);
  if (output_fd_ >= 0) close(output_fd_);
  if (pidfd_ >= 0) close(pidfd_);
}

void WorkerProcess::signal(int sig) {
  std::lock_guard lock(mu_);
  if (reaped_ || pid_ <= 0) return;
  // The whole group (see spawn); the process alone if it is not a group leader (yet).
  if (::kill(-pid_, sig) != 0) ::kill(pid_, sig);
}

void WorkerProcess::terminate() { signal(SIGTERM); }
void WorkerProcess::kill() { signal(SIGKILL); }

void WorkerProcess::close_control() {
  std::lock_guard lock(mu_);
  // shutdown, not close: the monitor thread may be polling this fd; it closes it itself.
  if (control_fd_ >= 0) shutdown(control_fd_, SHUT_RDWR);
}

std::chrono::steady_clock::time_point WorkerProcess::last_event() const {
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(last_event_ns_.load()));
}

void WorkerProcess::handle_lines(std::string& buffer, bool control, bool flush) {
  size_t start = 0;
  while (true) {
    size_t nl = buffer.find('\n', start);
    if (nl == std::string::npos) break;
    std::string line = buffer.substr(start, nl - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    start = nl + 1;
    if (control) {
      last_event_ns_ = now_ns();  // log lines are not progress (design §6)
      if (callbacks_.on_control && !line.empty()) callbacks_.on_control(line);
    } else {
      last_lines_.push_back(line);
      if (last_lines_.size() > kKeptLines) last_lines_.pop_front();
      if (callbacks_.on_log) callbacks_.on_log(line);
    }
  }
  buffer.erase(0, start);
  if ((flush && !buffer.empty()) || buffer.size() > kMaxLineBytes) {
    buffer.push_back('\n');
    handle_lines(buffer, control, false);
  }
}

void WorkerProcess::monitor() {
  std::string control_buf, output_buf;
  bool control_open = control_fd_ >= 0, output_open = true, process_gone = false;
  char buf[16384];
  int status = 0;
  auto drain = [&](int fd, std::string& acc, bool control, bool* open) {
    while (*open) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n > 0) {
        acc.append(buf, static_cast<size_t>(n));
        handle_lines(acc, control, false);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      *open = false;  // EOF or error
      handle_lines(acc, control, true);
    }
  };
  while (!process_gone) {
    pollfd fds[3];
    int n = 0;
    int ci = -1, oi = -1, pi = -1;
    if (control_open) { fds[n] = {control_fd_, POLLIN, 0}; ci = n++; }
    if (output_open) { fds[n] = {output_fd_, POLLIN, 0}; oi = n++; }
    if (pidfd_ >= 0) { fds[n] = {pidfd_, POLLIN, 0}; pi = n++; }
    // Without a pidfd (old kernels) the exit is seen as EOF on the output pipe; a 1 s poll
    // bounds the wait for an exit that leaves the pipe open (a grandchild holding it).
    int r = poll(fds, static_cast<nfds_t>(n), pidfd_ >= 0 ? -1 : 1000);
    if (r < 0 && errno != EINTR) break;
    if (ci >= 0 && fds[ci].revents) drain(control_fd_, control_buf, true, &control_open);
    if (oi >= 0 && fds[oi].revents) drain(output_fd_, output_buf, false, &output_open);
    if (pi >= 0 && (fds[pi].revents & POLLIN)) process_gone = true;
    if (pidfd_ < 0) {
      std::lock_guard lock(mu_);
      if (!output_open && waitpid(pid_, &status, WNOHANG) == pid_) {
        process_gone = true;
      }
    }
  }
  // The process is gone: read what it left in the pipes (non-blocking: a grandchild may keep
  // them open), then reap it.
  drain(control_fd_, control_buf, true, &control_open);
  drain(output_fd_, output_buf, false, &output_open);
  handle_lines(output_buf, false, true);
  {
    std::lock_guard lock(mu_);
    if (pidfd_ >= 0) {
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
    // Whatever the process left in its group (a wrapper's server, a daemonized child) goes
    // with it: the router counts this worker as gone.
    ::kill(-pid_, SIGKILL);
    reaped_ = true;
  }
  exited_ = true;
  WorkerExit exit;
  if (WIFEXITED(status)) {
    exit.exit_code = WEXITSTATUS(status);
    exit.how = "exited with code " + std::to_string(exit.exit_code);
  } else if (WIFSIGNALED(status)) {
    exit.exit_code = -WTERMSIG(status);
    exit.how = "killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
               strsignal(WTERMSIG(status)) + ")";
  }
  exit.last_lines.assign(last_lines_.begin(), last_lines_.end());
  // A copy: running it may destroy this WorkerProcess (see the destructor).
  std::function<void(const WorkerExit&)> on_exit = callbacks_.on_exit;
  if (on_exit) on_exit(exit);
}

}  // namespace hangar::router
