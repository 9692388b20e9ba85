#pragma once
// Process signal set-up shared by the long-running commands (`hangar serve`, `hangar run`).
//
// Thread-safety: call from the main thread before any other thread starts; threads created
// later inherit the mask.

#include <signal.h>

namespace hangar {

// Blocks SIGINT and SIGTERM in the calling thread (to be taken with sigwait() or a signalfd)
// and ignores SIGPIPE (a peer that goes away is seen as a write error instead). Returns the
// blocked set.
sigset_t block_stop_signals();

}  // namespace hangar
