#pragma once
// Test helper for tests/unit/devices: a fake /proc and cgroup tree in a temporary directory,
// removed when the FakeHost goes away, and InventoryOptions pointing at it.
//
// Thread-safety: none; one test owns one FakeHost.

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "devices/devices.h"
#include "support/test_support.h"

namespace hangar::devices::testing {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;
inline constexpr uint64_t kGiB = 1024 * kMiB;

class FakeHost {
 public:
  FakeHost() : root_(::hangar::testing::make_temp_dir("hangar-devices")) {}
  ~FakeHost() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  FakeHost(const FakeHost&) = delete;
  FakeHost& operator=(const FakeHost&) = delete;

  const std::string& root() const { return root_; }
  std::string proc() const { return root_ + "/proc"; }
  std::string cgroup() const { return root_ + "/cgroup"; }

  // Writes `text` to root/rel, creating folders.
  void write(const std::string& rel, const std::string& text) const {
    std::filesystem::path p = std::filesystem::path(root_) / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::trunc);
    out << text;
    ASSERT_TRUE(out.good()) << "cannot write " << p;
  }

  // proc/meminfo with MemTotal and MemAvailable in bytes (written in kB, as the kernel does).
  void meminfo(uint64_t total, uint64_t available) const {
    write("proc/meminfo", "MemTotal:       " + std::to_string(total / kKiB) +
                              " kB\nMemFree:         1000 kB\nMemAvailable:   " +
                              std::to_string(available / kKiB) + " kB\nBuffers:          100 kB\n");
  }

  // proc/self/cgroup with the single v2 line "0::<path>".
  void self_cgroup_v2(const std::string& path) const {
    write("proc/self/cgroup", "0::" + path + "\n");
  }

  // A v2 cgroup at cgroup/<dir> (dir "" = the root): memory.max ("max" or a byte count) and
  // memory.current.
  void v2_limit(const std::string& dir, const std::string& max, uint64_t current) const {
    std::string base = dir.empty() ? "cgroup" : "cgroup/" + dir;
    write(base + "/memory.max", max + "\n");
    write(base + "/memory.current", std::to_string(current) + "\n");
  }

  InventoryOptions options() const {
    InventoryOptions o;
    o.proc_root = proc();
    o.cgroup_root = cgroup();
    return o;
  }

 private:
  std::string root_;
};

}  // namespace hangar::devices::testing
