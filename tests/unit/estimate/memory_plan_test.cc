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
  // At least the 2000 more tokens' tokenizer entries and their metadata values (a string's end
  // offset, a float32 score and an int32 type each).
  EXPECT_GE(grown, 2000 * (kTokenizerBytesPerToken + 8 + 4 + 4));
  auto plan = plan_memory(*large, 256, 1);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->devices[0].overhead, kProcessOverheadBytes + header_heap_bytes(*large));
}

}  // namespace
}  // namespace hangar::estimate

namespace hangar::estimate {
namespace {

// A header with the given attention shape and a token_embd tensor: all read_model_shape needs.
std::unique_ptr<gguf::GgufFile> attention_shape_file(uint32_t n_head, uint32_t n_head_kv,
                                                     uint32_t key_length, uint32_t value_length,
                                                     std::vector<uint8_t>* storage) {
  gguf::GgufWriter w;
  w.set("general.architecture", gguf::Value::str("llama"));
  w.set("llama.context_length", gguf::Value::u32(256));
  w.set("llama.embedding_length", gguf::Value::u32(32));
  w.set("llama.block_count", gguf::Value::u32(1));
  w.set("llama.feed_forward_length", gguf::Value::u32(64));
  w.set("llama.attention.head_count", gguf::Value::u32(n_head));
  w.set("llama.attention.head_count_kv", gguf::Value::u32(n_head_kv));
  w.set("llama.attention.key_length", gguf::Value::u32(key_length));
  w.set("llama.attention.value_length", gguf::Value::u32(value_length));
  w.set("llama.rope.dimension_count", gguf::Value::u32(2));
  EXPECT_TRUE(w.add_tensor("token_embd.weight", gguf::GgmlType::kF32, {32, 16},
                           std::vector<uint8_t>(32 * 16 * 4))
                  .ok());
  auto bytes = w.to_bytes();
  EXPECT_TRUE(bytes.ok());
  *storage = std::move(*bytes);
  auto f = gguf::GgufFile::parse(storage->data(), storage->size(), "shape.gguf");
  EXPECT_TRUE(f.ok()) << f.status().to_string();
  return f.ok() ? std::move(*f) : nullptr;
}

// Issue 16 item 2: head count × head size was an `int`: 65536 × 65538 wrapped to 131072 and
// passed the engine's shape checks (a heap overflow in `hangar generate`); 65536 × 65536
// wrapped to 0 and `hangar estimate` planned a KV cache of 0 B.
TEST(MemoryPlanTest, HeadProductsAboveTheLimitAreRefusedNotWrapped) {
  std::vector<uint8_t> storage;
  for (uint32_t key_length : {65538u, 65536u}) {
    auto f = attention_shape_file(65536, 65536, key_length, 2, &storage);
    ASSERT_TRUE(f);
    auto shape = read_model_shape(*f);
    ASSERT_FALSE(shape.ok()) << "key_length " << key_length;
    EXPECT_NE(shape.status().message().find("head_count × key_length is " +
                                            std::to_string(65536ull * key_length)),
              std::string::npos)
        << shape.status().message();
    auto plan = plan_memory(*f, 256, 1);
    EXPECT_FALSE(plan.ok());
  }
  // At the limit (2^30) the shape is accepted and the plan's products are exact.
  auto ok = attention_shape_file(16384, 16384, 65536, 2, &storage);
  ASSERT_TRUE(ok);
  auto shape = read_model_shape(*ok);
  ASSERT_TRUE(shape.ok()) << shape.status().to_string();
  EXPECT_EQ(shape->n_embd_q(), int64_t{1} << 30);
  auto layout = compute_layout(*shape, 256, 1, 1, 1, 1);
  ASSERT_TRUE(layout.ok()) << layout.status().to_string();
  EXPECT_EQ(layout->k_cache, 256ull << 30);  // 1 layer × 256 positions × 2^30
}

TEST(MemoryPlanTest, ComputeLayoutChecksEveryProductInSixtyFourBits) {
  ModelShape s;
  s.arch = "llama";
  s.n_vocab = 32000;
  s.n_ctx_train = 4096;
  s.n_embd = 4096;
  s.n_layer = 32;
  s.n_ff = 11008;
  s.n_head = 65536;  // hand-built past read_model_shape's limits: products above 2^32
  s.n_head_kv = 65536;
  s.head_dim_k = 65536;
  s.head_dim_v = 65536;
  s.n_rot = 128;
  auto big = compute_layout(s, 16, 1, 1, 1, 1);
  ASSERT_TRUE(big.ok()) << big.status().to_string();
  EXPECT_EQ(big->k_cache, 32ull * 16 * (65536ull * 65536));  // not 0, as `int` made it
  s.n_layer = 1 << 29;
  auto huge = compute_layout(s, 1 << 20, 1, 512, 1, 1);
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("KV cache"), std::string::npos)
      << huge.status().message();
}

}  // namespace
}  // namespace hangar::estimate
