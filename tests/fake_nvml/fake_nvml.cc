// A stand-in for libnvidia-ml.so.1 in hangar's tests (clarifications.md, "The memory issue"):
// exports only the NVML entry points src/devices resolves with dlsym, and answers them from a
// text file the test controls, named by $HANGAR_FAKE_NVML_FILE and re-read on every call (so a
// test can change the GPUs' memory between two readings). One statement per line, '#' comments:
//
//   gpu NAME TOTAL_MIB FREE_MIB       a GPU; NAME may contain spaces ("gpu NVIDIA H200 143771
//   1000") proc GPU_INDEX PID USED_MIB       a compute process on GPU GPU_INDEX; USED_MIB "-" =
//   unknown fail FUNCTION [GPU_INDEX]         FUNCTION (init, count, handle, name, memory,
//   processes)
//                                     returns NVML_ERROR_UNKNOWN, for every GPU or just one
//
// GPUs are numbered in file order from 0. nvmlInit_v2 fails with NVML_ERROR_DRIVER_NOT_LOADED when
// the variable is unset or the file unreadable or malformed, as the real library does without a
// driver. The ABI (types, struct layouts, codes) is NVML's own; nothing here includes nvml.h.
//
// Thread-safety: every call may come from any thread; the init count is atomic and each call
// reads the file afresh.

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using nvmlReturn_t = int;
constexpr nvmlReturn_t NVML_SUCCESS = 0;
constexpr nvmlReturn_t NVML_ERROR_UNINITIALIZED = 1;
constexpr nvmlReturn_t NVML_ERROR_INVALID_ARGUMENT = 2;
constexpr nvmlReturn_t NVML_ERROR_INSUFFICIENT_SIZE = 7;
constexpr nvmlReturn_t NVML_ERROR_DRIVER_NOT_LOADED = 9;
constexpr nvmlReturn_t NVML_ERROR_GPU_IS_LOST = 15;
constexpr nvmlReturn_t NVML_ERROR_UNKNOWN = 999;
constexpr unsigned long long kMiB = 1ULL << 20;

struct Gpu {
  std::string name;
  unsigned long long total_mib = 0;
  unsigned long long free_mib = 0;
};
struct Proc {
  unsigned int gpu = 0;
  unsigned int pid = 0;
  bool known = true;
  unsigned long long used_mib = 0;
};
struct Failure {
  std::string function;
  long gpu = -1;  // -1: every GPU
};
struct State {
  std::vector<Gpu> gpus;
  std::vector<Proc> procs;
  std::vector<Failure> failures;

  bool fails(const char* function, long gpu = -1) const {
    for (const Failure& f : failures) {
      if (f.function == function && (f.gpu < 0 || f.gpu == gpu)) return true;
    }
    return false;
  }
};

bool parse_number(const std::string& s, unsigned long long* out) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return false;
  char* end = nullptr;
  *out = std::strtoull(s.c_str(), &end, 10);
  return *end == '\0';
}

// The file's state, or false when it is missing or malformed.
bool read_state(State* state) {
  const char* path = std::getenv("HANGAR_FAKE_NVML_FILE");
  if (!path) return false;
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    if (size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string s; words >> s;) w.push_back(s);
    if (w.empty()) continue;
    if (w[0] == "gpu" && w.size() >= 4) {
      Gpu g;
      if (!parse_number(w[w.size() - 2], &g.total_mib)) return false;
      if (!parse_number(w[w.size() - 1], &g.free_mib)) return false;
      for (size_t i = 1; i + 2 < w.size(); ++i) g.name += (i > 1 ? " " : "") + w[i];
      state->gpus.push_back(g);
    } else if (w[0] == "proc" && w.size() == 4) {
      Proc p;
      unsigned long long gpu = 0, pid = 0;
      if (!parse_number(w[1], &gpu) || !parse_number(w[2], &pid)) return false;
      p.gpu = static_cast<unsigned int>(gpu);
      p.pid = static_cast<unsigned int>(pid);
      if (w[3] == "-") {
        p.known = false;
      } else if (!parse_number(w[3], &p.used_mib)) {
        return false;
      }
      state->procs.push_back(p);
    } else if (w[0] == "fail" && (w.size() == 2 || w.size() == 3)) {
      Failure f;
      f.function = w[1];
      unsigned long long gpu = 0;
      if (w.size() == 3) {
        if (!parse_number(w[2], &gpu)) return false;
        f.gpu = static_cast<long>(gpu);
      }
      state->failures.push_back(f);
    } else {
      return false;
    }
  }
  return true;
}

std::atomic<int> g_init_count{0};

// Reads the file for a call on an initialised library; on failure *rc is the code to return.
bool begin(State* state, nvmlReturn_t* rc) {
  if (g_init_count.load() <= 0) {
    *rc = NVML_ERROR_UNINITIALIZED;
    return false;
  }
  if (!read_state(state)) {
    *rc = NVML_ERROR_UNKNOWN;
    return false;
  }
  return true;
}

// The GPU index a handle stands for (handles are index + 1, never null), or -1.
long gpu_of(const void* handle, const State& state) {
  auto v = reinterpret_cast<uintptr_t>(handle);
  if (v == 0 || v > state.gpus.size()) return -1;
  return static_cast<long>(v - 1);
}

}  // namespace

// NVML's public types, as far as these functions need them.
typedef struct nvmlDevice_st* nvmlDevice_t;
struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
struct nvmlProcessInfo_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};

#define FAKE_NVML_EXPORT extern "C" __attribute__((visibility("default")))

FAKE_NVML_EXPORT nvmlReturn_t nvmlInit_v2() {
  State state;
  if (!read_state(&state)) return NVML_ERROR_DRIVER_NOT_LOADED;
  if (state.fails("init")) return NVML_ERROR_UNKNOWN;
  g_init_count.fetch_add(1);
  return NVML_SUCCESS;
}

FAKE_NVML_EXPORT nvmlReturn_t nvmlShutdown() {
  int n = g_init_count.load();
  while (n > 0 && !g_init_count.compare_exchange_weak(n, n - 1)) {
  }
  return n > 0 ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
}

FAKE_NVML_EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* count) {
  State state;
  nvmlReturn_t rc = NVML_SUCCESS;
  if (!begin(&state, &rc)) return rc;
  if (!count) return NVML_ERROR_INVALID_ARGUMENT;
  if (state.fails("count")) return NVML_ERROR_UNKNOWN;
  *count = static_cast<unsigned int>(state.gpus.size());
  return NVML_SUCCESS;
}

FAKE_NVML_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index,
                                                            nvmlDevice_t* device) {
  State state;
  nvmlReturn_t rc = NVML_SUCCESS;
  if (!begin(&state, &rc)) return rc;
  if (!device || index >= state.gpus.size()) return NVML_ERROR_INVALID_ARGUMENT;
  if (state.fails("handle", index)) return NVML_ERROR_UNKNOWN;
  *device = reinterpret_cast<nvmlDevice_t>(static_cast<uintptr_t>(index) + 1);
  return NVML_SUCCESS;
}

FAKE_NVML_EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char* name,
                                                unsigned int length) {
  State state;
  nvmlReturn_t rc = NVML_SUCCESS;
  if (!begin(&state, &rc)) return rc;
  long gpu = gpu_of(device, state);
  if (gpu < 0) return NVML_ERROR_GPU_IS_LOST;
  if (!name) return NVML_ERROR_INVALID_ARGUMENT;
  if (state.fails("name", gpu)) return NVML_ERROR_UNKNOWN;
  const std::string& n = state.gpus[gpu].name;
  if (n.size() + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
  std::memcpy(name, n.c_str(), n.size() + 1);
  return NVML_SUCCESS;
}

FAKE_NVML_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory) {
  State state;
  nvmlReturn_t rc = NVML_SUCCESS;
  if (!begin(&state, &rc)) return rc;
  long gpu = gpu_of(device, state);
  if (gpu < 0) return NVML_ERROR_GPU_IS_LOST;
  if (!memory) return NVML_ERROR_INVALID_ARGUMENT;
  if (state.fails("memory", gpu)) return NVML_ERROR_UNKNOWN;
  const Gpu& g = state.gpus[gpu];
  memory->total = g.total_mib * kMiB;
  memory->free = g.free_mib * kMiB;
  memory->used = g.total_mib >= g.free_mib ? (g.total_mib - g.free_mib) * kMiB : 0;
  return NVML_SUCCESS;
}

FAKE_NVML_EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device,
                                                                      unsigned int* count,
                                                                      nvmlProcessInfo_t* infos) {
  State state;
  nvmlReturn_t rc = NVML_SUCCESS;
  if (!begin(&state, &rc)) return rc;
  long gpu = gpu_of(device, state);
  if (gpu < 0) return NVML_ERROR_GPU_IS_LOST;
  if (!count) return NVML_ERROR_INVALID_ARGUMENT;
  if (state.fails("processes", gpu)) return NVML_ERROR_UNKNOWN;
  std::vector<nvmlProcessInfo_t> mine;
  for (const Proc& p : state.procs) {
    if (p.gpu != static_cast<unsigned long>(gpu)) continue;
    mine.push_back({p.pid, p.known ? p.used_mib * kMiB : ~0ULL, 0xFFFFFFFFu, 0xFFFFFFFFu});
  }
  // As NVML: a short buffer gets the needed size back and no entries.
  if (*count < mine.size()) {
    *count = static_cast<unsigned int>(mine.size());
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  if (!mine.empty() && !infos) return NVML_ERROR_INVALID_ARGUMENT;
  for (size_t i = 0; i < mine.size(); ++i) infos[i] = mine[i];
  *count = static_cast<unsigned int>(mine.size());
  return NVML_SUCCESS;
}
