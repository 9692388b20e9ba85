#include "estimate/plan_json.h"

#include <gtest/gtest.h>

namespace hangar::estimate {
namespace {

MemoryPlan sample_plan() {
  DevicePlan cpu;
  cpu.device = "CPU";
  cpu.weights = 3 << 20;
  cpu.kv_cache = 1 << 20;
  cpu.compute = 512 << 10;
  cpu.overhead = 24 << 20;
  MemoryPlan plan;
  plan.devices.push_back(cpu);
  return plan;
}

TEST(PlanJsonTest, JsonHasBytesPerPartAndTheirTotalPerDevice) {
  const nlohmann::json j = memory_plan_json(sample_plan());
  const nlohmann::json& cpu = j["devices"]["CPU"];
  EXPECT_EQ(cpu["weights"], 3u << 20);
  EXPECT_EQ(cpu["kv_cache"], 1u << 20);
  EXPECT_EQ(cpu["compute"], 512u << 10);
  EXPECT_EQ(cpu["overhead"], 24u << 20);
  EXPECT_EQ(cpu["total"], (3u << 20) + (1u << 20) + (512u << 10) + (24u << 20));
}

TEST(PlanJsonTest, TextNamesEveryPartInMiBAndBytes) {
  const std::string text = memory_plan_text(sample_plan());
  EXPECT_NE(text.find("CPU:"), std::string::npos) << text;
  EXPECT_NE(text.find("weights"), std::string::npos);
  EXPECT_NE(text.find("3.0 MiB (3145728 bytes)"), std::string::npos) << text;
  EXPECT_NE(text.find("total"), std::string::npos);
}

}  // namespace
}  // namespace hangar::estimate
