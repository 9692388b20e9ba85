#include "engine/ops.h"

#include <cmath>

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

void swiglu(const float* g, const float* u, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = g[i];
    y[i] = x / (1.0f + std::exp(-x)) * u[i];
  }
}

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
void scale_f16(uint16_t* acc, int n, float s) {
  int i = 0;
#ifdef HANGAR_AVX2
  const __m256 sv = _mm256_set1_ps(s);
  for (; i + 8 <= n; i += 8) {
    __m256 a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(acc + i)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(acc + i),
                     _mm256_cvtps_ph(_mm256_mul_ps(a, sv), _MM_FROUND_TO_NEAREST_INT));
  }
#endif
  for (; i < n; ++i) acc[i] = float_to_half(half_to_float(acc[i]) * s);
}

// acc[i] = F16(F32(acc[i]) + F32(v[i]) * s)
void mad_f16(uint16_t* acc, const uint16_t* v, int n, float s) {
  int i = 0;
#ifdef HANGAR_AVX2
  const __m256 sv = _mm256_set1_ps(s);
  for (; i + 8 <= n; i += 8) {
    __m256 a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(acc + i)));
    __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(acc + i),
                     _mm256_cvtps_ph(_mm256_fmadd_ps(x, sv, a), _MM_FROUND_TO_NEAREST_INT));
  }
#endif
  for (; i < n; ++i) acc[i] = float_to_half(half_to_float(acc[i]) + half_to_float(v[i]) * s);
}

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

}  // namespace hangar::engine
