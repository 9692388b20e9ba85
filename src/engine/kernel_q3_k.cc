// Q3_K weights against Q8_K activations, as ggml's ggml_vec_dot_q3_K_q8_K: per super-block the
// integer sum over its 16 groups of (s - 32) * sum(q * a) with q in -4..3, scaled by d_w * d_a.
// The SIMD path works on u = q + 4 (0..7) and takes 4 * bsums back out. Layout: quant_blocks.h.
#include "engine/fp16.h"
#include "engine/quant_blocks.h"
#include "engine/simd_avx2.h"
#include "engine/vec_dot.h"

namespace hangar::engine {
namespace {

// Element e of the block, -4..3.
int quant_at(const BlockQ3_K& b, int e) {
  const int h = e / 128, j = (e % 128) / 32, l = e % 32;
  const int low = (b.qs[32 * h + l] >> (2 * j)) & 3;
  const bool high = (b.hmask[l] >> (4 * h + j)) & 1;
  return low - (high ? 0 : 4);
}

float dot_q3_k_ref(int64_t n, const void* w, const void* a) {
  const BlockQ3_K* x = static_cast<const BlockQ3_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int8_t scales[16];
    unpack_scales_q3_k(x[b].scales, scales);
    int isum = 0;
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int i = 16 * g; i < 16 * g + 16; ++i) s += quant_at(x[b], i) * y[b].qs[i];
      isum += scales[g] * s;
    }
    sum += (half_to_float(x[b].d) * y[b].d) * static_cast<float>(isum);
  }
  return sum;
}

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 float dot_q3_k_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ3_K* x = static_cast<const BlockQ3_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  const __m256i three = _mm256_set1_epi8(3);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int8_t sc[16];
    unpack_scales_q3_k(x[b].scales, sc);
    const __m256i hm = avx2::load32(x[b].hmask);
    __m256i acc = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i q = avx2::load32(x[b].qs + 32 * h);
      for (int j = 0; j < 4; ++j) {
        const __m256i low = _mm256_and_si256(_mm256_srli_epi16(q, 2 * j), three);
        const __m256i u =
            _mm256_or_si256(low, avx2::select_bit(hm, static_cast<uint8_t>(1u << (4 * h + j)), 4));
        const __m256i a8 = avx2::load32(y[b].qs + 128 * h + 32 * j);
        const int g = 8 * h + 2 * j;
        acc = _mm256_add_epi32(acc, avx2::dot_u8_i8_scaled(u, a8, sc[g], sc[g + 1]));
      }
    }
    int offset = 0;  // the + 4 the unsigned u carried
    for (int g = 0; g < 16; ++g) offset += sc[g] * y[b].bsums[g];
    const int isum = avx2::hsum_i32(acc) - 4 * offset;
    sum += (avx2::h2f(x[b].d) * y[b].d) * static_cast<float>(isum);
  }
  return sum;
}
#endif

void to_float_q3_k(const void* w, float* y, int64_t n) {
  const BlockQ3_K* x = static_cast<const BlockQ3_K*>(w);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int8_t scales[16];
    unpack_scales_q3_k(x[b].scales, scales);
    const float d = half_to_float(x[b].d);
    for (int e = 0; e < kQK_K; ++e) {
      y[b * kQK_K + e] =
          d * static_cast<float>(scales[e / 16]) * static_cast<float>(quant_at(x[b], e));
    }
  }
}

}  // namespace

const VecDot& vec_dot_q3_k() {
  static const VecDot k{
      gguf::GgmlType::kQ3_K, gguf::GgmlType::kQ8_K, kQK_K,    sizeof(BlockQ3_K), sizeof(BlockQ8_K),
      quantize_row_q8_k,     quantize_row_q8_k_ref, HANGAR_PICK_AVX2(dot_q3_k_avx2, dot_q3_k_ref), dot_q3_k_ref,      to_float_q3_k};
  return k;
}

}  // namespace hangar::engine
