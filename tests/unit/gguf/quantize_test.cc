// The reference conversions: F16/BF16 rounding against their definitions, and quantize →
// dequantize round trips within each type's error bound at odd sizes.
#include "gguf/quantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

namespace hangar::gguf {
namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(Fp16, ConvertsExactValuesExactly) {
  EXPECT_EQ(fp32_to_fp16(0.0f), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xC000);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::infinity()), 0x7C00);
}

TEST(Fp16, RoundsToNearestEvenAndOverflowsToInfinity) {
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to the even mantissa (1.0).
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  // 1 + 3·2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even): rounds up.
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3C01);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);  // halfway to 2^16 rounds to infinity
  EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // tie between 0 and 1 ulp: even
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(fp32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 ulp ties to 2
}

TEST(Fp16, NanStaysNanAndEveryHalfRoundTrips) {
  const uint16_t h = fp32_to_fp16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(h & 0x7C00, 0x7C00);
  EXPECT_NE(h & 0x03FF, 0);
  for (uint32_t v = 0; v < 0x10000; ++v) {
    const uint16_t x = static_cast<uint16_t>(v);
    if ((x & 0x7C00) == 0x7C00 && (x & 0x3FF) != 0) continue;  // NaNs
    ASSERT_EQ(fp32_to_fp16(fp16_to_fp32(x)), x) << "half bits " << v;
  }
}

// BF16 by its definition: round the float's bits to nearest even at bit 16; NaN stays NaN.
uint16_t bf16_by_definition(float f) {
  const uint32_t u = bits(f);
  const uint32_t upper = u >> 16, lower = u & 0xFFFF;
  if (lower > 0x8000 || (lower == 0x8000 && (upper & 1))) return static_cast<uint16_t>(upper + 1);
  return static_cast<uint16_t>(upper);
}

TEST(Bf16, MatchesRoundToNearestEvenDefinition) {
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) {
    const float f = from_bits(rng());
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_bf16(f), bf16_by_definition(f)) << "float bits " << bits(f);
  }
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3F808000)), 0x3F80);  // tie, even stays
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3F818000)), 0x3F82);  // tie, odd rounds up
  EXPECT_EQ(fp32_to_bf16(from_bits(0x7F7FFFFF)), 0x7F80);  // max float rounds to infinity
}

TEST(Bf16, NanStaysNan) {
  for (uint32_t payload : {0x7FC00000u, 0x7F800001u, 0xFF800100u, 0x7FFFFFFFu}) {
    const uint16_t h = fp32_to_bf16(from_bits(payload));
    EXPECT_TRUE(std::isnan(bf16_to_fp32(h))) << payload;
    EXPECT_EQ(h & 0x8000, (payload >> 16) & 0x8000);
  }
}

struct RoundTripCase {
  GgmlType type;
  double max_error_per_range;  // allowed |x - x'| as a fraction of the block's max |x|
};

void PrintTo(const RoundTripCase& c, std::ostream* os) { *os << type_traits(c.type).name; }

class QuantizeRoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(QuantizeRoundTrip, DequantizesWithinTheTypesErrorBoundAtOddSizes) {
  const RoundTripCase c = GetParam();
  const int64_t block = type_traits(c.type).block_size;
  for (int64_t blocks : {1, 3, 7, 33}) {
    const int64_t n = blocks * block + (block == 1 ? 5 : 0);  // odd element counts for F16/BF16
    std::mt19937 rng(static_cast<unsigned>(n));
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = dist(rng);
    if (n > 40) x[40] = 0.0f;
    auto q = quantize(c.type, x.data(), n);
    ASSERT_TRUE(q.ok()) << q.status().to_string();
    ASSERT_EQ(q->size(), *row_bytes(c.type, n));
    std::vector<float> y(static_cast<size_t>(n));
    ASSERT_TRUE(dequantize(c.type, q->data(), y.data(), n).ok());
    const int64_t group = block == 1 ? n : block;
    for (int64_t b = 0; b < n; b += group) {
      float amax = 0;
      for (int64_t j = b; j < b + group && j < n; ++j) amax = std::max(amax, std::fabs(x[j]));
      for (int64_t j = b; j < b + group && j < n; ++j) {
        ASSERT_NEAR(y[j], x[j], c.max_error_per_range * amax + 1e-6)
            << type_traits(c.type).name << " n=" << n << " j=" << j;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllTypes, QuantizeRoundTrip,
    ::testing::Values(RoundTripCase{GgmlType::kF32, 0.0}, RoundTripCase{GgmlType::kF16, 1e-3},
                      RoundTripCase{GgmlType::kBF16, 8e-3},
                      RoundTripCase{GgmlType::kQ8_0, 1.0 / 127 / 2 + 1e-3},
                      RoundTripCase{GgmlType::kQ4_0, 1.0 / 8 + 1e-3},
                      RoundTripCase{GgmlType::kQ4_1, 2.0 / 15 / 2 + 1e-3},
                      RoundTripCase{GgmlType::kQ5_0, 1.0 / 16 + 1e-3},
                      RoundTripCase{GgmlType::kQ5_1, 2.0 / 31 / 2 + 1e-3},
                      // K-quants: 6-bit group scales and mins add to the half step; Q6_K
                      // maps a group's largest magnitude to -32, so the other sign may clip
                      // at 31.
                      RoundTripCase{GgmlType::kQ4_K, 2.0 / 15 / 2 + 0.04},
                      RoundTripCase{GgmlType::kQ6_K, 1.0 / 32 + 0.01}),
    [](const auto& info) { return std::string(type_traits(info.param.type).name); });

TEST(Quantize, RejectsACountThatIsNotAWholeNumberOfBlocks) {
  std::vector<float> x(33, 1.0f);
  auto q = quantize(GgmlType::kQ8_0, x.data(), 33);
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.status().message().find("33"), std::string::npos);
}

TEST(Quantize, ReportsOtherKQuantsAsUnimplemented) {
  std::vector<float> x(256, 1.0f);
  auto q = quantize(GgmlType::kQ5_K, x.data(), 256);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), StatusCode::kUnimplemented);
}

TEST(Quantize, AllZeroBlockQuantizesToZeros) {
  std::vector<float> x(32, 0.0f), y(32, 1.0f);
  for (GgmlType t : {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0,
                     GgmlType::kQ5_1}) {
    auto q = quantize(t, x.data(), 32);
    ASSERT_TRUE(q.ok());
    ASSERT_TRUE(dequantize(t, q->data(), y.data(), 32).ok());
    for (float v : y) EXPECT_EQ(v, 0.0f) << type_traits(t).name;
  }
  std::vector<float> xk(256, 0.0f), yk(256, 1.0f);
  for (GgmlType t : {GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    auto q = quantize(t, xk.data(), 256);
    ASSERT_TRUE(q.ok());
    ASSERT_TRUE(dequantize(t, q->data(), yk.data(), 256).ok());
    for (float v : yk) EXPECT_EQ(v, 0.0f) << type_traits(t).name;
  }
}

TEST(Quantize, KQuantsKeepASuperBlocksLargestValueClose) {
  // One large value per super-block sets the scales; it must come back within its group's step.
  std::vector<float> x(512);
  std::mt19937 rng(9);
  std::normal_distribution<float> dist(0.0f, 0.1f);
  for (float& v : x) v = dist(rng);
  x[77] = 5.0f;
  x[300] = -5.0f;
  for (GgmlType t : {GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    auto q = quantize(t, x.data(), 512);
    ASSERT_TRUE(q.ok());
    std::vector<float> y(512);
    ASSERT_TRUE(dequantize(t, q->data(), y.data(), 512).ok());
    EXPECT_NEAR(y[77], 5.0f, 0.2f) << type_traits(t).name;
    EXPECT_NEAR(y[300], -5.0f, 0.2f) << type_traits(t).name;
  }
}

}  // namespace
}  // namespace hangar::gguf
