#pragma once
// The element-wise and per-row operations of the forward pass, each equal to ggml's CPU op in
// rounding where that matters (RMSNorm sums squares in double; RoPE advances theta by repeated
// multiplication as ggml's rope cache does; attention follows ggml's flash-attention row loop
// over an F16 K/V cache). One call handles one row, so a row's result never depends on the
// batch around it. Pure functions: safe from any thread.

#include <cstdint>

namespace hangar::engine {

// y[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]; x, y, w: [n]. y may alias x. w may be nullptr.
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);

enum class RopeMode { kNormal, kNeox };  // pairs (2i, 2i+1) vs (i, i + n_rot/2)

// cos/sin table of one position: cs[2i] = cos(theta_i), cs[2i+1] = sin(theta_i), i < n_rot/2,
// theta_i = pos * base^(-2i/n_rot) / freq_factors[i] * freq_scale. cs: [n_rot].
void rope_table(float pos, int n_rot, float freq_base, float freq_scale,
                const float* freq_factors, float* cs);
// Rotates the first n_rot dims of one head x: [head_dim] in place using cs from rope_table.
void rope_apply(float* x, int n_rot, const float* cs, RopeMode mode);

// y[i] = silu(g[i]) * u[i]; g, u, y: [n]. y may alias g.
void swiglu(const float* g, const float* u, float* y, int64_t n);

// In-place softmax of x: [n] (max-subtracted, sum in double as ggml's soft_max).
void softmax(float* x, int64_t n);

// One query row against n_kv cached positions of one KV head, as ggml's flash attention with
// an F16 cache: q is rounded to F16, s_i = dot_f16(q, k_i) * scale, online softmax, V
// accumulated in F16 and divided by the softmax sum at the end. Positions with valid[i] == 0
// are skipped.
//   q: [head_dim_k] F32; k: n_kv rows of [head_dim_k] F16 at k_stride elements apart;
//   v: n_kv rows of [head_dim_v] F16 at v_stride; out: [head_dim_v] F32.
//   scratch: [head_dim_k + head_dim_v] uint16_t (F16 q and accumulator).
void attention_row(const float* q, const uint16_t* k, int64_t k_stride, const uint16_t* v,
                   int64_t v_stride, const uint8_t* valid, int64_t n_kv, int head_dim_k,
                   int head_dim_v, float scale, uint16_t* scratch, float* out);

// attention_row for n_q query rows of heads that share one KV head (grouped-query attention):
// every row's arithmetic is attention_row's, so the results are bit-identical, but each cached K
// and V row is read from memory once for all of them. q row r at q + r * q_stride, its output
// at out + r * out_stride; n_q <= kAttentionMaxRows, head dims <= kAttentionMaxDim (scratch on
// the stack).
inline constexpr int kAttentionMaxRows = 8;
inline constexpr int kAttentionMaxDim = 256;
void attention_rows(const float* q, int64_t q_stride, int n_q, const uint16_t* k, int64_t k_stride,
                    const uint16_t* v, int64_t v_stride, const uint8_t* valid, int64_t n_kv,
                    int head_dim_k, int head_dim_v, float scale, float* out, int64_t out_stride);

// The same row as llama.cpp computes it when a batch has at least kTiledAttentionMinRows query
// rows (ggml's tiled flash attention, used there for ubatches of >= 64 rows when head_dim_v is a
// multiple of the SIMD width, 16 on the AVX-512 machine that made the references): q stays F32,
// s_i = (fused multiply-add chain of q and F32(k_i)) * scale, the softmax runs online over
// tiles of kAttentionTile cache positions (one max and rescale per tile, the tile's sum of
// exponentials in double), and V is accumulated in F32. Same arguments as attention_row; `out`
// doubles as the accumulator, so there is no scratch. The AVX2 path (8 cache positions per
// vector) and the scalar reference are bit-identical.
inline constexpr int kTiledAttentionMinRows = 64;
inline constexpr int kAttentionTile = 64;
bool uses_tiled_attention(int rows_of_sequence, int head_dim_v);
void attention_row_tiled(const float* q, const uint16_t* k, int64_t k_stride, const uint16_t* v,
                         int64_t v_stride, const uint8_t* valid, int64_t n_kv, int head_dim_k,
                         int head_dim_v, float scale, float* out);
void attention_row_tiled_ref(const float* q, const uint16_t* k, int64_t k_stride, const uint16_t* v,
                             int64_t v_stride, const uint8_t* valid, int64_t n_kv, int head_dim_k,
                             int head_dim_v, float scale, float* out);

// The F16 dot product the attention uses (kernel_f16.cc).
float dot_f16(int64_t n, const void* a, const void* b);

}  // namespace hangar::engine
