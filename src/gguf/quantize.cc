// Reference quantizers and dequantizers (see quantize.h). Each quantizer follows the arithmetic of
// ggml's quantize_row_*_ref step by step in float (no fused multiply-add: the library is built
// with -ffp-contract=off) so the bytes equal llama-quantize's.
#include "gguf/quantize.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>

namespace hangar::gguf {
namespace {

void put_f16(uint8_t* dst, float f) {
  const uint16_t h = fp32_to_fp16(f);
  dst[0] = static_cast<uint8_t>(h & 0xFF);
  dst[1] = static_cast<uint8_t>(h >> 8);
}
float get_f16(const uint8_t* src) {
  return fp16_to_fp32(static_cast<uint16_t>(src[0] | (src[1] << 8)));
}

constexpr int kQk = 32;  // elements per block of every Q*_0 / Q*_1 type

// Q8_0 block, 34 bytes: f16 d; int8 qs[32]. x: [32] floats.
void quantize_block_q8_0(const float* x, uint8_t* y) {
  float amax = 0.0f;
  for (int j = 0; j < kQk; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_f16(y, d);
  for (int j = 0; j < kQk; ++j) {
    const float v = x[j] * id;
    y[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::roundf(v)));
  }
}

// The element of largest magnitude, with its sign (the first one on ties), as ggml picks it.
float signed_absmax(const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kQk; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void min_max(const float* x, float* min, float* max) {
  *min = FLT_MAX;
  *max = -FLT_MAX;
  for (int j = 0; j < kQk; ++j) {
    if (x[j] < *min) *min = x[j];
    if (x[j] > *max) *max = x[j];
  }
}

// Q4_0 block, 18 bytes: f16 d; uint8 qs[16] (low nibble = element j, high = element j+16).
void quantize_block_q4_0(const float* x, uint8_t* y) {
  const float d = signed_absmax(x) / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_f16(y, d);
  for (int j = 0; j < kQk / 2; ++j) {
    const float x0 = x[j] * id;
    const float x1 = x[kQk / 2 + j] * id;
    const float s0 = x0 + 8.5f;
    const float s1 = x1 + 8.5f;
    const uint8_t q0 = static_cast<uint8_t>(std::min<int>(15, static_cast<int8_t>(s0)));
    const uint8_t q1 = static_cast<uint8_t>(std::min<int>(15, static_cast<int8_t>(s1)));
    y[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
  }
}

// Q4_1 block, 20 bytes: f16 d; f16 m; uint8 qs[16].
void quantize_block_q4_1(const float* x, uint8_t* y) {
  float min, max;
  min_max(x, &min, &max);
  const float d = (max - min) / 15.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_f16(y, d);
  put_f16(y + 2, min);
  for (int j = 0; j < kQk / 2; ++j) {
    const float x0 = (x[j] - min) * id;
    const float x1 = (x[kQk / 2 + j] - min) * id;
    const float s0 = x0 + 0.5f;
    const float s1 = x1 + 0.5f;
    const uint8_t q0 = static_cast<uint8_t>(std::min<int>(15, static_cast<int8_t>(s0)));
    const uint8_t q1 = static_cast<uint8_t>(std::min<int>(15, static_cast<int8_t>(s1)));
    y[4 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
  }
}

void put_u32(uint8_t* dst, uint32_t v) {
  for (int i = 0; i < 4; ++i) dst[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get_u32(const uint8_t* src) {
  return static_cast<uint32_t>(src[0]) | (static_cast<uint32_t>(src[1]) << 8) |
         (static_cast<uint32_t>(src[2]) << 16) | (static_cast<uint32_t>(src[3]) << 24);
}

// Q5_0 block, 22 bytes: f16 d; uint8 qh[4] (bit j = 5th bit of element j); uint8 qs[16].
void quantize_block_q5_0(const float* x, uint8_t* y) {
  const float d = signed_absmax(x) / -16.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_f16(y, d);
  uint32_t qh = 0;
  for (int j = 0; j < kQk / 2; ++j) {
    const float x0 = x[j] * id;
    const float x1 = x[kQk / 2 + j] * id;
    const float s0 = x0 + 16.5f;
    const float s1 = x1 + 16.5f;
    const uint8_t q0 = static_cast<uint8_t>(std::min<int>(31, static_cast<int8_t>(s0)));
    const uint8_t q1 = static_cast<uint8_t>(std::min<int>(31, static_cast<int8_t>(s1)));
    y[6 + j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
    qh |= ((q0 & 0x10u) >> 4) << j;
    qh |= ((q1 & 0x10u) >> 4) << (j + kQk / 2);
  }
  put_u32(y + 2, qh);
}

// Q5_1 block, 24 bytes: f16 d; f16 m; uint8 qh[4]; uint8 qs[16].
void quantize_block_q5_1(const float* x, uint8_t* y) {
  float min, max;
  min_max(x, &min, &max);
  const float d = (max - min) / 31.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_f16(y, d);
  put_f16(y + 2, min);
  uint32_t qh = 0;
  for (int j = 0; j < kQk / 2; ++j) {
    const float x0 = (x[j] - min) * id;
    const float x1 = (x[kQk / 2 + j] - min) * id;
    const float s0 = x0 + 0.5f;
    const float s1 = x1 + 0.5f;
    const uint8_t q0 = static_cast<uint8_t>(s0);
    const uint8_t q1 = static_cast<uint8_t>(s1);
    y[8 + j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
    qh |= ((q0 & 0x10u) >> 4) << j;
    qh |= ((q1 & 0x10u) >> 4) << (j + kQk / 2);
  }
  put_u32(y + 4, qh);
}

constexpr int kQkK = 256;  // elements per super-block of Q4_K and Q6_K

// Round half to even, as ggml's nearest_int.
int nearest(float v) { return static_cast<int>(std::nearbyint(v)); }

// Q4_K super-block, 144 bytes: f16 d; f16 dmin; uint8 scales[12]; uint8 qs[128]. Eight groups of
// 32, element = d * sc[g] * q - dmin * m[g] with q in 0..15 and 6-bit sc, m. Group 2i sits in
// the low nibbles of qs[32i..32i+31], group 2i+1 in the high ones. sc/m of groups 0..3 are the
// low 6 bits of scales[g] / scales[g + 4]; of groups 4..7, the low / high nibble of
// scales[g + 4] with the top 2 bits in bits 6..7 of scales[g - 4] / scales[g].
// Not llama.cpp's search (make_qkx2_quants): each group's range sets its scale and min, which
// the engine computes just the same; the bytes differ from llama-quantize's.
void quantize_block_q4_k(const float* x, uint8_t* y) {
  float scale[8], min[8];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int g = 0; g < 8; ++g) {
    float lo = 0.0f, hi = -FLT_MAX;  // the min offset is kept >= 0, as ggml does
    for (int j = 0; j < 32; ++j) {
      lo = std::min(lo, x[32 * g + j]);
      hi = std::max(hi, x[32 * g + j]);
    }
    scale[g] = std::max(0.0f, (hi - lo) / 15.0f);
    min[g] = -lo;
    max_scale = std::max(max_scale, scale[g]);
    max_min = std::max(max_min, min[g]);
  }
  put_f16(y, max_scale / 63.0f);
  put_f16(y + 2, max_min / 63.0f);
  const float d = get_f16(y), dmin = get_f16(y + 2);
  uint8_t ls[8], lm[8];
  for (int g = 0; g < 8; ++g) {
    ls[g] = static_cast<uint8_t>(d > 0.0f ? std::clamp(nearest(scale[g] / d), 0, 63) : 0);
    lm[g] = static_cast<uint8_t>(dmin > 0.0f ? std::clamp(nearest(min[g] / dmin), 0, 63) : 0);
  }
  uint8_t* sc = y + 4;
  for (int g = 0; g < 4; ++g) {
    sc[g] = static_cast<uint8_t>(ls[g] | ((ls[g + 4] >> 4) << 6));
    sc[g + 4] = static_cast<uint8_t>(lm[g] | ((lm[g + 4] >> 4) << 6));
    sc[g + 8] = static_cast<uint8_t>((ls[g + 4] & 0x0F) | ((lm[g + 4] & 0x0F) << 4));
  }
  uint8_t* qs = y + 16;
  std::memset(qs, 0, kQkK / 2);
  for (int g = 0; g < 8; ++g) {
    const float dl = d * static_cast<float>(ls[g]);
    const float ml = dmin * static_cast<float>(lm[g]);
    for (int j = 0; j < 32; ++j) {
      const int q = dl > 0.0f ? std::clamp(nearest((x[32 * g + j] + ml) / dl), 0, 15) : 0;
      qs[32 * (g / 2) + j] |= static_cast<uint8_t>(g % 2 == 0 ? q : q << 4);
    }
  }
}

// Q6_K super-block, 210 bytes: uint8 ql[128]; uint8 qh[64]; int8 scales[16]; f16 d. Sixteen
// groups of 16, element = d * scales[g] * (q - 32), q 6 bits. Element e = 128h + 32k + l keeps
// its low nibble in ql[64h + 32(k & 1) + l] (high nibble when k >= 2) and its top 2 bits in bits
// 2k..2k+1 of qh[32h + l].
// As ggml's first estimate (without its refinement): each group's largest magnitude maps to
// -32, and the group scales to int8 with the largest at -128.
void quantize_block_q6_k(const float* x, uint8_t* y) {
  float scale[16];
  float max_scale = 0.0f, max_abs = 0.0f;
  for (int g = 0; g < 16; ++g) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 16; ++j) {
      if (std::fabs(x[16 * g + j]) > amax) {
        amax = std::fabs(x[16 * g + j]);
        max = x[16 * g + j];
      }
    }
    scale[g] = max / -32.0f;
    if (std::fabs(scale[g]) > max_abs) {
      max_abs = std::fabs(scale[g]);
      max_scale = scale[g];
    }
  }
  uint8_t* ql = y;
  uint8_t* qh = y + 128;
  int8_t* scales = reinterpret_cast<int8_t*>(y + 192);
  std::memset(y, 0, 210);
  if (max_abs == 0.0f) return;  // all zero: d = 0
  const float iscale = -128.0f / max_scale;
  put_f16(y + 208, 1.0f / iscale);
  const float d = get_f16(y + 208);
  for (int g = 0; g < 16; ++g) {
    scales[g] = static_cast<int8_t>(std::min(127, nearest(iscale * scale[g])));
  }
  for (int e = 0; e < kQkK; ++e) {
    const float dl = d * static_cast<float>(scales[e / 16]);
    const int q = (dl != 0.0f ? std::clamp(nearest(x[e] / dl), -32, 31) : 0) + 32;
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    ql[64 * h + 32 * (k & 1) + l] |= static_cast<uint8_t>(k < 2 ? (q & 0x0F) : (q & 0x0F) << 4);
    qh[32 * h + l] |= static_cast<uint8_t>((q >> 4) << (2 * k));
  }
}

void dequantize_block_q4_k(const uint8_t* x, float* y) {
  const float d = get_f16(x), dmin = get_f16(x + 2);
  const uint8_t* sc = x + 4;
  const uint8_t* qs = x + 16;
  for (int g = 0; g < 8; ++g) {
    const int ls = g < 4 ? sc[g] & 63 : (sc[g + 4] & 0x0F) | ((sc[g - 4] >> 6) << 4);
    const int lm = g < 4 ? sc[g + 4] & 63 : (sc[g + 4] >> 4) | ((sc[g] >> 6) << 4);
    const float dl = d * static_cast<float>(ls);
    const float ml = dmin * static_cast<float>(lm);
    for (int j = 0; j < 32; ++j) {
      const uint8_t b = qs[32 * (g / 2) + j];
      y[32 * g + j] = dl * static_cast<float>(g % 2 == 0 ? b & 0x0F : b >> 4) - ml;
    }
  }
}

void dequantize_block_q6_k(const uint8_t* x, float* y) {
  const uint8_t* ql = x;
  const uint8_t* qh = x + 128;
  const int8_t* scales = reinterpret_cast<const int8_t*>(x + 192);
  const float d = get_f16(x + 208);
  for (int e = 0; e < kQkK; ++e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const uint8_t lb = ql[64 * h + 32 * (k & 1) + l];
    const int q = ((k < 2 ? lb & 0x0F : lb >> 4) | (((qh[32 * h + l] >> (2 * k)) & 3) << 4)) - 32;
    y[e] = d * static_cast<float>(scales[e / 16]) * static_cast<float>(q);
  }
}

bool is_supported(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
    case GgmlType::kF16:
    case GgmlType::kBF16:
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_0:
    case GgmlType::kQ5_1:
    case GgmlType::kQ4_K:
    case GgmlType::kQ6_K:
      return true;
    default:
      return false;
  }
}

Status check_args(GgmlType type, int64_t n, const char* what) {
  if (!is_supported(type)) {
    return unimplemented_error(std::string("gguf: ") + what + " to/from type '" +
                               std::string(type_traits(type).name) + "' is not implemented");
  }
  if (!row_bytes(type, n)) {
    return invalid_argument_error(std::string("gguf: ") + what + " of " + std::to_string(n) +
                                  " elements: not a multiple of the " +
                                  std::string(type_traits(type).name) + " block size " +
                                  std::to_string(type_traits(type).block_size));
  }
  return ok_status();
}

}  // namespace

Status quantize_into(GgmlType type, const float* src, int64_t n, uint8_t* dst) {
  HANGAR_RETURN_IF_ERROR(check_args(type, n, "quantizing"));
  const int64_t blocks = n / type_traits(type).block_size;
  const uint32_t bpb = type_traits(type).bytes_per_block;
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      break;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) put_f16(dst + 2 * i, src[i]);
      break;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = fp32_to_bf16(src[i]);
        dst[2 * i] = static_cast<uint8_t>(h & 0xFF);
        dst[2 * i + 1] = static_cast<uint8_t>(h >> 8);
      }
      break;
    default: {
      void (*block_fn)(const float*, uint8_t*) = nullptr;
      if (type == GgmlType::kQ8_0) block_fn = quantize_block_q8_0;
      if (type == GgmlType::kQ4_0) block_fn = quantize_block_q4_0;
      if (type == GgmlType::kQ4_1) block_fn = quantize_block_q4_1;
      if (type == GgmlType::kQ5_0) block_fn = quantize_block_q5_0;
      if (type == GgmlType::kQ5_1) block_fn = quantize_block_q5_1;
      if (type == GgmlType::kQ4_K) block_fn = quantize_block_q4_k;
      if (type == GgmlType::kQ6_K) block_fn = quantize_block_q6_k;
      const int64_t bs = type_traits(type).block_size;
      for (int64_t b = 0; b < blocks; ++b) block_fn(src + b * bs, dst + b * bpb);
    }
  }
  return ok_status();
}

StatusOr<std::vector<uint8_t>> quantize(GgmlType type, const float* src, int64_t n) {
  HANGAR_RETURN_IF_ERROR(check_args(type, n, "quantizing"));
  std::vector<uint8_t> out(*row_bytes(type, n));
  HANGAR_RETURN_IF_ERROR(quantize_into(type, src, n, out.data()));
  return out;
}

Status dequantize(GgmlType type, const uint8_t* src, float* dst, int64_t n) {
  HANGAR_RETURN_IF_ERROR(check_args(type, n, "dequantizing"));
  const int64_t blocks = n / type_traits(type).block_size;
  const uint32_t bpb = type_traits(type).bytes_per_block;
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return ok_status();
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = get_f16(src + 2 * i);
      return ok_status();
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        dst[i] = bf16_to_fp32(static_cast<uint16_t>(src[2 * i] | (src[2 * i + 1] << 8)));
      }
      return ok_status();
    case GgmlType::kQ4_K:
      for (int64_t b = 0; b < blocks; ++b) dequantize_block_q4_k(src + b * bpb, dst + b * kQkK);
      return ok_status();
    case GgmlType::kQ6_K:
      for (int64_t b = 0; b < blocks; ++b) dequantize_block_q6_k(src + b * bpb, dst + b * kQkK);
      return ok_status();
    default:
      break;
  }
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* x = src + b * bpb;
    float* y = dst + b * kQk;
    const float d = get_f16(x);
    switch (type) {
      case GgmlType::kQ8_0:
        for (int j = 0; j < kQk; ++j) y[j] = static_cast<float>(static_cast<int8_t>(x[2 + j])) * d;
        break;
      case GgmlType::kQ4_0:
        for (int j = 0; j < kQk / 2; ++j) {
          y[j] = static_cast<float>((x[2 + j] & 0x0F) - 8) * d;
          y[j + kQk / 2] = static_cast<float>((x[2 + j] >> 4) - 8) * d;
        }
        break;
      case GgmlType::kQ4_1: {
        const float m = get_f16(x + 2);
        for (int j = 0; j < kQk / 2; ++j) {
          y[j] = static_cast<float>(x[4 + j] & 0x0F) * d + m;
          y[j + kQk / 2] = static_cast<float>(x[4 + j] >> 4) * d + m;
        }
        break;
      }
      case GgmlType::kQ5_0: {
        const uint32_t qh = get_u32(x + 2);
        for (int j = 0; j < kQk / 2; ++j) {
          const int lo = (x[6 + j] & 0x0F) | (((qh >> j) & 1) << 4);
          const int hi = (x[6 + j] >> 4) | (((qh >> (j + kQk / 2)) & 1) << 4);
          y[j] = static_cast<float>(lo - 16) * d;
          y[j + kQk / 2] = static_cast<float>(hi - 16) * d;
        }
        break;
      }
      case GgmlType::kQ5_1: {
        const float m = get_f16(x + 2);
        const uint32_t qh = get_u32(x + 4);
        for (int j = 0; j < kQk / 2; ++j) {
          const int lo = (x[8 + j] & 0x0F) | (((qh >> j) & 1) << 4);
          const int hi = (x[8 + j] >> 4) | (((qh >> (j + kQk / 2)) & 1) << 4);
          y[j] = static_cast<float>(lo) * d + m;
          y[j + kQk / 2] = static_cast<float>(hi) * d + m;
        }
        break;
      }
      default:
        break;
    }
  }
  return ok_status();
}

}  // namespace hangar::gguf
