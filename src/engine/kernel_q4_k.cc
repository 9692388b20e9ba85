// Q4_K weights against Q8_K activations, as ggml's ggml_vec_dot_q4_K_q8_K: per super-block the
// integer sum over its 8 groups of 32 of sc[g] * sum(q * a), scaled by d_w * d_a, minus
// dmin_w * d_a * sum(m[g] * (bsums[2g] + bsums[2g + 1])). Layout: quant_blocks.h.
#include "engine/fp16.h"
#include "engine/quant_blocks.h"
#include "engine/simd_avx2.h"
#include "engine/vec_dot.h"

namespace hangar::engine {
namespace {

// Element e of the block, 0..15.
int quant_at(const BlockQ4_K& b, int e) {
  const int g = e / 32, l = e % 32;
  const uint8_t byte = b.qs[32 * (g / 2) + l];
  return g % 2 == 0 ? byte & 0x0f : byte >> 4;
}

float dot_q4_k_ref(int64_t n, const void* w, const void* a) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const ScalesMinsK4 s = unpack_scales_mins_k4(x[b].scales);
    int isum = 0;
    for (int g = 0; g < 8; ++g) {
      int dot = 0;
      for (int i = 32 * g; i < 32 * g + 32; ++i) dot += quant_at(x[b], i) * y[b].qs[i];
      isum += s.sc[g] * dot;
    }
    const float d = y[b].d * half_to_float(x[b].d);
    const float dmin = y[b].d * half_to_float(x[b].dmin);
    sum += d * static_cast<float>(isum) - dmin * static_cast<float>(mins_dot_k4(s, y[b]));
  }
  return sum;
}

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 float dot_q4_k_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const ScalesMinsK4 s = unpack_scales_mins_k4(x[b].scales);
    __m256i acc = _mm256_setzero_si256();
    for (int i = 0; i < 4; ++i) {
      const __m256i q = avx2::load32(x[b].qs + 32 * i);
      const __m256i lo = _mm256_and_si256(q, nibble);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), nibble);
      const int g = 2 * i;
      const __m256i a_lo = avx2::load32(y[b].qs + 32 * g);
      const __m256i a_hi = avx2::load32(y[b].qs + 32 * g + 32);
      acc = _mm256_add_epi32(acc, avx2::dot_u8_i8_scaled(lo, a_lo, s.sc[g], s.sc[g]));
      acc = _mm256_add_epi32(acc, avx2::dot_u8_i8_scaled(hi, a_hi, s.sc[g + 1], s.sc[g + 1]));
    }
    const float d = y[b].d * avx2::h2f(x[b].d);
    const float dmin = y[b].d * avx2::h2f(x[b].dmin);
    sum +=
        d * static_cast<float>(avx2::hsum_i32(acc)) - dmin * static_cast<float>(mins_dot_k4(s, y[b]));
  }
  return sum;
}
#endif

void to_float_q4_k(const void* w, float* y, int64_t n) {
  const BlockQ4_K* x = static_cast<const BlockQ4_K*>(w);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const ScalesMinsK4 s = unpack_scales_mins_k4(x[b].scales);
    const float d = half_to_float(x[b].d);
    const float dmin = half_to_float(x[b].dmin);
    for (int e = 0; e < kQK_K; ++e) {
      const float dl = d * static_cast<float>(s.sc[e / 32]);
      const float ml = dmin * static_cast<float>(s.m[e / 32]);
      y[b * kQK_K + e] = dl * static_cast<float>(quant_at(x[b], e)) - ml;
    }
  }
}

}  // namespace

const VecDot& vec_dot_q4_k() {
  static const VecDot k{
      gguf::GgmlType::kQ4_K, gguf::GgmlType::kQ8_K, kQK_K,    sizeof(BlockQ4_K), sizeof(BlockQ8_K),
      quantize_row_q8_k,     quantize_row_q8_k_ref, HANGAR_PICK_AVX2(dot_q4_k_avx2, dot_q4_k_ref), dot_q4_k_ref,      to_float_q4_k,
      gemm_q4_k_for(best_isa()), gemm_q4_k_for(Isa::kScalar)};
  return k;
}

}  // namespace hangar::engine
