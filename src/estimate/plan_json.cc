#include "estimate/plan_json.h"

#include <fmt/format.h>

namespace hangar::estimate {

nlohmann::json memory_plan_json(const MemoryPlan& plan) {
  nlohmann::json devices = nlohmann::json::object();
  for (const DevicePlan& d : plan.devices) {
    devices[d.device] = {{"weights", d.weights},
                         {"kv_cache", d.kv_cache},
                         {"compute", d.compute},
                         {"overhead", d.overhead},
                         {"total", d.total()}};
  }
  return {{"devices", std::move(devices)}};
}

std::string memory_plan_text(const MemoryPlan& plan) {
  auto line = [](const char* name, uint64_t bytes) {
    return fmt::format("  {:<9} {:>10.1f} MiB ({} bytes)\n", name,
                       static_cast<double>(bytes) / (1024.0 * 1024.0), bytes);
  };
  std::string out;
  for (const DevicePlan& d : plan.devices) {
    out += d.device + ":\n";
    out += line("weights", d.weights);
    out += line("kv_cache", d.kv_cache);
    out += line("compute", d.compute);
    out += line("overhead", d.overhead);
    out += line("total", d.total());
  }
  return out;
}

}  // namespace hangar::estimate
