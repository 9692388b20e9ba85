// Q8_0 weights, and the Q8_0 / Q8_1 activation quantizers every quantized family uses.
// Activation quantization follows ggml's x86 code (the path llama.cpp's references ran):
// d = amax / 127 stored as F16, multiplier 127 / amax (0 for an all-zero block), round half to
// even; Q8_1 adds s = F16(d * sum(qs)). The AVX2 path and the scalar reference are bit-exact.
#include <cmath>

#include "engine/fp16.h"
#include "engine/quant_blocks.h"
#include "engine/simd_avx2.h"
#include "engine/vec_dot.h"

namespace hangar::engine {
namespace {

// One block: writes qs, returns d (unrounded); *sum gets sum(qs).
float quantize_block_ref(const float* x, int8_t* qs, int* sum) {
  float amax = 0.0f;
  for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  int s = 0;
  for (int j = 0; j < kQK; ++j) {
    // nearbyintf under the default rounding mode: half to even, as _mm256_round_ps(NEAREST).
    const int q = static_cast<int>(std::nearbyint(x[j] * id));
    qs[j] = static_cast<int8_t>(q);
    s += q;
  }
  *sum = s;
  return d;
}

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 float quantize_block_avx2(const float* x, int8_t* qs, int* sum) {
  __m256 v[4];
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 amax = _mm256_setzero_ps();
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm256_loadu_ps(x + 8 * k);
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[k]));
  }
  __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(amax, 1), _mm256_castps256_ps128(amax));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float max_scalar = _mm_cvtss_f32(m4);
  const float d = max_scalar / 127.0f;
  const float id = max_scalar != 0.0f ? 127.0f / max_scalar : 0.0f;
  const __m256 mul = _mm256_set1_ps(id);
  __m256i q[4];
  for (int k = 0; k < 4; ++k) {
    q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  *sum = avx2::hsum_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
  // Pack 32 int32 -> 32 int8 and undo the lane interleaving of the packs.
  __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
  __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
  __m256i p = _mm256_packs_epi16(p01, p23);
  p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), p);
  return d;
}

HANGAR_TARGET_AVX2 void quantize_row_q8_0_avx2(const float* x, void* y, int64_t n) {
  BlockQ8_0* out = static_cast<BlockQ8_0*>(y);
  for (int64_t b = 0; b < n / kQK; ++b) {
    int sum;
    out[b].d = _cvtss_sh(quantize_block_avx2(x + b * kQK, out[b].qs, &sum), _MM_FROUND_TO_NEAREST_INT);
  }
}

HANGAR_TARGET_AVX2 void quantize_row_q8_1_avx2(const float* x, void* y, int64_t n) {
  BlockQ8_1* out = static_cast<BlockQ8_1*>(y);
  for (int64_t b = 0; b < n / kQK; ++b) {
    int sum;
    const float d = quantize_block_avx2(x + b * kQK, out[b].qs, &sum);
    out[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    out[b].s = _cvtss_sh(d * static_cast<float>(sum), _MM_FROUND_TO_NEAREST_INT);
  }
}
#endif

float dot_q8_0_ref(int64_t n, const void* w, const void* a) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int isum = 0;
    for (int j = 0; j < kQK; ++j) isum += x[b].qs[j] * y[b].qs[j];
    sum += static_cast<float>(isum) * (half_to_float(x[b].d) * half_to_float(y[b].d));
  }
  return sum;
}

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 float dot_q8_0_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK; ++b) {
    const __m256 d = _mm256_set1_ps(avx2::h2f(x[b].d) * avx2::h2f(y[b].d));
    const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs));
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(avx2::dot_i8_i8(qx, qy)), acc);
  }
  return avx2::hsum(acc);
}
#endif

void to_float_q8_0(const void* w, float* y, int64_t n) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(w);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float d = half_to_float(x[b].d);
    for (int j = 0; j < kQK; ++j) y[b * kQK + j] = x[b].qs[j] * d;
  }
}

}  // namespace

void quantize_row_q8_0_ref(const float* x, void* y, int64_t n) {
  BlockQ8_0* out = static_cast<BlockQ8_0*>(y);
  for (int64_t b = 0; b < n / kQK; ++b) {
    int sum;
    out[b].d = float_to_half(quantize_block_ref(x + b * kQK, out[b].qs, &sum));
  }
}

void quantize_row_q8_0(const float* x, void* y, int64_t n) {
  static const auto fn = HANGAR_PICK_AVX2(quantize_row_q8_0_avx2, quantize_row_q8_0_ref);
  fn(x, y, n);
}

void quantize_row_q8_1_ref(const float* x, void* y, int64_t n) {
  BlockQ8_1* out = static_cast<BlockQ8_1*>(y);
  for (int64_t b = 0; b < n / kQK; ++b) {
    int sum;
    const float d = quantize_block_ref(x + b * kQK, out[b].qs, &sum);
    out[b].d = float_to_half(d);
    out[b].s = float_to_half(d * static_cast<float>(sum));
  }
}

void quantize_row_q8_1(const float* x, void* y, int64_t n) {
  static const auto fn = HANGAR_PICK_AVX2(quantize_row_q8_1_avx2, quantize_row_q8_1_ref);
  fn(x, y, n);
}

const VecDot& vec_dot_q8_0() {
  static const VecDot k{gguf::GgmlType::kQ8_0, gguf::GgmlType::kQ8_0, kQK, sizeof(BlockQ8_0),
                        sizeof(BlockQ8_0), quantize_row_q8_0, quantize_row_q8_0_ref, HANGAR_PICK_AVX2(dot_q8_0_avx2, dot_q8_0_ref),
                        dot_q8_0_ref, to_float_q8_0,
                        gemm_q8_0_for(best_isa()), gemm_q8_0_for(Isa::kScalar)};
  return k;
}

}  // namespace hangar::engine
