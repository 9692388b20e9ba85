#include "estimate/memory_plan.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "gguf/gguf.h"
#include "gguf/model_maker.h"
#include "support/test_support.h"

namespace hangar::estimate {
namespace {

std::unique_ptr<gguf::GgufFile> make(const gguf::ModelSpec& spec, const std::string& name) {
  // One folder per test process, removed at exit.
  struct TempDir {
    std::string path = hangar::testing::make_temp_dir("estimate");
    ~TempDir() { std::filesystem::remove_all(path); }
  };
  static const TempDir temp;
  const std::string& dir = temp.path;
  const std::string path = dir + "/" + name + ".gguf";
  EXPECT_TRUE(gguf::write_model(spec, path).ok());
  auto f = gguf::GgufFile::open(path);
  EXPECT_TRUE(f.ok()) << f.status().to_string();
  return f.ok() ? std::move(*f) : nullptr;
}

gguf::ModelSpec spec() {
  gguf::ModelSpec s;
  s.arch = "qwen3";
  s.n_embd = 64;
  s.n_layer = 3;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.head_dim = 32;
  s.n_ff = 96;
  s.n_ctx = 512;
  s.n_vocab = 1000;
  s.type = gguf::GgmlType::kQ8_0;
  s.threads = 1;
  return s;
}

TEST(MemoryPlanTest, KvCacheFollowsTheFormulaAndWeightsAreTensorBytes) {
  auto f = make(spec(), "q3");
  ASSERT_TRUE(f);
  auto plan = plan_memory(*f, 256, 4);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  ASSERT_EQ(plan->devices.size(), 1u);
  const DevicePlan& cpu = plan->devices[0];
  EXPECT_EQ(cpu.device, "CPU");
  // n_layer x n_ctx x (n_embd_k_gqa + n_embd_v_gqa) x 2 bytes: 3 x 256 x (64 + 64) x 2.
  EXPECT_EQ(cpu.kv_cache, 3u * 256 * (2 * 32 + 2 * 32) * 2);
  uint64_t bytes = 0;
  for (const auto& t : f->tensors()) bytes += t.bytes;
  EXPECT_EQ(cpu.weights, bytes);
  EXPECT_GT(cpu.compute, 0u);
  EXPECT_EQ(cpu.overhead, kProcessOverheadBytes + header_heap_bytes(*f));
  EXPECT_EQ(plan->total(), cpu.weights + cpu.kv_cache + cpu.compute + cpu.overhead);
}

TEST(MemoryPlanTest, ZeroContextMeansTrainingContextSplitOverSlots) {
  auto f = make(spec(), "q3b");
  ASSERT_TRUE(f);
  auto shape = read_model_shape(*f);
  ASSERT_TRUE(shape.ok());
  EXPECT_EQ(shape->head_dim_k, 32);
  EXPECT_EQ(shape->n_vocab, 1000);
  auto l = compute_layout(*shape, 0, 3, 64, 2, 3);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->n_ctx_seq, 512 / 3);
  EXPECT_EQ(l->n_ctx, (512 / 3) * 3);
  EXPECT_EQ(l->logits, 3u * 1000);
  EXPECT_FALSE(compute_layout(*shape, 2, 3, 64, 2, 3).ok());  // fewer positions than slots
  EXPECT_FALSE(compute_layout(*shape, 64, 0, 64, 2, 3).ok());
}

TEST(MemoryPlanTest, LargerBatchNeedsMoreComputeOnly) {
  auto f = make(spec(), "q3c");
  ASSERT_TRUE(f);
  auto small = plan_memory(*f, 256, 1, {.n_batch = 32});
  auto large = plan_memory(*f, 256, 1, {.n_batch = 512});
  ASSERT_TRUE(small.ok() && large.ok());
  EXPECT_LT(small->devices[0].compute, large->devices[0].compute);
  EXPECT_EQ(small->devices[0].kv_cache, large->devices[0].kv_cache);
}

}  // namespace
}  // namespace hangar::estimate

namespace hangar::estimate {
namespace {

TEST(MemoryPlanTest, HeaderHeapGrowsWithTheVocabulary) {
  gguf::ModelSpec small_spec = spec();
  gguf::ModelSpec large_spec = spec();
  large_spec.n_vocab = 3000;
  auto small = make(small_spec, "vocab1000");
  auto large = make(large_spec, "vocab3000");
  ASSERT_TRUE(small && large);
  ASSERT_NE(large->get_array("tokenizer.ggml.tokens"), nullptr);
  const uint64_t grown = header_heap_bytes(*large) - header_heap_bytes(*small);
  // At least the 2000 more tokens' tokenizer entries and their metadata values.
  EXPECT_GE(grown, 2000 * (kTokenizerBytesPerToken + sizeof(gguf::Value)));
  auto plan = plan_memory(*large, 256, 1);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->devices[0].overhead, kProcessOverheadBytes + header_heap_bytes(*large));
}

}  // namespace
}  // namespace hangar::estimate
