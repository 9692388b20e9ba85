// The batched matmul kernels (gemm.h): every instruction set gives the scalar reference's bits,
// a (row, token) result does not depend on the rows and tokens computed with it, and the result
// agrees with the per-row dot product.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/cpu_features.h"
#include "engine/gemm.h"
#include "engine/vec_dot.h"
#include "gguf/quantize.h"

namespace hangar::engine {
namespace {

using gguf::GgmlType;

std::vector<float> random_floats(int64_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

struct Case {
  GgmlType type;
  GemmFn (*gemm_for)(Isa);
};

std::vector<Isa> isas_here() {
  std::vector<Isa> v = {Isa::kScalar};
  if (cpu_features().avx2) v.push_back(Isa::kAvx2);
  if (cpu_features().avx512) v.push_back(Isa::kAvx512);
  return v;
}

// Every ISA with a kernel for `c.type` gives the scalar reference's bits for each (row, token)
// whatever the batch, the same bits for that pair alone, and the per-row dot product up to
// float summation order. 37 rows: two full 16-row tiles and a ragged one.
void check_against_reference(const Case& c, const std::vector<int64_t>& ns,
                             const std::vector<int>& token_counts, uint32_t weight_seed,
                             uint32_t act_seed) {
  const VecDot& k = *find_vec_dot(c.type);
  ASSERT_NE(k.gemm, nullptr);
  ASSERT_NE(k.gemm_ref, nullptr);
  for (const int64_t n : ns) {
    const int rows = 37;
    const auto wf = random_floats(n * rows, weight_seed + static_cast<uint32_t>(n), 0.5f);
    auto wq = gguf::quantize(c.type, wf.data(), n * rows);
    ASSERT_TRUE(wq.ok());
    const size_t w_stride = k.weight_row_bytes(n);
    for (const int tokens : token_counts) {
      const auto af = random_floats(n * tokens, act_seed + static_cast<uint32_t>(tokens), 2.0f);
      const size_t a_stride = k.act_row_bytes(n);
      std::vector<uint8_t> act(a_stride * tokens);
      for (int t = 0; t < tokens; ++t) k.from_float(af.data() + t * n, act.data() + t * a_stride, n);
      std::vector<float> ref(static_cast<size_t>(rows) * tokens);
      k.gemm_ref(n, wq->data(), w_stride, rows, act.data(), a_stride, tokens, ref.data(), rows);
      for (const Isa isa : isas_here()) {
        const GemmFn fn = c.gemm_for(isa);
        if (!fn) continue;
        std::vector<float> out(ref.size(), -1.0f);
        fn(n, wq->data(), w_stride, rows, act.data(), a_stride, tokens, out.data(), rows);
        for (int t = 0; t < tokens; ++t) {
          for (int r = 0; r < rows; ++r) {
            const float got = out[t * rows + r];
            const float want = ref[t * rows + r];
            ASSERT_EQ(std::memcmp(&got, &want, 4), 0)
                << "type " << static_cast<int>(c.type) << " isa " << static_cast<int>(isa) << " n " << n
                << " tokens " << tokens << " row " << r << " token " << t << ": " << got << " vs " << want;
            // The same pair alone (one row, one token) gives the same bits.
            float alone = 0.0f;
            fn(n, wq->data() + r * w_stride, w_stride, 1, act.data() + t * a_stride, a_stride, 1, &alone, 1);
            ASSERT_EQ(std::memcmp(&alone, &want, 4), 0) << "row " << r << " token " << t;
            // And it is the dot product (up to float summation order).
            const float dot = k.dot_ref(n, wq->data() + r * w_stride, act.data() + t * a_stride);
            EXPECT_NEAR(got, dot, 1e-4f * (1.0f + std::fabs(dot)));
          }
        }
      }
    }
  }
}

TEST(GemmTest, EveryIsaMatchesTheScalarReferenceBitForBitWhateverTheBatch) {
  for (const Case c : {Case{GgmlType::kQ4_0, gemm_q4_0_for}, Case{GgmlType::kQ8_0, gemm_q8_0_for}}) {
    // Every ISA has a Q4_0/Q8_0 kernel.
    for (const Isa isa : isas_here()) ASSERT_NE(c.gemm_for(isa), nullptr);
    // 16480 = 515 blocks: the 1-3 token paths keep at most 512 blocks' activation sums at once.
    check_against_reference(c, {32, 1024, 2080, 16480}, {1, 2, 3, 4, 6, 7, 9}, 7, 99);
  }
}

// The K-quant kernels: 16-row groups straight from the weights and the tiled path for 4+ tokens,
// ragged rows included.
TEST(GemmTest, KquantKernelsMatchTheScalarReferenceBitForBitWhateverTheBatch) {
  for (const Case c : {Case{GgmlType::kQ4_K, gemm_q4_k_for}, Case{GgmlType::kQ6_K, gemm_q6_k_for}}) {
    check_against_reference(c, {256, 256 * 5}, {1, 2, 3, 4, 6, 9}, 11, 3);
  }
}

TEST(GemmTest, TheTableUsesTheBestKernelTheCpuHas) {
  EXPECT_EQ(find_vec_dot(GgmlType::kQ4_0)->gemm, gemm_q4_0_for(best_isa()));
  EXPECT_EQ(find_vec_dot(GgmlType::kQ8_0)->gemm, gemm_q8_0_for(best_isa()));
  EXPECT_EQ(find_vec_dot(GgmlType::kQ8_0)->gemm_ref, gemm_q8_0_for(Isa::kScalar));
  EXPECT_EQ(find_vec_dot(GgmlType::kQ4_K)->gemm, gemm_q4_k_for(best_isa()));
  EXPECT_EQ(find_vec_dot(GgmlType::kQ4_K)->gemm_ref, gemm_q4_k_for(Isa::kScalar));
  EXPECT_EQ(find_vec_dot(GgmlType::kQ6_K)->gemm, gemm_q6_k_for(best_isa()));
  EXPECT_EQ(find_vec_dot(GgmlType::kQ6_K)->gemm_ref, gemm_q6_k_for(Isa::kScalar));
}

}  // namespace
}  // namespace hangar::engine
