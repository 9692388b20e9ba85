#pragma once
// Small AVX2 helpers shared by the kernel files (private to src/engine). The engine is built
// for baseline x86-64 (HANGAR_NATIVE is off by default): every SIMD function is compiled for
// its instruction set with a target attribute (HANGAR_TARGET_AVX2, HANGAR_TARGET_AVX512) and is
// called only when cpu_features() says the CPU has it; every caller keeps a scalar path.
// Pure inline functions.

#include "engine/cpu_features.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HANGAR_AVX2 1
// The AVX2 function when the CPU has AVX2, else the scalar reference.
#define HANGAR_PICK_AVX2(simd, ref) (::hangar::engine::cpu_features().avx2 ? (simd) : (ref))
#include <immintrin.h>

#include <cstdint>
#include <cstring>

// AVX2 + FMA + F16C (every AVX2 CPU has the other two).
#define HANGAR_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
// AVX-512 F/BW/VL with VNNI (Ice Lake / Zen 4 and later), used on 256-bit vectors.
#define HANGAR_TARGET_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

namespace hangar::engine::avx2 {

// F16 bits -> F32 with the F16C instruction (fp16.h's half_to_float is the software fallback
// when the translation unit is not compiled for F16C; both are exact).
HANGAR_TARGET_AVX2 inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

HANGAR_TARGET_AVX2 inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

HANGAR_TARGET_AVX2 inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// 16 bytes of nibbles -> 32 bytes: [0..15] the low nibbles, [16..31] the high nibbles.
HANGAR_TARGET_AVX2 inline __m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

// 32 bits -> 32 bytes, byte j = 0xff when bit j is set, else 0.
HANGAR_TARGET_AVX2 inline __m256i expand_bits(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  // Byte j takes source byte j / 8; OR-ing in every bit except j % 8 leaves 0xff only when
  // bit j % 8 was set.
  const __m256i pick = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
                                         0x0101010101010101LL, 0x0000000000000000LL);
  __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), pick);
  bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfeLL));
  return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

// Sum of products of 32 unsigned bytes u and 32 signed bytes s, as 8 int32 lanes.
HANGAR_TARGET_AVX2 inline __m256i dot_u8_i8(__m256i u, __m256i s) {
  const __m256i pairs = _mm256_maddubs_epi16(u, s);  // |u| <= 255 is not reached: u <= 127 here
  return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}

// Sum of products of two signed byte vectors, as 8 int32 lanes (x, y in [-127, 127] or x in
// [-16, 15]).
HANGAR_TARGET_AVX2 inline __m256i dot_i8_i8(__m256i x, __m256i y) {
  const __m256i ax = _mm256_sign_epi8(x, x);
  const __m256i sy = _mm256_sign_epi8(y, x);
  return dot_u8_i8(ax, sy);
}

// Sum of products of 32 unsigned bytes u (each <= 63, so no pair saturates) and 32 signed bytes
// s, the first 16 products weighted by `lo` and the last 16 by `hi`, as 8 int32 lanes. The
// K-quants' 16-element groups map onto the two 128-bit halves.
HANGAR_TARGET_AVX2 inline __m256i dot_u8_i8_scaled(__m256i u, __m256i s, int lo, int hi) {
  const __m256i pairs = _mm256_maddubs_epi16(u, s);
  const __m256i scales = _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(hi)),
                                          _mm_set1_epi16(static_cast<int16_t>(lo)));
  return _mm256_madd_epi16(pairs, scales);
}

// 32 bytes -> 32 bytes, byte j = `value` when (x[j] & mask) != 0, else 0.
HANGAR_TARGET_AVX2 inline __m256i select_bit(__m256i x, uint8_t mask, uint8_t value) {
  const __m256i m = _mm256_set1_epi8(static_cast<char>(mask));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(x, m), m);
  return _mm256_and_si256(set, _mm256_set1_epi8(static_cast<char>(value)));
}

HANGAR_TARGET_AVX2 inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Issues prefetches for the next group of rows (one contiguous stream) up to byte `end`: the
// interleaved row streams a group reads are more than the hardware prefetcher follows well.
// (Plain SSE: callable from the AVX2 and the AVX-512 kernels alike.)
inline void prefetch_until(const char*& pf, const char* end) {
  for (; pf < end; pf += 64) _mm_prefetch(pf, _MM_HINT_T0);
}

// The batched K-quant matmuls' inner loop (gemm_q4_k.cc, gemm_q6_k.cc): one super-block of a
// 16-row interleaved tile against NT tokens. u[c] holds column group c (4 weights of each of the
// 16 rows, as unsigned bytes, row r at bytes 4r..4r+3); the tile has G scale groups of 64 / G
// column groups each, sc[g][r] the scale of group g for row r. qs[t]: token t's Q8_K
// activations of this super-block. Adds to isum[t][h] (rows 8h..8h+7)
//   Σ_g sc[g][r] · Σ_{c in g} Σ_{j<4} u[c][4r + j] · qs[t][4c + j].
// The weights are at most 63: the int16 pair sums of vpmaddubsw cannot saturate.
template <int NT, int G>
HANGAR_TARGET_AVX2 inline void add_scaled_tile_dots(const uint8_t (*u)[64], const int32_t (*sc)[16],
                                                   const int8_t* const* qs, __m256i (*isum)[2]) {
  constexpr int kPerGroup = 64 / G;
  const __m256i ones = _mm256_set1_epi16(1);
  for (int g = 0; g < G; ++g) {
    __m256i dot[NT][2];
    for (int t = 0; t < NT; ++t) dot[t][0] = dot[t][1] = _mm256_setzero_si256();
    for (int k = 0; k < kPerGroup; ++k) {
      const int c = kPerGroup * g + k;
      const __m256i u0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(u[c]));
      const __m256i u1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(u[c] + 32));
      for (int t = 0; t < NT; ++t) {
        int32_t a4;
        std::memcpy(&a4, qs[t] + 4 * c, 4);
        const __m256i av = _mm256_set1_epi32(a4);
        dot[t][0] =
            _mm256_add_epi32(dot[t][0], _mm256_madd_epi16(_mm256_maddubs_epi16(u0, av), ones));
        dot[t][1] =
            _mm256_add_epi32(dot[t][1], _mm256_madd_epi16(_mm256_maddubs_epi16(u1, av), ones));
      }
    }
    for (int h = 0; h < 2; ++h) {
      const __m256i scale = _mm256_load_si256(reinterpret_cast<const __m256i*>(sc[g] + 8 * h));
      for (int t = 0; t < NT; ++t) {
        isum[t][h] = _mm256_add_epi32(isum[t][h], _mm256_mullo_epi32(dot[t][h], scale));
      }
    }
  }
}

}  // namespace hangar::engine::avx2
#endif  // x86-64

#ifndef HANGAR_AVX2
#define HANGAR_PICK_AVX2(simd, ref) (ref)
#endif
