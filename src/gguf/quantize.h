#pragma once
// Conversions from F32 to the stored types the engine computes, byte for byte equal to ggml's
// reference (scalar) quantizers, and the matching dequantizers. Block layouts as ggml's
// ggml-common.h: Q8_0 {f16 d; int8 qs[32]}, Q4_0 {f16 d; uint8 qs[16]}, Q4_1 {f16 d, m; qs[16]},
// Q5_0 {f16 d; uint8 qh[4]; qs[16]}, Q5_1 {f16 d, m; qh[4]; qs[16]}.
// Q4_K and Q6_K (256-element super-blocks, for make-model's q4_k_m) are written in ggml's layout
// by simpler quantizers than llama.cpp's searches: valid files, but not byte-equal to
// llama-quantize's.
// Pure functions: safe from any thread.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/status.h"
#include "gguf/ggml_type.h"
#include "gguf/half.h"  // fp32_to_fp16, fp16_to_fp32, fp32_to_bf16, bf16_to_fp32

namespace hangar::gguf {

// Converts n floats (n a multiple of the type's block size) to `type`:
// F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q6_K. Other types: kUnimplemented.
StatusOr<std::vector<uint8_t>> quantize(GgmlType type, const float* src, int64_t n);
// The same into a caller's buffer `dst` of row_bytes(type, n) bytes (no allocation).
Status quantize_into(GgmlType type, const float* src, int64_t n, uint8_t* dst);
// The reverse, for the same types; `src` holds row_bytes(type, n) bytes.
Status dequantize(GgmlType type, const uint8_t* src, float* dst, int64_t n);

}  // namespace hangar::gguf
