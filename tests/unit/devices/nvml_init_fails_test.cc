// NVML present but failing to initialise (no driver loaded, here the fake told to fail
// nvmlInit_v2): CPU only with a note naming the failure. Its own binary because NVML is opened
// once per process (see nvml_fake_test.cc).

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "devices/devices.h"
#include "unit/devices/fake_host.h"

namespace hangar::devices {
namespace {

using testing::FakeHost;
using testing::kGiB;

TEST(NvmlInitFailsTest, InventoryIsCpuOnlyWithANoteNamingTheCall) {
  FakeHost host;
  host.meminfo(24 * kGiB, 20 * kGiB);
  host.write("nvml.txt", "gpu NVIDIA H200 143771 140000\nfail init\n");
  setenv("HANGAR_NVML_LIBRARY", HANGAR_FAKE_NVML, 1);
  setenv("HANGAR_FAKE_NVML_FILE", (host.root() + "/nvml.txt").c_str(), 1);

  std::string note;
  auto devices = take_inventory(host.options(), &note);
  ASSERT_TRUE(devices.ok()) << devices.status().to_string();
  ASSERT_EQ(devices->size(), 1u);
  EXPECT_EQ((*devices)[0].name, "CPU");
  EXPECT_NE(note.find("nvmlInit_v2"), std::string::npos) << note;
  EXPECT_TRUE(gpu_process_memory().empty());

  // The outcome is kept: the GPUs do not appear later in this process.
  host.write("nvml.txt", "gpu NVIDIA H200 143771 140000\n");
  devices = take_inventory(host.options(), &note);
  ASSERT_TRUE(devices.ok()) << devices.status().to_string();
  EXPECT_EQ(devices->size(), 1u);
}

}  // namespace
}  // namespace hangar::devices
