#pragma once
// The devices hangar places models on and how much memory each has (design §4): host RAM as
// "CPU" (MemAvailable capped by the process's cgroup limit), every GPU NVML reports as
// "CUDA0".."CUDAn", or a JSON devices file that replaces both for tests and what-if planning.
// Also the per-process readings the router uses to measure a worker's footprint: GPU memory per
// pid through NVML, host memory as Pss from /proc/PID/smaps_rollup.
//
// src/devices is the only code that opens NVML (dlopen, never linked), and it never creates a
// CUDA context: a context costs 100–550 MiB of VRAM per GPU for the life of the process.
//
// Thread-safety: every function here may be called from any thread at any time. The file
// readers are stateless; NVML is opened once per process (on first use) and every NVML call is
// serialised by one mutex inside src/devices. Calls may block on file or driver I/O for a few
// milliseconds: keep them off io threads.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace hangar::devices {

enum class DeviceType { kCpu, kGpu };

// "cpu" / "gpu".
std::string_view device_type_name(DeviceType t);

struct Device {
  std::string name;  // "CPU", "CUDA0", "CUDA1", ...
  DeviceType type = DeviceType::kCpu;
  uint64_t total = 0;       // bytes
  uint64_t free = 0;        // bytes available now (at the reading); free <= total
  std::string description;  // "NVIDIA H200", "host RAM (cgroup limit)", ...
  int nvml_index = -1;      // GPUs read through NVML; -1 for the CPU and devices-file entries
};

struct InventoryOptions {
  std::string devices_file;  // non-empty: read only this JSON file (design §4 shape), nothing else
  std::string proc_root = "/proc";  // tests point these at fake trees
  std::string cgroup_root = "/sys/fs/cgroup";
  bool use_nvml = true;
};

// Host RAM: MemAvailable (and MemTotal) from <proc_root>/meminfo, capped by the cgroup v2 limit:
// the process's cgroup path from <proc_root>/self/cgroup ("0::/some/path"), then
// <cgroup_root>/<path>/memory.max ("max" = no limit) minus memory.current; free =
// min(MemAvailable, max - current), total = min(MemTotal, max). Parent cgroups are walked up to
// <cgroup_root> itself (the tightest limit wins), which also covers a container whose cgroup
// namespace shows "/" while its own cgroup is mounted at <cgroup_root>.
// On a cgroup v1 host (a "N:memory:/path" line, <cgroup_root>/memory/<path>) the same cap is
// taken from memory.limit_in_bytes and memory.usage_in_bytes.
StatusOr<Device> read_host_memory(const InventoryOptions& o);

// The devices file:
//   {"devices":[{"name":"CPU","type":"cpu","total_mib":24576,"free_mib":20480}, ...]}
// with an optional "description" string per device; other keys are ignored. Errors
// (InvalidArgument, NotFound when the file is missing) name the file, the device and what is
// wrong: not JSON, missing or mistyped field, free > total, duplicate name, negative, too large.
StatusOr<std::vector<Device>> read_devices_file(const std::string& path);

// The inventory: the devices file if set; else host RAM ("CPU") plus every NVML GPU as
// "CUDA<nvml index>". NVML absent or failing means CPU only, and *note (when not null) says why,
// for the router to log once; that is never an error. A GPU NVML lists but cannot read is left
// out and named in *note. *note is cleared when there is nothing to say.
StatusOr<std::vector<Device>> take_inventory(const InventoryOptions& o, std::string* note);

// Re-reads the free memory (and total, which a cgroup limit can change) of the given devices from
// the same sources. Devices from a devices file are left unchanged. An error (the device named)
// leaves the devices that were read before it updated and the rest unchanged.
Status refresh_free(const InventoryOptions& o, std::vector<Device>* devices);

// GPU memory used per process on each NVML GPU: device name -> (pid -> bytes), compute
// processes only. A GPU with no processes maps to an empty map. Empty without NVML.
std::map<std::string, std::map<int, uint64_t>> gpu_process_memory();
// The same, but empty without touching NVML when `o` says not to use it (a devices file is set,
// or use_nvml is false).
std::map<std::string, std::map<int, uint64_t>> gpu_process_memory(const InventoryOptions& o);

// Host memory a process holds: Pss from <proc_root>/PID/smaps_rollup, in bytes. An error when
// the file cannot be read (the process is gone, or belongs to another user) or has no Pss line.
StatusOr<uint64_t> process_pss(int pid, const std::string& proc_root = "/proc");

}  // namespace hangar::devices
