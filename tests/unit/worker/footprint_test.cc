#include "worker/footprint.h"

#include <gtest/gtest.h>

#include <vector>

#include "support/test_support.h"

namespace hangar::worker {
namespace {

TEST(FootprintTest, ProcessMemoryGrowsWhenPagesAreTouched) {
  const ProcessMemory before = read_process_memory();
  EXPECT_GT(before.rss, 0u);
  EXPECT_GT(before.pss, 0u);
  std::vector<char> block(64 << 20, 1);               // 64 MiB, every page written
  asm volatile("" : : "r"(block.data()) : "memory");  // the writes must happen
  const ProcessMemory after = read_process_memory();
  EXPECT_GE(after.rss, before.rss + (48u << 20)) << "block at " << static_cast<void*>(block.data());
}

TEST(FootprintTest, TouchingMappedWeightsCoversEveryTensorByte) {
  HANGAR_REQUIRE_FIXTURES();
  auto f = gguf::GgufFile::open(fixtures + "/models/llama-spm-f16.gguf");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  uint64_t bytes = 0;
  for (const auto& t : (*f)->tensors()) bytes += t.bytes;
  const ProcessMemory before = read_process_memory();
  EXPECT_EQ(touch_mapped_weights(**f), bytes);
  const ProcessMemory after = read_process_memory();
  // The mapping is now resident (page-cache pages count in RSS once mapped and touched).
  EXPECT_GE(after.rss + (1u << 20), before.rss + bytes);
}

}  // namespace
}  // namespace hangar::worker
