// Q2_K weights against Q8_K activations, as ggml's ggml_vec_dot_q2_K_q8_K: per super-block the
// integer sum over its 16 groups of (scale & 15) * sum(q * a), scaled by d_w * d_a, minus the
// mins term dmin_w * d_a * sum((scale >> 4) * bsums). Layout: quant_blocks.h.
#include "engine/fp16.h"
#include "engine/quant_blocks.h"
#include "engine/simd_avx2.h"
#include "engine/vec_dot.h"

namespace hangar::engine {
namespace {

// Element e of the block, 0..3.
int quant_at(const BlockQ2_K& b, int e) {
  const int h = e / 128, j = (e % 128) / 32, l = e % 32;
  return (b.qs[32 * h + l] >> (2 * j)) & 3;
}

// The mins term sum_g (scales[g] >> 4) * bsums[g], shared by both paths.
int mins_sum(const BlockQ2_K& x, const BlockQ8_K& y) {
  int s = 0;
  for (int g = 0; g < 16; ++g) s += (x.scales[g] >> 4) * y.bsums[g];
  return s;
}

float dot_q2_k_ref(int64_t n, const void* w, const void* a) {
  const BlockQ2_K* x = static_cast<const BlockQ2_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int isum = 0;
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int i = 16 * g; i < 16 * g + 16; ++i) s += quant_at(x[b], i) * y[b].qs[i];
      isum += (x[b].scales[g] & 0x0f) * s;
    }
    const float dall = y[b].d * half_to_float(x[b].d);
    const float dmin = y[b].d * half_to_float(x[b].dmin);
    sum += dall * static_cast<float>(isum) - dmin * static_cast<float>(mins_sum(x[b], y[b]));
  }
  return sum;
}

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 float dot_q2_k_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ2_K* x = static_cast<const BlockQ2_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  const __m256i three = _mm256_set1_epi8(3);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const uint8_t* sc = x[b].scales;
    __m256i acc = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i q = avx2::load32(x[b].qs + 32 * h);
      for (int j = 0; j < 4; ++j) {
        const __m256i u = _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), three);
        const __m256i a8 = avx2::load32(y[b].qs + 128 * h + 32 * j);
        const int g = 8 * h + 2 * j;
        acc = _mm256_add_epi32(acc, avx2::dot_u8_i8_scaled(u, a8, sc[g] & 0x0f, sc[g + 1] & 0x0f));
      }
    }
    const float dall = y[b].d * avx2::h2f(x[b].d);
    const float dmin = y[b].d * avx2::h2f(x[b].dmin);
    sum += dall * static_cast<float>(avx2::hsum_i32(acc)) -
           dmin * static_cast<float>(mins_sum(x[b], y[b]));
  }
  return sum;
}
#endif

void to_float_q2_k(const void* w, float* y, int64_t n) {
  const BlockQ2_K* x = static_cast<const BlockQ2_K*>(w);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = half_to_float(x[b].d);
    const float dmin = half_to_float(x[b].dmin);
    for (int e = 0; e < kQK_K; ++e) {
      const uint8_t sc = x[b].scales[e / 16];
      y[b * kQK_K + e] = d * static_cast<float>(sc & 0x0f) * static_cast<float>(quant_at(x[b], e)) -
                         dmin * static_cast<float>(sc >> 4);
    }
  }
}

}  // namespace

const VecDot& vec_dot_q2_k() {
  static const VecDot k{
      gguf::GgmlType::kQ2_K, gguf::GgmlType::kQ8_K, kQK_K,    sizeof(BlockQ2_K), sizeof(BlockQ8_K),
      quantize_row_q8_k,     quantize_row_q8_k_ref, HANGAR_PICK_AVX2(dot_q2_k_avx2, dot_q2_k_ref), dot_q2_k_ref,      to_float_q2_k};
  return k;
}

}  // namespace hangar::engine
