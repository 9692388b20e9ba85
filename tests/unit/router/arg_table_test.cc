// The table of llama-server worker arguments: what `hangar run` does with each (issue 16 item
// 17) and the long forms of llama.cpp's several-letter single-dash spellings.
#include "router/arg_table.h"

#include <gtest/gtest.h>

namespace hangar::router {
namespace {

WorkerSupport support_of(std::string_view key) {
  const ArgSpec* spec = find_arg(key);
  EXPECT_NE(spec, nullptr) << key;
  if (spec == nullptr) return WorkerSupport::kUnsupported;
  auto s = worker_support(*spec);
  EXPECT_TRUE(s.has_value()) << key;
  return s.value_or(WorkerSupport::kUnsupported);
}

TEST(ArgTableTest, SamplingDefaultsAndBatchSizesAreHonoured) {
  for (std::string_view key : {"temp", "temperature", "top-k", "top-p", "min-p", "repeat-penalty",
                               "seed", "s", "n-predict", "n", "batch-size", "b", "ubatch-size",
                               "ub", "ctx-size", "parallel", "threads"}) {
    EXPECT_EQ(support_of(key), WorkerSupport::kHonoured) << key;
  }
}

TEST(ArgTableTest, GpuAndServerOnlyOptionsAreAcceptedAndIgnored) {
  for (std::string_view key : {"ngl", "n-gpu-layers", "fa", "flash-attn", "jinja", "mlock", "mmap",
                               "sm", "ts", "mg", "cont-batching", "cb", "metrics", "kv-offload"}) {
    EXPECT_EQ(support_of(key), WorkerSupport::kIgnored) << key;
  }
  EXPECT_EQ(support_of("lora"), WorkerSupport::kUnsupported);
  EXPECT_EQ(support_of("rope-freq-base"), WorkerSupport::kUnsupported);
  // Router-owned and preset-only keys never reach a worker.
  EXPECT_FALSE(worker_support(*find_arg("port")).has_value());
  EXPECT_FALSE(worker_support(*find_arg("model")).has_value());
}

TEST(ArgTableTest, SeveralLetterSingleDashSpellingsHaveLongForms) {
  EXPECT_EQ(long_option_for("-ub"), "--ubatch-size");
  EXPECT_EQ(long_option_for("-ngl"), "--n-gpu-layers");
  EXPECT_EQ(long_option_for("-np"), "--parallel");
  EXPECT_EQ(long_option_for("-fa"), "--flash-attn");
  EXPECT_EQ(long_option_for("-sm"), "--split-mode");
  EXPECT_EQ(long_option_for("-b"), std::nullopt);  // one letter: CLI11 names it
  EXPECT_EQ(long_option_for("--temp"), std::nullopt);
  EXPECT_EQ(long_option_for("-1"), std::nullopt);
  EXPECT_EQ(long_option_for("-0.5"), std::nullopt);
  EXPECT_EQ(long_option_for("-zz"), std::nullopt);
}

}  // namespace
}  // namespace hangar::router
