// The inventory (design §4): host RAM plus NVML's GPUs, or the devices file instead.

#include <string>
#include <vector>

#include "devices/devices.h"
#include "devices/nvml.h"

namespace hangar::devices {
namespace {

std::string gpu_name(int nvml_index) { return "CUDA" + std::to_string(nvml_index); }

void append_note(std::string* note, const std::string& line) {
  if (!note) return;
  if (!note->empty()) *note += "; ";
  *note += line;
}

// Every GPU NVML lists, in NVML's index order. A GPU that cannot be read is left out and noted.
std::vector<Device> read_gpus(Nvml* nvml, std::string* note) {
  std::vector<Device> gpus;
  for (int i = 0; i < nvml->device_count(); ++i) {
    auto memory = nvml->memory(i);
    if (!memory.ok()) {
      append_note(note, gpu_name(i) + " left out: " + memory.status().message());
      continue;
    }
    Device d;
    d.name = gpu_name(i);
    d.type = DeviceType::kGpu;
    d.total = memory->total;
    d.free = memory->free;
    d.nvml_index = i;
    auto name = nvml->name(i);
    d.description = name.ok() ? *name : "NVIDIA GPU (name unreadable)";
    gpus.push_back(std::move(d));
  }
  return gpus;
}

}  // namespace

std::string_view device_type_name(DeviceType t) {
  switch (t) {
    case DeviceType::kCpu:
      return "cpu";
    case DeviceType::kGpu:
      return "gpu";
  }
  return "unknown";
}

StatusOr<std::vector<Device>> take_inventory(const InventoryOptions& o, std::string* note) {
  if (note) note->clear();
  if (!o.devices_file.empty()) return read_devices_file(o.devices_file);

  std::vector<Device> devices;
  HANGAR_ASSIGN_OR_RETURN(Device cpu, read_host_memory(o));
  devices.push_back(std::move(cpu));
  if (!o.use_nvml) {
    append_note(note, "NVML not used: GPUs are not counted");
    return devices;
  }
  auto nvml = Nvml::get();
  if (!nvml.ok()) {
    append_note(note, "no GPUs: " + nvml.status().message());
    return devices;
  }
  for (Device& gpu : read_gpus(*nvml, note)) devices.push_back(std::move(gpu));
  if ((*nvml)->device_count() == 0) append_note(note, "NVML lists no GPUs");
  return devices;
}

Status refresh_free(const InventoryOptions& o, std::vector<Device>* devices) {
  if (!o.devices_file.empty()) return ok_status();  // a fixed inventory: nothing to re-read
  for (Device& d : *devices) {
    if (d.type == DeviceType::kCpu) {
      auto host = read_host_memory(o);
      if (!host.ok()) return host.status().with_context("refreshing " + d.name);
      d.total = host->total;
      d.free = host->free;
      continue;
    }
    if (d.nvml_index < 0) {
      return invalid_argument_error("refreshing " + d.name +
                                    ": a GPU that NVML did not list (no NVML index)");
    }
    if (!o.use_nvml) {
      return failed_precondition_error("refreshing " + d.name + ": NVML is not used");
    }
    HANGAR_ASSIGN_OR_RETURN(Nvml * nvml, Nvml::get());
    auto memory = nvml->memory(d.nvml_index);
    if (!memory.ok()) return memory.status().with_context("refreshing " + d.name);
    d.total = memory->total;
    d.free = memory->free;
  }
  return ok_status();
}

std::map<std::string, std::map<int, uint64_t>> gpu_process_memory() {
  std::map<std::string, std::map<int, uint64_t>> out;
  auto nvml = Nvml::get();
  if (!nvml.ok()) return out;
  for (int i = 0; i < (*nvml)->device_count(); ++i) {
    auto processes = (*nvml)->compute_processes(i);
    if (!processes.ok()) continue;  // an unreadable GPU is absent, as in the inventory
    auto& per_pid = out[gpu_name(i)];
    for (const Nvml::ProcessUse& p : *processes) per_pid[p.pid] = p.bytes;
  }
  return out;
}

std::map<std::string, std::map<int, uint64_t>> gpu_process_memory(const InventoryOptions& o) {
  if (!o.devices_file.empty() || !o.use_nvml) return {};
  return gpu_process_memory();
}

}  // namespace hangar::devices
