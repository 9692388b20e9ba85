#pragma once
// Batched matmul kernels (private to src/engine): out[t * out_stride + r] = weight row r ·
// activation row t for r < n_rows, t < n_tok, where row r starts at w + r * w_stride and the
// converted activation row t (the type's vec_dot type) at a + t * a_stride. Each kernel's result
// for one (row, token) pair is the same bits whatever n_rows and n_tok are, and the same on every
// instruction set (the scalar reference included): the batch a row is computed in never changes
// it. Pure functions: safe from any thread.

#include <cstddef>
#include <cstdint>

namespace hangar::engine {

using GemmFn = void (*)(int64_t n, const void* w, size_t w_stride, int n_rows, const void* a,
                        size_t a_stride, int n_tok, float* out, size_t out_stride);

enum class Isa { kScalar, kAvx2, kAvx512 };

// The best instruction set cpu_features() allows.
Isa best_isa();

// Q4_0 and Q8_0 weights against Q8_0 activations (gemm_q8_0.cc).
GemmFn gemm_q4_0_for(Isa isa);
GemmFn gemm_q8_0_for(Isa isa);

// Q4_K and Q6_K weights against Q8_K activations (gemm_q4_k.cc, gemm_q6_k.cc).
GemmFn gemm_q4_k_for(Isa isa);
GemmFn gemm_q6_k_for(Isa isa);

}  // namespace hangar::engine
