#pragma once
// run_worker: the life of a `hangar run` process (design §6).
//
// Binds the port first (port 0: the kernel picks), or the Unix socket of --listen unix:PATH,
// reports {"event":"listening","port":P} (or "unix":PATH) on the control fd, loads the model on a loader thread while /health answers 503 (reporting
// {"event":"loading","progress":x}), then {"event":"ready","model":{…},"memory":{…}}, or
// {"event":"error","message":…} and exit 1. SIGTERM/SIGINT, EOF on the control fd, or the
// parent's death (PR_SET_PDEATHSIG → SIGTERM) stop accepting, let in-flight requests finish for
// up to --drain-timeout, and exit 0. Logs go to stderr only; the control fd carries only events.
//
// Thread-safety: call once, from main, before any other thread exists (it blocks signals).

#include <string>

#include "worker/worker_server.h"

namespace hangar::worker {

struct RunOptions {
  WorkerOptions worker;
  std::string host = "127.0.0.1";
  int port = 0;
  // "unix:PATH": listen on that Unix socket instead of host:port (the router's workers).
  std::string listen;
  int control_fd = -1;  // -1: no control channel
  double drain_timeout_s = 30.0;
  int http_threads = 2;
};

// Returns the process exit code.
int run_worker(const RunOptions& options);

}  // namespace hangar::worker
