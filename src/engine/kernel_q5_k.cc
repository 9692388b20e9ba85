// Q5_K weights against Q8_K activations, as ggml's ggml_vec_dot_q5_K_q8_K: Q4_K's arithmetic
// with 5-bit quants (0..31): per super-block sum_g sc[g] * sum(q * a) scaled by d_w * d_a, minus
// dmin_w * d_a * sum(m[g] * (bsums[2g] + bsums[2g + 1])). Layout: quant_blocks.h.
#include "engine/fp16.h"
#include "engine/quant_blocks.h"
#include "engine/simd_avx2.h"
#include "engine/vec_dot.h"

namespace hangar::engine {
namespace {

// Element e of the block, 0..31.
int quant_at(const BlockQ5_K& b, int e) {
  const int g = e / 32, l = e % 32;
  const uint8_t byte = b.qs[32 * (g / 2) + l];
  const int low = g % 2 == 0 ? byte & 0x0f : byte >> 4;
  return low | (((b.qh[l] >> g) & 1) << 4);
}

float dot_q5_k_ref(int64_t n, const void* w, const void* a) {
  const BlockQ5_K* x = static_cast<const BlockQ5_K*>(w);
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
HANGAR_TARGET_AVX2 float dot_q5_k_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ5_K* x = static_cast<const BlockQ5_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const ScalesMinsK4 s = unpack_scales_mins_k4(x[b].scales);
    const __m256i qh = avx2::load32(x[b].qh);
    __m256i acc = _mm256_setzero_si256();
    for (int i = 0; i < 4; ++i) {
      const __m256i q = avx2::load32(x[b].qs + 32 * i);
      const int g = 2 * i;
      const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, nibble),
                                         avx2::select_bit(qh, static_cast<uint8_t>(1u << g), 16));
      const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), nibble),
                                         avx2::select_bit(qh, static_cast<uint8_t>(2u << g), 16));
      acc = _mm256_add_epi32(
          acc, avx2::dot_u8_i8_scaled(lo, avx2::load32(y[b].qs + 32 * g), s.sc[g], s.sc[g]));
      acc = _mm256_add_epi32(acc, avx2::dot_u8_i8_scaled(hi, avx2::load32(y[b].qs + 32 * g + 32),
                                                         s.sc[g + 1], s.sc[g + 1]));
    }
    const float d = y[b].d * avx2::h2f(x[b].d);
    const float dmin = y[b].d * avx2::h2f(x[b].dmin);
    sum +=
        d * static_cast<float>(avx2::hsum_i32(acc)) - dmin * static_cast<float>(mins_dot_k4(s, y[b]));
  }
  return sum;
}
#endif

void to_float_q5_k(const void* w, float* y, int64_t n) {
  const BlockQ5_K* x = static_cast<const BlockQ5_K*>(w);
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

const VecDot& vec_dot_q5_k() {
  static const VecDot k{
      gguf::GgmlType::kQ5_K, gguf::GgmlType::kQ8_K, kQK_K,    sizeof(BlockQ5_K), sizeof(BlockQ8_K),
      quantize_row_q8_k,     quantize_row_q8_k_ref, HANGAR_PICK_AVX2(dot_q5_k_avx2, dot_q5_k_ref), dot_q5_k_ref,      to_float_q5_k};
  return k;
}

}  // namespace hangar::engine
