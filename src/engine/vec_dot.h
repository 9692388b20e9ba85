#pragma once
// Matmul building blocks per weight type, as ggml's CPU backend defines them: a weight row is
// dotted with an activation row that was first converted to the weight type's "vec_dot type"
// (F32 -> F32, F16 -> F16, BF16 -> BF16, Q8_0/Q4_0/Q5_0 -> Q8_0, Q4_1/Q5_1 -> Q8_1,
// Q2_K..Q6_K/IQ4_XS -> Q8_K), so that our results track llama.cpp's rounding. Each family lives
// in its own kernel_<family>.cc with a plain scalar reference next to the SIMD path; unit tests
// compare the two.
// Tables are immutable: safe from any thread.

#include <cstddef>
#include <cstdint>

#include "engine/gemm.h"
#include "gguf/ggml_type.h"

namespace hangar::engine {

struct VecDot {
  gguf::GgmlType weight_type;
  gguf::GgmlType act_type;     // the activation row's stored type
  int64_t block;               // row lengths must be a multiple of this (1 for float types)
  size_t weight_block_bytes;   // bytes per `block` weight elements
  size_t act_block_bytes;      // bytes per `block` activation elements

  // x: [n] F32 -> y: n / block activation blocks. SIMD path and scalar reference; for Q8_0/Q8_1
  // the two are bit-exact (x86 ggml semantics: scale 127 / amax, round half to even).
  void (*from_float)(const float* x, void* y, int64_t n);
  void (*from_float_ref)(const float* x, void* y, int64_t n);
  // Dot of n elements of one weight row `w` and one converted activation row `a`.
  float (*dot)(int64_t n, const void* w, const void* a);
  float (*dot_ref)(int64_t n, const void* w, const void* a);
  // Dequantizes n elements of a weight row (get_rows, tests).
  void (*to_float)(const void* w, float* y, int64_t n);
  // Batched matmul (gemm.h) and its scalar reference, bit-identical to each other; nullptr for
  // the types without one (the matmul then calls `dot` per row and token).
  GemmFn gemm = nullptr;
  GemmFn gemm_ref = nullptr;

  size_t weight_row_bytes(int64_t n) const { return static_cast<size_t>(n / block) * weight_block_bytes; }
  size_t act_row_bytes(int64_t n) const { return static_cast<size_t>(n / block) * act_block_bytes; }
};

// nullptr when the engine cannot compute `weight_type`.
const VecDot* find_vec_dot(gguf::GgmlType weight_type);

// Per-family tables (defined in kernel_<family>.cc).
const VecDot& vec_dot_f32();
const VecDot& vec_dot_f16();
const VecDot& vec_dot_bf16();
const VecDot& vec_dot_q8_0();
const VecDot& vec_dot_q4_0();
const VecDot& vec_dot_q4_1();
const VecDot& vec_dot_q5_0();
const VecDot& vec_dot_q5_1();
const VecDot& vec_dot_q2_k();
const VecDot& vec_dot_q3_k();
const VecDot& vec_dot_q4_k();
const VecDot& vec_dot_q5_k();
const VecDot& vec_dot_q6_k();
const VecDot& vec_dot_iq4_xs();

// Activation quantizers shared by the quantized families (kernel_q8.cc).
void quantize_row_q8_0(const float* x, void* y, int64_t n);
void quantize_row_q8_0_ref(const float* x, void* y, int64_t n);
void quantize_row_q8_1(const float* x, void* y, int64_t n);
void quantize_row_q8_1_ref(const float* x, void* y, int64_t n);
// Q8_K for the K-quants and IQ4_XS (kernel_q8_k.cc); n a multiple of 256.
void quantize_row_q8_k(const float* x, void* y, int64_t n);
void quantize_row_q8_k_ref(const float* x, void* y, int64_t n);

}  // namespace hangar::engine
