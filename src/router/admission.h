#pragma once
// Admission: the scheduler's decision for one model that wants to run (design §3 step 5), as one
// pure function of the state and the request. Generic over resources: the count limit
// (--models-max) is one, each device's memory (budget = free at start − margin) is another. No
// processes, clocks or locks: the scheduler calls it inside its critical section and carries out
// the decision; tests drive it with tables and random sequences.
//
// Thread-safety: pure functions over values.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hangar::router {

// One device's budget. nullopt = no memory check on it (--models-memory-margin 0).
struct DeviceLimit {
  std::string name;  // "CPU", "CUDA0"
  std::optional<uint64_t> budget;
};

// A model as admission sees it. `holds` is indexed like AdmissionState::devices.
struct AdmissionModel {
  std::string id;
  enum class Phase {
    kIdle,       // no process, not waiting
    kWaiting,    // waiting for room (holds nothing)
    kLoading,    // process starting: holds its reservation
    kLoaded,     // serving: holds its reservation
    kUnloading,  // draining or exiting: holds until its process is gone
  } phase = Phase::kIdle;
  std::vector<uint64_t> holds;  // bytes per device (loading/loaded/unloading)
  bool pinned = false;
  bool busy = false;       // requests in flight
  std::string claimed_by;  // unloading victim: the model it makes room for ("" = none)
  uint64_t last_used = 0;  // larger = more recent (any monotonic order)
};

struct AdmissionState {
  std::vector<DeviceLimit> devices;
  int models_max = 0;  // 0 = no count limit
  std::vector<AdmissionModel> models;
};

struct AdmissionRequest {
  std::string id;
  std::vector<uint64_t> need;  // bytes per device, indexed like AdmissionState::devices
};

struct AdmissionDecision {
  enum class Kind {
    kAdmit,      // fits now: reserve `need` and spawn
    kEvict,      // unload `victims` (claimed by the request), then admit
    kWait,       // room comes when models finish requests or exit: wait, evict nothing
    kNeverFits,  // cannot fit even with every unpinned model gone: fail now, evict nothing
  } kind = Kind::kWait;
  std::vector<std::string> victims;  // kEvict, least recently used first
  std::string reason;                // kWait, kNeverFits; also the arithmetic for kEvict
};

// Decides for `request` (whose own entry in state.models, if any, is ignored):
//  1. never fits: need > budget on some device, or need plus what pinned models hold on it
//     exceeds the budget, or pinned processes fill --models-max;
//  2. admit: reserved + need <= budget on every device with a budget, and processes < max;
//  3. wait: the room comes once unloading models that are unclaimed or claimed by this request
//     exit;
//  4. evict: otherwise victims, least recently used first among loaded, idle (not busy),
//     unpinned, unclaimed models holding memory on a device that is short (for the count: any),
//     stopping as soon as the rest fits;
//  5. wait: no such set exists now (the candidates are busy).
AdmissionDecision decide_admission(const AdmissionState& state, const AdmissionRequest& request);

// The debug invariant (design §3): reserved <= budget on every device with a budget, and
// processes <= models_max. "" when it holds, else the arithmetic that fails.
std::string admission_invariant_violation(const AdmissionState& state);

// Bytes as MiB for messages ("1536 MiB").
std::string mib(uint64_t bytes);

}  // namespace hangar::router
