#pragma once
// IEEE half and bfloat16 conversions in software (round to nearest even; NaN stays a quiet NaN
// with its top payload bits), equal bit for bit to the F16C instructions and to ggml's
// reference. The one implementation: gguf's quantizers and the engine's baseline build
// (engine/fp16.h) both use it. Pure inline functions: safe from any thread.

#include <cstdint>
#include <cstring>

namespace hangar::gguf {

namespace half_detail {
inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}
}  // namespace half_detail

inline uint16_t fp32_to_fp16(float f) {
  const uint32_t u = half_detail::float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  const uint32_t a = u & 0x7FFFFFFF;
  if (a > 0x7F800000) {  // NaN: keep it a (quiet) NaN, keep the top payload bits
    return static_cast<uint16_t>(sign | 0x7E00 | ((a >> 13) & 0x3FF));
  }
  if (a >= 0x38800000) {  // normal in half precision (>= 2^-14), or overflows to inf
    const uint32_t exp = (a >> 23) - 127 + 15;
    if (exp >= 31) return static_cast<uint16_t>(sign | 0x7C00);
    const uint32_t mant = a & 0x7FFFFF;
    uint32_t h = (exp << 10) | (mant >> 13);
    const uint32_t rest = mant & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;  // may carry into inf: correct
    return static_cast<uint16_t>(sign | h);
  }
  if (a < 0x33000000) return sign;  // below half the smallest subnormal (or exactly it): zero
  // Subnormal half: value / 2^-24, rounded to nearest even.
  const uint32_t exp = a >> 23;  // 102..112
  const uint32_t mant = (a & 0x7FFFFF) | 0x800000;
  const uint32_t shift = 126 - exp;  // 14..24
  uint32_t h = mant >> shift;
  const uint32_t rest = mant & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (h & 1))) ++h;
  return static_cast<uint16_t>(sign | h);
}

inline float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  const uint32_t mant = h & 0x3FF;
  if (exp == 0x1F) return half_detail::bits_float(sign | 0x7F800000 | (mant << 13));
  if (exp != 0) return half_detail::bits_float(sign | ((exp + 112) << 23) | (mant << 13));
  // Zero or subnormal: mant * 2^-24, exact in float.
  const float v = static_cast<float>(mant) * (1.0f / 16777216.0f);
  return sign ? -v : v;
}

inline uint16_t fp32_to_bf16(float f) {
  const uint32_t u = half_detail::float_bits(f);
  if ((u & 0x7FFFFFFF) > 0x7F800000) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  return static_cast<uint16_t>((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

inline float bf16_to_fp32(uint16_t h) { return half_detail::bits_float(static_cast<uint32_t>(h) << 16); }

}  // namespace hangar::gguf
