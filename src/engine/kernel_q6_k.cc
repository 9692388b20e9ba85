// Q6_K weights against Q8_K activations, as ggml's ggml_vec_dot_q6_K_q8_K: per super-block the
// integer sum over its 16 groups of scales[g] * sum((q - 32) * a), scaled by d_w * d_a. The SIMD
// path works on the unsigned q (0..63) and takes 32 * bsums back out. Layout: quant_blocks.h.
#include "engine/fp16.h"
#include "engine/quant_blocks.h"
#include "engine/simd_avx2.h"
#include "engine/vec_dot.h"

namespace hangar::engine {
namespace {

// Element e of the block, -32..31.
int quant_at(const BlockQ6_K& b, int e) {
  const int h = e / 128, k = (e % 128) / 32, l = e % 32;
  const uint8_t lbyte = b.ql[64 * h + 32 * (k & 1) + l];
  const int low = k < 2 ? lbyte & 0x0f : lbyte >> 4;
  const int high = (b.qh[32 * h + l] >> (2 * k)) & 3;
  return (low | (high << 4)) - 32;
}

float dot_q6_k_ref(int64_t n, const void* w, const void* a) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int isum = 0;
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int i = 16 * g; i < 16 * g + 16; ++i) s += quant_at(x[b], i) * y[b].qs[i];
      isum += x[b].scales[g] * s;
    }
    sum += (half_to_float(x[b].d) * y[b].d) * static_cast<float>(isum);
  }
  return sum;
}

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 float dot_q6_k_avx2(int64_t n, const void* w, const void* a) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i two_bits = _mm256_set1_epi8(3);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const int8_t* sc = x[b].scales;
    __m256i acc = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i qh = avx2::load32(x[b].qh + 32 * h);
      const __m256i ql0 = avx2::load32(x[b].ql + 64 * h);
      const __m256i ql1 = avx2::load32(x[b].ql + 64 * h + 32);
      for (int k = 0; k < 4; ++k) {
        const __m256i ql = (k & 1) ? ql1 : ql0;
        const __m256i low = _mm256_and_si256(k < 2 ? ql : _mm256_srli_epi16(ql, 4), nibble);
        const __m256i high = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), two_bits);
        const __m256i u = _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
        const __m256i a8 = avx2::load32(y[b].qs + 128 * h + 32 * k);
        const int g = 8 * h + 2 * k;
        acc = _mm256_add_epi32(acc, avx2::dot_u8_i8_scaled(u, a8, sc[g], sc[g + 1]));
      }
    }
    int offset = 0;  // the + 32 the unsigned u carried
    for (int g = 0; g < 16; ++g) offset += sc[g] * y[b].bsums[g];
    const int isum = avx2::hsum_i32(acc) - 32 * offset;
    sum += (avx2::h2f(x[b].d) * y[b].d) * static_cast<float>(isum);
  }
  return sum;
}
#endif

void to_float_q6_k(const void* w, float* y, int64_t n) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(w);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = half_to_float(x[b].d);
    for (int e = 0; e < kQK_K; ++e) {
      y[b * kQK_K + e] =
          d * static_cast<float>(x[b].scales[e / 16]) * static_cast<float>(quant_at(x[b], e));
    }
  }
}

}  // namespace

const VecDot& vec_dot_q6_k() {
  static const VecDot k{
      gguf::GgmlType::kQ6_K, gguf::GgmlType::kQ8_K, kQK_K,    sizeof(BlockQ6_K), sizeof(BlockQ8_K),
      quantize_row_q8_k,     quantize_row_q8_k_ref, HANGAR_PICK_AVX2(dot_q6_k_avx2, dot_q6_k_ref), dot_q6_k_ref,      to_float_q6_k,
      gemm_q6_k_for(best_isa()), gemm_q6_k_for(Isa::kScalar)};
  return k;
}

}  // namespace hangar::engine
