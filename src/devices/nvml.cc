#include "devices/nvml.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <utility>

namespace hangar::devices {
namespace nvml_abi {

// The NVML ABI we rely on, declared here because there is no nvml.h to include (design §9).
// Layouts are NVML's own (nvml.h of CUDA 11.x and 12.x); nvmlReturn_t is an int-sized enum.
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;

constexpr nvmlReturn_t NVML_SUCCESS = 0;
constexpr nvmlReturn_t NVML_ERROR_INSUFFICIENT_SIZE = 7;
// usedGpuMemory when NVML cannot tell (no permission, Windows WDDM, some vGPU setups).
constexpr unsigned long long NVML_VALUE_NOT_AVAILABLE = ~0ULL;
constexpr unsigned int NVML_DEVICE_NAME_V2_BUFFER_SIZE = 96;

struct nvmlMemory_t {  // bytes
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
// nvmlProcessInfo_v2_t, the element type of nvmlDeviceGetComputeRunningProcesses_v3.
struct nvmlProcessInfo_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;  // bytes
  unsigned int gpuInstanceId;        // MIG only, else 0xFFFFFFFF
  unsigned int computeInstanceId;
};
static_assert(sizeof(nvmlMemory_t) == 24);
static_assert(sizeof(nvmlProcessInfo_t) == 24);

}  // namespace nvml_abi
using namespace nvml_abi;  // NOLINT: the C names read best unqualified
namespace {

// More processes than this on one GPU is a broken library, not a machine.
constexpr unsigned int kMaxProcesses = 1 << 16;

std::string error_name(nvmlReturn_t rc) {
  static constexpr std::pair<nvmlReturn_t, const char*> kNames[] = {
      {1, "NVML_ERROR_UNINITIALIZED"},     {2, "NVML_ERROR_INVALID_ARGUMENT"},
      {3, "NVML_ERROR_NOT_SUPPORTED"},     {4, "NVML_ERROR_NO_PERMISSION"},
      {6, "NVML_ERROR_NOT_FOUND"},         {7, "NVML_ERROR_INSUFFICIENT_SIZE"},
      {9, "NVML_ERROR_DRIVER_NOT_LOADED"}, {12, "NVML_ERROR_LIBRARY_NOT_FOUND"},
      {15, "NVML_ERROR_GPU_IS_LOST"},      {18, "NVML_ERROR_LIB_RM_VERSION_MISMATCH"},
      {999, "NVML_ERROR_UNKNOWN"},
  };
  for (const auto& [code, name] : kNames) {
    if (code == rc) return std::string(name) + " (" + std::to_string(rc) + ")";
  }
  return "NVML error " + std::to_string(rc);
}

}  // namespace

struct NvmlFunctions {
  void* library = nullptr;
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  nvmlReturn_t (*get_count)(unsigned int*) = nullptr;
  nvmlReturn_t (*get_handle)(unsigned int, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*get_name)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*get_memory)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*get_processes)(nvmlDevice_t, unsigned int*, nvmlProcessInfo_t*) = nullptr;
};

namespace {

template <typename F>
bool resolve(void* library, const char* symbol, F* out) {
  void* p = dlsym(library, symbol);
  if (!p) return false;
  *out = reinterpret_cast<F>(p);
  return true;
}

// Calls `fn` with the device handle of GPU `index`; the caller holds the session's mutex.
template <typename Fn>
nvmlReturn_t with_handle(const NvmlFunctions* f, int index, Fn&& fn) {
  nvmlDevice_t dev = nullptr;
  nvmlReturn_t rc = f->get_handle(static_cast<unsigned int>(index), &dev);
  if (rc != NVML_SUCCESS) return rc;
  return fn(dev);
}

Status call_error(const char* what, int index, nvmlReturn_t rc) {
  return unavailable_error("NVML: " + std::string(what) + " of GPU " + std::to_string(index) +
                           " failed: " + error_name(rc));
}

}  // namespace

StatusOr<Nvml*> Nvml::open() {
  const char* env = std::getenv("HANGAR_NVML_LIBRARY");
  const std::string path = env && *env ? env : "libnvidia-ml.so.1";
  void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!library) {
    const char* why = dlerror();
    return unavailable_error("NVML: cannot open '" + path + "': " + (why ? why : "unknown"));
  }
  // Never freed: the session lives as long as the process (see nvml.h), and a static destructor
  // calling nvmlShutdown could race threads that still read devices at exit.
  auto* f = new NvmlFunctions;
  f->library = library;
  const char* missing = nullptr;  // the first entry point the library lacks
  auto need = [&](const char* symbol, auto* slot) {
    if (!missing && !resolve(library, symbol, slot)) missing = symbol;
  };
  need("nvmlInit_v2", &f->init);
  need("nvmlShutdown", &f->shutdown);
  need("nvmlDeviceGetCount_v2", &f->get_count);
  need("nvmlDeviceGetHandleByIndex_v2", &f->get_handle);
  need("nvmlDeviceGetName", &f->get_name);
  need("nvmlDeviceGetMemoryInfo", &f->get_memory);
  need("nvmlDeviceGetComputeRunningProcesses_v3", &f->get_processes);
  if (missing) {
    dlclose(library);
    delete f;
    return unavailable_error("NVML: '" + path + "' has no " + missing + " (an older driver?)");
  }
  nvmlReturn_t rc = f->init();
  if (rc != NVML_SUCCESS) {
    dlclose(library);
    delete f;
    return unavailable_error("NVML: nvmlInit_v2 failed: " + error_name(rc));
  }
  unsigned int count = 0;
  rc = f->get_count(&count);
  if (rc != NVML_SUCCESS || count > 4096) {
    f->shutdown();
    dlclose(library);
    delete f;
    return unavailable_error(
        "NVML: nvmlDeviceGetCount_v2 failed: " +
        (rc != NVML_SUCCESS ? error_name(rc) : std::to_string(count) + " GPUs"));
  }
  return new Nvml(f, static_cast<int>(count));
}

StatusOr<Nvml*> Nvml::get() {
  static const StatusOr<Nvml*> session = open();  // thread-safe, once per process
  return session;
}

StatusOr<std::string> Nvml::name(int index) {
  if (index < 0 || index >= count_) return call_error("name", index, 2);
  char buf[NVML_DEVICE_NAME_V2_BUFFER_SIZE] = {};
  std::lock_guard<std::mutex> lock(mu_);
  nvmlReturn_t rc = with_handle(
      fn_, index, [&](nvmlDevice_t dev) { return fn_->get_name(dev, buf, sizeof buf); });
  if (rc != NVML_SUCCESS) return call_error("nvmlDeviceGetName", index, rc);
  buf[sizeof buf - 1] = '\0';
  return std::string(buf);
}

StatusOr<Nvml::Memory> Nvml::memory(int index) {
  if (index < 0 || index >= count_) return call_error("memory", index, 2);
  nvmlMemory_t mem = {};
  std::lock_guard<std::mutex> lock(mu_);
  nvmlReturn_t rc =
      with_handle(fn_, index, [&](nvmlDevice_t dev) { return fn_->get_memory(dev, &mem); });
  if (rc != NVML_SUCCESS) return call_error("nvmlDeviceGetMemoryInfo", index, rc);
  return Memory{mem.total, std::min(mem.free, mem.total)};
}

StatusOr<std::vector<Nvml::ProcessUse>> Nvml::compute_processes(int index) {
  if (index < 0 || index >= count_) return call_error("processes", index, 2);
  // Processes come and go between the sizing call and the reading call, so a short buffer is
  // retried with room to spare, a few times.
  std::vector<nvmlProcessInfo_t> infos(16);
  unsigned int n = 0;
  nvmlReturn_t rc = NVML_ERROR_INSUFFICIENT_SIZE;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int attempt = 0; attempt < 5 && rc == NVML_ERROR_INSUFFICIENT_SIZE; ++attempt) {
      n = static_cast<unsigned int>(infos.size());
      rc = with_handle(fn_, index,
                       [&](nvmlDevice_t dev) { return fn_->get_processes(dev, &n, infos.data()); });
      if (rc == NVML_ERROR_INSUFFICIENT_SIZE) {
        if (n > kMaxProcesses) break;
        infos.resize(std::max<size_t>(n, infos.size()) + 16);
      }
    }
  }
  if (rc != NVML_SUCCESS) {
    return call_error("nvmlDeviceGetComputeRunningProcesses_v3", index, rc);
  }
  std::map<int, uint64_t> by_pid;
  for (size_t i = 0; i < std::min<size_t>(n, infos.size()); ++i) {
    if (infos[i].usedGpuMemory == NVML_VALUE_NOT_AVAILABLE) continue;
    by_pid[static_cast<int>(infos[i].pid)] += infos[i].usedGpuMemory;
  }
  std::vector<ProcessUse> out;
  out.reserve(by_pid.size());
  for (const auto& [pid, bytes] : by_pid) out.push_back({pid, bytes});
  return out;
}

}  // namespace hangar::devices
