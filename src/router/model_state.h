#pragma once
// The states a model moves through (design §2). Spellings follow llama.cpp's router
// (`status.value`); `waiting` and `unloading` are hangar's additions. Plain enum: thread-safe.

#include <string_view>

namespace hangar::router {

enum class ModelState {
  kUnloaded,     // known, no process
  kDownloading,  // files missing, download running (issue 6)
  kWaiting,      // admitted in principle; waiting for a victim to exit or for room
  kLoading,      // worker spawned, not ready
  kLoaded,       // ready, serving
  kSleeping,     // worker alive, weights freed (later issue)
  kUnloading,    // draining, then SIGTERM, then SIGKILL after stop-timeout
};

constexpr std::string_view model_state_name(ModelState s) {
  switch (s) {
    case ModelState::kUnloaded: return "unloaded";
    case ModelState::kDownloading: return "downloading";
    case ModelState::kWaiting: return "waiting";
    case ModelState::kLoading: return "loading";
    case ModelState::kLoaded: return "loaded";
    case ModelState::kSleeping: return "sleeping";
    case ModelState::kUnloading: return "unloading";
  }
  return "unknown";
}

}  // namespace hangar::router
