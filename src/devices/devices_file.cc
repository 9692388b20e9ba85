// The devices file (design §4): a fixed inventory for tests and what-if planning.

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "common/json_limits.h"
#include "devices/devices.h"
#include "devices/text_file.h"

namespace hangar::devices {
namespace {

constexpr size_t kMaxDevicesFileBytes = 1 << 20;
constexpr size_t kMaxDevices = 1024;
constexpr uint64_t kMiB = uint64_t{1} << 20;
// The largest MiB count whose byte count fits in 64 bits.
constexpr uint64_t kMaxMiB = UINT64_MAX / kMiB;

// A whole, non-negative MiB count from device field `key`, in bytes.
StatusOr<uint64_t> read_mib(const nlohmann::json& device, const char* key,
                            const std::string& where) {
  auto it = device.find(key);
  if (it == device.end()) return invalid_argument_error(where + ": missing \"" + key + "\"");
  if (it->is_number_unsigned()) {
    uint64_t mib = it->get<uint64_t>();
    if (mib > kMaxMiB) {
      return invalid_argument_error(where + ": \"" + key + "\" " + std::to_string(mib) +
                                    " is too large (at most " + std::to_string(kMaxMiB) + ")");
    }
    return mib * kMiB;
  }
  if (it->is_number_integer()) {  // signed, and not unsigned: below zero
    return invalid_argument_error(where + ": \"" + key + "\" " + it->dump() + " is negative");
  }
  if (it->is_number_float()) {
    double v = it->get<double>();
    if (v < 0) {
      return invalid_argument_error(where + ": \"" + key + "\" " + it->dump() + " is negative");
    }
    if (v >= static_cast<double>(kMaxMiB)) {
      return invalid_argument_error(where + ": \"" + key + "\" " + it->dump() +
                                    " is too large (at most " + std::to_string(kMaxMiB) + ")");
    }
    return invalid_argument_error(where + ": \"" + key + "\" " + it->dump() +
                                  " is not a whole number of MiB");
  }
  return invalid_argument_error(where + ": \"" + key + "\" must be a number of MiB, not " +
                                it->dump());
}

StatusOr<Device> read_device(const nlohmann::json& j, size_t index, const std::string& file) {
  std::string where = file + ": devices[" + std::to_string(index) + "]";
  if (!j.is_object()) return invalid_argument_error(where + " is not an object");
  auto name = j.find("name");
  if (name == j.end()) return invalid_argument_error(where + ": missing \"name\"");
  if (!name->is_string() || name->get_ref<const std::string&>().empty()) {
    return invalid_argument_error(where + ": \"name\" must be a non-empty string, not " +
                                  name->dump());
  }
  Device d;
  d.name = name->get<std::string>();
  where += " (" + d.name + ")";

  auto type = j.find("type");
  if (type == j.end()) return invalid_argument_error(where + ": missing \"type\"");
  if (type->is_string() && type->get_ref<const std::string&>() == "cpu") {
    d.type = DeviceType::kCpu;
  } else if (type->is_string() && type->get_ref<const std::string&>() == "gpu") {
    d.type = DeviceType::kGpu;
  } else {
    return invalid_argument_error(where + ": \"type\" must be \"cpu\" or \"gpu\", not " +
                                  type->dump());
  }

  HANGAR_ASSIGN_OR_RETURN(d.total, read_mib(j, "total_mib", where));
  HANGAR_ASSIGN_OR_RETURN(d.free, read_mib(j, "free_mib", where));
  if (d.free > d.total) {
    return invalid_argument_error(where + ": free_mib " + std::to_string(d.free / kMiB) +
                                  " is more than total_mib " + std::to_string(d.total / kMiB));
  }

  d.description = "from the devices file";
  if (auto desc = j.find("description"); desc != j.end()) {
    if (!desc->is_string()) {
      return invalid_argument_error(where + ": \"description\" must be a string, not " +
                                    desc->dump());
    }
    d.description = desc->get<std::string>();
  }
  return d;
}

}  // namespace

StatusOr<std::vector<Device>> read_devices_file(const std::string& path) {
  const std::string file = "devices file '" + path + "'";
  auto text = read_text_file(path, kMaxDevicesFileBytes);
  if (!text.ok()) return text.status().with_context(file);
  if (json_nesting_depth(*text) > kMaxJsonDepth) {  // before the parser recurses into it
    return invalid_argument_error(file + " nests arrays and objects more than " +
                                  std::to_string(kMaxJsonDepth) + " deep");
  }

  nlohmann::json root;
  try {
    root = nlohmann::json::parse(*text);
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument_error(file + " is not JSON: " + e.what());
  }
  if (!root.is_object()) return invalid_argument_error(file + ": the top level is not an object");
  auto list = root.find("devices");
  if (list == root.end()) return invalid_argument_error(file + ": missing \"devices\"");
  if (!list->is_array()) return invalid_argument_error(file + ": \"devices\" is not an array");
  if (list->empty()) return invalid_argument_error(file + ": \"devices\" is empty");
  if (list->size() > kMaxDevices) {
    return invalid_argument_error(file + ": " + std::to_string(list->size()) +
                                  " devices (at most " + std::to_string(kMaxDevices) + ")");
  }

  std::vector<Device> devices;
  std::set<std::string> names;
  for (size_t i = 0; i < list->size(); ++i) {
    HANGAR_ASSIGN_OR_RETURN(Device d, read_device((*list)[i], i, file));
    if (!names.insert(d.name).second) {
      return invalid_argument_error(file + ": devices[" + std::to_string(i) +
                                    "]: duplicate name '" + d.name + "'");
    }
    devices.push_back(std::move(d));
  }
  return devices;
}

}  // namespace hangar::devices
