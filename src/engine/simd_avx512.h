#pragma once
// AVX-512 helpers shared by the batched matmul kernels (private to src/engine): every function
// is compiled with HANGAR_TARGET_AVX512 and called only when cpu_features().avx512. Pure inline
// functions.

#include "engine/simd_avx2.h"

#ifdef HANGAR_AVX2
namespace hangar::engine::avx512 {

// Lane l of reduce16's result holds row kLaneRow[l] (a 4 x 4 transpose, its own inverse): row i
// sits in lane kLaneRow[i], and _mm512_permutexvar_ps(kLaneRow, v) puts the rows in order.
alignas(64) inline constexpr int32_t kLaneRow[16] = {0, 4, 8,  12, 1, 5, 9,  13,
                                                     2, 6, 10, 14, 3, 7, 11, 15};

// p[k]: lanes 0..7 row 2k's partial sums, lanes 8..15 row 2k + 1's. Returns the 16 rows' sums,
// row kLaneRow[l] in lane l.
HANGAR_TARGET_AVX512 inline __m512i reduce16(const __m512i* p) {
  __m512i s[4];  // s[j]: 128-bit lane k holds row 4j + k's 4 partial sums
  for (int j = 0; j < 4; ++j) {
    const __m512i x = _mm512_shuffle_i32x4(p[2 * j], p[2 * j + 1], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512i y = _mm512_shuffle_i32x4(p[2 * j], p[2 * j + 1], _MM_SHUFFLE(3, 1, 3, 1));
    s[j] = _mm512_add_epi32(x, y);
  }
  const __m512i t0 =
      _mm512_add_epi32(_mm512_unpacklo_epi32(s[0], s[1]), _mm512_unpackhi_epi32(s[0], s[1]));
  const __m512i t1 =
      _mm512_add_epi32(_mm512_unpacklo_epi32(s[2], s[3]), _mm512_unpackhi_epi32(s[2], s[3]));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
}

// p[g]: 128-bit lane i holds row 4i + g's 4 partial sums. Returns the 16 rows' sums in row
// order (row l in lane l).
HANGAR_TARGET_AVX512 inline __m512i reduce4x4(const __m512i* p) {
  // Within each 128-bit lane: [p0 s0+s2, p1 s0+s2, p0 s1+s3, p1 s1+s3], and the same for p2, p3.
  const __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(p[0], p[1]), _mm512_unpackhi_epi32(p[0], p[1]));
  const __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(p[2], p[3]), _mm512_unpackhi_epi32(p[2], p[3]));
  // Rows 4i .. 4i + 3 in lanes 4i .. 4i + 3.
  return _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
}

// p[k]: lanes 0..7 row 2k's partial sums, lanes 8..15 row 2k + 1's. Returns the 8 rows' sums in
// row order.
HANGAR_TARGET_AVX512 inline __m256i reduce8(const __m512i* p) {
  // s0: 128-bit lane m holds 4 partial sums of rows 0, 1, 2, 3 (m = 0..3); s1 of rows 4..7.
  const __m512i s0 = _mm512_add_epi32(_mm512_shuffle_i32x4(p[0], p[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                      _mm512_shuffle_i32x4(p[0], p[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i s1 = _mm512_add_epi32(_mm512_shuffle_i32x4(p[2], p[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                      _mm512_shuffle_i32x4(p[2], p[3], _MM_SHUFFLE(3, 1, 3, 1)));
  // Lane m: [s0 (0+2), s1 (0+2), s0 (1+3), s1 (1+3)], then the totals [row m, row 4 + m, ...].
  const __m512i t = _mm512_add_epi32(_mm512_unpacklo_epi32(s0, s1), _mm512_unpackhi_epi32(s0, s1));
  const __m512i u = _mm512_add_epi32(t, _mm512_shuffle_epi32(t, _MM_PERM_BADC));
  const __m512i pick = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_castsi512_si256(_mm512_permutexvar_epi32(pick, u));
}

// p[g] (g = 0, 1): 128-bit lane i holds row 2i + g's 4 partial sums. Returns the 8 rows' sums in
// row order.
HANGAR_TARGET_AVX512 inline __m256i reduce2x4(const __m512i* p) {
  // Lane i: [p0 (s0+s2), p1 (s0+s2), p0 (s1+s3), p1 (s1+s3)], then [row 2i, row 2i + 1, ..].
  const __m512i t = _mm512_add_epi32(_mm512_unpacklo_epi32(p[0], p[1]), _mm512_unpackhi_epi32(p[0], p[1]));
  const __m512i u = _mm512_add_epi32(t, _mm512_shuffle_epi32(t, _MM_PERM_BADC));
  const __m512i pick = _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_castsi512_si256(_mm512_permutexvar_epi32(pick, u));
}

// Rows e and o (16 int32 partial sums each) folded to 8 lanes each: [e's 8, o's 8], the pair
// reduce16 takes.
HANGAR_TARGET_AVX512 inline __m512i fold_pair(__m512i e, __m512i o) {
  return _mm512_add_epi32(_mm512_shuffle_i32x4(e, o, _MM_SHUFFLE(1, 0, 1, 0)),
                          _mm512_shuffle_i32x4(e, o, _MM_SHUFFLE(3, 2, 3, 2)));
}

// 0, 1, ..., 15.
HANGAR_TARGET_AVX512 inline __m512i lane_index() {
  return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

using avx2::prefetch_until;

}  // namespace hangar::engine::avx512
#endif
