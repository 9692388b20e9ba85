#pragma once
// Private to src/devices: the process's one NVML session, opened with dlopen (no link-time
// dependency, no nvml.h: Debian has no package for it) and used only through the handful of
// entry points declared in nvml.cc. NVML never creates a CUDA context.
//
// The library is the one named by $HANGAR_NVML_LIBRARY when set (tests point it at
// tests/fake_nvml), else "libnvidia-ml.so.1". It is opened and initialised on the first call of
// Nvml::get() and kept for the life of the process; the outcome, success or the error, is
// remembered, so a later change of $HANGAR_NVML_LIBRARY has no effect.
//
// Thread-safety: Nvml::get() is safe from any thread (a function-local static). Every method
// takes the session's mutex around its NVML calls, so NVML is never entered concurrently.

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"

namespace hangar::devices {

struct NvmlFunctions;  // the resolved entry points, defined in nvml.cc

class Nvml {
 public:
  struct Memory {
    uint64_t total = 0;  // bytes
    uint64_t free = 0;   // bytes
  };
  struct ProcessUse {
    int pid = 0;
    uint64_t bytes = 0;
  };

  // The process's NVML session, or Unavailable saying why there is none (library missing, a
  // symbol missing, nvmlInit failed). The same answer every time.
  static StatusOr<Nvml*> get();

  // GPUs NVML saw at initialisation; indices are 0..device_count()-1.
  int device_count() const { return count_; }

  // "NVIDIA H200".
  StatusOr<std::string> name(int index);
  StatusOr<Memory> memory(int index);
  // Compute processes on GPU `index` with the memory each uses. A process whose use NVML cannot
  // report (no permission, some virtualised setups) is left out; one listed several times (MIG
  // instances) is summed.
  StatusOr<std::vector<ProcessUse>> compute_processes(int index);

  Nvml(const Nvml&) = delete;
  Nvml& operator=(const Nvml&) = delete;

 private:
  Nvml(const NvmlFunctions* fn, int count) : fn_(fn), count_(count) {}
  static StatusOr<Nvml*> open();

  const NvmlFunctions* const fn_;  // never null; immutable after open()
  const int count_;
  std::mutex mu_;  // serialises every NVML call
};

}  // namespace hangar::devices
