// Batched matmul for the weight types whose activations are Q8_0 (Q4_0 and Q8_0): every weight
// block loaded from memory serves every token of the batch.
//
// Arithmetic (the same on every path, so results are bit-identical across ISAs and never depend
// on how many rows or tokens a call has): per 32-element block b the exact integer dot isum_b of
// the weight and activation quants, then acc = fma(float(isum_b), d_w[b] * d_a[b], acc) over the
// blocks in order, from acc = 0.
//
// How the SIMD paths get there, for 4+ tokens: a chunk of blocks of a group of weight rows is
// unpacked into a small row-interleaved tile on the stack ("repacked on the fly"; nothing is
// kept): for block b, vector k holds elements 4k..4k+3 of the rows as unsigned bytes u = q +
// offset (offset 8 for Q4_0's nibbles, 128 for Q8_0), one int32 lane per row. One broadcast of 4
// activation bytes times that vector gives every row's partial dot in one instruction, and
// isum = dot(u, a) - offset * sum(a). The tile stays in L1 while every token passes over it;
// each token's accumulators live in `out` between chunks.
//   - AVX-512/VNNI: 32 rows (two 16-lane vectors) per tile, vpdpbusd, 4 tokens per pass so each
//     weight vector loaded serves 4 tokens.
//   - AVX2: 16 rows (two 8-lane vectors), vpmaddubsw + vpmaddwd, one token per pass.
// For 1-3 tokens (generation, small continuous batches) there is no tile: AVX-512 reads 8 rows
// straight from the weights (gemv8_avx512), AVX2 8 rows for Q4_0 (gemv8_q4_0_avx2) and 4 rows
// otherwise (gemv_avx2).
// GCC 12 reports its own AVX-512 intrinsics' deliberately undefined operands (the
// _mm512_undefined_* they start from) as maybe-uninitialized once inlined (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
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

constexpr int kGroup = 8;    // rows per interleaved group (one 256-bit vector of int32 lanes)
constexpr int kGroups = 2;   // groups per tile: 16 rows
constexpr int kChunk = 32;   // blocks per tile chunk (1024 elements)

// The unsigned weight quants u (0..255) of element j of a block, and the offset o with
// q = u - o. Q4_0: element j < 16 is the low nibble of qs[j], j >= 16 the high nibble of
// qs[j - 16] (the order of the Q8_0 activation block).
struct Q4_0Traits {
  using Block = BlockQ4_0;
  static constexpr int kOffset = 8;
  static int quant(const Block& b, int j) { return j < 16 ? b.qs[j] & 0x0f : b.qs[j - 16] >> 4; }
};
struct Q8_0Traits {
  using Block = BlockQ8_0;
  static constexpr int kOffset = 128;
  static int quant(const Block& b, int j) { return b.qs[j] + 128; }
};

template <typename Traits>
void gemm_ref(int64_t n, const void* w, size_t w_stride, int n_rows, const void* a,
              size_t a_stride, int n_tok, float* out, size_t out_stride) {
  using Block = typename Traits::Block;
  const int64_t nb = n / kQK;
  for (int t = 0; t < n_tok; ++t) {
    const BlockQ8_0* y = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(a) + t * a_stride);
    for (int r = 0; r < n_rows; ++r) {
      const Block* x = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + r * w_stride);
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        int isum = 0;
        for (int j = 0; j < kQK; ++j) isum += (Traits::quant(x[b], j) - Traits::kOffset) * y[b].qs[j];
        acc = std::fma(static_cast<float>(isum), half_to_float(x[b].d) * half_to_float(y[b].d), acc);
      }
      out[t * out_stride + r] = acc;
    }
  }
}

#ifdef HANGAR_AVX2

// Few tokens: no repack. 4 rows at a time, each block's integer dots reduced to 4 exact sums by
// horizontal adds, then the same fma per row as the tile path (so the bits are the same).
constexpr int kMinTokensForTile = 4;
// 1-3 tokens: activation blocks whose sums and scales are kept on the stack at once.
constexpr int kGemvBlocks = 512;

// The signed quants q of one block, element order of the activation block.
template <typename Traits>
HANGAR_TARGET_AVX2 inline __m256i load_q(const typename Traits::Block& b) {
  if constexpr (Traits::kOffset == 8) {
    return _mm256_sub_epi8(avx2::unpack_nibbles(b.qs), _mm256_set1_epi8(8));
  } else {
    return avx2::load32(b.qs);
  }
}

// The unsigned quants u of one block, as the tiles hold them: Q4_0's nibbles, Q8_0's bytes
// + 128 (the sign trick of dot4_avx2 undoes it).
template <typename Traits>
HANGAR_TARGET_AVX2 inline __m256i load_u(const typename Traits::Block& b) {
  if constexpr (Traits::kOffset == 8) {
    return avx2::unpack_nibbles(b.qs);
  } else {
    return _mm256_xor_si256(avx2::load32(b.qs), _mm256_set1_epi8(static_cast<char>(0x80)));
  }
}

// Lane sums of v0..v3 -> [sum v0, sum v1, sum v2, sum v3].
HANGAR_TARGET_AVX2 inline __m128i hsum4(__m256i v0, __m256i v1, __m256i v2, __m256i v3) {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

template <typename Traits>
HANGAR_TARGET_AVX2 void gemv_avx2(int64_t n, const void* w, size_t w_stride, int n_rows,
                                  const void* a, size_t a_stride, int n_tok, float* out,
                                  size_t out_stride) {
  using Block = typename Traits::Block;
  const int64_t nb = n / kQK;
  for (int t = 0; t < n_tok; ++t) {
    const BlockQ8_0* y = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(a) + t * a_stride);
    int r = 0;
    for (; r + 4 <= n_rows; r += 4) {
      const Block* x[4];
      for (int i = 0; i < 4; ++i) x[i] = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + (r + i) * w_stride);
      __m128 acc = _mm_setzero_ps();
      // The 4 rows are read as 4 interleaved streams, which the hardware prefetcher follows
      // poorly; the next 4 rows (contiguous in memory) are prefetched as one stream meanwhile.
      const char* next = reinterpret_cast<const char*>(w) + (r + 4) * w_stride;
      const size_t step = 4 * sizeof(Block);
      // Past n_rows too: a prefetch never faults, and the rows after a call are usually the
      // caller's next chunk (Context::matmul_multi).
      for (int64_t b = 0; b < nb; ++b) {
        const char* p = next + b * step;
        _mm_prefetch(p, _MM_HINT_T0);
        _mm_prefetch(p + 64, _MM_HINT_T0);
        _mm_prefetch(p + step - 1, _MM_HINT_T0);
        const __m256i ay = avx2::load32(y[b].qs);
        __m256i v[4];
        for (int i = 0; i < 4; ++i) {
          v[i] = avx2::dot_i8_i8(load_q<Traits>(x[i][b]), ay);
        }
        const __m128 isum = _mm_cvtepi32_ps(hsum4(v[0], v[1], v[2], v[3]));
        const __m128 dw = _mm_setr_ps(avx2::h2f(x[0][b].d), avx2::h2f(x[1][b].d), avx2::h2f(x[2][b].d),
                                      avx2::h2f(x[3][b].d));
        acc = _mm_fmadd_ps(isum, _mm_mul_ps(dw, _mm_set1_ps(avx2::h2f(y[b].d))), acc);
      }
      _mm_storeu_ps(out + t * out_stride + r, acc);
    }
    if (r < n_rows) {
      gemm_ref<Traits>(n, static_cast<const uint8_t*>(w) + r * w_stride, w_stride, n_rows - r,
                       y, a_stride, 1, out + t * out_stride + r, out_stride);
    }
  }
}

// One chunk of a 16-row tile: u[g][b][k] holds elements 4k..4k+3 of rows 8g..8g+7 of block b
// (row i of the group in int32 lane i); d[g][b] the rows' F32 scales (0 for padding rows).
struct Tile {
  alignas(32) uint8_t u[kGroups][kChunk][8][32];
  alignas(32) float d[kGroups][kChunk][kGroup];
};

// Unpacks blocks [b0, b0 + nbc) of rows [0, n_rows) (n_rows <= 16) into the tile.
template <typename Traits>
HANGAR_TARGET_AVX2 void repack(const uint8_t* w, size_t w_stride, int n_rows, int64_t b0, int nbc,
                               Tile* tile) {
  using Block = typename Traits::Block;
  for (int g = 0; g < kGroups; ++g) {
    for (int i = 0; i < kGroup; ++i) {
      const int r = 8 * g + i;
      if (r >= n_rows) {
        for (int b = 0; b < nbc; ++b) {
          for (int k = 0; k < 8; ++k) std::memset(&tile->u[g][b][k][4 * i], 0, 4);
          tile->d[g][b][i] = 0.0f;
        }
        continue;
      }
      const Block* x = reinterpret_cast<const Block*>(w + r * w_stride) + b0;
      // The next chunk of this row, while this one is unpacked.
      _mm_prefetch(reinterpret_cast<const char*>(x + kChunk), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(x + kChunk) + 64, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(x + kChunk) + 128, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(x + kChunk) + 192, _MM_HINT_T0);
      for (int b = 0; b < nbc; ++b) {
        alignas(32) uint8_t q[32];
        _mm256_store_si256(reinterpret_cast<__m256i*>(q), load_u<Traits>(x[b]));
        for (int k = 0; k < 8; ++k) std::memcpy(&tile->u[g][b][k][4 * i], q + 4 * k, 4);
        tile->d[g][b][i] = avx2::h2f(x[b].d);
      }
    }
  }
}

// Sum of the 32 activation quants of a block.
HANGAR_TARGET_AVX2 inline int act_sum(const BlockQ8_0& y) {
  const __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), avx2::load32(y.qs));
  return avx2::hsum_i32(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
}

// 8 rows' partial integer dots of 4 elements, AVX2: u * a in int16 pairs, then int32. With
// u <= 15 (Q4_0) the pairs cannot saturate; Q8_0's u <= 255 can, so Q8_0 works on the signed
// q = u - 128 (sign trick) and needs no offset.
template <typename Traits>
HANGAR_TARGET_AVX2 inline __m256i dot4_avx2(__m256i acc, __m256i u, __m256i a) {
  if constexpr (Traits::kOffset == 8) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, a), _mm256_set1_epi16(1)));
  } else {
    // q = u - 128; q * a = |q| * sign(a, q), summed directly (the caller's offset is 0).
    const __m256i q = _mm256_xor_si256(u, _mm256_set1_epi8(static_cast<char>(0x80)));
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(a, q));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
  }
}

// Q4_0 with AVX2, 1-3 tokens: 8 rows in 4 vectors, vector g holding rows g and g + 4 in its
// two 128-bit lanes (a row's 16 packed bytes per lane). The unsigned nibbles go straight into
// vpmaddubsw against the activation's halves (no sign trick: u <= 15, so an int16 holding 4
// products cannot saturate), one vpmaddwd makes each row's 4 partial sums, and a 4 x 4
// transpose-add leaves the 8 rows' block sums in row order. Activation sums and scales once per
// call, scales put together in general registers; the same arithmetic as the reference.

template <int NT>
HANGAR_TARGET_AVX2 void gemv8_q4_0_avx2(int64_t nb, const uint8_t* w, size_t w_stride, int n_rows,
                                        const uint8_t* a, size_t a_stride, float* out,
                                        size_t out_stride) {
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i ones16 = _mm256_set1_epi16(1);
  const size_t group_step = 8 * w_stride / nb;  // bytes of the next 8 rows per block
  int32_t off[NT][kGemvBlocks];              // -8 * sum(a)
  float da[NT][kGemvBlocks];
  const char* first = reinterpret_cast<const char*>(w);
  avx2::prefetch_until(first, first + 8 * w_stride);
  auto at = [](const uint8_t* p) -> uint64_t {
    uint16_t h;
    std::memcpy(&h, p, sizeof(h));
    return h;
  };
  for (int64_t b0 = 0; b0 < nb; b0 += kGemvBlocks) {
    const int nbc = static_cast<int>(std::min<int64_t>(kGemvBlocks, nb - b0));
    const BlockQ8_0* y[NT];
    for (int t = 0; t < NT; ++t) {
      y[t] = reinterpret_cast<const BlockQ8_0*>(a + t * a_stride) + b0;
      for (int b = 0; b < nbc; ++b) {
        off[t][b] = -8 * act_sum(y[t][b]);
        da[t][b] = avx2::h2f(y[t][b].d);
      }
    }
    for (int r = 0; r < n_rows; r += 8) {
      const uint8_t* w0 = w + r * w_stride + b0 * sizeof(BlockQ4_0);
      __m256 acc[NT];
      for (int t = 0; t < NT; ++t) {
        acc[t] = b0 == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(out + t * out_stride + r);
      }
      // The next 8 rows (contiguous) prefetched as one stream, in step with this block.
      // Past n_rows too: a prefetch never faults, and the rows after a call are usually the
      // caller's next chunk (Context::matmul_multi).
      const char* next = reinterpret_cast<const char*>(w + (r + 8) * w_stride);
      const char* pf = next + b0 * group_step;
      for (int b = 0; b < nbc; ++b) {
        avx2::prefetch_until(pf, next + (b0 + b + 1) * group_step);
        const uint8_t* blk = w0 + b * sizeof(BlockQ4_0);
        __m256i lo[4], hi[4];
        for (int g = 0; g < 4; ++g) {
          const uint8_t* q = blk + g * w_stride + offsetof(BlockQ4_0, qs);
          const __m256i v = _mm256_inserti128_si256(
              _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q))),
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 4 * w_stride)), 1);
          lo[g] = _mm256_and_si256(v, low);
          hi[g] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
        }
        const uint64_t d0 = at(blk) | at(blk + w_stride) << 16 | at(blk + 2 * w_stride) << 32 | at(blk + 3 * w_stride) << 48;
        const uint8_t* blk4 = blk + 4 * w_stride;
        const uint64_t d1 = at(blk4) | at(blk4 + w_stride) << 16 | at(blk4 + 2 * w_stride) << 32 | at(blk4 + 3 * w_stride) << 48;
        const __m256 dw = _mm256_cvtph_ps(_mm_set_epi64x(static_cast<int64_t>(d1), static_cast<int64_t>(d0)));
        for (int t = 0; t < NT; ++t) {
          const __m256i alo = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y[t][b].qs)));
          const __m256i ahi = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y[t][b].qs + 16)));
          __m256i p[4];
          for (int g = 0; g < 4; ++g) {
            const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo[g], alo), _mm256_maddubs_epi16(hi[g], ahi));
            p[g] = _mm256_madd_epi16(pairs, ones16);
          }
          // 128-bit lane i of p[g] holds row 4i + g's 4 partial sums.
          const __m256i s01 = _mm256_add_epi32(_mm256_unpacklo_epi32(p[0], p[1]), _mm256_unpackhi_epi32(p[0], p[1]));
          const __m256i s23 = _mm256_add_epi32(_mm256_unpacklo_epi32(p[2], p[3]), _mm256_unpackhi_epi32(p[2], p[3]));
          const __m256i sums = _mm256_add_epi32(_mm256_unpacklo_epi64(s01, s23), _mm256_unpackhi_epi64(s01, s23));
          const __m256i isum = _mm256_add_epi32(sums, _mm256_set1_epi32(off[t][b]));
          const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(da[t][b]));
          acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), d, acc[t]);
        }
      }
      for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + t * out_stride + r, acc[t]);
    }
  }
}

template <typename Traits>
HANGAR_TARGET_AVX2 void gemm_avx2(int64_t n, const void* w, size_t w_stride, int n_rows,
                                  const void* a, size_t a_stride, int n_tok, float* out,
                                  size_t out_stride) {
  if (n_tok < kMinTokensForTile) {
    int rows8 = 0;
    if constexpr (Traits::kOffset == 8) {
      rows8 = n_rows / 8 * 8;
      const int64_t nb = n / kQK;
      const uint8_t* wb = static_cast<const uint8_t*>(w);
      const uint8_t* ab = static_cast<const uint8_t*>(a);
      switch (rows8 > 0 ? n_tok : 0) {
        case 0: break;
        case 1: gemv8_q4_0_avx2<1>(nb, wb, w_stride, rows8, ab, a_stride, out, out_stride); break;
        case 2: gemv8_q4_0_avx2<2>(nb, wb, w_stride, rows8, ab, a_stride, out, out_stride); break;
        default: gemv8_q4_0_avx2<3>(nb, wb, w_stride, rows8, ab, a_stride, out, out_stride); break;
      }
    }
    if (rows8 < n_rows) {
      gemv_avx2<Traits>(n, static_cast<const uint8_t*>(w) + rows8 * w_stride, w_stride, n_rows - rows8, a,
                        a_stride, n_tok, out + rows8, out_stride);
    }
    return;
  }
  const int64_t nb = n / kQK;
  Tile tile;
  for (int r0 = 0; r0 < n_rows; r0 += kGroups * kGroup) {
    const int rows = std::min(kGroups * kGroup, n_rows - r0);
    const int groups = (rows + kGroup - 1) / kGroup;
    const uint8_t* wr = static_cast<const uint8_t*>(w) + r0 * w_stride;
    for (int64_t b0 = 0; b0 < nb; b0 += kChunk) {
      const int nbc = static_cast<int>(std::min<int64_t>(kChunk, nb - b0));
      repack<Traits>(wr, w_stride, rows, b0, nbc, &tile);
      for (int t = 0; t < n_tok; ++t) {
        const BlockQ8_0* y = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(a) + t * a_stride) + b0;
        float* o = out + t * out_stride + r0;
        __m256 acc[kGroups];
        for (int g = 0; g < kGroups; ++g) {
          acc[g] = _mm256_setzero_ps();
          if (b0 > 0 && g < groups) {
            alignas(32) float prev[kGroup] = {};
            std::memcpy(prev, o + 8 * g, sizeof(float) * std::min(kGroup, rows - 8 * g));
            acc[g] = _mm256_load_ps(prev);
          }
        }
        for (int b = 0; b < nbc; ++b) {
          const __m256 da = _mm256_set1_ps(avx2::h2f(y[b].d));
          const __m256i off = _mm256_set1_epi32(Traits::kOffset == 8 ? 8 * act_sum(y[b]) : 0);
          __m256i av[8];
          for (int k = 0; k < 8; ++k) {
            int32_t v;
            std::memcpy(&v, y[b].qs + 4 * k, 4);
            av[k] = _mm256_set1_epi32(v);
          }
          for (int g = 0; g < groups; ++g) {
            __m256i isum = _mm256_setzero_si256();
            for (int k = 0; k < 8; ++k) {
              isum = dot4_avx2<Traits>(isum, _mm256_load_si256(reinterpret_cast<const __m256i*>(tile.u[g][b][k])), av[k]);
            }
            isum = _mm256_sub_epi32(isum, off);
            const __m256 d = _mm256_mul_ps(_mm256_load_ps(tile.d[g][b]), da);
            acc[g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), d, acc[g]);
          }
        }
        for (int g = 0; g < groups; ++g) {
          alignas(32) float res[kGroup];
          _mm256_store_ps(res, acc[g]);
          std::memcpy(o + 8 * g, res, sizeof(float) * std::min(kGroup, rows - 8 * g));
        }
      }
    }
  }
}

// Few tokens with AVX-512: 8 rows at a time straight from the weights (no tile); each block's
// exact integer sums of the 8 rows end in one vector, row i in lane i, and the rest is the tile
// path's arithmetic (so the bits are the same). A block's activation sum and scale are computed
// once per call, not once per group of rows.
//   - Q4_0: vector g holds rows g, g + 2, g + 4 and g + 6 in its four 128-bit lanes (a row's 16
//     packed bytes per lane). One AND gives elements 0..15 and one shift + AND elements 16..31
//     of the 4 rows; two vpdpbusd against the activation's two halves (each repeated in every
//     lane) leave each row's 4 partial sums in its lane; reduce2x4 adds them up.
//   - Q8_0: vector k holds rows 2k and 2k + 1's unsigned quants u (256 bits each), and one
//     vpdpbusd against the activation block repeated twice gives both rows' 8 partial sums;
//     reduce8 adds them up.
//   - The F16 scales are put together four rows per 64-bit word in general registers: cheaper
//     than a vector gather, and beside the vector work.
//   - 8 rows, not 16: the rows of a group are read as interleaved streams, and 16 of them
//     measured 10-25 % slower than 8 (Q8_0, 2 threads, weights from memory), which no software
//     prefetch recovered.
template <typename Traits>
struct Rows8;

template <>
struct Rows8<Q4_0Traits> {
  __m512i lo[2], hi[2];  // vector g: rows g, g + 2, g + 4, g + 6 in its 128-bit lanes
  HANGAR_TARGET_AVX512 void load(const uint8_t* blk, size_t w_stride) {
    const __m512i low = _mm512_set1_epi8(0x0f);
    for (int g = 0; g < 2; ++g) {
      const uint8_t* q = blk + g * w_stride + offsetof(BlockQ4_0, qs);
      auto row = [&](int i) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 2 * i * w_stride)); };
      __m512i v = _mm512_castsi128_si512(row(0));
      v = _mm512_inserti32x4(v, row(1), 1);  // the lane is an immediate: no loop
      v = _mm512_inserti32x4(v, row(2), 2);
      v = _mm512_inserti32x4(v, row(3), 3);
      lo[g] = _mm512_and_si512(v, low);
      hi[g] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
    }
  }
  HANGAR_TARGET_AVX512 __m256i dots(const BlockQ8_0& y) const {
    const __m512i alo = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y.qs)));
    const __m512i ahi = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y.qs + 16)));
    __m512i p[2];
    for (int g = 0; g < 2; ++g) {
      p[g] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo[g], alo), hi[g], ahi);
    }
    return avx512::reduce2x4(p);
  }
};

template <>
struct Rows8<Q8_0Traits> {
  __m512i u[4];  // vector k: rows 2k (low 256 bits) and 2k + 1
  HANGAR_TARGET_AVX512 void load(const uint8_t* blk, size_t w_stride) {
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    for (int k = 0; k < 4; ++k) {
      const uint8_t* q0 = blk + 2 * k * w_stride + offsetof(BlockQ8_0, qs);
      u[k] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(avx2::load32(q0)), avx2::load32(q0 + w_stride), 1), flip);
    }
  }
  HANGAR_TARGET_AVX512 __m256i dots(const BlockQ8_0& y) const {
    const __m512i ay2 = _mm512_broadcast_i64x4(avx2::load32(y.qs));
    __m512i p[4];
    for (int k = 0; k < 4; ++k) p[k] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u[k], ay2);
    return avx512::reduce8(p);
  }
};

// The 8 rows' F16 block scales as F32, row i in lane i.
HANGAR_TARGET_AVX512 inline __m256 scales8(const uint8_t* blk, size_t w_stride) {
  auto at = [](const uint8_t* p) -> uint64_t {
    uint16_t h;
    std::memcpy(&h, p, sizeof(h));
    return h;
  };
  const uint8_t* b4 = blk + 4 * w_stride;
  const uint64_t w0 = at(blk) | at(blk + w_stride) << 16 | at(blk + 2 * w_stride) << 32 | at(blk + 3 * w_stride) << 48;
  const uint64_t w1 = at(b4) | at(b4 + w_stride) << 16 | at(b4 + 2 * w_stride) << 32 | at(b4 + 3 * w_stride) << 48;
  return _mm256_cvtph_ps(_mm_set_epi64x(static_cast<int64_t>(w1), static_cast<int64_t>(w0)));
}

template <typename Traits, int NT>
HANGAR_TARGET_AVX512 void gemv8_avx512(int64_t nb, const uint8_t* w, size_t w_stride, int n_rows,
                                       const uint8_t* a, size_t a_stride, float* out,
                                       size_t out_stride) {
  using Block = typename Traits::Block;
  const __m256i ones = _mm256_set1_epi8(1);
  const size_t group_step = 8 * w_stride / nb;  // bytes of the next 8 rows per block
  int32_t off[NT][kGemvBlocks];                  // -offset * sum(a)
  float da[NT][kGemvBlocks];
  const char* first = reinterpret_cast<const char*>(w);
  avx512::prefetch_until(first, first + 8 * w_stride);
  for (int64_t b0 = 0; b0 < nb; b0 += kGemvBlocks) {
    const int nbc = static_cast<int>(std::min<int64_t>(kGemvBlocks, nb - b0));
    const BlockQ8_0* y[NT];
    for (int t = 0; t < NT; ++t) {
      y[t] = reinterpret_cast<const BlockQ8_0*>(a + t * a_stride) + b0;
      for (int b = 0; b < nbc; ++b) {
        const __m256i sum = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, avx2::load32(y[t][b].qs));
        off[t][b] = -Traits::kOffset * avx2::hsum_i32(sum);
        da[t][b] = avx2::h2f(y[t][b].d);
      }
    }
    for (int r = 0; r < n_rows; r += 8) {
      const uint8_t* w0 = w + r * w_stride + b0 * sizeof(Block);
      __m256 acc[NT];
      for (int t = 0; t < NT; ++t) {
        acc[t] = b0 == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(out + t * out_stride + r);
      }
      // Past n_rows too: a prefetch never faults, and the rows after a call are usually the
      // caller's next chunk (Context::matmul_multi).
      const char* next = reinterpret_cast<const char*>(w + (r + 8) * w_stride);
      const char* pf = next + b0 * group_step;
      for (int b = 0; b < nbc; ++b) {
        avx512::prefetch_until(pf, next + (b0 + b + 1) * group_step);
        const uint8_t* blk = w0 + b * sizeof(Block);
        Rows8<Traits> rows;
        rows.load(blk, w_stride);
        const __m256 dw = scales8(blk, w_stride);
        for (int t = 0; t < NT; ++t) {
          const __m256i isum = _mm256_add_epi32(rows.dots(y[t][b]), _mm256_set1_epi32(off[t][b]));
          const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(da[t][b]));
          acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), d, acc[t]);
        }
      }
      for (int t = 0; t < NT; ++t) _mm256_storeu_ps(out + t * out_stride + r, acc[t]);
    }
  }
}

template <typename Traits>
HANGAR_TARGET_AVX512 void gemv_avx512(int64_t n, const void* w, size_t w_stride, int n_rows,
                                      const void* a, size_t a_stride, int n_tok, float* out,
                                      size_t out_stride) {
  const int64_t nb = n / kQK;
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  const uint8_t* ab = static_cast<const uint8_t*>(a);
  const int rows8 = n_rows / 8 * 8;
  switch (rows8 > 0 ? n_tok : 0) {
    case 0: break;  // fewer than 8 rows: no activation sums, no prefetch
    case 1: gemv8_avx512<Traits, 1>(nb, wb, w_stride, rows8, ab, a_stride, out, out_stride); break;
    case 2: gemv8_avx512<Traits, 2>(nb, wb, w_stride, rows8, ab, a_stride, out, out_stride); break;
    default: gemv8_avx512<Traits, 3>(nb, wb, w_stride, rows8, ab, a_stride, out, out_stride); break;
  }
  if (rows8 < n_rows) {
    gemv_avx2<Traits>(n, wb + rows8 * w_stride, w_stride, n_rows - rows8, a, a_stride, n_tok, out + rows8,
                      out_stride);
  }
}

// The AVX-512 tile: 32 rows (two 16-lane halves) of a chunk of kChunkZ blocks. u[b][k][h]
// holds elements 4k..4k+3 of block b of rows 16h..16h+15 (row 16h + i in int32 lane i); d[b][h]
// the rows' F32 scales (0 for padding rows).
constexpr int kChunkZ = 16;
struct TileZ {
  alignas(64) uint8_t u[kChunkZ][8][2][64];
  alignas(64) float d[kChunkZ][2][16];
};

template <typename Traits>
HANGAR_TARGET_AVX512 void repack_z(const uint8_t* w, size_t w_stride, int n_rows, int64_t b0, int nbc,
                                   TileZ* tile) {
  using Block = typename Traits::Block;
  for (int r = 0; r < 32; ++r) {
    const int h = r / 16, i = r % 16;
    if (r >= n_rows) {
      for (int b = 0; b < nbc; ++b) {
        for (int k = 0; k < 8; ++k) std::memset(&tile->u[b][k][h][4 * i], 0, 4);
        tile->d[b][h][i] = 0.0f;
      }
      continue;
    }
    const Block* x = reinterpret_cast<const Block*>(w + r * w_stride) + b0;
    // The next chunk of this row, while this one is unpacked.
    const char* next = reinterpret_cast<const char*>(x + kChunkZ);
    for (size_t line = 0; line < kChunkZ * sizeof(Block); line += 64) _mm_prefetch(next + line, _MM_HINT_T0);
    for (int b = 0; b < nbc; ++b) {
      alignas(32) uint8_t q[32];
      _mm256_store_si256(reinterpret_cast<__m256i*>(q), load_u<Traits>(x[b]));
      for (int k = 0; k < 8; ++k) std::memcpy(&tile->u[b][k][h][4 * i], q + 4 * k, 4);
      tile->d[b][h][i] = avx2::h2f(x[b].d);
    }
  }
}

// NT tokens (1..4) over one chunk of the tile: acc[t][h] carries token t's sums of rows
// 16h..16h+15. Each weight vector loaded serves all NT tokens.
template <typename Traits, int NT>
HANGAR_TARGET_AVX512 inline void tile_tokens_z(const TileZ& tile, int nbc, const BlockQ8_0* const* y,
                                               __m512 (*acc)[2]) {
  const __m256i ones = _mm256_set1_epi8(1);
  for (int b = 0; b < nbc; ++b) {
    __m512i dot[NT][2];
    for (int t = 0; t < NT; ++t) {
      // isum = dot(u, a) - offset * sum(a): the dots start from the offset term.
      const int sum = avx2::hsum_i32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, avx2::load32(y[t][b].qs)));
      dot[t][0] = dot[t][1] = _mm512_set1_epi32(-Traits::kOffset * sum);
    }
    for (int k = 0; k < 8; ++k) {
      const __m512i u0 = _mm512_load_si512(tile.u[b][k][0]);
      const __m512i u1 = _mm512_load_si512(tile.u[b][k][1]);
      for (int t = 0; t < NT; ++t) {
        int32_t a4;
        std::memcpy(&a4, y[t][b].qs + 4 * k, 4);
        const __m512i av = _mm512_set1_epi32(a4);
        dot[t][0] = _mm512_dpbusd_epi32(dot[t][0], u0, av);
        dot[t][1] = _mm512_dpbusd_epi32(dot[t][1], u1, av);
      }
    }
    const __m512 d0 = _mm512_load_ps(tile.d[b][0]);
    const __m512 d1 = _mm512_load_ps(tile.d[b][1]);
    for (int t = 0; t < NT; ++t) {
      const __m512 da = _mm512_set1_ps(avx2::h2f(y[t][b].d));
      acc[t][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[t][0]), _mm512_mul_ps(d0, da), acc[t][0]);
      acc[t][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[t][1]), _mm512_mul_ps(d1, da), acc[t][1]);
    }
  }
}

template <typename Traits>
HANGAR_TARGET_AVX512 void gemm_avx512(int64_t n, const void* w, size_t w_stride, int n_rows,
                                      const void* a, size_t a_stride, int n_tok, float* out,
                                      size_t out_stride) {
  if (n_tok < kMinTokensForTile) {
    gemv_avx512<Traits>(n, w, w_stride, n_rows, a, a_stride, n_tok, out, out_stride);
    return;
  }
  const int64_t nb = n / kQK;
  const uint8_t* ab = static_cast<const uint8_t*>(a);
  TileZ tile;
  for (int r0 = 0; r0 < n_rows; r0 += 32) {
    const int rows = std::min(32, n_rows - r0);
    const __mmask16 mask[2] = {static_cast<__mmask16>(rows >= 16 ? 0xffff : (1u << rows) - 1),
                               static_cast<__mmask16>(rows <= 16 ? 0 : (1u << (rows - 16)) - 1)};
    const uint8_t* wr = static_cast<const uint8_t*>(w) + r0 * w_stride;
    for (int64_t b0 = 0; b0 < nb; b0 += kChunkZ) {
      const int nbc = static_cast<int>(std::min<int64_t>(kChunkZ, nb - b0));
      repack_z<Traits>(wr, w_stride, rows, b0, nbc, &tile);
      for (int t0 = 0; t0 < n_tok; t0 += 4) {
        const int nt = std::min(4, n_tok - t0);
        const BlockQ8_0* y[4];
        __m512 acc[4][2];
        for (int t = 0; t < nt; ++t) {
          y[t] = reinterpret_cast<const BlockQ8_0*>(ab + (t0 + t) * a_stride) + b0;
          for (int h = 0; h < 2; ++h) {
            acc[t][h] = b0 > 0 ? _mm512_maskz_loadu_ps(mask[h], out + (t0 + t) * out_stride + r0 + 16 * h)
                               : _mm512_setzero_ps();
          }
        }
        switch (nt) {
          case 4: tile_tokens_z<Traits, 4>(tile, nbc, y, acc); break;
          case 3: tile_tokens_z<Traits, 3>(tile, nbc, y, acc); break;
          case 2: tile_tokens_z<Traits, 2>(tile, nbc, y, acc); break;
          default: tile_tokens_z<Traits, 1>(tile, nbc, y, acc); break;
        }
        for (int t = 0; t < nt; ++t) {
          for (int h = 0; h < 2; ++h) _mm512_mask_storeu_ps(out + (t0 + t) * out_stride + r0 + 16 * h, mask[h], acc[t][h]);
        }
      }
    }
  }
}

#endif  // HANGAR_AVX2

}  // namespace

void gemm_q4_0_ref(int64_t n, const void* w, size_t w_stride, int n_rows, const void* a,
                   size_t a_stride, int n_tok, float* out, size_t out_stride) {
  gemm_ref<Q4_0Traits>(n, w, w_stride, n_rows, a, a_stride, n_tok, out, out_stride);
}
void gemm_q8_0_ref(int64_t n, const void* w, size_t w_stride, int n_rows, const void* a,
                   size_t a_stride, int n_tok, float* out, size_t out_stride) {
  gemm_ref<Q8_0Traits>(n, w, w_stride, n_rows, a, a_stride, n_tok, out, out_stride);
}

GemmFn gemm_q4_0_for(Isa isa) {
#ifdef HANGAR_AVX2
  if (isa == Isa::kAvx512) return gemm_avx512<Q4_0Traits>;
  if (isa == Isa::kAvx2) return gemm_avx2<Q4_0Traits>;
#endif
  (void)isa;
  return gemm_q4_0_ref;
}
GemmFn gemm_q8_0_for(Isa isa) {
#ifdef HANGAR_AVX2
  if (isa == Isa::kAvx512) return gemm_avx512<Q8_0Traits>;
  if (isa == Isa::kAvx2) return gemm_avx2<Q8_0Traits>;
#endif
  (void)isa;
  return gemm_q8_0_ref;
}

}  // namespace hangar::engine
