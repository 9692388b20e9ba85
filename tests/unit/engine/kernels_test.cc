// Every matmul kernel against its scalar reference at odd sizes; activation quantizers
// bit-exact; dequantizers against the GGUF library's.
#include <gtest/gtest.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/fp16.h"
#include "engine/quant_blocks.h"
#include "engine/vec_dot.h"
#include "gguf/quantize.h"

namespace hangar::engine {
namespace {

using gguf::GgmlType;

std::vector<float> random_floats(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// A weight row of `type` made by the GGUF library's reference quantizer.
std::vector<uint8_t> weight_row(GgmlType type, const std::vector<float>& x) {
  auto q = gguf::quantize(type, x.data(), static_cast<int64_t>(x.size()));
  EXPECT_TRUE(q.ok()) << q.status().to_string();
  return q.ok() ? *q : std::vector<uint8_t>();
}

const GgmlType kAllTypes[] = {GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16,
                              GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_1,
                              GgmlType::kQ5_0, GgmlType::kQ5_1};

std::vector<int64_t> sizes_for(const VecDot& k) {
  if (k.block == 1) return {1, 3, 7, 31, 33, 65, 257, 1000};
  return {32, 96, 160, 288, 32 * 33, 4096};
}

TEST(KernelsTest, EveryComputedTypeHasAKernel) {
  for (GgmlType t : kAllTypes) {
    const VecDot* k = find_vec_dot(t);
    ASSERT_NE(k, nullptr) << static_cast<int>(t);
    EXPECT_EQ(k->weight_type, t);
  }
  EXPECT_EQ(find_vec_dot(GgmlType::kIQ2_XXS), nullptr);
}

TEST(KernelsTest, SimdDotMatchesScalarReferenceAtOddSizes) {
  for (GgmlType t : kAllTypes) {
    const VecDot& k = *find_vec_dot(t);
    for (int64_t n : sizes_for(k)) {
      const auto wf = random_floats(n, 11 + n, 0.5f);
      const auto af = random_floats(n, 29 + n, 2.0f);
      const auto w = weight_row(t, wf);
      ASSERT_EQ(w.size(), k.weight_row_bytes(n));
      std::vector<uint8_t> a(k.act_row_bytes(n));
      k.from_float(af.data(), a.data(), n);
      const float simd = k.dot(n, w.data(), a.data());
      const float ref = k.dot_ref(n, w.data(), a.data());
      double mag = 0.0;
      for (int64_t i = 0; i < n; ++i) mag += std::fabs(wf[i] * af[i]);
      EXPECT_NEAR(simd, ref, 1e-5 * mag + 1e-6) << "type " << static_cast<int>(t) << " n " << n;
    }
  }
}

TEST(KernelsTest, ReferenceDotEqualsDotOfDequantizedRows) {
  // Ties the block layouts: dot_ref(w, a) must equal sum(deq(w) * deq(a)).
  for (GgmlType t : kAllTypes) {
    const VecDot& k = *find_vec_dot(t);
    const VecDot& act = *find_vec_dot(k.act_type == GgmlType::kQ8_1 ? GgmlType::kQ8_0 : k.act_type);
    for (int64_t n : sizes_for(k)) {
      const auto wf = random_floats(n, 5 + n);
      const auto af = random_floats(n, 7 + n);
      const auto w = weight_row(t, wf);
      std::vector<uint8_t> a(k.act_row_bytes(n));
      k.from_float_ref(af.data(), a.data(), n);
      std::vector<float> wd(n), ad(n);
      k.to_float(w.data(), wd.data(), n);
      if (k.act_type == GgmlType::kQ8_1) {
        const auto* blocks = reinterpret_cast<const BlockQ8_1*>(a.data());
        for (int64_t i = 0; i < n; ++i) {
          ad[i] = blocks[i / kQK].qs[i % kQK] * half_to_float(blocks[i / kQK].d);
        }
      } else {
        act.to_float(a.data(), ad.data(), n);
      }
      double expect = 0.0, mag = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        expect += static_cast<double>(wd[i]) * ad[i];
        mag += std::fabs(static_cast<double>(wd[i]) * ad[i]);
      }
      // Q4_1/Q5_1 use the F16-rounded s = d * sum(qs), so allow its rounding.
      EXPECT_NEAR(k.dot_ref(n, w.data(), a.data()), expect, 2e-3 * mag + 1e-5)
          << "type " << static_cast<int>(t) << " n " << n;
    }
  }
}

TEST(KernelsTest, DequantizeMatchesGgufLibrary) {
  for (GgmlType t : kAllTypes) {
    const VecDot& k = *find_vec_dot(t);
    const int64_t n = k.block == 1 ? 77 : 32 * 7;
    const auto w = weight_row(t, random_floats(n, 3));
    std::vector<float> ours(n), theirs(n);
    k.to_float(w.data(), ours.data(), n);
    ASSERT_TRUE(gguf::dequantize(t, w.data(), theirs.data(), n).ok());
    EXPECT_EQ(0, std::memcmp(ours.data(), theirs.data(), n * 4)) << static_cast<int>(t);
  }
}

TEST(KernelsTest, ActivationConversionIsBitExactWithReference) {
  for (GgmlType t : kAllTypes) {
    const VecDot& k = *find_vec_dot(t);
    for (int64_t n : sizes_for(k)) {
      auto x = random_floats(n, 100 + n, 3.0f);
      if (n >= 64) {
        for (int j = 0; j < 32; ++j) x[32 + j] = 0.0f;  // an all-zero block
      }
      std::vector<uint8_t> a(k.act_row_bytes(n)), b(k.act_row_bytes(n));
      k.from_float(x.data(), a.data(), n);
      k.from_float_ref(x.data(), b.data(), n);
      EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size())) << static_cast<int>(t) << " n " << n;
    }
  }
}

TEST(KernelsTest, Q8ActivationRoundsHalfToEvenWithScale127OverAmax) {
  // amax = 127 gives multiplier 1, so x is rounded directly: ties go to the even integer, as
  // ggml's x86 quantize_row_q8_0 (_mm256_round_ps) does.
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f;
  x[1] = 2.5f;
  x[2] = 3.5f;
  x[3] = -2.5f;
  x[4] = -0.5f;
  x[5] = 1.4f;
  for (auto quant : {quantize_row_q8_0, quantize_row_q8_0_ref}) {
    BlockQ8_0 b;
    quant(x.data(), &b, 32);
    EXPECT_EQ(half_to_float(b.d), 1.0f);
    EXPECT_EQ(b.qs[0], 127);
    EXPECT_EQ(b.qs[1], 2);
    EXPECT_EQ(b.qs[2], 4);
    EXPECT_EQ(b.qs[3], -2);
    EXPECT_EQ(b.qs[4], 0);
    EXPECT_EQ(b.qs[5], 1);
  }
  for (auto quant : {quantize_row_q8_1, quantize_row_q8_1_ref}) {
    BlockQ8_1 b;
    quant(x.data(), &b, 32);
    EXPECT_EQ(half_to_float(b.s), 127.0f + 2 + 4 - 2 + 0 + 1);
  }
}

TEST(KernelsTest, HalfConversionRoundsToNearestEven) {
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(half_to_float(0x3c00), 1.0f);
  // 1 + 2^-11 is exactly between 1 and the next half: rounds to even (1.0).
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);
  EXPECT_TRUE(std::isnan(half_to_float(float_to_half(NAN))));
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
  // Results that are half subnormals: 2^-24 is the smallest, 2^-25 ties to even (0), a little
  // more rounds up, 2^-15 is 0x200.
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25) * 1.0001f), 0x0001);
  EXPECT_EQ(float_to_half(-std::ldexp(1.0f, -15)), 0x8200);
  EXPECT_EQ(float_to_half(3e-6f), 0x0032);  // 3e-6 / 2^-24 = 50.33
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("f16c"))) uint16_t half_by_f16c(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
__attribute__((target("f16c"))) float float_by_f16c(uint16_t h) { return _cvtsh_ss(h); }

// Both directions equal the F16C instructions bit for bit (the build is for baseline x86-64,
// so these are the software paths), over every half and a spread of floats that covers every
// exponent, the subnormal range densely.
TEST(KernelsTest, HalfConversionEqualsF16cEverywhere) {
  if (!__builtin_cpu_supports("f16c")) GTEST_SKIP() << "no F16C on this CPU";
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    const float want = float_by_f16c(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << h;
    } else {
      ASSERT_EQ(std::memcmp(&f, &want, 4), 0) << std::hex << h;
    }
  }
  auto check = [](uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, 4);
    const uint16_t got = float_to_half(f), want = half_by_f16c(f);
    if (std::isnan(f)) {
      ASSERT_EQ(got & 0x7c00, 0x7c00) << std::hex << bits;
      ASSERT_NE(got & 0x3ff, 0) << std::hex << bits;
    } else {
      ASSERT_EQ(got, want) << std::hex << "float bits " << bits;
    }
  };
  for (uint64_t bits = 0; bits <= 0xffffffffu; bits += 65521) check(static_cast<uint32_t>(bits));
  for (uint32_t bits = 0x33000000u - 4096; bits < 0x38800000u + 4096; bits += 7) {  // subnormal results
    check(bits);
    check(bits | 0x80000000u);
  }
}
#endif

}  // namespace
}  // namespace hangar::engine
