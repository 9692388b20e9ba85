// Host RAM and a process's resident share of it, read from /proc and the cgroup filesystem.

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "devices/devices.h"
#include "devices/text_file.h"

namespace hangar::devices {
namespace {

constexpr size_t kMaxProcFileBytes = 1 << 20;  // meminfo is ~1.5 KiB, smaps_rollup ~1 KiB
constexpr size_t kMaxCgroupFileBytes = 64 << 10;
constexpr size_t kMaxCgroupDepth = 64;  // deeper than any real hierarchy

// The value of "Key:   12345 kB" in a /proc file, in bytes. NotFound when the key is absent.
StatusOr<uint64_t> read_kb_field(std::string_view text, std::string_view key,
                                 const std::string& path) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.size() <= key.size() || line.substr(0, key.size()) != key || line[key.size()] != ':') {
      continue;
    }
    std::string_view value = trim(line.substr(key.size() + 1));
    if (value.size() >= 2 && value.substr(value.size() - 2) == "kB") {
      value.remove_suffix(2);
    } else {
      return invalid_argument_error("'" + path + "': " + std::string(key) + " is not in kB: '" +
                                    std::string(line) + "'");
    }
    auto kb = parse_u64(value);
    auto bytes = kb ? checked_mul(*kb, 1024) : std::nullopt;
    if (!bytes) {
      return invalid_argument_error("'" + path + "': " + std::string(key) +
                                    " is not a number of kB: '" + std::string(line) + "'");
    }
    return *bytes;
  }
  return not_found_error("'" + path + "' has no " + std::string(key) + " line");
}

// A cgroup limit and what is left under it, the tightest of a cgroup and its parents.
struct CgroupCap {
  uint64_t limit = UINT64_MAX;
  uint64_t left = UINT64_MAX;
};

// The hierarchy's paths from /proc/self/cgroup: the v2 one ("0::/path") and the v1 memory
// controller's ("4:memory:/path"). Empty when there is none.
struct CgroupPaths {
  std::string v2;
  std::string v1_memory;
  bool has_v2 = false;
  bool has_v1_memory = false;
};

CgroupPaths parse_self_cgroup(std::string_view text) {
  CgroupPaths paths;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    // "hierarchy-id:controller-list:path"; the path itself may contain ':'.
    size_t c1 = line.find(':');
    if (c1 == std::string_view::npos) continue;
    size_t c2 = line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    std::string_view id = line.substr(0, c1);
    std::string_view controllers = line.substr(c1 + 1, c2 - c1 - 1);
    std::string_view path = line.substr(c2 + 1);
    if (id == "0" && controllers.empty()) {
      paths.v2 = std::string(path);
      paths.has_v2 = true;
      continue;
    }
    size_t start = 0;
    while (start <= controllers.size()) {
      size_t comma = controllers.find(',', start);
      if (comma == std::string_view::npos) comma = controllers.size();
      if (controllers.substr(start, comma - start) == "memory") {
        paths.v1_memory = std::string(path);
        paths.has_v1_memory = true;
      }
      start = comma + 1;
    }
  }
  return paths;
}

// The cgroup's directory and its parents up to `root`, innermost first. A path that climbs
// ("/../x", seen when the cgroup namespace does not match the mount) cannot be placed under
// `root`, so only `root` itself is returned: inside a container it is the container's cgroup.
std::vector<std::string> cgroup_dirs(const std::string& root, std::string_view path) {
  std::vector<std::string> parts;
  bool climbs = false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view part = path.substr(start, slash - start);
    start = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") climbs = true;
    parts.emplace_back(part);
  }
  if (climbs || parts.size() > kMaxCgroupDepth) parts.clear();
  std::vector<std::string> dirs;
  for (size_t n = parts.size() + 1; n-- > 0;) {
    std::string dir = root;
    for (size_t i = 0; i < n; ++i) dir += "/" + parts[i];
    dirs.push_back(std::move(dir));
  }
  return dirs;
}

// Tightens *cap with the limit of each directory in `dirs` that has `limit_file`. The "max"
// value (v2) means no limit at that level; a missing file means the memory controller is not
// enabled there.
Status apply_cgroup_limits(const std::vector<std::string>& dirs, std::string_view limit_file,
                           std::string_view usage_file, CgroupCap* cap) {
  for (const std::string& dir : dirs) {
    std::string limit_path = dir + "/" + std::string(limit_file);
    auto limit_text = read_text_file(limit_path, kMaxCgroupFileBytes);
    if (!limit_text.ok()) {
      if (limit_text.status().code() == StatusCode::kNotFound) continue;
      return limit_text.status();
    }
    if (trim(*limit_text) == "max") continue;
    auto limit = parse_u64(*limit_text);
    if (!limit) {
      return invalid_argument_error("'" + limit_path + "' is not a number or \"max\": '" +
                                    std::string(trim(*limit_text)) + "'");
    }
    std::string usage_path = dir + "/" + std::string(usage_file);
    HANGAR_ASSIGN_OR_RETURN(std::string usage_text,
                            read_text_file(usage_path, kMaxCgroupFileBytes));
    auto usage = parse_u64(usage_text);
    if (!usage) {
      return invalid_argument_error("'" + usage_path + "' is not a number: '" +
                                    std::string(trim(usage_text)) + "'");
    }
    uint64_t left = *usage >= *limit ? 0 : *limit - *usage;
    cap->limit = std::min(cap->limit, *limit);
    cap->left = std::min(cap->left, left);
  }
  return ok_status();
}

StatusOr<CgroupCap> read_cgroup_cap(const InventoryOptions& o) {
  CgroupCap cap;
  auto self = read_text_file(o.proc_root + "/self/cgroup", kMaxCgroupFileBytes);
  if (!self.ok()) return cap;  // no cgroups (or not mounted in this /proc): nothing caps RAM
  CgroupPaths paths = parse_self_cgroup(*self);
  if (paths.has_v2) {
    HANGAR_RETURN_IF_ERROR(apply_cgroup_limits(cgroup_dirs(o.cgroup_root, paths.v2), "memory.max",
                                               "memory.current", &cap));
  }
  if (paths.has_v1_memory) {
    HANGAR_RETURN_IF_ERROR(
        apply_cgroup_limits(cgroup_dirs(o.cgroup_root + "/memory", paths.v1_memory),
                            "memory.limit_in_bytes", "memory.usage_in_bytes", &cap));
  }
  return cap;
}

}  // namespace

StatusOr<Device> read_host_memory(const InventoryOptions& o) {
  const std::string meminfo_path = o.proc_root + "/meminfo";
  HANGAR_ASSIGN_OR_RETURN(std::string meminfo, read_text_file(meminfo_path, kMaxProcFileBytes));
  HANGAR_ASSIGN_OR_RETURN(uint64_t mem_total, read_kb_field(meminfo, "MemTotal", meminfo_path));
  HANGAR_ASSIGN_OR_RETURN(uint64_t mem_available,
                          read_kb_field(meminfo, "MemAvailable", meminfo_path));
  auto cap = read_cgroup_cap(o);
  if (!cap.ok()) return cap.status().with_context("host memory: cgroup limit");

  Device cpu;
  cpu.name = "CPU";
  cpu.type = DeviceType::kCpu;
  cpu.total = std::min(mem_total, cap->limit);
  cpu.free = std::min({mem_available, cap->left, cpu.total});
  bool capped = cap->limit < mem_total || cap->left < mem_available;
  cpu.description = capped ? "host RAM (cgroup limit)" : "host RAM";
  return cpu;
}

StatusOr<uint64_t> process_pss(int pid, const std::string& proc_root) {
  if (pid <= 0) return invalid_argument_error("process_pss: pid " + std::to_string(pid));
  const std::string path = proc_root + "/" + std::to_string(pid) + "/smaps_rollup";
  HANGAR_ASSIGN_OR_RETURN(std::string text, read_text_file(path, kMaxProcFileBytes));
  return read_kb_field(text, "Pss", path);
}

}  // namespace hangar::devices
