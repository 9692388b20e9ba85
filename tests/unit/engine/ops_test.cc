#include "engine/ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/fp16.h"

namespace hangar::engine {
namespace {

TEST(OpsTest, RmsNormOfConstantVectorIsTheWeight) {
  std::vector<float> x(33, 3.0f), w(33), y(33);
  for (int i = 0; i < 33; ++i) w[i] = 0.5f + i;
  rms_norm(x.data(), w.data(), y.data(), 33, 0.0f);
  for (int i = 0; i < 33; ++i) EXPECT_FLOAT_EQ(y[i], w[i]);
}

TEST(OpsTest, RmsNormGivesUnitRootMeanSquare) {
  std::vector<float> x = {1, -2, 3, -4, 5};
  rms_norm(x.data(), nullptr, x.data(), 5, 1e-6f);
  double s = 0;
  for (float v : x) s += v * v;
  EXPECT_NEAR(s / 5, 1.0, 1e-5);
}

TEST(OpsTest, RopeAtPositionZeroIsIdentity) {
  std::vector<float> cs(16);
  rope_table(0.0f, 16, 10000.0f, 1.0f, nullptr, cs.data());
  std::vector<float> x(16);
  for (int i = 0; i < 16; ++i) x[i] = i + 1.0f;
  auto y = x;
  rope_apply(y.data(), 16, cs.data(), RopeMode::kNormal);
  EXPECT_EQ(x, y);
  rope_apply(y.data(), 16, cs.data(), RopeMode::kNeox);
  EXPECT_EQ(x, y);
}

TEST(OpsTest, RopeRotatesTheRightPairsByPositionTimesFrequency) {
  const int n_rot = 8;
  std::vector<float> cs(n_rot);
  const float factors[4] = {1, 1, 2, 4};
  rope_table(3.0f, n_rot, 100.0f, 1.0f, factors, cs.data());
  for (int i = 0; i < n_rot / 2; ++i) {
    const double theta = 3.0 * std::pow(100.0, -2.0 * i / n_rot) / factors[i];
    EXPECT_NEAR(cs[2 * i], std::cos(theta), 1e-5);
    EXPECT_NEAR(cs[2 * i + 1], std::sin(theta), 1e-5);
  }
  // Normal mode pairs (0,1): a unit vector on dim 0 rotates into dims 0 and 1.
  std::vector<float> x(n_rot + 2, 0.0f);
  x[0] = 1.0f;
  x[n_rot] = 7.0f;  // beyond n_rot: untouched
  rope_apply(x.data(), n_rot, cs.data(), RopeMode::kNormal);
  EXPECT_FLOAT_EQ(x[0], cs[0]);
  EXPECT_FLOAT_EQ(x[1], cs[1]);
  EXPECT_EQ(x[n_rot], 7.0f);
  // NEOX pairs (0, n_rot/2).
  std::vector<float> z(n_rot, 0.0f);
  z[0] = 1.0f;
  rope_apply(z.data(), n_rot, cs.data(), RopeMode::kNeox);
  EXPECT_FLOAT_EQ(z[0], cs[0]);
  EXPECT_FLOAT_EQ(z[n_rot / 2], cs[1]);
  EXPECT_EQ(z[1], 0.0f);
}

TEST(OpsTest, SoftmaxSumsToOneAndKeepsOrder) {
  std::vector<float> x = {1.0f, 3.0f, -2.0f, 3.0f, 1000.0f};
  softmax(x.data(), 4);
  EXPECT_NEAR(x[0] + x[1] + x[2] + x[3], 1.0, 1e-6);
  EXPECT_GT(x[1], x[0]);
  EXPECT_FLOAT_EQ(x[1], x[3]);
  EXPECT_EQ(x[4], 1000.0f);
}

TEST(OpsTest, SwigluIsSiluTimesUp) {
  const float g[3] = {0.0f, 2.0f, -3.0f};
  const float u[3] = {5.0f, 0.5f, 2.0f};
  float y[3];
  swiglu(g, u, y, 3);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(y[i], g[i] / (1 + std::exp(-g[i])) * u[i], 1e-6);
}

// Over the whole range (and the values around the cut-offs, infinities and NaN): within 1e-6 of
// silu with the library's exp, and the same bits whether an element is computed in a long
// vectorized run or alone (the scalar tail).
TEST(OpsTest, SwigluIsAccurateAndTheSameOnEveryPath) {
  std::vector<float> g;
  for (float x = -120.0f; x <= 120.0f; x += 0.0371f) g.push_back(x);
  for (float x : {-88.5f, -88.0f, -87.0f, -86.99f, 86.99f, 87.0f, 87.01f, 88.0f, 88.5f, 0.0f, -0.0f,
                  1e-30f, -1e-30f, INFINITY, -INFINITY, NAN}) {
    g.push_back(x);
  }
  std::vector<float> u(g.size()), y(g.size());
  for (size_t i = 0; i < g.size(); ++i) u[i] = 0.25f + static_cast<float>(i % 7);
  swiglu(g.data(), u.data(), y.data(), static_cast<int64_t>(g.size()));
  for (size_t i = 0; i < g.size(); ++i) {
    const float x = g[i];
    float alone;
    swiglu(&g[i], &u[i], &alone, 1);
    EXPECT_EQ(std::memcmp(&alone, &y[i], 4), 0) << "x " << x;
    if (std::isnan(x)) {
      EXPECT_TRUE(std::isnan(y[i]));
      continue;
    }
    const double want = static_cast<double>(x) / (1.0 + std::exp(-static_cast<double>(x))) * u[i];
    if (std::isinf(x)) {  // -inf / inf is NaN, as with the library's exp
      if (x > 0) {
        EXPECT_EQ(y[i], INFINITY);
      }
      continue;
    }
    EXPECT_NEAR(y[i], want, 1e-6 * (1.0 + std::fabs(want))) << "x " << x;
  }
}

TEST(OpsTest, AttentionMatchesSoftmaxWeightedValuesAndSkipsInvalid) {
  const int dk = 24, dv = 20, n = 37;  // odd sizes exercise the scalar tails
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  std::vector<float> q(dk);
  for (auto& v : q) v = dist(rng);
  std::vector<uint16_t> k(n * dk), v(n * dv);
  for (auto& h : k) h = float_to_half(dist(rng));
  for (auto& h : v) h = float_to_half(dist(rng));
  std::vector<uint8_t> valid(n, 1);
  valid[5] = 0;
  valid[20] = 0;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dk));
  std::vector<uint16_t> scratch(dk + dv);
  std::vector<float> out(dv);
  attention_row(q.data(), k.data(), dk, v.data(), dv, valid.data(), n, dk, dv, scale,
                scratch.data(), out.data());
  std::vector<double> s(n, -INFINITY);
  double mx = -INFINITY;
  for (int j = 0; j < n; ++j) {
    if (!valid[j]) continue;
    double d = 0;
    for (int i = 0; i < dk; ++i) d += half_to_float(float_to_half(q[i])) * half_to_float(k[j * dk + i]);
    s[j] = d * scale;
    mx = std::max(mx, s[j]);
  }
  double sum = 0;
  for (int j = 0; j < n; ++j) sum += valid[j] ? std::exp(s[j] - mx) : 0.0;
  for (int i = 0; i < dv; ++i) {
    double o = 0;
    for (int j = 0; j < n; ++j) {
      if (valid[j]) o += std::exp(s[j] - mx) / sum * half_to_float(v[j * dv + i]);
    }
    EXPECT_NEAR(out[i], o, 5e-3) << i;  // the F16 accumulator rounds at every step
  }
}

TEST(OpsTest, AttentionOverOnePositionReturnsItsValue) {
  const float q[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<uint16_t> k(8, float_to_half(0.25f)), v(8);
  for (int i = 0; i < 8; ++i) v[i] = float_to_half(i - 3.5f);
  const uint8_t valid[1] = {1};
  uint16_t scratch[16];
  float out[8];
  attention_row(q, k.data(), 8, v.data(), 8, valid, 1, 8, 8, 0.3f, scratch, out);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(out[i], i - 3.5f);
}

TEST(OpsTest, TiledAttentionMatchesExactSoftmaxInF32AndSkipsInvalidTiles) {
  // 200 positions: three full tiles of 64 and a partial one; the second tile entirely invalid.
  const int dk = 32, dv = 16, n = 200;
  std::mt19937 rng(2);
  std::normal_distribution<float> dist;
  std::vector<float> q(dk);
  for (auto& x : q) x = 2.0f * dist(rng);
  std::vector<uint16_t> k(n * dk), v(n * dv);
  for (auto& h : k) h = float_to_half(dist(rng));
  for (auto& h : v) h = float_to_half(dist(rng));
  std::vector<uint8_t> valid(n, 1);
  for (int j = 64; j < 128; ++j) valid[j] = 0;
  valid[3] = 0;
  valid[199] = 0;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dk));
  std::vector<float> out(dv);
  attention_row_tiled(q.data(), k.data(), dk, v.data(), dv, valid.data(), n, dk, dv, scale,
                      out.data());
  // Exact reference in double with the unrounded F32 q (the tiled path keeps q in F32).
  std::vector<double> s(n, -INFINITY);
  double mx = -INFINITY;
  for (int j = 0; j < n; ++j) {
    if (!valid[j]) continue;
    double d = 0;
    for (int i = 0; i < dk; ++i) d += static_cast<double>(q[i]) * half_to_float(k[j * dk + i]);
    s[j] = d * scale;
    mx = std::max(mx, s[j]);
  }
  double sum = 0;
  for (int j = 0; j < n; ++j) sum += valid[j] ? std::exp(s[j] - mx) : 0.0;
  for (int i = 0; i < dv; ++i) {
    double o = 0;
    for (int j = 0; j < n; ++j) {
      if (valid[j]) o += std::exp(s[j] - mx) / sum * half_to_float(v[j * dv + i]);
    }
    EXPECT_NEAR(out[i], o, 2e-5) << i;  // F32 accumulation: far tighter than the F16 path
  }
}

TEST(OpsTest, TiledAttentionSimdIsBitIdenticalToItsScalarReference) {
  // Odd cell counts leave partial groups of 8; dk = 20 takes the all-scalar dot path.
  for (int dk : {64, 20}) {
    const int dv = 32;
    for (int n : {1, 7, 64, 131}) {
      std::mt19937 rng(static_cast<unsigned>(3 + n + dk));
      std::normal_distribution<float> dist;
      std::vector<float> q(dk);
      for (auto& x : q) x = dist(rng);
      std::vector<uint16_t> k(n * dk), v(n * dv);
      for (auto& h : k) h = float_to_half(dist(rng));
      for (auto& h : v) h = float_to_half(dist(rng));
      std::vector<uint8_t> valid(n, 1);
      valid[n / 2] = 0;
      std::vector<float> a(dv), b(dv);
      attention_row_tiled(q.data(), k.data(), dk, v.data(), dv, valid.data(), n, dk, dv, 0.125f,
                          a.data());
      attention_row_tiled_ref(q.data(), k.data(), dk, v.data(), dv, valid.data(), n, dk, dv, 0.125f,
                              b.data());
      EXPECT_EQ(0, std::memcmp(a.data(), b.data(), dv * sizeof(float)))
          << "dk " << dk << " n " << n;
    }
  }
}

TEST(OpsTest, GroupedAttentionGivesEachHeadTheBitsOfItsOwnRow) {
  // Heads sharing one KV head, computed together, against one attention_row per head; cells
  // that are invalid are skipped by both.
  const int dk = 64, dv = 64, n = 37;
  std::mt19937 rng(5);
  std::normal_distribution<float> dist;
  std::vector<uint16_t> k(n * dk), v(n * dv);
  for (auto& h : k) h = float_to_half(dist(rng));
  for (auto& h : v) h = float_to_half(dist(rng));
  std::vector<uint8_t> valid(n, 1);
  valid[3] = valid[20] = 0;
  for (int n_q : {1, 3, kAttentionMaxRows}) {
    std::vector<float> q(n_q * dk);
    for (auto& x : q) x = 2.0f * dist(rng);
    std::vector<float> grouped(n_q * dv, -1.0f);
    attention_rows(q.data(), dk, n_q, k.data(), dk, v.data(), dv, valid.data(), n, dk, dv, 0.125f,
                   grouped.data(), dv);
    for (int r = 0; r < n_q; ++r) {
      std::vector<uint16_t> scratch(dk + dv);
      std::vector<float> one(dv);
      attention_row(q.data() + r * dk, k.data(), dk, v.data(), dv, valid.data(), n, dk, dv, 0.125f,
                    scratch.data(), one.data());
      EXPECT_EQ(0, std::memcmp(one.data(), grouped.data() + r * dv, dv * sizeof(float)))
          << "n_q " << n_q << " row " << r;
    }
  }
}

TEST(OpsTest, TiledAttentionOnlyForSixtyFourRowsAndHeadsOfWholeSimdWidth) {
  EXPECT_FALSE(uses_tiled_attention(63, 64));
  EXPECT_TRUE(uses_tiled_attention(64, 64));
  EXPECT_TRUE(uses_tiled_attention(200, 16));
  EXPECT_FALSE(uses_tiled_attention(200, 8));  // llama3-bpe's head_dim: one-chunk path
  EXPECT_FALSE(uses_tiled_attention(200, 24));
}

}  // namespace
}  // namespace hangar::engine
