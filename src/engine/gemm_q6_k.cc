// Batched matmul for Q6_K weights against Q8_K activations.
//
// Arithmetic (the same on every path, so results are bit-identical across ISAs and never depend
// on how many rows or tokens a call has): per super-block b the exact integer
//   isum_b = sum over the 16 groups g of scales[g] * sum((q - 32) * a)
// then acc = fma(float(isum_b), d_w * d_a, acc) over the super-blocks in order, from acc = 0.
// The SIMD paths work on the unsigned u = q (0..63) and take 32 * sum_g scales[g] * bsums[g]
// back out. The per-row dot product (kernel_q6_k.cc) rounds the same integers in another order.
//
// The shape of gemm_q4_k.cc: AVX-512/VNNI with a row-interleaved tile for 4+ tokens and one row
// at a time with the elements in the lanes (16 rows' sums reduced together) for fewer; AVX2 with
// the same tile and a plain per-row path.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC bug 105593, see gemm_q8_0.cc
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "engine/fp16.h"
#include "engine/gemm.h"
#include "engine/quant_blocks.h"
#include "engine/simd_avx512.h"

namespace hangar::engine {
namespace {

void gemm_q6_k_ref(int64_t n, const void* w, size_t w_stride, int n_rows, const void* a,
                   size_t a_stride, int n_tok, float* out, size_t out_stride) {
  const int64_t nb = n / kQK_K;
  for (int t = 0; t < n_tok; ++t) {
    const BlockQ8_K* y =
        reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(a) + t * a_stride);
    for (int r = 0; r < n_rows; ++r) {
      const BlockQ6_K* x =
          reinterpret_cast<const BlockQ6_K*>(static_cast<const uint8_t*>(w) + r * w_stride);
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        int isum = 0;
        for (int g = 0; g < 16; ++g) {
          int dot = 0;
          for (int e = 16 * g; e < 16 * g + 16; ++e) {
            const int h = e / 128, k = (e % 128) / 32, l = e % 32;
            const uint8_t lbyte = x[b].ql[64 * h + 32 * (k & 1) + l];
            const int low = k < 2 ? lbyte & 0x0f : lbyte >> 4;
            const int high = (x[b].qh[32 * h + l] >> (2 * k)) & 3;
            dot += ((low | (high << 4)) - 32) * y[b].qs[e];
          }
          isum += x[b].scales[g] * dot;
        }
        acc = std::fma(static_cast<float>(isum), half_to_float(x[b].d) * y[b].d, acc);
      }
      out[t * out_stride + r] = acc;
    }
  }
}

#ifdef HANGAR_AVX2

// The unsigned quants of half h of a super-block, in element order: out[0] elements
// 128h..128h+63, out[1] elements 128h+64..128h+127. Low 4 bits: ql[64h..64h+63] (low nibbles
// for the first 64 elements, high for the next); top 2 bits: qh[32h + l] >> 2k for element
// 128h + 32k + l.
HANGAR_TARGET_AVX512 inline void unpack_half_q6_k(const BlockQ6_K& x, int h, __m512i* out) {
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  const __m512i two = _mm512_set1_epi8(3);
  const __m512i ql = _mm512_loadu_si512(x.ql + 64 * h);
  const __m512i qh = _mm512_broadcast_i64x4(avx2::load32(x.qh + 32 * h));
  const __m512i h01 =
      _mm512_and_si512(_mm512_srlv_epi64(qh, _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2)), two);
  const __m512i h23 =
      _mm512_and_si512(_mm512_srlv_epi64(qh, _mm512_setr_epi64(4, 4, 4, 4, 6, 6, 6, 6)), two);
  out[0] = _mm512_or_si512(_mm512_and_si512(ql, nibble), _mm512_slli_epi16(h01, 4));
  out[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), nibble),
                           _mm512_slli_epi16(h23, 4));
}

// As unpack_half_q6_k with 256-bit vectors: out[k] elements 128h + 32k .. 128h + 32k + 31.
HANGAR_TARGET_AVX2 inline void unpack_half_q6_k_avx2(const BlockQ6_K& x, int h, __m256i* out) {
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i two = _mm256_set1_epi8(3);
  const __m256i ql0 = avx2::load32(x.ql + 64 * h);
  const __m256i ql1 = avx2::load32(x.ql + 64 * h + 32);
  const __m256i qh = avx2::load32(x.qh + 32 * h);
  for (int k = 0; k < 4; ++k) {
    const __m256i ql = (k & 1) ? ql1 : ql0;
    const __m256i low = _mm256_and_si256(k < 2 ? ql : _mm256_srli_epi16(ql, 4), nibble);
    const __m256i high = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), two);
    out[k] = _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
  }
}

// ---- 4+ tokens: the tile path --------------------------------------------------------------

constexpr int kMinTokensForTile = 4;
constexpr int kChunk = 4;  // super-blocks per tile chunk (16 KiB of quants)

// u[b][k]: elements 4k..4k+3 of super-block b of the 16 rows, row i in int32 lane i; sc[b][g]
// the rows' group scales as int32 lanes; sp[b][i] the scales of groups 2i, 2i + 1 as int16
// pairs; d the rows' F32 super-block scales (0 for padding rows).
struct TileQ6K {
  alignas(64) uint8_t u[kChunk][64][64];
  alignas(64) int32_t sc[kChunk][16][16];
  alignas(64) int32_t sp[kChunk][8][16];
  alignas(64) float d[kChunk][16];
};

HANGAR_TARGET_AVX2 void repack_q6_k(const uint8_t* w, size_t w_stride, int n_rows, int64_t b0,
                                    int nbc, TileQ6K* tile) {
  for (int r = 0; r < 16; ++r) {
    if (r >= n_rows) {
      for (int b = 0; b < nbc; ++b) {
        for (int k = 0; k < 64; ++k) std::memset(&tile->u[b][k][4 * r], 0, 4);
        for (int g = 0; g < 16; ++g) tile->sc[b][g][r] = 0;
        for (int i = 0; i < 8; ++i) tile->sp[b][i][r] = 0;
        tile->d[b][r] = 0.0f;
      }
      continue;
    }
    const BlockQ6_K* x = reinterpret_cast<const BlockQ6_K*>(w + r * w_stride) + b0;
    for (int b = 0; b < nbc; ++b) {
      const char* next = reinterpret_cast<const char*>(x + b + kChunk);
      for (int line = 0; line < 4; ++line) _mm_prefetch(next + 64 * line, _MM_HINT_T0);
      for (int g = 0; g < 16; ++g) tile->sc[b][g][r] = x[b].scales[g];
      for (int i = 0; i < 8; ++i) {
        tile->sp[b][i][r] =
            static_cast<uint16_t>(x[b].scales[2 * i]) |
            (static_cast<uint32_t>(static_cast<uint16_t>(x[b].scales[2 * i + 1])) << 16);
      }
      tile->d[b][r] = avx2::h2f(x[b].d);
      for (int h = 0; h < 2; ++h) {
        __m256i u[4];
        unpack_half_q6_k_avx2(x[b], h, u);
        alignas(32) uint8_t bytes[128];
        for (int k = 0; k < 4; ++k)
          _mm256_store_si256(reinterpret_cast<__m256i*>(bytes + 32 * k), u[k]);
        for (int j = 0; j < 32; ++j) std::memcpy(&tile->u[b][32 * h + j][4 * r], bytes + 4 * j, 4);
      }
    }
  }
}

template <int NT>
HANGAR_TARGET_AVX512 inline void tile_tokens_q6_k(const TileQ6K& tile, int nbc,
                                                  const BlockQ8_K* const* y, __m512* acc) {
  for (int b = 0; b < nbc; ++b) {
    __m512i isum[NT];
    for (int t = 0; t < NT; ++t) isum[t] = _mm512_setzero_si512();
    for (int g = 0; g < 16; ++g) {
      __m512i dot[NT];
      for (int t = 0; t < NT; ++t) dot[t] = _mm512_setzero_si512();
      for (int k = 0; k < 4; ++k) {
        const __m512i u = _mm512_load_si512(tile.u[b][4 * g + k]);
        for (int t = 0; t < NT; ++t) {
          int32_t a4;
          std::memcpy(&a4, y[t][b].qs + 16 * g + 4 * k, 4);
          dot[t] = _mm512_dpbusd_epi32(dot[t], u, _mm512_set1_epi32(a4));
        }
      }
      const __m512i sc = _mm512_load_si512(tile.sc[b][g]);
      for (int t = 0; t < NT; ++t)
        isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(dot[t], sc));
    }
    const __m512 d = _mm512_load_ps(tile.d[b]);
    for (int t = 0; t < NT; ++t) {
      const BlockQ8_K& yb = y[t][b];
      // The + 32 each u carried: 32 * sum_g scales[g] * bsums[g].
      __m512i offset = _mm512_setzero_si512();
      for (int i = 0; i < 8; ++i) {
        int32_t pair;
        std::memcpy(&pair, yb.bsums + 2 * i, 4);
        offset =
            _mm512_dpwssd_epi32(offset, _mm512_load_si512(tile.sp[b][i]), _mm512_set1_epi32(pair));
      }
      const __m512i exact = _mm512_sub_epi32(isum[t], _mm512_slli_epi32(offset, 5));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(exact), _mm512_mul_ps(d, _mm512_set1_ps(yb.d)),
                               acc[t]);
    }
  }
}

HANGAR_TARGET_AVX512 void gemm_tile_q6_k(int64_t n, const uint8_t* w, size_t w_stride, int n_rows,
                                         const uint8_t* a, size_t a_stride, int n_tok, float* out,
                                         size_t out_stride) {
  const int64_t nb = n / kQK_K;
  TileQ6K tile;
  for (int r0 = 0; r0 < n_rows; r0 += 16) {
    const int rows = std::min(16, n_rows - r0);
    const __mmask16 mask = static_cast<__mmask16>((1u << rows) - 1);
    for (int64_t b0 = 0; b0 < nb; b0 += kChunk) {
      const int nbc = static_cast<int>(std::min<int64_t>(kChunk, nb - b0));
      repack_q6_k(w + r0 * w_stride, w_stride, rows, b0, nbc, &tile);
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
            tile_tokens_q6_k<4>(tile, nbc, y, acc);
            break;
          case 3:
            tile_tokens_q6_k<3>(tile, nbc, y, acc);
            break;
          case 2:
            tile_tokens_q6_k<2>(tile, nbc, y, acc);
            break;
          default:
            tile_tokens_q6_k<1>(tile, nbc, y, acc);
            break;
        }
        for (int t = 0; t < nt; ++t)
          _mm512_mask_storeu_ps(out + (t0 + t) * out_stride + r0, mask, acc[t]);
      }
    }
  }
}

// ---- fewer tokens: straight from the weights ----------------------------------------------

// One row's super-block against one token (act: its 4 vectors of quants, bsums its group
// sums): 16 lanes whose total is the row's sum of scale x integer dot over the 16 groups.
HANGAR_TARGET_AVX512 inline __m512i q6_k_row_sums(const BlockQ6_K& x, const __m512i* act, __m256i bsums,
                                                  const __m512i* spread) {
  const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales)));
  const __m512i sc = _mm512_castsi256_si512(sc16);
  __m512i sum = _mm512_setzero_si512();
  for (int h = 0; h < 2; ++h) {
    __m512i u[2];
    unpack_half_q6_k(x, h, u);
    for (int m = 0; m < 2; ++m) {
      const int j = 2 * h + m;
      sum = _mm512_dpwssd_epi32(sum, _mm512_maddubs_epi16(u[m], act[j]), _mm512_permutexvar_epi16(spread[j], sc));
    }
  }
  // The + 32 each u carried, taken from the low 8 lanes.
  const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bsums), 5);
  return _mm512_sub_epi32(sum, _mm512_zextsi256_si512(offset));
}

HANGAR_TARGET_AVX512 void gemv_q6_k(int64_t n, const uint8_t* w, size_t w_stride, int n_rows,
                                    const uint8_t* a, size_t a_stride, int n_tok, float* out,
                                    size_t out_stride) {
  const int64_t nb = n / kQK_K;
  // Unpacked vector j (elements 64j..64j+63) has group 4j + m in 128-bit lane m: vpermw indices
  // that spread each group's scale word over its lane.
  __m512i spread[4];
  for (int j = 0; j < 4; ++j) {
    alignas(64) int16_t idx[32];
    for (int i = 0; i < 32; ++i) idx[i] = static_cast<int16_t>(4 * j + i / 8);
    spread[j] = _mm512_load_si512(idx);
  }
  // 8 rows at a time (16 interleaved row streams measured slower; see gemm_q8_0.cc).
  int r = 0;
  // d sits at the end of the block (offset 208): the gather reads the 32 bits ending there.
  constexpr int kScaleWord = offsetof(BlockQ6_K, d) - 2;
  if (w_stride < (size_t{1} << 26)) {
    const __m256i scale_at = _mm256_add_epi32(
        _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(static_cast<int32_t>(w_stride))),
        _mm256_set1_epi32(kScaleWord));
    const char* first = reinterpret_cast<const char*>(w);
    if (n_rows >= 8) avx512::prefetch_until(first, first + 8 * w_stride);
    for (; r + 8 <= n_rows; r += 8) {
      const uint8_t* w0 = w + r * w_stride;
      __m256 acc[kMinTokensForTile - 1];
      for (int t = 0; t < n_tok; ++t) acc[t] = _mm256_setzero_ps();
      // Past n_rows too: a prefetch never faults, and the rows after a call are usually the
      // caller's next chunk (Context::matmul_multi).
      const char* next = reinterpret_cast<const char*>(w0 + 8 * w_stride);
      const char* pf = next;
      const size_t group_step = 8 * w_stride / nb;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = w0 + b * sizeof(BlockQ6_K);
        avx512::prefetch_until(pf, next + (b + 1) * group_step);
        const __m256i dd = _mm256_i32gather_epi32(reinterpret_cast<const int*>(blk), scale_at, 1);
        const __m256 dw = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(_mm256_srli_epi32(dd, 16)));
        for (int t = 0; t < n_tok; ++t) {
          const BlockQ8_K& y = reinterpret_cast<const BlockQ8_K*>(a + t * a_stride)[b];
          __m512i act[4];
          for (int j = 0; j < 4; ++j) act[j] = _mm512_loadu_si512(y.qs + 64 * j);
          const __m256i bsums = avx2::load32(y.bsums);
          __m512i pairs[4];  // rows 2k and 2k + 1, each folded to 8 lanes
          for (int k = 0; k < 4; ++k) {
            const uint8_t* x0 = blk + 2 * k * w_stride;
            const __m512i e = q6_k_row_sums(*reinterpret_cast<const BlockQ6_K*>(x0), act, bsums, spread);
            const __m512i o = q6_k_row_sums(*reinterpret_cast<const BlockQ6_K*>(x0 + w_stride), act, bsums, spread);
            pairs[k] = avx512::fold_pair(e, o);
          }
          const __m256 da = _mm256_set1_ps(y.d);
          acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(avx512::reduce8(pairs)), _mm256_mul_ps(dw, da), acc[t]);
        }
      }
      for (int t = 0; t < n_tok; ++t) _mm256_storeu_ps(out + t * out_stride + r, acc[t]);
    }
  }
  if (r < n_rows) {
    gemm_tile_q6_k(n, w + r * w_stride, w_stride, n_rows - r, a, a_stride, n_tok, out + r,
                   out_stride);
  }
}

// ---- AVX2: the same tile with vpmaddubsw + vpmaddwd, and a per-row path for few tokens ------

// NT tokens (1..2) over one chunk of the tile, each 16-lane vector taken as two 8-lane halves.
template <int NT>
HANGAR_TARGET_AVX2 inline void tile_tokens_q6_k_avx2(const TileQ6K& tile, int nbc,
                                                     const BlockQ8_K* const* y, __m256 (*acc)[2]) {
  for (int b = 0; b < nbc; ++b) {
    __m256i isum[NT][2];
    const int8_t* qs[NT];
    for (int t = 0; t < NT; ++t) {
      isum[t][0] = isum[t][1] = _mm256_setzero_si256();
      qs[t] = y[t][b].qs;
    }
    avx2::add_scaled_tile_dots<NT, 16>(tile.u[b], tile.sc[b], qs, isum);
    for (int t = 0; t < NT; ++t) {
      const BlockQ8_K& yb = y[t][b];
      const __m256 da = _mm256_set1_ps(yb.d);
      for (int h = 0; h < 2; ++h) {
        __m256i offset = _mm256_setzero_si256();
        for (int i = 0; i < 8; ++i) {
          int32_t pair;
          std::memcpy(&pair, yb.bsums + 2 * i, 4);
          const __m256i sp =
              _mm256_load_si256(reinterpret_cast<const __m256i*>(tile.sp[b][i] + 8 * h));
          offset = _mm256_add_epi32(offset, _mm256_madd_epi16(sp, _mm256_set1_epi32(pair)));
        }
        const __m256i exact = _mm256_sub_epi32(isum[t][h], _mm256_slli_epi32(offset, 5));
        const __m256 d = _mm256_mul_ps(_mm256_load_ps(tile.d[b] + 8 * h), da);
        acc[t][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(exact), d, acc[t][h]);
      }
    }
  }
}

HANGAR_TARGET_AVX2 void gemm_tile_q6_k_avx2(int64_t n, const uint8_t* w, size_t w_stride,
                                            int n_rows, const uint8_t* a, size_t a_stride,
                                            int n_tok, float* out, size_t out_stride) {
  const int64_t nb = n / kQK_K;
  TileQ6K tile;
  for (int r0 = 0; r0 < n_rows; r0 += 16) {
    const int rows = std::min(16, n_rows - r0);
    for (int64_t b0 = 0; b0 < nb; b0 += kChunk) {
      const int nbc = static_cast<int>(std::min<int64_t>(kChunk, nb - b0));
      repack_q6_k(w + r0 * w_stride, w_stride, rows, b0, nbc, &tile);
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
          tile_tokens_q6_k_avx2<2>(tile, nbc, y, acc);
        } else {
          tile_tokens_q6_k_avx2<1>(tile, nbc, y, acc);
        }
        for (int t = 0; t < nt; ++t) {
          for (int h = 0; h < 2; ++h) _mm256_store_ps(acc_mem[t] + 8 * h, acc[t][h]);
          std::memcpy(out + (t0 + t) * out_stride + r0, acc_mem[t], sizeof(float) * rows);
        }
      }
    }
  }
}

// One row and one token at a time, the elements in the lanes: per super-block the exact integer,
// then the same fused multiply-add as every path.
HANGAR_TARGET_AVX2 float row_q6_k_avx2(int64_t nb, const BlockQ6_K* x, const BlockQ8_K* y) {
  // spread[k]: word 2k of a 128-bit lane in every word of the low lane, word 2k + 1 in the high.
  __m256i spread[4];
  for (int k = 0; k < 4; ++k) {
    spread[k] = _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>((4 * k + 2) | ((4 * k + 3) << 8))),
                                 _mm_set1_epi16(static_cast<int16_t>((4 * k) | ((4 * k + 1) << 8))));
  }
  __m128 acc = _mm_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].scales)));
    // The + 32 each u carried: 32 x the scales dotted with the 16 group sums, taken up front.
    __m256i v = _mm256_sub_epi32(_mm256_setzero_si256(),
                                 _mm256_slli_epi32(_mm256_madd_epi16(sc16, avx2::load32(y[b].bsums)), 5));
    for (int h = 0; h < 2; ++h) {
      // Groups 8h .. 8h + 7 in both lanes.
      const __m256i sc = h == 0 ? _mm256_permute2x128_si256(sc16, sc16, 0x00) : _mm256_permute2x128_si256(sc16, sc16, 0x11);
      __m256i u[4];
      unpack_half_q6_k_avx2(x[b], h, u);
      for (int k = 0; k < 4; ++k) {
        // Elements 128h + 32k ..: groups 8h + 2k (low 16) and 8h + 2k + 1 (high 16).
        const __m256i pairs = _mm256_maddubs_epi16(u[k], avx2::load32(y[b].qs + 128 * h + 32 * k));
        v = _mm256_add_epi32(v, _mm256_madd_epi16(pairs, _mm256_shuffle_epi8(sc, spread[k])));
      }
    }
    const int isum = avx2::hsum_i32(v);
    acc = _mm_fmadd_ss(_mm_set_ss(static_cast<float>(isum)), _mm_set_ss(avx2::h2f(x[b].d) * y[b].d),
                       acc);
  }
  return _mm_cvtss_f32(acc);
}

HANGAR_TARGET_AVX2 void gemm_q6_k_avx2(int64_t n, const void* w, size_t w_stride, int n_rows,
                                       const void* a, size_t a_stride, int n_tok, float* out,
                                       size_t out_stride) {
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  const uint8_t* ab = static_cast<const uint8_t*>(a);
  if (n_tok >= kMinTokensForTile) {
    gemm_tile_q6_k_avx2(n, wb, w_stride, n_rows, ab, a_stride, n_tok, out, out_stride);
    return;
  }
  for (int t = 0; t < n_tok; ++t) {
    const BlockQ8_K* y = reinterpret_cast<const BlockQ8_K*>(ab + t * a_stride);
    for (int r = 0; r < n_rows; ++r) {
      out[t * out_stride + r] =
          row_q6_k_avx2(n / kQK_K, reinterpret_cast<const BlockQ6_K*>(wb + r * w_stride), y);
    }
  }
}

HANGAR_TARGET_AVX512 void gemm_q6_k_avx512(int64_t n, const void* w, size_t w_stride, int n_rows,
                                           const void* a, size_t a_stride, int n_tok, float* out,
                                           size_t out_stride) {
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  const uint8_t* ab = static_cast<const uint8_t*>(a);
  if (n_tok < kMinTokensForTile) {
    gemv_q6_k(n, wb, w_stride, n_rows, ab, a_stride, n_tok, out, out_stride);
  } else {
    gemm_tile_q6_k(n, wb, w_stride, n_rows, ab, a_stride, n_tok, out, out_stride);
  }
}

#endif  // HANGAR_AVX2

}  // namespace

GemmFn gemm_q6_k_for(Isa isa) {
#ifdef HANGAR_AVX2
  if (isa == Isa::kAvx512) return gemm_q6_k_avx512;
  if (isa == Isa::kAvx2) return gemm_q6_k_avx2;
#endif
  if (isa == Isa::kScalar) return gemm_q6_k_ref;
  return nullptr;
}

}  // namespace hangar::engine
