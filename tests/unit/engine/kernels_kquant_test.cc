// The K-quant and IQ4_XS kernels: every SIMD dot product against its scalar reference, the
// references against dequantized rows, the Q8_K activation quantizer bit-exact with its
// reference and with ggml's rounding, and hand-built blocks that pin each layout.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
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

const GgmlType kKTypes[] = {GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ4_K,
                            GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kIQ4_XS};

std::vector<float> random_floats(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Offsets of the F16 super-block scales in each layout: random bytes there could be inf/NaN.
std::vector<size_t> half_fields(GgmlType t) {
  switch (t) {
    case GgmlType::kQ2_K:
      return {offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin)};
    case GgmlType::kQ3_K:
      return {offsetof(BlockQ3_K, d)};
    case GgmlType::kQ4_K:
      return {offsetof(BlockQ4_K, d), offsetof(BlockQ4_K, dmin)};
    case GgmlType::kQ5_K:
      return {offsetof(BlockQ5_K, d), offsetof(BlockQ5_K, dmin)};
    case GgmlType::kQ6_K:
      return {offsetof(BlockQ6_K, d)};
    case GgmlType::kIQ4_XS:
      return {offsetof(BlockIQ4_XS, d)};
    default:
      return {};
  }
}

// A weight row of n elements: every quant, scale and bit random, the F16 scales finite.
std::vector<uint8_t> random_row(const VecDot& k, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.002f, 0.02f);
  std::vector<uint8_t> row(k.weight_row_bytes(n));
  for (auto& b : row) b = static_cast<uint8_t>(byte(rng));
  for (int64_t b = 0; b < n / k.block; ++b) {
    for (size_t off : half_fields(k.weight_type)) {
      const uint16_t h = float_to_half(scale(rng));
      std::memcpy(row.data() + b * k.weight_block_bytes + off, &h, 2);
    }
  }
  return row;
}

std::vector<float> dequantize_q8_k(const std::vector<uint8_t>& a, int64_t n) {
  const auto* blocks = reinterpret_cast<const BlockQ8_K*>(a.data());
  std::vector<float> out(n);
  for (int64_t i = 0; i < n; ++i) out[i] = blocks[i / kQK_K].d * blocks[i / kQK_K].qs[i % kQK_K];
  return out;
}

const int64_t kSizes[] = {256, 512, 256 * 11, 4096};

TEST(KquantKernelsTest, EveryKquantTypeHasAKernelWithQ8KActivations) {
  for (GgmlType t : kKTypes) {
    const VecDot* k = find_vec_dot(t);
    ASSERT_NE(k, nullptr) << static_cast<int>(t);
    EXPECT_EQ(k->weight_type, t);
    EXPECT_EQ(k->act_type, GgmlType::kQ8_K);
    EXPECT_EQ(k->block, 256);
    EXPECT_EQ(k->weight_block_bytes, gguf::type_traits(t).bytes_per_block);
    EXPECT_EQ(k->act_block_bytes, gguf::type_traits(GgmlType::kQ8_K).bytes_per_block);
  }
}

TEST(KquantKernelsTest, SimdDotMatchesScalarReference) {
  for (GgmlType t : kKTypes) {
    const VecDot& k = *find_vec_dot(t);
    for (int64_t n : kSizes) {
      const auto w = random_row(k, n, 17 + static_cast<uint32_t>(n));
      const auto af = random_floats(n, 31 + static_cast<uint32_t>(n), 2.0f);
      std::vector<uint8_t> a(k.act_row_bytes(n));
      k.from_float(af.data(), a.data(), n);
      std::vector<float> wd(n);
      k.to_float(w.data(), wd.data(), n);
      const auto ad = dequantize_q8_k(a, n);
      double mag = 0.0;
      for (int64_t i = 0; i < n; ++i) mag += std::fabs(static_cast<double>(wd[i]) * ad[i]);
      const float simd = k.dot(n, w.data(), a.data());
      const float ref = k.dot_ref(n, w.data(), a.data());
      EXPECT_NEAR(simd, ref, 1e-5 * mag + 1e-6) << gguf::type_traits(t).name << " n " << n;
    }
  }
}

TEST(KquantKernelsTest, ReferenceDotEqualsDotOfDequantizedRows) {
  // Ties dot_ref to to_float: sum(deq(w) * deq(a)) with deq(a) = d * qs.
  for (GgmlType t : kKTypes) {
    const VecDot& k = *find_vec_dot(t);
    for (int64_t n : kSizes) {
      const auto w = random_row(k, n, 5 + static_cast<uint32_t>(n));
      const auto af = random_floats(n, 7 + static_cast<uint32_t>(n));
      std::vector<uint8_t> a(k.act_row_bytes(n));
      k.from_float_ref(af.data(), a.data(), n);
      std::vector<float> wd(n);
      k.to_float(w.data(), wd.data(), n);
      const auto ad = dequantize_q8_k(a, n);
      double expect = 0.0, mag = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        expect += static_cast<double>(wd[i]) * ad[i];
        mag += std::fabs(static_cast<double>(wd[i]) * ad[i]);
      }
      EXPECT_NEAR(k.dot_ref(n, w.data(), a.data()), expect, 1e-5 * mag + 1e-6)
          << gguf::type_traits(t).name << " n " << n;
    }
  }
}

TEST(KquantKernelsTest, Q8KConversionIsBitExactWithReference) {
  for (int64_t n : kSizes) {
    auto x = random_floats(n, 100 + static_cast<uint32_t>(n), 3.0f);
    if (n >= 512) {
      for (int j = 0; j < 256; ++j) x[256 + j] = 0.0f;  // an all-zero block
    }
    if (n >= 1024) {
      x[600] = -50.0f;  // the same magnitude twice, opposite signs: the first one wins
      x[700] = 50.0f;
    }
    const size_t bytes = static_cast<size_t>(n / kQK_K) * sizeof(BlockQ8_K);
    std::vector<uint8_t> a(bytes, 0xaa), b(bytes, 0x55);
    quantize_row_q8_k(x.data(), a.data(), n);
    quantize_row_q8_k_ref(x.data(), b.data(), n);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), bytes)) << "n " << n;
  }
}

TEST(KquantKernelsTest, Q8KUsesMinus127OverFirstSignedMaxAndRoundsHalfToEven) {
  // max = 127 gives iscale = -1: each element is negated and rounded, ties to even, as ggml's
  // quantize_row_q8_K_ref (nearest_int) does.
  std::vector<float> x(256, 0.0f);
  x[0] = 127.0f;
  x[1] = 2.5f;
  x[2] = 3.5f;
  x[3] = -127.0f;  // same magnitude as x[0], later: does not set the scale
  x[4] = -0.5f;
  x[17] = 1.4f;
  for (auto quant : {quantize_row_q8_k, quantize_row_q8_k_ref}) {
    BlockQ8_K b;
    quant(x.data(), &b, 256);
    EXPECT_EQ(b.d, -1.0f);
    EXPECT_EQ(b.qs[0], -127);
    EXPECT_EQ(b.qs[1], -2);
    EXPECT_EQ(b.qs[2], -4);
    EXPECT_EQ(b.qs[3], 127);
    EXPECT_EQ(b.qs[4], 0);
    EXPECT_EQ(b.qs[17], -1);
    EXPECT_EQ(b.bsums[0], -127 - 2 - 4 + 127);
    EXPECT_EQ(b.bsums[1], -1);
    EXPECT_EQ(b.bsums[2], 0);
  }
  std::vector<float> zeros(256, 0.0f);
  BlockQ8_K z;
  std::memset(&z, 0x7f, sizeof(z));
  quantize_row_q8_k(zeros.data(), &z, 256);
  EXPECT_EQ(z.d, 0.0f);
  EXPECT_EQ(z.qs[255], 0);
  EXPECT_EQ(z.bsums[15], 0);
}

// Hand-built blocks: one element set through the documented bit positions, read back by to_float.
float element(GgmlType t, const void* block, int e) {
  std::vector<float> y(256);
  find_vec_dot(t)->to_float(block, y.data(), 256);
  return y[e];
}

TEST(KquantKernelsTest, Q2KElementComesFromItsTwoBitsScaleAndMin) {
  BlockQ2_K b{};
  b.d = float_to_half(0.5f);
  b.dmin = float_to_half(0.25f);
  // Element 128 + 64 + 5 = 197: half 1, j = 2, l = 5 -> bits 4..5 of qs[32 + 5]; group 12.
  b.qs[37] = 3 << 4;
  b.scales[12] = 2 << 4 | 6;
  EXPECT_EQ(element(GgmlType::kQ2_K, &b, 197), 0.5f * 6 * 3 - 0.25f * 2);
  EXPECT_EQ(element(GgmlType::kQ2_K, &b, 196), -0.25f * 2);
}

TEST(KquantKernelsTest, Q3KElementTakesItsHighBitFromHmask) {
  BlockQ3_K b{};
  b.d = float_to_half(1.0f);
  // All 16 scales 32 + 3 = 35 = 0b100011: low nibble 3 (bytes 0..7, both nibbles), high 2 bits 2
  // (bytes 8..11, every 2-bit field).
  for (int i = 0; i < 8; ++i) b.scales[i] = 0x33;
  for (int i = 8; i < 12; ++i) b.scales[i] = 0xaa;
  // Element 128 + 96 + 7 = 231: half 1, j = 3, l = 7: low bits 6..7 of qs[39], high bit 7 of
  // hmask[7]. With the high bit clear the value is low - 4.
  b.qs[39] = 2 << 6;
  EXPECT_EQ(element(GgmlType::kQ3_K, &b, 231), 3.0f * (2 - 4));
  b.hmask[7] = 1 << 7;
  EXPECT_EQ(element(GgmlType::kQ3_K, &b, 231), 3.0f * 2);
  EXPECT_EQ(element(GgmlType::kQ3_K, &b, 103), 3.0f * -4);  // half 0, j = 3, l = 7: bit 3 clear
}

TEST(KquantKernelsTest, Q4KAndQ5KGroupsUseSixBitScalesAndMins) {
  BlockQ4_K b{};
  b.d = float_to_half(1.0f);
  b.dmin = float_to_half(0.5f);
  // Group 5 (elements 160..191): high nibbles of qs[64..95]. Scale: low 4 bits in scales[9] & 15,
  // high 2 in scales[1] >> 6; min: low 4 in scales[9] >> 4, high 2 in scales[5] >> 6.
  b.scales[9] = 0x7 << 4 | 0x9;
  b.scales[1] = 0x2 << 6;
  b.scales[5] = 0x1 << 6;
  b.qs[64 + 3] = 0xc0;  // element 163 = 12
  const float sc = 0x29, m = 0x17;
  EXPECT_EQ(element(GgmlType::kQ4_K, &b, 163), 1.0f * sc * 12 - 0.5f * m);
  EXPECT_EQ(element(GgmlType::kQ4_K, &b, 3), 0.0f);  // group 0: scale 0 and min 0

  BlockQ5_K c{};
  c.d = b.d;
  c.dmin = b.dmin;
  std::memcpy(c.scales, b.scales, 12);
  c.qs[64 + 3] = 0xc0;
  c.qh[3] = 1 << 5;  // fifth bit of element 3 of group 5
  EXPECT_EQ(element(GgmlType::kQ5_K, &c, 163), 1.0f * sc * (12 + 16) - 0.5f * m);
}

TEST(KquantKernelsTest, Q6KElementJoinsNibbleAndHighBits) {
  BlockQ6_K b{};
  b.d = float_to_half(0.5f);
  for (int g = 0; g < 16; ++g) b.scales[g] = static_cast<int8_t>(g - 8);
  // Element 128 + 64 + 9 = 201: half 1, k = 2, l = 9: high nibble of ql[64 + 9], bits 4..5 of
  // qh[32 + 9]; group 12.
  b.ql[73] = 0x50;
  b.qh[41] = 0x3 << 4;
  EXPECT_EQ(element(GgmlType::kQ6_K, &b, 201), 0.5f * 4 * ((0x5 | 0x30) - 32));
  EXPECT_EQ(element(GgmlType::kQ6_K, &b, 9), 0.5f * -8 * -32);
}

TEST(KquantKernelsTest, Iq4XsElementLooksUpTheCodeBook) {
  BlockIQ4_XS b{};
  b.d = float_to_half(0.5f);
  // Group 3: scale low 4 bits in scales_l[1] >> 4, high 2 bits in scales_h >> 6; 0x25 - 32 = 5.
  b.scales_l[1] = 0x5 << 4;
  b.scales_h = 0x2 << 6;
  b.qs[48 + 2] = 0xf << 4 | 0x1;  // element 96 + 2 -> code 1, element 96 + 18 -> code 15
  EXPECT_EQ(element(GgmlType::kIQ4_XS, &b, 98), 0.5f * 5 * -104);
  EXPECT_EQ(element(GgmlType::kIQ4_XS, &b, 114), 0.5f * 5 * 113);
  EXPECT_EQ(element(GgmlType::kIQ4_XS, &b, 0), 0.5f * -32 * -127);
}

TEST(KquantKernelsTest, DequantizeMatchesGgufLibraryOnItsQ4KAndQ6KRows) {
  // The GGUF library's quantizers (make-model) and the engine read the same layouts.
  for (GgmlType t : {GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    const int64_t n = 256 * 5;
    const auto x = random_floats(n, 41);
    auto w = gguf::quantize(t, x.data(), n);
    ASSERT_TRUE(w.ok()) << w.status().to_string();
    std::vector<float> ours(n), theirs(n);
    find_vec_dot(t)->to_float(w->data(), ours.data(), n);
    ASSERT_TRUE(gguf::dequantize(t, w->data(), theirs.data(), n).ok());
    EXPECT_EQ(0, std::memcmp(ours.data(), theirs.data(), n * sizeof(float)))
        << gguf::type_traits(t).name;
  }
}

}  // namespace
}  // namespace hangar::engine
