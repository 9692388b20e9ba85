// The inventory, refresh and per-process readings through NVML, with tests/fake_nvml standing in
// for libnvidia-ml.so.1.
//
// NVML is opened once per process and the outcome kept (src/devices/nvml.h), so each NVML
// scenario that needs a different library or init result is its own test binary:
// nvml_fake_test (this one: a working NVML with two GPUs), nvml_absent_test (no library) and
// nvml_init_fails_test (nvmlInit_v2 fails). Here every test keeps two GPUs in the fake's file
// (the count is read at init) and changes only their memory, processes and failures.

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "devices/devices.h"
#include "unit/devices/fake_host.h"

namespace hangar::devices {
namespace {

using testing::FakeHost;
using testing::kGiB;
using testing::kMiB;

class NvmlFakeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    host_ = new FakeHost;
    setenv("HANGAR_NVML_LIBRARY", HANGAR_FAKE_NVML, 1);
    setenv("HANGAR_FAKE_NVML_FILE", nvml_file().c_str(), 1);
  }
  static void TearDownTestSuite() {
    delete host_;
    host_ = nullptr;
  }
  void SetUp() override {
    host_->meminfo(24 * kGiB, 20 * kGiB);
    set_gpus("");
  }

  static std::string nvml_file() { return host_->root() + "/nvml.txt"; }
  // Two H200-sized GPUs, then `extra` lines.
  static void set_gpus(const std::string& extra) {
    host_->write("nvml.txt",
                 "# two GPUs\n"
                 "gpu NVIDIA H200 143771 140000\n"
                 "gpu NVIDIA H100 80GB HBM3 81559 81000\n" +
                     extra);
  }
  static InventoryOptions options() { return host_->options(); }

  static FakeHost* host_;
};
FakeHost* NvmlFakeTest::host_ = nullptr;

TEST_F(NvmlFakeTest, InventoryIsCpuThenEachGpuAsCudaN) {
  std::string note = "stale";
  auto devices = take_inventory(options(), &note);
  ASSERT_TRUE(devices.ok()) << devices.status().to_string();
  EXPECT_EQ(note, "");
  ASSERT_EQ(devices->size(), 3u);
  EXPECT_EQ((*devices)[0].name, "CPU");
  EXPECT_EQ((*devices)[0].free, 20 * kGiB);

  const Device& gpu0 = (*devices)[1];
  EXPECT_EQ(gpu0.name, "CUDA0");
  EXPECT_EQ(gpu0.type, DeviceType::kGpu);
  EXPECT_EQ(gpu0.total, 143771 * kMiB);
  EXPECT_EQ(gpu0.free, 140000 * kMiB);
  EXPECT_EQ(gpu0.description, "NVIDIA H200");
  EXPECT_EQ(gpu0.nvml_index, 0);

  const Device& gpu1 = (*devices)[2];
  EXPECT_EQ(gpu1.name, "CUDA1");
  EXPECT_EQ(gpu1.total, 81559 * kMiB);
  EXPECT_EQ(gpu1.free, 81000 * kMiB);
  EXPECT_EQ(gpu1.description, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(gpu1.nvml_index, 1);
}

TEST_F(NvmlFakeTest, RefreshFreeSeesTheChangedReadings) {
  auto devices = take_inventory(options(), nullptr);
  ASSERT_TRUE(devices.ok()) << devices.status().to_string();
  ASSERT_EQ(devices->size(), 3u);

  host_->write("nvml.txt",
               "gpu NVIDIA H200 143771 100000\n"
               "gpu NVIDIA H100 80GB HBM3 81559 1234\n");
  host_->meminfo(24 * kGiB, 7 * kGiB);
  ASSERT_TRUE(refresh_free(options(), &*devices).ok());
  EXPECT_EQ((*devices)[0].free, 7 * kGiB);
  EXPECT_EQ((*devices)[1].free, 100000 * kMiB);
  EXPECT_EQ((*devices)[2].free, 1234 * kMiB);
  EXPECT_EQ((*devices)[1].total, 143771 * kMiB);
}

TEST_F(NvmlFakeTest, RefreshErrorNamesTheDevice) {
  auto devices = take_inventory(options(), nullptr);
  ASSERT_TRUE(devices.ok()) << devices.status().to_string();
  set_gpus("fail memory 1\n");
  Status s = refresh_free(options(), &*devices);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("CUDA1"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("nvmlDeviceGetMemoryInfo"), std::string::npos) << s.message();
}

TEST_F(NvmlFakeTest, GpuProcessMemoryPerDeviceAndPid) {
  set_gpus(
      "proc 0 1001 2048\n"
      "proc 0 1002 100\n"
      "proc 1 1001 512\n"
      "proc 1 1003 -\n"  // NVML cannot tell: left out
      "proc 1 1004 10\n"
      "proc 1 1004 20\n");  // one process in two MIG instances: summed
  auto usage = gpu_process_memory();
  ASSERT_EQ(usage.size(), 2u);
  EXPECT_EQ(usage["CUDA0"], (std::map<int, uint64_t>{{1001, 2048 * kMiB}, {1002, 100 * kMiB}}));
  EXPECT_EQ(usage["CUDA1"], (std::map<int, uint64_t>{{1001, 512 * kMiB}, {1004, 30 * kMiB}}));
  EXPECT_EQ(gpu_process_memory(options()), usage);
}

TEST_F(NvmlFakeTest, GpuWithoutProcessesMapsToAnEmptyMap) {
  auto usage = gpu_process_memory();
  ASSERT_EQ(usage.size(), 2u);
  EXPECT_TRUE(usage["CUDA0"].empty());
  EXPECT_TRUE(usage["CUDA1"].empty());
}

TEST_F(NvmlFakeTest, ManyProcessesAreReadWithABiggerBuffer) {
  std::string procs;
  for (int pid = 2000; pid < 2100; ++pid) procs += "proc 1 " + std::to_string(pid) + " 1\n";
  set_gpus(procs);
  auto usage = gpu_process_memory();
  ASSERT_EQ(usage["CUDA1"].size(), 100u);
  EXPECT_EQ(usage["CUDA1"].begin()->first, 2000);
  EXPECT_EQ(usage["CUDA1"].rbegin()->first, 2099);
  EXPECT_EQ(usage["CUDA1"][2050], 1 * kMiB);
}

TEST_F(NvmlFakeTest, UnreadableGpuIsLeftOutWithANote) {
  set_gpus("fail memory 0\n");
  std::string note;
  auto devices = take_inventory(options(), &note);
  ASSERT_TRUE(devices.ok()) << devices.status().to_string();
  ASSERT_EQ(devices->size(), 2u);
  EXPECT_EQ((*devices)[1].name, "CUDA1");  // keeps its NVML number
  EXPECT_NE(note.find("CUDA0 left out"), std::string::npos) << note;
}

TEST_F(NvmlFakeTest, UnreadableProcessesLeaveThatGpuOut) {
  set_gpus("proc 0 1 1\nproc 1 2 2\nfail processes 1\n");
  auto usage = gpu_process_memory();
  ASSERT_EQ(usage.size(), 1u);
  EXPECT_EQ(usage["CUDA0"].size(), 1u);
}

TEST_F(NvmlFakeTest, UseNvmlFalseIsCpuOnlyWithANote) {
  InventoryOptions o = options();
  o.use_nvml = false;
  std::string note;
  auto devices = take_inventory(o, &note);
  ASSERT_TRUE(devices.ok()) << devices.status().to_string();
  ASSERT_EQ(devices->size(), 1u);
  EXPECT_FALSE(note.empty());
  EXPECT_TRUE(gpu_process_memory(o).empty());
}

TEST_F(NvmlFakeTest, ConcurrentReadersAllSeeTheGpus) {
  set_gpus("proc 0 77 5\n");
  auto devices = take_inventory(options(), nullptr);
  ASSERT_TRUE(devices.ok()) << devices.status().to_string();
  std::vector<std::thread> threads;
  std::vector<int> failures(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        std::vector<Device> mine = *devices;
        if (!refresh_free(options(), &mine).ok()) ++failures[t];
        if (gpu_process_memory()["CUDA0"][77] != 5 * kMiB) ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace hangar::devices
