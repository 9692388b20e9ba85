// The router's GPU inventory, budgets and per-process measurement through NVML, without a GPU
// (issue 12): tests/fake_nvml stands in for libnvidia-ml.so.1 (HANGAR_NVML_LIBRARY), with two
// GPUs whose memory and processes come from a file this test writes. NVML is opened once per
// process, so this binary sets the variables before any router starts.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iterator>

#include "integration/router_harness.h"

namespace hangar::router::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;

class RouterNvml : public RouterHarness {
 protected:
  void SetUp() override {
    RouterHarness::SetUp();
    nvml_file_ = dir_ / "nvml.txt";
    write_gpus("");
    setenv("HANGAR_NVML_LIBRARY", HANGAR_FAKE_NVML, 1);
    setenv("HANGAR_FAKE_NVML_FILE", nvml_file_.c_str(), 1);
  }
  void write_gpus(const std::string& processes) {
    std::ofstream(nvml_file_) << "gpu NVIDIA Fake A 8192 8000\ngpu NVIDIA Fake B 16384 12000\n"
                              << processes;
  }
  json devices() { return json::parse(get("/devices").body, nullptr, false); }
  std::filesystem::path nvml_file_;
};

TEST_F(RouterNvml, GpusFromNvmlGetBudgetsAndTheirProcessMemoryIsMeasured) {
  options.memory_margin_mib = 1000;
  add_model("g");
  write_preset("version = 1\n[g]\nmemory = CUDA1:3000\n");
  start();
  json d = devices();
  ASSERT_TRUE(d.is_object()) << get("/devices").body;
  std::map<std::string, json> by_name;
  for (const json& x : d["devices"]) by_name[x["name"].get<std::string>()] = x;
  ASSERT_EQ(by_name.size(), 3u) << d.dump();
  EXPECT_EQ(by_name["CPU"]["type"], "cpu");
  EXPECT_EQ(by_name["CUDA0"]["type"], "gpu");
  EXPECT_EQ(by_name["CUDA0"]["total"], 8192 * kMiB);
  EXPECT_EQ(by_name["CUDA0"]["budget"], 7000 * kMiB);
  EXPECT_EQ(by_name["CUDA1"]["budget"], 11000 * kMiB);
  EXPECT_EQ(by_name["CUDA1"]["margin"], 1000 * kMiB);

  ASSERT_EQ(chat("g").status, 200);
  EXPECT_EQ(model_entry("g")["memory"]["reserved"]["CUDA1"], 3000 * kMiB);
  // The worker's process now shows on CUDA1 in NVML: /devices measures it there.
  pid_t worker = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmdline.find((models_dir_ / "g.gguf").string()) != std::string::npos) {
      worker = std::stoi(name);
    }
  }
  ASSERT_NE(worker, 0);
  write_gpus("proc 1 " + std::to_string(worker) + " 2500\nproc 1 1 999\n");
  d = devices();
  for (const json& x : d["devices"]) {
    if (x["name"] == "CUDA1") {
      EXPECT_EQ(x["measured"], 2500 * kMiB) << x.dump();
    }
    if (x["name"] == "CUDA0") {
      EXPECT_EQ(x["measured"], 0u) << x.dump();
    }
  }
  http::Response metrics = get("/metrics");
  EXPECT_NE(metrics.body.find("hangar_device_measured_bytes{device=\"CUDA1\"} " +
                              std::to_string(2500 * kMiB)),
            std::string::npos)
      << metrics.body;
}

TEST_F(RouterNvml, MemoryRefreshSeesOtherProgramsUseOfAGpu) {
  options.memory_margin_mib = 1000;
  options.memory_refresh = std::chrono::milliseconds(50);
  start();
  auto budget_of = [&](const std::string& name) {
    const json all = devices();
    for (const json& x : all["devices"]) {
      if (x["name"] == name) return x["budget"].get<uint64_t>();
    }
    return uint64_t{0};
  };
  EXPECT_EQ(budget_of("CUDA1"), 11000 * kMiB);
  // Another program takes 4 GiB of CUDA1: the next refresh lowers its budget.
  std::ofstream(nvml_file_) << "gpu NVIDIA Fake A 8192 8000\ngpu NVIDIA Fake B 16384 8000\n";
  const auto deadline = std::chrono::steady_clock::now() + kHangDetector;
  while (budget_of("CUDA1") != 7000 * kMiB && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(budget_of("CUDA1"), 7000 * kMiB);
  EXPECT_EQ(budget_of("CUDA0"), 7000 * kMiB);
}

}  // namespace
}  // namespace hangar::router::testing
