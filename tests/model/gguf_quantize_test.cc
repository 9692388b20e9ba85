// Fixtures rule 5: our quantizers, given llama-spm-f32.gguf's 2-D tensors, produce byte for byte
// the tensor data llama-quantize wrote into llama-spm-{f16,q8_0,q4_0,q4_1,q5_0,q5_1}.gguf.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "gguf/gguf.h"
#include "gguf/quantize.h"
#include "support/test_support.h"

namespace hangar::gguf {
namespace {

class QuantizerMatchesLlamaQuantize : public ::testing::TestWithParam<const char*> {};

TEST_P(QuantizerMatchesLlamaQuantize, EveryTwoDimensionalTensorIsByteIdentical) {
  HANGAR_REQUIRE_FIXTURES();
  const std::string suffix = GetParam();
  auto src = GgufFile::open(fixtures + "/models/llama-spm-f32.gguf");
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  auto ref = GgufFile::open(fixtures + "/models/llama-spm-" + suffix + ".gguf");
  ASSERT_TRUE(ref.ok()) << ref.status().to_string();
  const GgmlType type = *type_from_name(suffix);
  int checked = 0;
  for (const TensorInfo& t : (*src)->tensors()) {
    const TensorInfo* r = (*ref)->find_tensor(t.name);
    ASSERT_NE(r, nullptr) << t.name;
    ASSERT_EQ(r->shape, t.shape) << t.name;
    if (t.shape.size() < 2) {
      EXPECT_EQ(r->type, GgmlType::kF32) << t.name;  // 1-D tensors stay F32
      continue;
    }
    ASSERT_EQ(r->type, type) << t.name;
    ASSERT_EQ(t.type, GgmlType::kF32);
    auto q = quantize(type, reinterpret_cast<const float*>(t.data), t.n_elements());
    ASSERT_TRUE(q.ok()) << q.status().to_string();
    ASSERT_EQ(q->size(), r->bytes) << t.name;
    size_t first_diff = q->size();
    for (size_t i = 0; i < q->size(); ++i) {
      if ((*q)[i] != r->data[i]) {
        first_diff = i;
        break;
      }
    }
    EXPECT_EQ(first_diff, q->size()) << t.name << " (" << suffix << ") differs first at byte "
                                     << first_diff;
    ++checked;
  }
  EXPECT_EQ(checked, 16);  // 2 layers × 7 matrices + token_embd + output
}

INSTANTIATE_TEST_SUITE_P(Fixtures, QuantizerMatchesLlamaQuantize,
                         ::testing::Values("f16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1"),
                         [](const auto& info) { return std::string(info.param); });

TEST(QuantizerMatchesLlamaQuantize, DequantizedF16EqualsTheF32SourceWithinHalfPrecision) {
  HANGAR_REQUIRE_FIXTURES();
  auto src = GgufFile::open(fixtures + "/models/llama-spm-f32.gguf");
  auto ref = GgufFile::open(fixtures + "/models/llama-spm-f16.gguf");
  ASSERT_TRUE(src.ok() && ref.ok());
  const TensorInfo* a = (*src)->find_tensor("blk.0.attn_q.weight");
  const TensorInfo* b = (*ref)->find_tensor("blk.0.attn_q.weight");
  ASSERT_TRUE(a && b);
  std::vector<float> y(static_cast<size_t>(b->n_elements()));
  ASSERT_TRUE(dequantize(GgmlType::kF16, b->data, y.data(), b->n_elements()).ok());
  const float* x = reinterpret_cast<const float*>(a->data);
  for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], x[i], std::fabs(x[i]) * 1e-3 + 1e-7);
}

}  // namespace
}  // namespace hangar::gguf
