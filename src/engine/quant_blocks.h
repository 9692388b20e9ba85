#pragma once
// Block layouts of the quantized types the engine computes, byte for byte as ggml stores them
// (ggml-common.h). A row of n elements is n / 32 consecutive blocks. Scales are F16 bits.
// Q4: qs[j] holds element j in its low nibble and element j + 16 in its high nibble.
// Q5: as Q4 plus qh, 32 bits little-endian: bit j is the fifth bit of element j.
// Q8_1 (activations only): s = d * sum(qs), used by the Q4_1/Q5_1 dot products for the m term.
// K-quants and IQ4_XS: a row is n / 256 super-blocks; their layouts are described at each struct
// below. Q8_K (activations only) keeps an F32 scale and the sum of every 16 quants.
// Pure data.

#include <cstdint>

namespace hangar::engine {

inline constexpr int kQK = 32;  // elements per block for every type here

struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[kQK];
};
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};

inline constexpr int kQK_K = 256;  // elements per super-block of the K-quants and IQ4_XS

// Activations for every K-quant dot product: element j = d * qs[j]; bsums[g] = sum of qs[16g..].
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};
// 16 groups of 16; element = d * (scales[g] & 15) * q - dmin * (scales[g] >> 4), q in 0..3.
// Element e = 128h + 32j + l (h half, j 0..3, l 0..31) is bits 2j..2j+1 of qs[32h + l].
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  uint16_t d;
  uint16_t dmin;
};
// 16 groups of 16; element = d * (s[g] - 32) * q, q = low2 - (high bit ? 0 : 4) in -4..3. The low
// two bits sit as in Q2_K; the high bit of element e = 128h + 32j + l is bit 4h + j of hmask[l].
// The 6-bit s[g]: low 4 bits from scales[g % 8] >> (4 * (g / 8)), high 2 bits from
// scales[8 + g % 4] >> (2 * (g / 4)).
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};
// 8 groups of 32; element = d * sc[g] * q - dmin * m[g], with 6-bit sc/m packed in `scales`
// (unpack_scale_min_k4). Group 2i takes the low nibbles of qs[32i..32i+31], group 2i+1 the high.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};
// As Q4_K, plus a fifth bit: element l of group g has bit g of qh[l] as its value 16.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
// 16 groups of 16; element = d * scales[g] * (q - 32), q 6 bits. For element
// e = 128h + 32k + l (k 0..3, l 0..31): low nibble from ql[64h + l + 32 * (k & 1)] (the high
// nibble when k >= 2), high 2 bits from qh[32h + l] >> (2k).
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
// 8 groups of 32; element = d * (ls[g] - 32) * kIq4nlValues[q], q 4 bits stored as Q4_0 stores
// them (qs[16g + j]: element j low nibble, element j + 16 high). ls[g] 6 bits: low 4 from
// scales_l[g / 2] >> (4 * (g % 2)), high 2 from scales_h >> (2g).
struct BlockIQ4_XS {
  uint16_t d;
  uint16_t scales_h;
  uint8_t scales_l[kQK_K / 64];
  uint8_t qs[kQK_K / 2];
};

// The non-linear 4-bit code book of IQ4_NL / IQ4_XS.
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

// Q4_K / Q5_K: the 6-bit scale and min of group g (0..7) from the 12 packed bytes.
inline void unpack_scale_min_k4(const uint8_t* q, int g, uint8_t* sc, uint8_t* m) {
  if (g < 4) {
    *sc = q[g] & 63;
    *m = q[g + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[g + 4] & 0x0f) | ((q[g - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[g + 4] >> 4) | ((q[g] >> 6) << 4));
  }
}

// The eight 6-bit scales and mins of a Q4_K or Q5_K super-block (`scales`: its 12 bytes),
// unpacked once for the whole block.
struct ScalesMinsK4 {
  uint8_t sc[8];
  uint8_t m[8];
};
inline ScalesMinsK4 unpack_scales_mins_k4(const uint8_t* scales) {
  ScalesMinsK4 s;
  for (int g = 0; g < 8; ++g) unpack_scale_min_k4(scales, g, &s.sc[g], &s.m[g]);
  return s;
}

// Σ_g m[g] × (the sum of group g's 32 activations), from Q8_K's per-16 sums: the mins' part
// of a Q4_K/Q5_K dot product.
inline int mins_dot_k4(const ScalesMinsK4& s, const BlockQ8_K& y) {
  int sum = 0;
  for (int g = 0; g < 8; ++g) sum += s.m[g] * (y.bsums[2 * g] + y.bsums[2 * g + 1]);
  return sum;
}

// Q3_K: the 16 signed scales (s - 32) from the 12 packed bytes.
inline void unpack_scales_q3_k(const uint8_t* q, int8_t* out) {
  for (int g = 0; g < 16; ++g) {
    const int low = (q[g % 8] >> (4 * (g / 8))) & 0x0f;
    const int high = (q[8 + g % 4] >> (2 * (g / 4))) & 3;
    out[g] = static_cast<int8_t>((low | (high << 4)) - 32);
  }
}

static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_K) == 292);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockIQ4_XS) == 136);

}  // namespace hangar::engine
