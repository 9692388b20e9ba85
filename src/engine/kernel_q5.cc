// Q5_0 weights (activations Q8_0) and Q5_1 weights (activations Q8_1), as ggml's
// ggml_vec_dot_q5_0_q8_0 / ggml_vec_dot_q5_1_q8_1. The fifth bit of element j is bit j of qh.
#include <cstring>

#include "engine/fp16.h"
#include "engine/quant_blocks.h"
#include "engine/simd_avx2.h"
#include "engine/vec_dot.h"

namespace hangar::engine {
namespace {

// Element j (0..31) of a Q5 block as an unsigned 5-bit value.
inline int q5_value(const uint8_t* qs, uint32_t qh, int j) {
  const int lo = j < kQK / 2 ? (qs[j] & 0x0f) : (qs[j - kQK / 2] >> 4);
  return lo | static_cast<int>(((qh >> j) & 1u) << 4);
}

inline uint32_t load_qh(const uint8_t* qh) {
  uint32_t v;
  std::memcpy(&v, qh, 4);
  return v;
}

float dot_q5_0_ref(int64_t n, const void* w, const void* a) {
  const BlockQ5_0* x = static_cast<const BlockQ5_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    const uint32_t qh = load_qh(x[b].qh);
    int isum = 0;
    for (int j = 0; j < kQK; ++j) isum += (q5_value(x[b].qs, qh, j) - 16) * y[b].qs[j];
    sum += static_cast<float>(isum) * (half_to_float(x[b].d) * half_to_float(y[b].d));
  }
  return sum;
}

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 float dot_q5_0_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ5_0* x = static_cast<const BlockQ5_0*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  __m256 acc = _mm256_setzero_ps();
  const __m256i high = _mm256_set1_epi8(static_cast<char>(0xf0));
  for (int64_t b = 0; b < n / kQK; ++b) {
    const __m256 d = _mm256_set1_ps(avx2::h2f(x[b].d) * avx2::h2f(y[b].d));
    // (q | 0xf0) as int8 is q - 16: set those high bits where the fifth bit is clear.
    const __m256i fill = _mm256_andnot_si256(avx2::expand_bits(x[b].qh), high);
    const __m256i qx = _mm256_or_si256(avx2::unpack_nibbles(x[b].qs), fill);
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(avx2::dot_i8_i8(qx, qy)), acc);
  }
  return avx2::hsum(acc);
}
#endif

void to_float_q5_0(const void* w, float* y, int64_t n) {
  const BlockQ5_0* x = static_cast<const BlockQ5_0*>(w);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float d = half_to_float(x[b].d);
    const uint32_t qh = load_qh(x[b].qh);
    for (int j = 0; j < kQK; ++j) y[b * kQK + j] = static_cast<float>(q5_value(x[b].qs, qh, j) - 16) * d;
  }
}

float dot_q5_1_ref(int64_t n, const void* w, const void* a) {
  const BlockQ5_1* x = static_cast<const BlockQ5_1*>(w);
  const BlockQ8_1* y = static_cast<const BlockQ8_1*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    const uint32_t qh = load_qh(x[b].qh);
    int isum = 0;
    for (int j = 0; j < kQK; ++j) isum += q5_value(x[b].qs, qh, j) * y[b].qs[j];
    sum += (half_to_float(x[b].d) * half_to_float(y[b].d)) * static_cast<float>(isum) +
           half_to_float(x[b].m) * half_to_float(y[b].s);
  }
  return sum;
}

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 float dot_q5_1_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ5_1* x = static_cast<const BlockQ5_1*>(w);
  const BlockQ8_1* y = static_cast<const BlockQ8_1*>(a);
  __m256 acc = _mm256_setzero_ps();
  float summs = 0.0f;
  const __m256i bit4 = _mm256_set1_epi8(0x10);
  for (int64_t b = 0; b < n / kQK; ++b) {
    summs += avx2::h2f(x[b].m) * avx2::h2f(y[b].s);
    const __m256 d = _mm256_set1_ps(avx2::h2f(x[b].d) * avx2::h2f(y[b].d));
    const __m256i hi = _mm256_and_si256(avx2::expand_bits(x[b].qh), bit4);
    const __m256i qx = _mm256_or_si256(avx2::unpack_nibbles(x[b].qs), hi);
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(avx2::dot_u8_i8(qx, qy)), acc);
  }
  return avx2::hsum(acc) + summs;
}
#endif

void to_float_q5_1(const void* w, float* y, int64_t n) {
  const BlockQ5_1* x = static_cast<const BlockQ5_1*>(w);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float d = half_to_float(x[b].d);
    const float m = half_to_float(x[b].m);
    const uint32_t qh = load_qh(x[b].qh);
    for (int j = 0; j < kQK; ++j) y[b * kQK + j] = static_cast<float>(q5_value(x[b].qs, qh, j)) * d + m;
  }
}

}  // namespace

const VecDot& vec_dot_q5_0() {
  static const VecDot k{gguf::GgmlType::kQ5_0, gguf::GgmlType::kQ8_0, kQK, sizeof(BlockQ5_0),
                        sizeof(BlockQ8_0), quantize_row_q8_0, quantize_row_q8_0_ref, HANGAR_PICK_AVX2(dot_q5_0_avx2, dot_q5_0_ref),
                        dot_q5_0_ref, to_float_q5_0};
  return k;
}

const VecDot& vec_dot_q5_1() {
  static const VecDot k{gguf::GgmlType::kQ5_1, gguf::GgmlType::kQ8_1, kQK, sizeof(BlockQ5_1),
                        sizeof(BlockQ8_1), quantize_row_q8_1, quantize_row_q8_1_ref, HANGAR_PICK_AVX2(dot_q5_1_avx2, dot_q5_1_ref),
                        dot_q5_1_ref, to_float_q5_1};
  return k;
}

}  // namespace hangar::engine
