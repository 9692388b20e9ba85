// Without NVML (no library at $HANGAR_NVML_LIBRARY): the inventory is the CPU alone with a note
// saying why, never an error. Its own binary because NVML is opened once per process (see
// nvml_fake_test.cc).

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "devices/devices.h"
#include "unit/devices/fake_host.h"

namespace hangar::devices {
namespace {

using testing::FakeHost;
using testing::kGiB;

class NvmlAbsentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("HANGAR_NVML_LIBRARY", "/nonexistent.so", 1);
    host_.meminfo(24 * kGiB, 20 * kGiB);
  }
  FakeHost host_;
};

TEST_F(NvmlAbsentTest, InventoryIsCpuOnlyWithANote) {
  std::string note;
  auto devices = take_inventory(host_.options(), &note);
  ASSERT_TRUE(devices.ok()) << devices.status().to_string();
  ASSERT_EQ(devices->size(), 1u);
  EXPECT_EQ((*devices)[0].name, "CPU");
  EXPECT_EQ((*devices)[0].free, 20 * kGiB);
  EXPECT_NE(note.find("/nonexistent.so"), std::string::npos) << note;
}

TEST_F(NvmlAbsentTest, NullNoteIsAllowed) {
  auto devices = take_inventory(host_.options(), nullptr);
  ASSERT_TRUE(devices.ok()) << devices.status().to_string();
  EXPECT_EQ(devices->size(), 1u);
}

TEST_F(NvmlAbsentTest, GpuProcessMemoryIsEmpty) { EXPECT_TRUE(gpu_process_memory().empty()); }

TEST_F(NvmlAbsentTest, RefreshReadsTheCpuAndRejectsAGpu) {
  auto devices = take_inventory(host_.options(), nullptr);
  ASSERT_TRUE(devices.ok()) << devices.status().to_string();
  host_.meminfo(24 * kGiB, 3 * kGiB);
  ASSERT_TRUE(refresh_free(host_.options(), &*devices).ok());
  EXPECT_EQ((*devices)[0].free, 3 * kGiB);

  Device gpu;
  gpu.name = "CUDA0";
  gpu.type = DeviceType::kGpu;
  gpu.nvml_index = 0;
  devices->push_back(gpu);
  Status s = refresh_free(host_.options(), &*devices);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
}

TEST_F(NvmlAbsentTest, UnreadableHostMemoryIsAnError) {
  FakeHost empty;
  EXPECT_FALSE(take_inventory(empty.options(), nullptr).ok());
}

}  // namespace
}  // namespace hangar::devices
