// The Q8_K activation quantizer every K-quant and IQ4_XS dot product uses. ggml's x86 build runs
// its reference quantize_row_q8_K_ref, so both paths here reproduce that one bit for bit: per
// block of 256, the first element of largest magnitude `max` sets iscale = -127 / max (so it
// becomes -127), every element rounds half to even, d = 1 / iscale as F32, and bsums holds the
// sum of each 16 quants. An all-zero block stores d = 0 and zeros.
#include <cmath>
#include <cstring>

#include "engine/quant_blocks.h"
#include "engine/simd_avx2.h"
#include "engine/vec_dot.h"

namespace hangar::engine {
namespace {

// The signed value of the first element with the largest |x|; 0 for an all-zero block.
float signed_max_ref(const float* x) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int j = 0; j < kQK_K; ++j) {
    const float ax = std::fabs(x[j]);
    if (ax > amax) {
      amax = ax;
      max = x[j];
    }
  }
  return max;
}

void fill_bsums(BlockQ8_K* b) {
  for (int g = 0; g < kQK_K / 16; ++g) {
    int sum = 0;
    for (int i = 0; i < 16; ++i) sum += b->qs[16 * g + i];
    b->bsums[g] = static_cast<int16_t>(sum);
  }
}

void zero_block(BlockQ8_K* b) { std::memset(b, 0, sizeof(*b)); }

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 float signed_max_avx2(const float* x) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 amax = _mm256_setzero_ps();
  for (int j = 0; j < kQK_K; j += 8) {
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
  }
  __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(amax, 1), _mm256_castps256_ps128(amax));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float a = _mm_cvtss_f32(m4);
  if (a == 0.0f) return 0.0f;
  // The reference keeps the first element reaching the maximum, whatever its sign.
  for (int j = 0; j < kQK_K; ++j) {
    if (std::fabs(x[j]) == a) return x[j];
  }
  return 0.0f;  // not reached for finite input
}
#endif

}  // namespace

void quantize_row_q8_k_ref(const float* x, void* y, int64_t n) {
  BlockQ8_K* out = static_cast<BlockQ8_K*>(y);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    const float max = signed_max_ref(x);
    if (max == 0.0f) {
      zero_block(&out[b]);
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQK_K; ++j) {
      const int v = static_cast<int>(std::nearbyint(iscale * x[j]));
      out[b].qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
    }
    fill_bsums(&out[b]);
    out[b].d = 1.0f / iscale;
  }
}

#ifdef HANGAR_AVX2
namespace {
HANGAR_TARGET_AVX2 void quantize_row_q8_k_avx2(const float* x, void* y, int64_t n) {
  BlockQ8_K* out = static_cast<BlockQ8_K*>(y);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    const float max = signed_max_avx2(x);
    if (max == 0.0f) {
      zero_block(&out[b]);
      continue;
    }
    const float iscale = -127.0f / max;
    const __m256 mul = _mm256_set1_ps(iscale);
    for (int j = 0; j < kQK_K; j += 32) {
      __m256i q[4];
      for (int k = 0; k < 4; ++k) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * k), mul);
        q[k] =
            _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      }
      // The saturating packs clamp at 127 as the reference's MIN(127, v) does; the low end
      // cannot pass -127.
      __m256i p =
          _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
      p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].qs + j), p);
    }
    fill_bsums(&out[b]);
    out[b].d = 1.0f / iscale;
  }
}
}  // namespace
#endif

void quantize_row_q8_k(const float* x, void* y, int64_t n) {
  static const auto fn = HANGAR_PICK_AVX2(quantize_row_q8_k_avx2, quantize_row_q8_k_ref);
  fn(x, y, n);
}

}  // namespace hangar::engine
