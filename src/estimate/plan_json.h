#pragma once
// The memory plan as JSON and as text, the one spelling shared by `hangar estimate`, the
// worker's /props and the router: {"devices":{"CPU":{"weights","kv_cache","compute","overhead",
// "total"}}}, all in bytes.
//
// Pure functions: safe from any thread.

#include <nlohmann/json.hpp>
#include <string>

#include "estimate/memory_plan.h"

namespace hangar::estimate {

nlohmann::json memory_plan_json(const MemoryPlan& plan);
// One line per device and part, sizes in MiB with bytes in parentheses.
std::string memory_plan_text(const MemoryPlan& plan);

}  // namespace hangar::estimate
