// IQ4_XS weights against Q8_K activations, as ggml's ggml_vec_dot_iq4_xs_q8_K: each 4-bit quant
// indexes the non-linear code book kIq4nlValues; per super-block the integer sum over its 8 groups
// of 32 of (ls[g] - 32) * sum(value * a), scaled by d_w * d_a. Layout: quant_blocks.h.
#include "engine/fp16.h"
#include "engine/quant_blocks.h"
#include "engine/simd_avx2.h"
#include "engine/vec_dot.h"

namespace hangar::engine {
namespace {

// The signed 6-bit scale of group g, -32..31.
int scale_at(const BlockIQ4_XS& b, int g) {
  const int low = (b.scales_l[g / 2] >> (4 * (g % 2))) & 0x0f;
  const int high = (b.scales_h >> (2 * g)) & 3;
  return (low | (high << 4)) - 32;
}

// Element e of the block, a code book value.
int value_at(const BlockIQ4_XS& b, int e) {
  const int g = e / 32, j = e % 32;
  const uint8_t byte = b.qs[16 * g + j % 16];
  return kIq4nlValues[j < 16 ? byte & 0x0f : byte >> 4];
}

float dot_iq4_xs_ref(int64_t n, const void* w, const void* a) {
  const BlockIQ4_XS* x = static_cast<const BlockIQ4_XS*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int isum = 0;
    for (int g = 0; g < 8; ++g) {
      int s = 0;
      for (int i = 32 * g; i < 32 * g + 32; ++i) s += value_at(x[b], i) * y[b].qs[i];
      isum += scale_at(x[b], g) * s;
    }
    sum += (half_to_float(x[b].d) * y[b].d) * static_cast<float>(isum);
  }
  return sum;
}

#ifdef HANGAR_AVX2
HANGAR_TARGET_AVX2 float dot_iq4_xs_avx2(int64_t n, const void* w, const void* a) {
  const BlockIQ4_XS* x = static_cast<const BlockIQ4_XS*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  const __m256i book =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)));
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    __m256i acc = _mm256_setzero_si256();
    for (int g = 0; g < 8; ++g) {
      // unpack_nibbles puts element j's low nibble at j and its high nibble at j + 16, which is
      // this layout's element order.
      const __m256i v = _mm256_shuffle_epi8(book, avx2::unpack_nibbles(x[b].qs + 16 * g));
      const __m256i dot = avx2::dot_i8_i8(v, avx2::load32(y[b].qs + 32 * g));
      acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(dot, _mm256_set1_epi32(scale_at(x[b], g))));
    }
    sum += (avx2::h2f(x[b].d) * y[b].d) * static_cast<float>(avx2::hsum_i32(acc));
  }
  return sum;
}
#endif

void to_float_iq4_xs(const void* w, float* y, int64_t n) {
  const BlockIQ4_XS* x = static_cast<const BlockIQ4_XS*>(w);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = half_to_float(x[b].d);
    for (int e = 0; e < kQK_K; ++e) {
      const float dl = d * static_cast<float>(scale_at(x[b], e / 32));
      y[b * kQK_K + e] = dl * static_cast<float>(value_at(x[b], e));
    }
  }
}

}  // namespace

const VecDot& vec_dot_iq4_xs() {
  static const VecDot k{gguf::GgmlType::kIQ4_XS,
                        gguf::GgmlType::kQ8_K,
                        kQK_K,
                        sizeof(BlockIQ4_XS),
                        sizeof(BlockQ8_K),
                        quantize_row_q8_k,
                        quantize_row_q8_k_ref,
                        HANGAR_PICK_AVX2(dot_iq4_xs_avx2, dot_iq4_xs_ref),
                        dot_iq4_xs_ref,
                        to_float_iq4_xs};
  return k;
}

}  // namespace hangar::engine
