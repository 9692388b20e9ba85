// Batched matmul for the weight types whose activations are Q8_0 (Q4_0 and Q8_0): every weight
// block loaded from memory serves every token of the batch.
//
// Arithmetic (the same on every path, so results are bit-identical across ISAs and never depend
// on how many rows or tokens a call has): per 32-element block b the exact integer dot isum_b of
// the weight and activation quants, then acc = fma(float(isum_b), d_w[b] * d_a[b], acc) over the
// blocks in order, from acc = 0.
//
// How the SIMD paths get there: 16 weight rows at a time, a chunk of kChunk blocks is unpacked
// into a small row-interleaved tile on the stack ("repacked on the fly"; nothing is kept): for
// block b, vector k holds elements 4k..4k+3 of 8 rows as unsigned bytes u = q + offset (offset 8
// for Q4_0's nibbles, 128 for Q8_0). One broadcast of 4 activation bytes times that vector gives
// 8 rows' partial dots in one instruction (vpdpbusd with VNNI, vpmaddubsw + vpmaddwd on AVX2),
// and isum = dot(u, a) - offset * sum(a). The tile stays in L1 while every token passes over it;
// each token's accumulators live in `out` between chunks.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/fp16.h"
#include "engine/gemm.h"
#include "engine/quant_blocks.h"
#include "engine/simd_avx2.h"

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

// The signed quants q of one block, element order of the activation block.
template <typename Traits>
HANGAR_TARGET_AVX2 inline __m256i load_q(const typename Traits::Block& b) {
  if constexpr (Traits::kOffset == 8) {
    return _mm256_sub_epi8(avx2::unpack_nibbles(b.qs), _mm256_set1_epi8(8));
  } else {
    return avx2::load32(b.qs);
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
      const bool prefetch = r + 8 <= n_rows;
      for (int64_t b = 0; b < nb; ++b) {
        if (prefetch) {
          const char* p = next + b * step;
          _mm_prefetch(p, _MM_HINT_T0);
          _mm_prefetch(p + 64, _MM_HINT_T0);
          _mm_prefetch(p + step - 1, _MM_HINT_T0);
        }
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
        if constexpr (Traits::kOffset == 8) {
          _mm256_store_si256(reinterpret_cast<__m256i*>(q), avx2::unpack_nibbles(x[b].qs));
        } else {
          _mm256_store_si256(reinterpret_cast<__m256i*>(q),
                             _mm256_xor_si256(avx2::load32(x[b].qs), _mm256_set1_epi8(static_cast<char>(0x80))));
        }
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

template <typename Traits>
HANGAR_TARGET_AVX2 void gemm_avx2(int64_t n, const void* w, size_t w_stride, int n_rows,
                                  const void* a, size_t a_stride, int n_tok, float* out,
                                  size_t out_stride) {
  if (n_tok < kMinTokensForTile) {
    gemv_avx2<Traits>(n, w, w_stride, n_rows, a, a_stride, n_tok, out, out_stride);
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

// As gemm_avx2, with vpdpbusd: u (unsigned) times a (signed) summed into int32 without
// saturation, for both types.
HANGAR_TARGET_AVX512 inline __m256i dot4_vnni(__m256i acc, __m256i u, __m256i a) {
  return _mm256_dpbusd_epi32(acc, u, a);
}

template <typename Traits>
HANGAR_TARGET_AVX512 void gemm_avx512(int64_t n, const void* w, size_t w_stride, int n_rows,
                                      const void* a, size_t a_stride, int n_tok, float* out,
                                      size_t out_stride) {
  if (n_tok < kMinTokensForTile) {
    gemv_avx2<Traits>(n, w, w_stride, n_rows, a, a_stride, n_tok, out, out_stride);
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
            acc[g] = _mm256_maskz_loadu_ps(static_cast<__mmask8>((1u << std::min(kGroup, rows - 8 * g)) - 1), o + 8 * g);
          }
        }
        for (int b = 0; b < nbc; ++b) {
          const __m256 da = _mm256_set1_ps(avx2::h2f(y[b].d));
          const __m256i ay = avx2::load32(y[b].qs);
          const int sum = avx2::hsum_i32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), ay));
          const __m256i off = _mm256_set1_epi32(Traits::kOffset * sum);
          __m256i av[8];
          for (int k = 0; k < 8; ++k) {
            int32_t v;
            std::memcpy(&v, y[b].qs + 4 * k, 4);
            av[k] = _mm256_set1_epi32(v);
          }
          for (int g = 0; g < groups; ++g) {
            __m256i isum = _mm256_sub_epi32(_mm256_setzero_si256(), off);
            for (int k = 0; k < 8; ++k) {
              isum = dot4_vnni(isum, _mm256_load_si256(reinterpret_cast<const __m256i*>(tile.u[g][b][k])), av[k]);
            }
            const __m256 d = _mm256_mul_ps(_mm256_load_ps(tile.d[g][b]), da);
            acc[g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), d, acc[g]);
          }
        }
        for (int g = 0; g < groups; ++g) {
          _mm256_mask_storeu_ps(o + 8 * g, static_cast<__mmask8>((1u << std::min(kGroup, rows - 8 * g)) - 1), acc[g]);
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
