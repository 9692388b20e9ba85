#pragma once
// Half-precision (IEEE binary16) and bfloat16 conversions for the engine's inner loops, equal to
// ggml's on x86: F16C instructions (round to nearest even) when compiled with them, gguf's
// software conversions (gguf/half.h, the same bits) otherwise. BF16 rounds to nearest even and
// keeps NaN a (quiet) NaN. Pure inline functions: safe from any thread.

#include <cstdint>

#include "gguf/half.h"

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace hangar::engine {

inline float half_to_float(uint16_t h) {
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  return gguf::fp16_to_fp32(h);
#endif
}

inline uint16_t float_to_half(float f) {
#if defined(__F16C__)
  return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
#else
  return gguf::fp32_to_fp16(f);
#endif
}

inline float bf16_to_float(uint16_t h) { return gguf::bf16_to_fp32(h); }

inline uint16_t float_to_bf16(float f) { return gguf::fp32_to_bf16(f); }

}  // namespace hangar::engine
