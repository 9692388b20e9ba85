#pragma once
// Context: the state of one model in use — an F16 KV cache split into n_seq_max sequences,
// preallocated scratch buffers sized for n_batch tokens, and a persistent thread pool — and
// decode(), the forward pass over a Batch of tokens from any mix of sequences.
//
//   auto ctx = Context::create(model, {.n_ctx = 4096, .n_seq_max = 4, .n_threads = 8});
//   Batch b;
//   for (i...) b.add(tokens[i], /*pos=*/i, /*seq=*/0, /*want_logits=*/i == n - 1);
//   ctx->decode(b);  const float* logits = ctx->logits(n - 1);  // [n_vocab]
//
// KV cache: sequence s owns positions [0, n_ctx / n_seq_max) of its own cache region
// ([n_layer][n_seq_max][n_ctx_seq][n_head_kv * head_dim] F16 for K, the same for V); a token at
// position p attends to every valid cached position <= p of its sequence. seq_remove() clears
// positions. Batch-invariant: every row of the batch is computed by the same per-row kernels in
// the same order whatever else is in the batch, so a sequence's logits never depend on its
// neighbours (the worker's continuous batching relies on this). The one choice a row's own
// sequence makes: like llama.cpp, a step holding >= 64 rows of a sequence computes their
// attention as ggml's tiled flash attention does (F32 q and accumulator), fewer rows as its
// one-row path (F16); see ops.h.
// No allocation in decode() except when a batch asks for more logits rows than any before.
//
// Thread-safety: a Context is used by one thread at a time; the Model it points to must outlive it.

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/status.h"
#include "engine/model.h"
#include "engine/spin_pool.h"

namespace hangar::engine {

struct ContextParams {
  int n_ctx = 0;      // total KV positions over all sequences; 0 = the model's training context
  int n_seq_max = 1;  // sequences (slots); each gets n_ctx / n_seq_max positions
  int n_batch = 512;  // tokens computed per forward step (larger batches are split)
  int n_threads = 1;
};

// The tokens of one decode() call: row i is tokens[i] at pos[i] in sequence seq_id[i], with
// logits wanted when logits[i] != 0.
struct Batch {
  std::vector<TokenId> tokens;
  std::vector<int32_t> pos;
  std::vector<int32_t> seq_id;
  std::vector<uint8_t> logits;

  void add(TokenId token, int32_t position, int32_t seq, bool want_logits) {
    tokens.push_back(token);
    pos.push_back(position);
    seq_id.push_back(seq);
    logits.push_back(want_logits ? 1 : 0);
  }
  void clear() {
    tokens.clear();
    pos.clear();
    seq_id.clear();
    logits.clear();
  }
  size_t size() const { return tokens.size(); }
};

class Context {
 public:
  static StatusOr<std::unique_ptr<Context>> create(const Model& model, const ContextParams& params);
  ~Context();

  // Runs the forward pass. Fails (changing nothing) on an empty or inconsistent batch, an
  // unknown token id, a sequence id outside [0, n_seq_max) or a position outside
  // [0, n_ctx_seq()).
  Status decode(const Batch& batch);

  // After decode(): the logits [n_vocab] of batch row i (i < 0: the last row with logits), or
  // nullptr when that row did not ask for them.
  const float* logits(int32_t i) const;
  // The final hidden state after the output norm [n_embd] of batch row i, as logits().
  const float* embedding(int32_t i) const;

  // Forgets positions [p0, p1) of sequence seq (p1 < 0: to the end).
  void seq_remove(int32_t seq, int32_t p0, int32_t p1);
  // The largest cached position of seq, or -1 when it holds none.
  int32_t seq_pos_max(int32_t seq) const;

  const Model& model() const { return model_; }
  int n_ctx() const { return n_ctx_; }
  int n_ctx_seq() const { return n_ctx_seq_; }
  int n_seq_max() const { return n_seq_max_; }
  int n_threads() const { return pool_.size(); }

 private:
  Context(const Model& model, const ContextParams& params);
  Status validate(const Batch& batch) const;
  // One forward step over rows [begin, end) of the batch (end - begin <= n_batch_).
  void forward(const Batch& batch, int begin, int end);
  // out[t][r] = W row r · act row t for t < n_tokens, over the thread pool.
  void matmul(const Weight& w, const float* in, int n_tokens, float* out);
  // Up to three matmuls of the same input (Q/K/V, gate/up): the input is converted once per
  // vec_dot type and both threads share every weight's rows in one parallel region.
  struct MatmulOut {
    const Weight* w;
    float* out;  // [n_tokens][w->n_out]
  };
  // kSwiglu (gate/up, two weights with the same rows): then mm[0].out = silu(mm[0].out) *
  // mm[1].out, each thread over the rows it computed, in the same region.
  enum class Then { kNothing, kSwiglu };
  void matmul_multi(const MatmulOut* mm, int n_mm, const float* in, int n_in, int n_tokens,
                    Then then = Then::kNothing);

  const Model& model_;
  const HParams& hp_;
  int n_ctx_ = 0;
  int n_ctx_seq_ = 0;
  int n_seq_max_ = 0;
  int n_batch_ = 0;
  SpinPool pool_;
  // matmul_multi's work ranges, one per thread: front << 32 | back, in chunks (see there).
  struct alignas(64) ChunkRange {
    std::atomic<uint64_t> front_back{0};
  };
  std::unique_ptr<ChunkRange[]> ranges_;

  // KV cache: [n_layer][n_seq_max][n_ctx_seq][n_embd_k_gqa] F16 (V: n_embd_v_gqa).
  std::vector<uint16_t> k_cache_;
  std::vector<uint16_t> v_cache_;
  std::vector<uint8_t> valid_;  // [n_seq_max][n_ctx_seq]: 1 when the position is cached

  // Scratch, [n_batch][width] F32 unless noted.
  std::vector<float> x_;      // residual stream [n_embd]
  std::vector<float> xn_;     // normed input of a block [n_embd]
  std::vector<float> q_;      // [n_embd_q]
  std::vector<float> k_;      // [n_embd_k_gqa]
  std::vector<float> v_;      // [n_embd_v_gqa]
  std::vector<float> attn_;   // [n_head * head_dim_v]
  std::vector<float> gate_;   // [n_ff]
  std::vector<float> up_;     // [n_ff]
  std::vector<float> rope_;   // [n_rot] cos/sin per token
  std::vector<uint8_t> act_;  // activation rows converted to the weight's vec_dot type
  std::vector<uint16_t> attn_scratch_;  // [n_threads][head_dim_k + head_dim_v] F16
  // [n_seq_max] rows of each sequence in the current forward step (picks the attention path)
  std::vector<int> seq_rows_;

  // Outputs of the last decode(): one row per batch row that asked for logits.
  std::vector<int32_t> output_of_row_;  // [batch size]: output index or -1
  int32_t n_outputs_ = 0;
  std::vector<float> logits_;           // [n_outputs][n_vocab]
  std::vector<float> embd_out_;         // [n_outputs][n_embd]
  std::vector<int32_t> out_rows_;       // [n_batch]: rows of the current step that output
};

}  // namespace hangar::engine
