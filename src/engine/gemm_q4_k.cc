// Batched matmul for Q4_K weights against Q8_K activations.
//
// Arithmetic (the same on every path, so results are bit-identical across ISAs and never depend
// on how many rows or tokens a call has): per super-block b the exact integers
//   isum_b = sum over the 8 groups g of sc[g] * sum(q * a)   and   mins_b = sum_g m[g] * S_g
// (S_g the sum of group g's 32 activation quants, from bsums), then
//   acc = fma(float(isum_b), d_w * d_a, acc);  acc = fma(-float(mins_b), dmin_w * d_a, acc)
// over the super-blocks in order, from acc = 0. The per-row dot product (kernel_q4_k.cc) folds
// the same integers in another float order, so the two agree to rounding, not to the bit.
//
// AVX-512/VNNI:
//   - 4+ tokens: 16 weight rows at a time, a chunk of super-blocks is unpacked into a
//     row-interleaved tile on the stack (vector k of a super-block holds elements 4k..4k+3 of
//     the 16 rows, one int32 lane per row), so one vpdpbusd against 4 broadcast activation bytes
//     gives 16 rows' partial dots; group scales and mins are per-row lanes too. The tile stays
//     in L1 while every token passes over it, 4 tokens per pass sharing each vector loaded.
//   - fewer tokens: straight from the weights, one row at a time with the elements in the lanes
//     (vpmaddubsw, then vpdpwssd by the group scales), and 16 rows' lane sums reduced together.
// AVX2: the same tile with vpmaddubsw + vpmaddwd (2 tokens per pass), and one row at a time for
// fewer tokens.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC bug 105593, see gemm_q8_0.cc
#endif

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/fp16.h"
#include "engine/gemm.h"
#include "engine/quant_blocks.h"
#include "engine/simd_avx512.h"

namespace hangar::engine {
namespace {

// Group g's sum of activation quants.
inline int group_sum(const BlockQ8_K& y, int g) { return y.bsums[2 * g] + y.bsums[2 * g + 1]; }

void gemm_q4_k_ref(int64_t n, const void* w, size_t w_stride, int n_rows, const void* a,
                   size_t a_stride, int n_tok, float* out, size_t out_stride) {
  const int64_t nb = n / kQK_K;
  for (int t = 0; t < n_tok; ++t) {
    const BlockQ8_K* y =
        reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(a) + t * a_stride);
    for (int r = 0; r < n_rows; ++r) {
      const BlockQ4_K* x =
          reinterpret_cast<const BlockQ4_K*>(static_cast<const uint8_t*>(w) + r * w_stride);
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const ScalesMinsK4 s = unpack_scales_mins_k4(x[b].scales);
        int isum = 0;
        int mins = 0;
        for (int g = 0; g < 8; ++g) {
          int dot = 0;
          for (int l = 0; l < 32; ++l) {
            const uint8_t byte = x[b].qs[32 * (g / 2) + l];
            dot += (g % 2 == 0 ? byte & 0x0f : byte >> 4) * y[b].qs[32 * g + l];
          }
          isum += s.sc[g] * dot;
          mins += s.m[g] * group_sum(y[b], g);
        }
        acc = std::fma(static_cast<float>(isum), half_to_float(x[b].d) * y[b].d, acc);
        acc = std::fma(-static_cast<float>(mins), half_to_float(x[b].dmin) * y[b].d, acc);
      }
      out[t * out_stride + r] = acc;
    }
  }
}

#ifdef HANGAR_AVX2

// The 8 scales (bytes 0..7) and 8 mins (bytes 8..15) of a super-block from its 12 packed bytes,
// four at a time in 32-bit words (the layout unpack_scale_min_k4 reads one at a time): groups
// 0..3 keep the low 6 bits of bytes 0..3 (scales) and 4..7 (mins); groups 4..7 take their low
// 4 bits from bytes 8..11 (scales low nibble, mins high nibble) and their top 2 bits from the
// top 2 bits of bytes 0..3 (scales) and 4..7 (mins).
inline void unpack_scales_mins_words(const uint8_t* scales, uint32_t out[4]) {
  uint32_t w0, w1, w2;
  std::memcpy(&w0, scales, 4);
  std::memcpy(&w1, scales + 4, 4);
  std::memcpy(&w2, scales + 8, 4);
  out[0] = w0 & 0x3f3f3f3fu;
  out[1] = (w2 & 0x0f0f0f0fu) | (((w0 >> 6) & 0x03030303u) << 4);
  out[2] = w1 & 0x3f3f3f3fu;
  out[3] = ((w2 >> 4) & 0x0f0f0f0fu) | (((w1 >> 6) & 0x03030303u) << 4);
}

// ---- 4+ tokens: the tile path --------------------------------------------------------------

constexpr int kMinTokensForTile = 4;
constexpr int kChunk = 4;  // super-blocks per tile chunk (16 KiB of quants)

// u[b][k]: elements 4k..4k+3 of super-block b of the 16 rows, row i in int32 lane i; sc[b][g]
// the rows' group scales as int32 lanes; mp[b][i] the rows' mins of groups 2i, 2i + 1 as int16
// pairs; d, dmin the rows' F32 super-block scales (0 for padding rows).
struct TileQ4K {
  alignas(64) uint8_t u[kChunk][64][64];
  alignas(64) int32_t sc[kChunk][8][16];
  alignas(64) int32_t mp[kChunk][4][16];
  alignas(64) float d[kChunk][16];
  alignas(64) float dmin[kChunk][16];
};

HANGAR_TARGET_AVX2 void repack_q4_k(const uint8_t* w, size_t w_stride, int n_rows, int64_t b0,
                                    int nbc, TileQ4K* tile) {
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  for (int r = 0; r < 16; ++r) {
    if (r >= n_rows) {
      for (int b = 0; b < nbc; ++b) {
        for (int k = 0; k < 64; ++k) std::memset(&tile->u[b][k][4 * r], 0, 4);
        for (int g = 0; g < 8; ++g) tile->sc[b][g][r] = 0;
        for (int i = 0; i < 4; ++i) tile->mp[b][i][r] = 0;
        tile->d[b][r] = 0.0f;
        tile->dmin[b][r] = 0.0f;
      }
      continue;
    }
    const BlockQ4_K* x = reinterpret_cast<const BlockQ4_K*>(w + r * w_stride) + b0;
    for (int b = 0; b < nbc; ++b) {
      _mm_prefetch(reinterpret_cast<const char*>(x + b + kChunk), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(x + b + kChunk) + 64, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(x + b + kChunk) + 128, _MM_HINT_T0);
      uint32_t words[4];
      unpack_scales_mins_words(x[b].scales, words);
      uint8_t sm[16];
      std::memcpy(sm, words, 16);
      for (int g = 0; g < 8; ++g) tile->sc[b][g][r] = sm[g];
      for (int i = 0; i < 4; ++i) tile->mp[b][i][r] = sm[8 + 2 * i] | (sm[9 + 2 * i] << 16);
      tile->d[b][r] = avx2::h2f(x[b].d);
      tile->dmin[b][r] = avx2::h2f(x[b].dmin);
      for (int i = 0; i < 4; ++i) {
        // Bytes 32i..32i+31: low nibbles are group 2i (elements 64i + l), high group 2i + 1.
        const __m256i q = avx2::load32(x[b].qs + 32 * i);
        alignas(32) uint8_t lo[32], hi[32];
        _mm256_store_si256(reinterpret_cast<__m256i*>(lo), _mm256_and_si256(q, nibble));
        _mm256_store_si256(reinterpret_cast<__m256i*>(hi),
                           _mm256_and_si256(_mm256_srli_epi16(q, 4), nibble));
        for (int j = 0; j < 8; ++j) {
          std::memcpy(&tile->u[b][16 * i + j][4 * r], lo + 4 * j, 4);
          std::memcpy(&tile->u[b][16 * i + 8 + j][4 * r], hi + 4 * j, 4);
        }
      }
    }
  }
}

// NT tokens (1..4) over one chunk of the tile: acc[t] carries token t's 16 row sums.
template <int NT>
HANGAR_TARGET_AVX512 inline void tile_tokens_q4_k(const TileQ4K& tile, int nbc,
                                                  const BlockQ8_K* const* y, __m512* acc) {
  for (int b = 0; b < nbc; ++b) {
    __m512i isum[NT];
    for (int t = 0; t < NT; ++t) isum[t] = _mm512_setzero_si512();
    for (int g = 0; g < 8; ++g) {
      __m512i dot[NT];
      for (int t = 0; t < NT; ++t) dot[t] = _mm512_setzero_si512();
      for (int k = 0; k < 8; ++k) {
        const __m512i u = _mm512_load_si512(tile.u[b][8 * g + k]);
        for (int t = 0; t < NT; ++t) {
          int32_t a4;
          std::memcpy(&a4, y[t][b].qs + 32 * g + 4 * k, 4);
          dot[t] = _mm512_dpbusd_epi32(dot[t], u, _mm512_set1_epi32(a4));
        }
      }
      const __m512i sc = _mm512_load_si512(tile.sc[b][g]);
      for (int t = 0; t < NT; ++t)
        isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(dot[t], sc));
    }
    const __m512 d = _mm512_load_ps(tile.d[b]);
    const __m512 dmin = _mm512_load_ps(tile.dmin[b]);
    for (int t = 0; t < NT; ++t) {
      const BlockQ8_K& yb = y[t][b];
      __m512i mins = _mm512_setzero_si512();
      for (int i = 0; i < 4; ++i) {
        const uint32_t pair =
            static_cast<uint16_t>(group_sum(yb, 2 * i)) |
            (static_cast<uint32_t>(static_cast<uint16_t>(group_sum(yb, 2 * i + 1))) << 16);
        mins = _mm512_dpwssd_epi32(mins, _mm512_load_si512(tile.mp[b][i]),
                                   _mm512_set1_epi32(static_cast<int32_t>(pair)));
      }
      const __m512 da = _mm512_set1_ps(yb.d);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(d, da), acc[t]);
      acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mins), _mm512_mul_ps(dmin, da), acc[t]);
    }
  }
}

HANGAR_TARGET_AVX512 void gemm_tile_q4_k(int64_t n, const uint8_t* w, size_t w_stride, int n_rows,
                                         const uint8_t* a, size_t a_stride, int n_tok, float* out,
                                         size_t out_stride) {
  const int64_t nb = n / kQK_K;
  TileQ4K tile;
  for (int r0 = 0; r0 < n_rows; r0 += 16) {
    const int rows = std::min(16, n_rows - r0);
    const __mmask16 mask = static_cast<__mmask16>((1u << rows) - 1);
    for (int64_t b0 = 0; b0 < nb; b0 += kChunk) {
      const int nbc = static_cast<int>(std::min<int64_t>(kChunk, nb - b0));
      repack_q4_k(w + r0 * w_stride, w_stride, rows, b0, nbc, &tile);
      for (int t0 = 0; t0 < n_tok; t0 += 4) {
        const int nt = std::min(4, n_tok - t0);
        const BlockQ8_K* y[4];
        __m512 acc[4];
        for (int t = 0; t < nt; ++t) {
          y[t] = reinterpret_cast<const BlockQ8_K*>(a + (t0 + t) * a_stride) + b0;
          acc[t] = b0 > 0 ? _mm512_maskz_loadu_ps(mask, out + (t0 + t) * out_stride + r0)
                          : _mm512_setzero_ps();
        }
        switch (nt) {
          case 4:
            tile_tokens_q4_k<4>(tile, nbc, y, acc);
            break;
          case 3:
            tile_tokens_q4_k<3>(tile, nbc, y, acc);
            break;
          case 2:
            tile_tokens_q4_k<2>(tile, nbc, y, acc);
            break;
          default:
            tile_tokens_q4_k<1>(tile, nbc, y, acc);
            break;
        }
        for (int t = 0; t < nt; ++t)
          _mm512_mask_storeu_ps(out + (t0 + t) * out_stride + r0, mask, acc[t]);
      }
    }
  }
}

// ---- fewer tokens: straight from the weights ----------------------------------------------

// One row's super-block against one token: 16 lanes of scaled partial sums (their total is the
// row's sum of scale x integer dot over the 8 groups); *mins gets the row's 8 mins (bytes).
// Per 64 quant bytes: vpdpbusd of the low and of the high nibbles (4 products per int32, small
// enough for int16), both packed into one vector of int16, and one vpdpwssd with the groups'
// scales (spread[h]: the scale words in the packed order).
HANGAR_TARGET_AVX512 inline __m512i q4_k_row_sums(const BlockQ4_K& x, const __m512i* act_lo,
                                                  const __m512i* act_hi, const __m512i* spread,
                                                  uint64_t* mins) {
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  uint32_t words[4];
  unpack_scales_mins_words(x.scales, words);
  *mins = words[2] | static_cast<uint64_t>(words[3]) << 32;
  const __m128i sm = _mm_loadu_si128(reinterpret_cast<const __m128i*>(words));
  const __m512i sc = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(sm));
  __m512i sum = _mm512_setzero_si512();
  for (int h = 0; h < 2; ++h) {
    const __m512i q = _mm512_loadu_si512(x.qs + 64 * h);
    const __m512i lo = _mm512_and_si512(q, nibble);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), nibble);
    // 128-bit lanes 0, 1: groups 4h (low nibbles) and 4h + 1 (high); lanes 2, 3: 4h + 2, 4h + 3.
    const __m512i dlo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, act_lo[h]);
    const __m512i dhi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), hi, act_hi[h]);
    sum = _mm512_dpwssd_epi32(sum, _mm512_packs_epi32(dlo, dhi), _mm512_shuffle_epi8(sc, spread[h]));
  }
  return sum;
}

// vpshufb controls for q4_k_row_sums: per 128-bit lane, 4 words of one group's scale then 4 of
// the next (lanes 0, 1: groups 4h, 4h + 1; lanes 2, 3: 4h + 2, 4h + 3).
HANGAR_TARGET_AVX512 inline __m512i q4_k_spread(int h) {
  alignas(64) uint8_t ctrl[64];
  for (int lane = 0; lane < 4; ++lane) {
    for (int j = 0; j < 8; ++j) {
      const int word = 4 * h + (lane < 2 ? 0 : 2) + (j < 4 ? 0 : 1);
      ctrl[16 * lane + 2 * j] = static_cast<uint8_t>(2 * word);
      ctrl[16 * lane + 2 * j + 1] = static_cast<uint8_t>(2 * word + 1);
    }
  }
  return _mm512_load_si512(ctrl);
}

// The 16 rows' mins (8 bytes each, mins[i] row i) dotted with the 8 group sums s16: 4 rows per
// vector (one vpmaddwd), then reduce4x4. Row i in lane i.
HANGAR_TARGET_AVX512 inline __m512i q4_k_mins16(const uint64_t* mins, __m128i s16) {
  const __m512i s = _mm512_broadcast_i32x4(s16);
  __m512i p[4];
  for (int g = 0; g < 4; ++g) {  // rows g, g + 4, g + 8, g + 12
    const __m256i m8 = _mm256_set_epi64x(static_cast<int64_t>(mins[g + 12]), static_cast<int64_t>(mins[g + 8]),
                                         static_cast<int64_t>(mins[g + 4]), static_cast<int64_t>(mins[g]));
    p[g] = _mm512_madd_epi16(_mm512_cvtepu8_epi16(m8), s);
  }
  return avx512::reduce4x4(p);
}

HANGAR_TARGET_AVX512 void gemv_q4_k(int64_t n, const uint8_t* w, size_t w_stride, int n_rows,
                                    const uint8_t* a, size_t a_stride, int n_tok, float* out,
                                    size_t out_stride) {
  const int64_t nb = n / kQK_K;
  const __m512i spread[2] = {q4_k_spread(0), q4_k_spread(1)};
  int r = 0;
  if (w_stride < (size_t{1} << 26)) {
    const __m512i scale_at = _mm512_mullo_epi32(avx512::lane_index(), _mm512_set1_epi32(static_cast<int32_t>(w_stride)));
    for (; r + 16 <= n_rows; r += 16) {
      const uint8_t* w0 = w + r * w_stride;
      __m512 acc[kMinTokensForTile - 1];
      for (int t = 0; t < n_tok; ++t) acc[t] = _mm512_setzero_ps();
      // The next 16 rows (contiguous) are prefetched as one stream, in step with this block: the
      // 16 interleaved streams read here are more than the hardware prefetcher follows well.
      // Past n_rows too: a prefetch never faults, and the rows after a call are usually the
      // caller's next chunk (Context::matmul_multi).
      const char* next = reinterpret_cast<const char*>(w0 + 16 * w_stride);
      const char* pf = next;
      const size_t group_step = 16 * w_stride / nb;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = w0 + b * sizeof(BlockQ4_K);
        avx512::prefetch_until(pf, next + (b + 1) * group_step);
        const __m512i dd = _mm512_i32gather_epi32(scale_at, blk, 1);  // d | dmin << 16 per row
        const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
        const __m512 dminw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16)));
        for (int t = 0; t < n_tok; ++t) {
          const BlockQ8_K& y = reinterpret_cast<const BlockQ8_K*>(a + t * a_stride)[b];
          __m512i act_lo[2], act_hi[2];
          for (int h = 0; h < 2; ++h) {
            const int8_t* q = y.qs + 128 * h;
            act_lo[h] = _mm512_inserti64x4(_mm512_castsi256_si512(avx2::load32(q)),
                                           avx2::load32(q + 64), 1);
            act_hi[h] = _mm512_inserti64x4(_mm512_castsi256_si512(avx2::load32(q + 32)),
                                           avx2::load32(q + 96), 1);
          }
          // The 8 group sums as int16.
          const __m256i s32 = _mm256_madd_epi16(avx2::load32(y.bsums), _mm256_set1_epi16(1));
          const __m128i s16 =
              _mm_packs_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
          uint64_t mins[16];
          // Two rows per pair (each folded to 8 lanes), paired as kLaneRow says so that
          // reduce16 gives row i in lane i.
          __m512i pairs[8];
          for (int k = 0; k < 8; ++k) {
            const int i0 = avx512::kLaneRow[2 * k], i1 = avx512::kLaneRow[2 * k + 1];
            const __m512i e = q4_k_row_sums(*reinterpret_cast<const BlockQ4_K*>(blk + i0 * w_stride),
                                            act_lo, act_hi, spread, &mins[i0]);
            const __m512i o = q4_k_row_sums(*reinterpret_cast<const BlockQ4_K*>(blk + i1 * w_stride),
                                            act_lo, act_hi, spread, &mins[i1]);
            pairs[k] = avx512::fold_pair(e, o);
          }
          const __m512 da = _mm512_set1_ps(y.d);
          acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(avx512::reduce16(pairs)),
                                   _mm512_mul_ps(dw, da), acc[t]);
          acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(q4_k_mins16(mins, s16)),
                                    _mm512_mul_ps(dminw, da), acc[t]);
        }
      }
      for (int t = 0; t < n_tok; ++t) _mm512_storeu_ps(out + t * out_stride + r, acc[t]);
    }
  }
  if (r < n_rows) {
    gemm_tile_q4_k(n, w + r * w_stride, w_stride, n_rows - r, a, a_stride, n_tok, out + r,
                   out_stride);
  }
}

// ---- AVX2: the same tile with vpmaddubsw + vpmaddwd, and a per-row path for few tokens ------

// NT tokens (1..2) over one chunk of the tile, each 16-lane vector taken as two 8-lane halves.
template <int NT>
HANGAR_TARGET_AVX2 inline void tile_tokens_q4_k_avx2(const TileQ4K& tile, int nbc,
                                                     const BlockQ8_K* const* y, __m256 (*acc)[2]) {
  for (int b = 0; b < nbc; ++b) {
    __m256i isum[NT][2];
    const int8_t* qs[NT];
    for (int t = 0; t < NT; ++t) {
      isum[t][0] = isum[t][1] = _mm256_setzero_si256();
      qs[t] = y[t][b].qs;
    }
    avx2::add_scaled_tile_dots<NT, 8>(tile.u[b], tile.sc[b], qs, isum);
    for (int t = 0; t < NT; ++t) {
      const BlockQ8_K& yb = y[t][b];
      const __m256 da = _mm256_set1_ps(yb.d);
      for (int h = 0; h < 2; ++h) {
        __m256i mins = _mm256_setzero_si256();
        for (int i = 0; i < 4; ++i) {
          const uint32_t pair =
              static_cast<uint16_t>(group_sum(yb, 2 * i)) |
              (static_cast<uint32_t>(static_cast<uint16_t>(group_sum(yb, 2 * i + 1))) << 16);
          const __m256i mp =
              _mm256_load_si256(reinterpret_cast<const __m256i*>(tile.mp[b][i] + 8 * h));
          mins = _mm256_add_epi32(
              mins, _mm256_madd_epi16(mp, _mm256_set1_epi32(static_cast<int32_t>(pair))));
        }
        const __m256 d = _mm256_mul_ps(_mm256_load_ps(tile.d[b] + 8 * h), da);
        const __m256 dmin = _mm256_mul_ps(_mm256_load_ps(tile.dmin[b] + 8 * h), da);
        acc[t][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t][h]), d, acc[t][h]);
        acc[t][h] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins), dmin, acc[t][h]);
      }
    }
  }
}

HANGAR_TARGET_AVX2 void gemm_tile_q4_k_avx2(int64_t n, const uint8_t* w, size_t w_stride,
                                            int n_rows, const uint8_t* a, size_t a_stride,
                                            int n_tok, float* out, size_t out_stride) {
  const int64_t nb = n / kQK_K;
  TileQ4K tile;
  for (int r0 = 0; r0 < n_rows; r0 += 16) {
    const int rows = std::min(16, n_rows - r0);
    for (int64_t b0 = 0; b0 < nb; b0 += kChunk) {
      const int nbc = static_cast<int>(std::min<int64_t>(kChunk, nb - b0));
      repack_q4_k(w + r0 * w_stride, w_stride, rows, b0, nbc, &tile);
      for (int t0 = 0; t0 < n_tok; t0 += 2) {
        const int nt = std::min(2, n_tok - t0);
        const BlockQ8_K* y[2];
        alignas(32) float acc_mem[2][16] = {};
        __m256 acc[2][2];
        for (int t = 0; t < nt; ++t) {
          y[t] = reinterpret_cast<const BlockQ8_K*>(a + (t0 + t) * a_stride) + b0;
          if (b0 > 0)
            std::memcpy(acc_mem[t], out + (t0 + t) * out_stride + r0, sizeof(float) * rows);
          for (int h = 0; h < 2; ++h) acc[t][h] = _mm256_load_ps(acc_mem[t] + 8 * h);
        }
        if (nt == 2) {
          tile_tokens_q4_k_avx2<2>(tile, nbc, y, acc);
        } else {
          tile_tokens_q4_k_avx2<1>(tile, nbc, y, acc);
        }
        for (int t = 0; t < nt; ++t) {
          for (int h = 0; h < 2; ++h) _mm256_store_ps(acc_mem[t] + 8 * h, acc[t][h]);
          std::memcpy(out + (t0 + t) * out_stride + r0, acc_mem[t], sizeof(float) * rows);
        }
      }
    }
  }
}

// One row and one token at a time, the elements in the lanes: per super-block the exact
// integers, then the same two fused multiply-adds as every path. A group's scale is spread
// over the lanes by one byte shuffle; the mins meet the group sums in one vpmaddwd.
HANGAR_TARGET_AVX2 float row_q4_k_avx2(int64_t nb, const BlockQ4_K* x, const BlockQ8_K* y) {
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i ones16 = _mm256_set1_epi16(1);
  __m256i spread[8];  // word g of a 128-bit lane in every word
  for (int g = 0; g < 8; ++g) spread[g] = _mm256_set1_epi16(static_cast<int16_t>((2 * g) | ((2 * g + 1) << 8)));
  __m128 acc = _mm_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    uint32_t words[4];
    unpack_scales_mins_words(x[b].scales, words);
    const __m128i sm = _mm_loadu_si128(reinterpret_cast<const __m128i*>(words));
    const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));  // the 8 scales, both lanes
    __m256i v = _mm256_setzero_si256();
    for (int i = 0; i < 4; ++i) {
      const __m256i q = avx2::load32(x[b].qs + 32 * i);
      const __m256i lo = _mm256_and_si256(q, nibble);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), nibble);
      const __m256i plo = _mm256_maddubs_epi16(lo, avx2::load32(y[b].qs + 64 * i));
      const __m256i phi = _mm256_maddubs_epi16(hi, avx2::load32(y[b].qs + 64 * i + 32));
      v = _mm256_add_epi32(v, _mm256_madd_epi16(plo, _mm256_shuffle_epi8(sc, spread[2 * i])));
      v = _mm256_add_epi32(v, _mm256_madd_epi16(phi, _mm256_shuffle_epi8(sc, spread[2 * i + 1])));
    }
    // The 8 group sums (pairs of the 16 bsums) as int16, times the 8 mins.
    const __m256i gs32 = _mm256_madd_epi16(avx2::load32(y[b].bsums), ones16);
    const __m128i gs16 = _mm_packs_epi32(_mm256_castsi256_si128(gs32), _mm256_extracti128_si256(gs32, 1));
    const __m128i m = _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_srli_si128(sm, 8)), gs16);
    const __m128i m2 = _mm_add_epi32(m, _mm_shuffle_epi32(m, 0x4e));
    const int mins = _mm_cvtsi128_si32(_mm_add_epi32(m2, _mm_shuffle_epi32(m2, 0xb1)));
    const __m128 d = _mm_set_ss(avx2::h2f(x[b].d) * y[b].d);
    const __m128 dmin = _mm_set_ss(avx2::h2f(x[b].dmin) * y[b].d);
    acc = _mm_fmadd_ss(_mm_set_ss(static_cast<float>(avx2::hsum_i32(v))), d, acc);
    acc = _mm_fnmadd_ss(_mm_set_ss(static_cast<float>(mins)), dmin, acc);
  }
  return _mm_cvtss_f32(acc);
}

HANGAR_TARGET_AVX2 void gemm_q4_k_avx2(int64_t n, const void* w, size_t w_stride, int n_rows,
                                       const void* a, size_t a_stride, int n_tok, float* out,
                                       size_t out_stride) {
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  const uint8_t* ab = static_cast<const uint8_t*>(a);
  if (n_tok >= kMinTokensForTile) {
    gemm_tile_q4_k_avx2(n, wb, w_stride, n_rows, ab, a_stride, n_tok, out, out_stride);
    return;
  }
  for (int t = 0; t < n_tok; ++t) {
    const BlockQ8_K* y = reinterpret_cast<const BlockQ8_K*>(ab + t * a_stride);
    for (int r = 0; r < n_rows; ++r) {
      out[t * out_stride + r] =
          row_q4_k_avx2(n / kQK_K, reinterpret_cast<const BlockQ4_K*>(wb + r * w_stride), y);
    }
  }
}

HANGAR_TARGET_AVX512 void gemm_q4_k_avx512(int64_t n, const void* w, size_t w_stride, int n_rows,
                                           const void* a, size_t a_stride, int n_tok, float* out,
                                           size_t out_stride) {
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  const uint8_t* ab = static_cast<const uint8_t*>(a);
  if (n_tok < kMinTokensForTile) {
    gemv_q4_k(n, wb, w_stride, n_rows, ab, a_stride, n_tok, out, out_stride);
  } else {
    gemm_tile_q4_k(n, wb, w_stride, n_rows, ab, a_stride, n_tok, out, out_stride);
  }
}

#endif  // HANGAR_AVX2

}  // namespace

GemmFn gemm_q4_k_for(Isa isa) {
#ifdef HANGAR_AVX2
  if (isa == Isa::kAvx512) return gemm_q4_k_avx512;
  if (isa == Isa::kAvx2) return gemm_q4_k_avx2;
#endif
  if (isa == Isa::kScalar) return gemm_q4_k_ref;
  return nullptr;
}

}  // namespace hangar::engine
