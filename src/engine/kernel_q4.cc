// Q4_0 weights (activations Q8_0) and Q4_1 weights (activations Q8_1), as ggml's
// ggml_vec_dot_q4_0_q8_0 / ggml_vec_dot_q4_1_q8_1: integer dot per block, scaled by
// d_w * d_a; Q4_1 adds m_w * s_a per block.
#include "engine/fp16.h"
#include "engine/quant_blocks.h"
#include "engine/simd_avx2.h"
#include "engine/vec_dot.h"

namespace hangar::engine {
namespace {

float dot_q4_0_ref(int64_t n, const void* w, const void* a) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int isum = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      isum += ((x[b].qs[j] & 0x0f) - 8) * y[b].qs[j];
      isum += ((x[b].qs[j] >> 4) - 8) * y[b].qs[j + kQK / 2];
    }
    sum += static_cast<float>(isum) * (half_to_float(x[b].d) * half_to_float(y[b].d));
  }
  return sum;
}

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 float dot_q4_0_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  __m256 acc = _mm256_setzero_ps();
  const __m256i eight = _mm256_set1_epi8(8);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const __m256 d = _mm256_set1_ps(avx2::h2f(x[b].d) * avx2::h2f(y[b].d));
    const __m256i qx = _mm256_sub_epi8(avx2::unpack_nibbles(x[b].qs), eight);
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(avx2::dot_i8_i8(qx, qy)), acc);
  }
  return avx2::hsum(acc);
}
#endif

void to_float_q4_0(const void* w, float* y, int64_t n) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(w);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float d = half_to_float(x[b].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[b * kQK + j] = static_cast<float>((x[b].qs[j] & 0x0f) - 8) * d;
      y[b * kQK + j + kQK / 2] = static_cast<float>((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

float dot_q4_1_ref(int64_t n, const void* w, const void* a) {
  const BlockQ4_1* x = static_cast<const BlockQ4_1*>(w);
  const BlockQ8_1* y = static_cast<const BlockQ8_1*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int isum = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      isum += (x[b].qs[j] & 0x0f) * y[b].qs[j];
      isum += (x[b].qs[j] >> 4) * y[b].qs[j + kQK / 2];
    }
    sum += (half_to_float(x[b].d) * half_to_float(y[b].d)) * static_cast<float>(isum) +
           half_to_float(x[b].m) * half_to_float(y[b].s);
  }
  return sum;
}

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 float dot_q4_1_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ4_1* x = static_cast<const BlockQ4_1*>(w);
  const BlockQ8_1* y = static_cast<const BlockQ8_1*>(a);
  __m256 acc = _mm256_setzero_ps();
  float summs = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    summs += avx2::h2f(x[b].m) * avx2::h2f(y[b].s);
    const __m256 d = _mm256_set1_ps(avx2::h2f(x[b].d) * avx2::h2f(y[b].d));
    const __m256i qx = avx2::unpack_nibbles(x[b].qs);
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(avx2::dot_u8_i8(qx, qy)), acc);
  }
  return avx2::hsum(acc) + summs;
}
#endif

void to_float_q4_1(const void* w, float* y, int64_t n) {
  const BlockQ4_1* x = static_cast<const BlockQ4_1*>(w);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float d = half_to_float(x[b].d);
    const float m = half_to_float(x[b].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[b * kQK + j] = static_cast<float>(x[b].qs[j] & 0x0f) * d + m;
      y[b * kQK + j + kQK / 2] = static_cast<float>(x[b].qs[j] >> 4) * d + m;
    }
  }
}

}  // namespace

const VecDot& vec_dot_q4_0() {
  static const VecDot k{gguf::GgmlType::kQ4_0, gguf::GgmlType::kQ8_0, kQK, sizeof(BlockQ4_0),
                        sizeof(BlockQ8_0), quantize_row_q8_0, quantize_row_q8_0_ref, HANGAR_PICK_AVX2(dot_q4_0_avx2, dot_q4_0_ref),
                        dot_q4_0_ref, to_float_q4_0,
                        gemm_q4_0_for(best_isa()), gemm_q4_0_for(Isa::kScalar)};
  return k;
}

const VecDot& vec_dot_q4_1() {
  static const VecDot k{gguf::GgmlType::kQ4_1, gguf::GgmlType::kQ8_1, kQK, sizeof(BlockQ4_1),
                        sizeof(BlockQ8_1), quantize_row_q8_1, quantize_row_q8_1_ref, HANGAR_PICK_AVX2(dot_q4_1_avx2, dot_q4_1_ref),
                        dot_q4_1_ref, to_float_q4_1};
  return k;
}

}  // namespace hangar::engine
