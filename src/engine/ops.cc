#include "engine/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/fp16.h"
#include "engine/simd_avx2.h"

namespace hangar::engine {

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  if (w) {
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * scale) * w[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale;
  }
}

void rope_table(float pos, int n_rot, float freq_base, float freq_scale,
                const float* freq_factors, float* cs) {
  const float theta_scale = std::pow(freq_base, -2.0f / static_cast<float>(n_rot));
  float theta = pos;
  for (int i = 0; i < n_rot / 2; ++i) {
    const float ff = freq_factors ? freq_factors[i] : 1.0f;
    const float t = freq_scale * (theta / ff);
    cs[2 * i] = std::cos(t);
    cs[2 * i + 1] = std::sin(t);
    theta *= theta_scale;
  }
}

void rope_apply(float* x, int n_rot, const float* cs, RopeMode mode) {
  const int half = n_rot / 2;
  for (int i = 0; i < half; ++i) {
    const int a = mode == RopeMode::kNormal ? 2 * i : i;
    const int b = mode == RopeMode::kNormal ? 2 * i + 1 : i + half;
    const float c = cs[2 * i];
    const float s = cs[2 * i + 1];
    const float x0 = x[a];
    const float x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
  }
}

namespace {

// exp(x) for SiLU: x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts), e^r by a degree-7
// polynomial (Cephes' expf coefficients), times 2^n put into the exponent bits. Every step is
// one IEEE operation or a fused multiply-add, so the scalar and SIMD versions give the same
// bits (a result never depends on the instruction set or on where a row's tail starts).
// Relative error about 1e-7. Below -87 it is 0, above 88 infinity (SiLU is then -0 or x).
constexpr float kExpMin = -87.0f, kExpMax = 88.0f;
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kExpP[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                            4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

float exp_silu(float x) {
  if (std::isnan(x)) return x;
  if (x > kExpMax) return INFINITY;
  if (x < kExpMin) return 0.0f;
  const float n = std::nearbyint(x * kLog2e);
  float r = std::fma(-n, kLn2Hi, x);
  r = std::fma(-n, kLn2Lo, r);
  float p = kExpP[0];
  for (int i = 1; i < 6; ++i) p = std::fma(p, r, kExpP[i]);
  const float e = std::fma(p, r * r, r) + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return e * scale;
}

void swiglu_ref(const float* g, const float* u, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = g[i];
    y[i] = x / (1.0f + exp_silu(-x)) * u[i];
  }
}

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 __m256 exp_silu_avx2(__m256 x) {
  const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kExpMin)), _mm256_set1_ps(kExpMax));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kExpP[0]);
  for (int i = 1; i < 6; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP[i]));
  const __m256 e = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  __m256 out = _mm256_mul_ps(e, _mm256_castsi256_ps(bits));
  out = _mm256_blendv_ps(out, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, _mm256_set1_ps(kExpMax), _CMP_GT_OQ));
  out = _mm256_blendv_ps(out, _mm256_setzero_ps(), _mm256_cmp_ps(x, _mm256_set1_ps(kExpMin), _CMP_LT_OQ));
  return _mm256_blendv_ps(out, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));  // NaN stays NaN
}

HANGAR_TARGET_AVX2 void swiglu_avx2(const float* g, const float* u, float* y, int64_t n) {
  int64_t i = 0;
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(g + i);
    const __m256 e = exp_silu_avx2(_mm256_xor_ps(x, sign));
    const __m256 silu = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(silu, _mm256_loadu_ps(u + i)));
  }
  swiglu_ref(g + i, u + i, y + i, n - i);
}
#endif

void (*const swiglu_fn)(const float*, const float*, float*, int64_t) = HANGAR_PICK_AVX2(swiglu_avx2, swiglu_ref);

}  // namespace

void swiglu(const float* g, const float* u, float* y, int64_t n) { swiglu_fn(g, u, y, n); }

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::fmax(mx, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

namespace {

// acc[i] = F16(F32(acc[i]) * s)
void scale_f16_ref(uint16_t* acc, int n, float s) {
  for (int i = 0; i < n; ++i) acc[i] = float_to_half(half_to_float(acc[i]) * s);
}

// acc[i] = F16(F32(acc[i]) + F32(v[i]) * s)
void mad_f16_ref(uint16_t* acc, const uint16_t* v, int n, float s) {
  for (int i = 0; i < n; ++i) acc[i] = float_to_half(half_to_float(acc[i]) + half_to_float(v[i]) * s);
}

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 void scale_f16_avx2(uint16_t* acc, int n, float s) {
  int i = 0;
  const __m256 sv = _mm256_set1_ps(s);
  for (; i + 8 <= n; i += 8) {
    __m256 a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(acc + i)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(acc + i),
                     _mm256_cvtps_ph(_mm256_mul_ps(a, sv), _MM_FROUND_TO_NEAREST_INT));
  }
  scale_f16_ref(acc + i, n - i, s);
}

HANGAR_TARGET_AVX2 void mad_f16_avx2(uint16_t* acc, const uint16_t* v, int n, float s) {
  int i = 0;
  const __m256 sv = _mm256_set1_ps(s);
  for (; i + 8 <= n; i += 8) {
    __m256 a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(acc + i)));
    __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(acc + i),
                     _mm256_cvtps_ph(_mm256_fmadd_ps(x, sv, a), _MM_FROUND_TO_NEAREST_INT));
  }
  mad_f16_ref(acc + i, v + i, n - i, s);
}
#endif

void (*const scale_f16)(uint16_t*, int, float) = HANGAR_PICK_AVX2(scale_f16_avx2, scale_f16_ref);
void (*const mad_f16)(uint16_t*, const uint16_t*, int, float) =
    HANGAR_PICK_AVX2(mad_f16_avx2, mad_f16_ref);

}  // namespace

void attention_row(const float* q, const uint16_t* k, int64_t k_stride, const uint16_t* v,
                   int64_t v_stride, const uint8_t* valid, int64_t n_kv, int head_dim_k,
                   int head_dim_v, float scale, uint16_t* scratch, float* out) {
  uint16_t* q16 = scratch;               // [head_dim_k] F16
  uint16_t* acc = scratch + head_dim_k;  // [head_dim_v] F16
  for (int i = 0; i < head_dim_k; ++i) q16[i] = float_to_half(q[i]);
  for (int i = 0; i < head_dim_v; ++i) acc[i] = 0;
  float sum = 0.0f;
  float mx = -INFINITY;
  for (int64_t j = 0; j < n_kv; ++j) {
    if (!valid[j]) continue;
    const float s = dot_f16(head_dim_k, k + j * k_stride, q16) * scale;
    float ms = 1.0f;
    float vs = 1.0f;
    if (s > mx) {
      const float old = mx;
      mx = s;
      ms = std::exp(old - mx);
      scale_f16(acc, head_dim_v, ms);
    } else {
      vs = std::exp(s - mx);
    }
    mad_f16(acc, v + j * v_stride, head_dim_v, vs);
    sum = sum * ms + vs;
  }
  const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
  for (int i = 0; i < head_dim_v; ++i) out[i] = half_to_float(acc[i]) * inv;
}

void attention_rows(const float* q, int64_t q_stride, int n_q, const uint16_t* k, int64_t k_stride,
                    const uint16_t* v, int64_t v_stride, const uint8_t* valid, int64_t n_kv,
                    int head_dim_k, int head_dim_v, float scale, float* out, int64_t out_stride) {
  uint16_t q16[kAttentionMaxRows][kAttentionMaxDim];
  uint16_t acc[kAttentionMaxRows][kAttentionMaxDim];
  float sum[kAttentionMaxRows];
  float mx[kAttentionMaxRows];
  for (int r = 0; r < n_q; ++r) {
    for (int i = 0; i < head_dim_k; ++i) q16[r][i] = float_to_half(q[r * q_stride + i]);
    for (int i = 0; i < head_dim_v; ++i) acc[r][i] = 0;
    sum[r] = 0.0f;
    mx[r] = -INFINITY;
  }
  for (int64_t j = 0; j < n_kv; ++j) {
    if (!valid[j]) continue;
    const uint16_t* kj = k + j * k_stride;
    const uint16_t* vj = v + j * v_stride;
    for (int r = 0; r < n_q; ++r) {
      const float s = dot_f16(head_dim_k, kj, q16[r]) * scale;
      float ms = 1.0f;
      float vs = 1.0f;
      if (s > mx[r]) {
        const float old = mx[r];
        mx[r] = s;
        ms = std::exp(old - mx[r]);
        scale_f16(acc[r], head_dim_v, ms);
      } else {
        vs = std::exp(s - mx[r]);
      }
      mad_f16(acc[r], vj, head_dim_v, vs);
      sum[r] = sum[r] * ms + vs;
    }
  }
  for (int r = 0; r < n_q; ++r) {
    const float inv = sum[r] == 0.0f ? 0.0f : 1.0f / sum[r];
    for (int i = 0; i < head_dim_v; ++i) out[r * out_stride + i] = half_to_float(acc[r][i]) * inv;
  }
}

bool uses_tiled_attention(int rows_of_sequence, int head_dim_v) {
  return rows_of_sequence >= kTiledAttentionMinRows && head_dim_v % 16 == 0;
}

namespace {

// s[j] = the fused multiply-add chain over i of q[i] * F32(k_j[i]), for the n cells of a tile.
void tile_dots_ref(const float* q, const uint16_t* k, int64_t k_stride, int n, int d, float* s) {
  for (int j = 0; j < n; ++j) {
    const uint16_t* kj = k + j * k_stride;
    float acc = 0.0f;
    for (int i = 0; i < d; ++i) acc = std::fma(q[i], half_to_float(kj[i]), acc);
    s[j] = acc;
  }
}

// acc[i] = fma(p, F32(v[i]), acc[i])
void mad_f32_ref(float* acc, const uint16_t* v, int n, float p) {
  for (int i = 0; i < n; ++i) acc[i] = std::fma(p, half_to_float(v[i]), acc[i]);
}

#ifdef HANGAR_AVX2
// r[c] lane i -> r[i] lane c.
HANGAR_TARGET_AVX2 void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// tile_dots_ref with 8 cells per vector: each lane runs the same chain, so the results are
// bit-identical. A last group of fewer than 8 cells runs with zero rows in the missing lanes.
HANGAR_TARGET_AVX2 void tile_dots_avx2(const float* q, const uint16_t* k, int64_t k_stride, int n, int d, float* s) {
  if (d % 8 != 0) {
    tile_dots_ref(q, k, k_stride, n, d, s);
    return;
  }
  for (int j = 0; j < n; j += 8) {
    const int cells = std::min(8, n - j);
    __m256 acc = _mm256_setzero_ps();
    for (int i0 = 0; i0 < d; i0 += 8) {
      __m256 r[8];
      for (int c = 0; c < 8; ++c) {
        const uint16_t* row = k + (j + c) * k_stride + i0;
        r[c] = c < cells ? _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row))) : _mm256_setzero_ps();
      }
      transpose8(r);
      for (int i = 0; i < 8; ++i) acc = _mm256_fmadd_ps(_mm256_set1_ps(q[i0 + i]), r[i], acc);
    }
    if (cells == 8) {
      _mm256_storeu_ps(s + j, acc);
    } else {
      alignas(32) float tmp[8];
      _mm256_store_ps(tmp, acc);
      for (int c = 0; c < cells; ++c) s[j + c] = tmp[c];
    }
  }
}

HANGAR_TARGET_AVX2 void mad_f32_avx2(float* acc, const uint16_t* v, int n, float p) {
  const __m256 pv = _mm256_set1_ps(p);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i)));
    _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(pv, x, _mm256_loadu_ps(acc + i)));
  }
  mad_f32_ref(acc + i, v + i, n - i, p);
}
#endif

void attention_row_tiled_impl(bool simd, const float* q, const uint16_t* k, int64_t k_stride,
                              const uint16_t* v, int64_t v_stride, const uint8_t* valid,
                              int64_t n_kv, int head_dim_k, int head_dim_v, float scale,
                              float* out) {
  auto tile_dots = tile_dots_ref;
  auto mad_f32 = mad_f32_ref;
#ifdef HANGAR_AVX2
  if (simd && cpu_features().avx2) {
    tile_dots = tile_dots_avx2;
    mad_f32 = mad_f32_avx2;
  }
#else
  (void)simd;
#endif
  float* acc = out;  // [head_dim_v] F32
  for (int i = 0; i < head_dim_v; ++i) acc[i] = 0.0f;
  float sum = 0.0f;
  float mx = -INFINITY;
  float p[kAttentionTile];
  for (int64_t t0 = 0; t0 < n_kv; t0 += kAttentionTile) {
    const int n = static_cast<int>(std::min<int64_t>(kAttentionTile, n_kv - t0));
    tile_dots(q, k + t0 * k_stride, k_stride, n, head_dim_k, p);
    float tile_max = -INFINITY;
    for (int j = 0; j < n; ++j) {
      p[j] = valid[t0 + j] ? p[j] * scale : -INFINITY;
      tile_max = std::fmax(tile_max, p[j]);
    }
    if (tile_max == -INFINITY) continue;  // nothing valid in this tile
    const float new_max = std::fmax(mx, tile_max);
    if (new_max > mx) {
      const float ms = std::exp(mx - new_max);
      for (int i = 0; i < head_dim_v; ++i) acc[i] *= ms;
      sum *= ms;
    }
    mx = new_max;
    double tile_sum = 0.0;
    for (int j = 0; j < n; ++j) {
      p[j] = p[j] == -INFINITY ? 0.0f : std::exp(p[j] - mx);
      tile_sum += p[j];
    }
    sum = static_cast<float>(static_cast<double>(sum) + tile_sum);
    for (int j = 0; j < n; ++j) {
      if (p[j] != 0.0f) mad_f32(acc, v + (t0 + j) * v_stride, head_dim_v, p[j]);
    }
  }
  const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
  for (int i = 0; i < head_dim_v; ++i) acc[i] *= inv;
}

}  // namespace

void attention_row_tiled(const float* q, const uint16_t* k, int64_t k_stride, const uint16_t* v,
                         int64_t v_stride, const uint8_t* valid, int64_t n_kv, int head_dim_k,
                         int head_dim_v, float scale, float* out) {
  attention_row_tiled_impl(true, q, k, k_stride, v, v_stride, valid, n_kv, head_dim_k, head_dim_v,
                           scale, out);
}

void attention_row_tiled_ref(const float* q, const uint16_t* k, int64_t k_stride, const uint16_t* v,
                             int64_t v_stride, const uint8_t* valid, int64_t n_kv, int head_dim_k,
                             int head_dim_v, float scale, float* out) {
  attention_row_tiled_impl(false, q, k, k_stride, v, v_stride, valid, n_kv, head_dim_k, head_dim_v,
                           scale, out);
}

}  // namespace hangar::engine
