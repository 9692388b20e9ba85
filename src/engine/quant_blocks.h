#pragma once
// Block layouts of the quantized types the engine computes, byte for byte as ggml stores them
// (ggml-common.h). A row of n elements is n / 32 consecutive blocks. Scales are F16 bits.
// Q4: qs[j] holds element j in its low nibble and element j + 16 in its high nibble.
// Q5: as Q4 plus qh, 32 bits little-endian: bit j is the fifth bit of element j.
// Q8_1 (activations only): s = d * sum(qs), used by the Q4_1/Q5_1 dot products for the m term.
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

static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);

}  // namespace hangar::engine
