// read_devices_file: the design §4 shape, and an error naming the file and the fault for each
// way a file can be wrong. take_inventory with a devices file reads nothing else.

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <vector>

#include "devices/devices.h"
#include "unit/devices/fake_host.h"

namespace hangar::devices {
namespace {

using testing::FakeHost;
using testing::kMiB;

TEST(DevicesFileTest, ReadsTheDesignExample) {
  FakeHost host;
  host.write("devices.json",
             R"({"devices":[{"name":"CPU","type":"cpu","total_mib":24576,"free_mib":20480},
                            {"name":"CUDA0","type":"gpu","total_mib":81920,"free_mib":80000}]})");
  auto devices = read_devices_file(host.root() + "/devices.json");
  ASSERT_TRUE(devices.ok()) << devices.status().to_string();
  ASSERT_EQ(devices->size(), 2u);
  const Device& cpu = (*devices)[0];
  EXPECT_EQ(cpu.name, "CPU");
  EXPECT_EQ(cpu.type, DeviceType::kCpu);
  EXPECT_EQ(cpu.total, 24576 * kMiB);
  EXPECT_EQ(cpu.free, 20480 * kMiB);
  EXPECT_EQ(cpu.nvml_index, -1);
  const Device& gpu = (*devices)[1];
  EXPECT_EQ(gpu.name, "CUDA0");
  EXPECT_EQ(gpu.type, DeviceType::kGpu);
  EXPECT_EQ(gpu.total, 81920 * kMiB);
  EXPECT_EQ(gpu.free, 80000 * kMiB);
  EXPECT_EQ(gpu.nvml_index, -1);
  EXPECT_EQ(device_type_name(cpu.type), "cpu");
  EXPECT_EQ(device_type_name(gpu.type), "gpu");
}

TEST(DevicesFileTest, DescriptionIsOptionalAndUnknownKeysAreIgnored) {
  FakeHost host;
  host.write("d.json",
             R"({"comment":"what-if","devices":[{"name":"CPU","type":"cpu","total_mib":0,
                "free_mib":0,"note":1},{"name":"CUDA0","type":"gpu","total_mib":1,"free_mib":1,
                "description":"NVIDIA H200"}]})");
  auto devices = read_devices_file(host.root() + "/d.json");
  ASSERT_TRUE(devices.ok()) << devices.status().to_string();
  ASSERT_EQ(devices->size(), 2u);
  EXPECT_EQ((*devices)[0].total, 0u);
  EXPECT_FALSE((*devices)[0].description.empty());
  EXPECT_EQ((*devices)[1].description, "NVIDIA H200");
}

TEST(DevicesFileTest, InventoryWithADevicesFileReadsOnlyTheFile) {
  FakeHost host;  // no meminfo in its /proc: reading host memory would fail
  host.write("d.json", R"({"devices":[{"name":"CUDA3","type":"gpu","total_mib":8,"free_mib":4}]})");
  InventoryOptions o = host.options();
  o.devices_file = host.root() + "/d.json";
  std::string note = "stale";
  auto devices = take_inventory(o, &note);
  ASSERT_TRUE(devices.ok()) << devices.status().to_string();
  ASSERT_EQ(devices->size(), 1u);
  EXPECT_EQ((*devices)[0].name, "CUDA3");
  EXPECT_EQ(note, "");

  // refresh_free leaves a devices file's devices as they are.
  (*devices)[0].free = 1;
  ASSERT_TRUE(refresh_free(o, &*devices).ok());
  EXPECT_EQ((*devices)[0].free, 1u);
  EXPECT_TRUE(gpu_process_memory(o).empty());
}

TEST(DevicesFileTest, MissingFileIsNotFoundNamingIt) {
  FakeHost host;
  auto devices = read_devices_file(host.root() + "/absent.json");
  ASSERT_FALSE(devices.ok());
  EXPECT_EQ(devices.status().code(), StatusCode::kNotFound);
  EXPECT_NE(devices.status().message().find("absent.json"), std::string::npos)
      << devices.status().message();
}

struct BadFile {
  const char* what;
  const char* json;
  const char* expected;  // a part of the message
};

class DevicesFileErrorTest : public ::testing::TestWithParam<BadFile> {};

TEST_P(DevicesFileErrorTest, NamesTheFileAndTheFault) {
  const BadFile& bad = GetParam();
  FakeHost host;
  host.write("bad.json", bad.json);
  const std::string path = host.root() + "/bad.json";
  auto devices = read_devices_file(path);
  ASSERT_FALSE(devices.ok()) << bad.what;
  const std::string m = devices.status().message();
  EXPECT_EQ(devices.status().code(), StatusCode::kInvalidArgument) << m;
  EXPECT_NE(m.find(path), std::string::npos) << m;
  EXPECT_NE(m.find(bad.expected), std::string::npos) << bad.what << ": " << m;
}

#define DEV(fields) R"({"devices":[{)" fields R"(}]})"

INSTANTIATE_TEST_SUITE_P(
    Each, DevicesFileErrorTest,
    ::testing::Values(
        BadFile{"not JSON", "{\"devices\":[", "is not JSON"},
        BadFile{"empty file", "", "is not JSON"},
        BadFile{"too deep",
                "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
                "nests"},
        BadFile{"top level array", "[]", "not an object"},
        BadFile{"no devices", "{}", "missing \"devices\""},
        BadFile{"devices not array", R"({"devices":{}})", "not an array"},
        BadFile{"devices empty", R"({"devices":[]})", "is empty"},
        BadFile{"device not object", R"({"devices":[42]})", "devices[0] is not an object"},
        BadFile{"missing name", DEV(R"("type":"cpu","total_mib":1,"free_mib":1)"),
                "missing \"name\""},
        BadFile{"empty name", DEV(R"("name":"","type":"cpu","total_mib":1,"free_mib":1)"),
                "non-empty string"},
        BadFile{"missing type", DEV(R"("name":"CPU","total_mib":1,"free_mib":1)"),
                "devices[0] (CPU): missing \"type\""},
        BadFile{"bad type", DEV(R"("name":"CPU","type":"tpu","total_mib":1,"free_mib":1)"),
                "\"cpu\" or \"gpu\", not \"tpu\""},
        BadFile{"missing total", DEV(R"("name":"CPU","type":"cpu","free_mib":1)"),
                "missing \"total_mib\""},
        BadFile{"missing free", DEV(R"("name":"CPU","type":"cpu","total_mib":1)"),
                "missing \"free_mib\""},
        BadFile{"string total", DEV(R"("name":"CPU","type":"cpu","total_mib":"1","free_mib":1)"),
                "\"total_mib\" must be a number"},
        BadFile{"fractional", DEV(R"("name":"CPU","type":"cpu","total_mib":1.5,"free_mib":1)"),
                "not a whole number"},
        BadFile{"negative", DEV(R"("name":"CPU","type":"cpu","total_mib":10,"free_mib":-1)"),
                "\"free_mib\" -1 is negative"},
        BadFile{"too large",
                DEV(R"("name":"CPU","type":"cpu","total_mib":17592186044416,"free_mib":1)"),
                "is too large"},
        BadFile{"far too large", DEV(R"("name":"CPU","type":"cpu","total_mib":1e30,"free_mib":1)"),
                "is too large"},
        BadFile{"free above total",
                DEV(R"("name":"CUDA0","type":"gpu","total_mib":100,"free_mib":101)"),
                "devices[0] (CUDA0): free_mib 101 is more than total_mib 100"},
        BadFile{"duplicate name",
                R"({"devices":[{"name":"CPU","type":"cpu","total_mib":1,"free_mib":1},
                               {"name":"CPU","type":"cpu","total_mib":2,"free_mib":2}]})",
                "devices[1]: duplicate name 'CPU'"},
        BadFile{"bad description",
                DEV(R"("name":"CPU","type":"cpu","total_mib":1,"free_mib":1,"description":3)"),
                "\"description\" must be a string"}),
    [](const ::testing::TestParamInfo<BadFile>& info) {
      std::string name;
      for (const char* c = info.param.what; *c; ++c) name += std::isalnum(*c) ? *c : '_';
      return name;
    });

}  // namespace
}  // namespace hangar::devices
