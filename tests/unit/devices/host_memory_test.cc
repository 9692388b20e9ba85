// read_host_memory and process_pss against fake /proc and cgroup trees (and once against this
// machine's own).

#include <gtest/gtest.h>
#include <unistd.h>

#include "devices/devices.h"
#include "unit/devices/fake_host.h"

namespace hangar::devices {
namespace {

using testing::FakeHost;
using testing::kGiB;
using testing::kKiB;
using testing::kMiB;

TEST(HostMemoryTest, ReadsMemTotalAndMemAvailableInBytes) {
  FakeHost host;
  host.meminfo(24 * kGiB, 20 * kGiB);
  auto cpu = read_host_memory(host.options());
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
  EXPECT_EQ(cpu->name, "CPU");
  EXPECT_EQ(cpu->type, DeviceType::kCpu);
  EXPECT_EQ(cpu->total, 24 * kGiB);
  EXPECT_EQ(cpu->free, 20 * kGiB);
  EXPECT_EQ(cpu->description, "host RAM");
  EXPECT_EQ(cpu->nvml_index, -1);
}

TEST(HostMemoryTest, ParsesTheKernelsLayout) {
  FakeHost host;
  host.write("proc/meminfo",
             "MemTotal:       24683568 kB\n"
             "MemFree:        23222816 kB\n"
             "MemAvailable:   23611948 kB\n"
             "Buffers:            2048 kB\n"
             "HugePages_Total:       0\n"
             "Hugepagesize:       2048 kB\n");
  auto cpu = read_host_memory(host.options());
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
  EXPECT_EQ(cpu->total, 24683568 * kKiB);
  EXPECT_EQ(cpu->free, 23611948 * kKiB);
}

TEST(HostMemoryTest, MissingMeminfoIsNotFoundNamingTheFile) {
  FakeHost host;
  auto cpu = read_host_memory(host.options());
  ASSERT_FALSE(cpu.ok());
  EXPECT_EQ(cpu.status().code(), StatusCode::kNotFound);
  EXPECT_NE(cpu.status().message().find(host.proc() + "/meminfo"), std::string::npos)
      << cpu.status().message();
}

TEST(HostMemoryTest, MissingMemAvailableIsAnError) {
  FakeHost host;
  host.write("proc/meminfo", "MemTotal:       1000 kB\nMemFree:        900 kB\n");
  auto cpu = read_host_memory(host.options());
  ASSERT_FALSE(cpu.ok());
  EXPECT_NE(cpu.status().message().find("MemAvailable"), std::string::npos)
      << cpu.status().message();
}

TEST(HostMemoryTest, MalformedNumberIsAnError) {
  FakeHost host;
  host.write("proc/meminfo", "MemTotal:       lots kB\nMemAvailable:   900 kB\n");
  EXPECT_FALSE(read_host_memory(host.options()).ok());
  host.write("proc/meminfo", "MemTotal:       99999999999999999999 kB\nMemAvailable:   9 kB\n");
  EXPECT_FALSE(read_host_memory(host.options()).ok());
  host.write("proc/meminfo", "MemTotal:       1000\nMemAvailable:   900 kB\n");
  EXPECT_FALSE(read_host_memory(host.options()).ok());
}

TEST(HostMemoryTest, CgroupMaxMeansNoLimit) {
  FakeHost host;
  host.meminfo(24 * kGiB, 20 * kGiB);
  host.self_cgroup_v2("/user.slice/hangar");
  host.v2_limit("user.slice/hangar", "max", 3 * kGiB);
  host.v2_limit("user.slice", "max", 5 * kGiB);
  auto cpu = read_host_memory(host.options());
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
  EXPECT_EQ(cpu->total, 24 * kGiB);
  EXPECT_EQ(cpu->free, 20 * kGiB);
  EXPECT_EQ(cpu->description, "host RAM");
}

TEST(HostMemoryTest, CgroupLimitBelowMemAvailableCapsFreeAndTotal) {
  FakeHost host;
  host.meminfo(24 * kGiB, 20 * kGiB);
  host.self_cgroup_v2("/hangar");
  host.v2_limit("hangar", std::to_string(8 * kGiB), 3 * kGiB);
  auto cpu = read_host_memory(host.options());
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
  EXPECT_EQ(cpu->total, 8 * kGiB);
  EXPECT_EQ(cpu->free, 5 * kGiB);
  EXPECT_EQ(cpu->description, "host RAM (cgroup limit)");
}

TEST(HostMemoryTest, MemAvailableBelowTheCgroupHeadroomWins) {
  FakeHost host;
  host.meminfo(24 * kGiB, 2 * kGiB);
  host.self_cgroup_v2("/hangar");
  host.v2_limit("hangar", std::to_string(16 * kGiB), 1 * kGiB);
  auto cpu = read_host_memory(host.options());
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
  EXPECT_EQ(cpu->total, 16 * kGiB);
  EXPECT_EQ(cpu->free, 2 * kGiB);
}

TEST(HostMemoryTest, LimitAboveMemTotalDoesNotRaiseTotal) {
  FakeHost host;
  host.meminfo(24 * kGiB, 20 * kGiB);
  host.self_cgroup_v2("/hangar");
  host.v2_limit("hangar", std::to_string(64 * kGiB), 1 * kGiB);
  auto cpu = read_host_memory(host.options());
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
  EXPECT_EQ(cpu->total, 24 * kGiB);
  EXPECT_EQ(cpu->free, 20 * kGiB);
  EXPECT_EQ(cpu->description, "host RAM");
}

TEST(HostMemoryTest, UsageAboveTheLimitLeavesNothingFree) {
  FakeHost host;
  host.meminfo(24 * kGiB, 20 * kGiB);
  host.self_cgroup_v2("/hangar");
  host.v2_limit("hangar", std::to_string(4 * kGiB), 5 * kGiB);
  auto cpu = read_host_memory(host.options());
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
  EXPECT_EQ(cpu->total, 4 * kGiB);
  EXPECT_EQ(cpu->free, 0u);
}

TEST(HostMemoryTest, NestedCgroupsTightestParentWins) {
  FakeHost host;
  host.meminfo(64 * kGiB, 60 * kGiB);
  host.self_cgroup_v2("/a/b/c");
  host.v2_limit("a/b/c", std::to_string(32 * kGiB), 1 * kGiB);  // 31 GiB left
  host.v2_limit("a/b", "max", 1 * kGiB);
  host.v2_limit("a", std::to_string(12 * kGiB), 10 * kGiB);  // 2 GiB left: the tightest
  auto cpu = read_host_memory(host.options());
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
  EXPECT_EQ(cpu->total, 12 * kGiB);
  EXPECT_EQ(cpu->free, 2 * kGiB);
  EXPECT_EQ(cpu->description, "host RAM (cgroup limit)");
}

TEST(HostMemoryTest, NestedCgroupsTightestChildWins) {
  FakeHost host;
  host.meminfo(64 * kGiB, 60 * kGiB);
  host.self_cgroup_v2("/a/b");
  host.v2_limit("a/b", std::to_string(6 * kGiB), 2 * kGiB);  // 4 GiB left: the tightest
  host.v2_limit("a", std::to_string(40 * kGiB), 20 * kGiB);  // 20 GiB left
  auto cpu = read_host_memory(host.options());
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
  EXPECT_EQ(cpu->total, 6 * kGiB);
  EXPECT_EQ(cpu->free, 4 * kGiB);
}

TEST(HostMemoryTest, LevelsWithoutTheMemoryControllerAreSkipped) {
  FakeHost host;
  host.meminfo(64 * kGiB, 60 * kGiB);
  host.self_cgroup_v2("/a/b");
  host.write("cgroup/a/b/cgroup.procs", "1\n");  // no memory.* files at this level
  host.v2_limit("a", std::to_string(10 * kGiB), 3 * kGiB);
  auto cpu = read_host_memory(host.options());
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
  EXPECT_EQ(cpu->total, 10 * kGiB);
  EXPECT_EQ(cpu->free, 7 * kGiB);
}

// A container with its own cgroup namespace sees "0::/" and its cgroup mounted at the root.
TEST(HostMemoryTest, ContainerLimitAtTheCgroupRootApplies) {
  FakeHost host;
  host.meminfo(64 * kGiB, 60 * kGiB);
  host.self_cgroup_v2("/");
  host.v2_limit("", std::to_string(16 * kGiB), 6 * kGiB);
  auto cpu = read_host_memory(host.options());
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
  EXPECT_EQ(cpu->total, 16 * kGiB);
  EXPECT_EQ(cpu->free, 10 * kGiB);
}

TEST(HostMemoryTest, PathOutsideTheNamespaceFallsBackToTheRoot) {
  FakeHost host;
  host.meminfo(64 * kGiB, 60 * kGiB);
  host.self_cgroup_v2("/../../other");
  host.v2_limit("", std::to_string(16 * kGiB), 6 * kGiB);
  auto cpu = read_host_memory(host.options());
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
  EXPECT_EQ(cpu->free, 10 * kGiB);
}

TEST(HostMemoryTest, NoCgroupFileMeansNoCap) {
  FakeHost host;
  host.meminfo(24 * kGiB, 20 * kGiB);
  host.v2_limit("", std::to_string(1 * kGiB), 0);  // not ours: /proc/self/cgroup is absent
  auto cpu = read_host_memory(host.options());
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
  EXPECT_EQ(cpu->free, 20 * kGiB);
}

TEST(HostMemoryTest, MalformedMemoryMaxIsAnErrorNamingTheFile) {
  FakeHost host;
  host.meminfo(24 * kGiB, 20 * kGiB);
  host.self_cgroup_v2("/hangar");
  host.v2_limit("hangar", "unlimited", 0);
  auto cpu = read_host_memory(host.options());
  ASSERT_FALSE(cpu.ok());
  EXPECT_NE(cpu.status().message().find("cgroup/hangar/memory.max"), std::string::npos)
      << cpu.status().message();
}

TEST(HostMemoryTest, CgroupV1MemoryLimitCaps) {
  FakeHost host;
  host.meminfo(24 * kGiB, 20 * kGiB);
  host.write("proc/self/cgroup",
             "5:devices:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n0::/\n");
  host.write("cgroup/memory/docker/abc/memory.limit_in_bytes", std::to_string(6 * kGiB) + "\n");
  host.write("cgroup/memory/docker/abc/memory.usage_in_bytes", std::to_string(2 * kGiB) + "\n");
  // The v1 "no limit" value at the root: a huge page-aligned number.
  host.write("cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  host.write("cgroup/memory/memory.usage_in_bytes", std::to_string(9 * kGiB) + "\n");
  auto cpu = read_host_memory(host.options());
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
  EXPECT_EQ(cpu->total, 6 * kGiB);
  EXPECT_EQ(cpu->free, 4 * kGiB);
  EXPECT_EQ(cpu->description, "host RAM (cgroup limit)");
}

TEST(HostMemoryTest, CgroupV1UnlimitedDoesNotCap) {
  FakeHost host;
  host.meminfo(24 * kGiB, 20 * kGiB);
  host.write("proc/self/cgroup", "4:memory:/\n0::/\n");
  host.write("cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  host.write("cgroup/memory/memory.usage_in_bytes", std::to_string(9 * kGiB) + "\n");
  auto cpu = read_host_memory(host.options());
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
  EXPECT_EQ(cpu->total, 24 * kGiB);
  EXPECT_EQ(cpu->free, 20 * kGiB);
  EXPECT_EQ(cpu->description, "host RAM");
}

TEST(HostMemoryTest, ReadsThisMachine) {
  auto cpu = read_host_memory(InventoryOptions{});
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
  EXPECT_GT(cpu->total, 0u);
  EXPECT_GT(cpu->free, 0u);
  EXPECT_LE(cpu->free, cpu->total);
}

TEST(ProcessPssTest, ReadsPssInBytes) {
  FakeHost host;
  host.write("proc/123/smaps_rollup",
             "56303095b000-7ffc78bad000 ---p 00000000 00:00 0   [rollup]\n"
             "Rss:                1784 kB\n"
             "Pss:                2048 kB\n"
             "Pss_Dirty:           112 kB\n"
             "Pss_Anon:            112 kB\n");
  auto pss = process_pss(123, host.proc());
  ASSERT_TRUE(pss.ok()) << pss.status().to_string();
  EXPECT_EQ(*pss, 2 * kMiB);  // Pss, not Pss_Dirty or Pss_Anon
}

TEST(ProcessPssTest, MissingProcessIsAnErrorNamingTheFile) {
  FakeHost host;
  auto pss = process_pss(424242, host.proc());
  ASSERT_FALSE(pss.ok());
  EXPECT_NE(pss.status().message().find("424242/smaps_rollup"), std::string::npos)
      << pss.status().message();
  EXPECT_FALSE(process_pss(0).ok());
  EXPECT_FALSE(process_pss(-5).ok());
}

TEST(ProcessPssTest, NoPssLineIsAnError) {
  FakeHost host;
  host.write("proc/7/smaps_rollup", "Rss:   100 kB\n");
  EXPECT_FALSE(process_pss(7, host.proc()).ok());
}

TEST(ProcessPssTest, ReadsThisProcess) {
  auto pss = process_pss(static_cast<int>(getpid()));
  ASSERT_TRUE(pss.ok()) << pss.status().to_string();
  EXPECT_GT(*pss, 0u);
}

}  // namespace
}  // namespace hangar::devices
