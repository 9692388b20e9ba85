// `hangar serve --dry-run`: the router's view of memory without starting anything (issue 12
// item 7). It reads exactly what a starting router reads (the inventory, the registry, the
// estimates) and asks the admission function whether each model fits alone.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "router/admission.h"
#include "router/estimator.h"
#include "router/router_impl.h"

namespace hangar::router {

StatusOr<std::string> dry_run_report(const RouterOptions& options, bool as_json,
                                     bool* preloads_fit) {
  using json = nlohmann::json;
  *preloads_fit = true;
  devices::InventoryOptions io;
  io.devices_file = options.devices_file;
  std::string note;
  HANGAR_ASSIGN_OR_RETURN(std::vector<devices::Device> inventory,
                          devices::take_inventory(io, &note));
  HANGAR_ASSIGN_OR_RETURN(Registry reg, Registry::scan(options.sources));
  const std::vector<DeviceLimit> limits = device_limits(inventory, options.memory_margin_mib);
  const bool budgeted =
      std::any_of(limits.begin(), limits.end(), [](const DeviceLimit& d) { return d.budget; });

  json report = {{"devices", json::array()}, {"models", json::array()}};
  std::string text;
  if (!note.empty()) text += note + "\n";
  text += fmt::format("devices (budget = free at start - margin {} MiB):\n",
                      options.memory_margin_mib);
  for (size_t d = 0; d < inventory.size(); ++d) {
    const devices::Device& dev = inventory[d];
    report["devices"].push_back(
        {{"name", dev.name},
         {"type", std::string(devices::device_type_name(dev.type))},
         {"total", dev.total},
         {"free", dev.free},
         {"margin", options.memory_margin_mib << 20},
         {"budget", limits[d].budget ? json(*limits[d].budget) : json(nullptr)}});
    text += fmt::format("  {:<8} total {:>10}  free {:>10}  budget {:>10}\n", dev.name,
                        mib(dev.total), mib(dev.free),
                        limits[d].budget ? mib(*limits[d].budget) : std::string("no check"));
  }
  std::set<std::string> preloaded;
  for (const std::string& name : options.preload) {
    if (const ModelConfig* m = reg.resolve(name)) preloaded.insert(m->id);
  }
  Estimator estimator;
  text += "models:\n";
  for (const ModelConfig& m : reg.models()) {
    const NeedEstimate need =
        estimator.estimate(m, !options.backend.empty(), gpu_count(inventory));
    const bool must_load =
        preloaded.count(m.id) > 0 || (m.load_on_startup && options.models_autoload);
    AdmissionState alone;
    alone.devices = limits;
    alone.models_max = options.models_max;
    AdmissionRequest request{m.id, std::vector<uint64_t>(limits.size(), 0)};
    std::string problem = need.error;
    for (const auto& [device, bytes] : need.bytes) {
      size_t d = 0;
      while (d < limits.size() && limits[d].name != device) ++d;
      if (d == limits.size()) {
        if (bytes > 0 && problem.empty()) {
          problem = "needs " + mib(bytes) + " on device " + device + ", which is not present";
        }
        continue;
      }
      request.need[d] = bytes;
    }
    if (problem.empty()) {
      const AdmissionDecision decision = decide_admission(alone, request);
      if (decision.kind == AdmissionDecision::Kind::kNeverFits) problem = decision.reason;
    }
    const bool fits = problem.empty() || (!budgeted && !need.error.empty());
    if (!fits && must_load) *preloads_fit = false;
    std::string needs;
    for (const auto& [device, bytes] : need.bytes) {
      needs += fmt::format("{}{} {}", needs.empty() ? "" : ", ", device, mib(bytes));
    }
    report["models"].push_back({{"id", m.id},
                                {"estimate", need.bytes},
                                {"source", need.source},
                                {"fits_alone", fits},
                                {"reason", problem},
                                {"loads_at_start", must_load}});
    text += fmt::format("  {:<24} {:<28} {}{}\n", m.id, needs.empty() ? "-" : needs,
                        fits ? "fits alone" : "NEVER FITS: " + problem,
                        must_load ? " (loads at start)" : "");
  }
  report["ok"] = *preloads_fit;
  if (as_json) return json_text(report);
  return text;
}

}  // namespace hangar::router
