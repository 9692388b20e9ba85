#pragma once
// The memory plan of a hangar worker (design §5), from the GGUF header only: what the engine
// will hold per device — mapped weights, the F16 KV cache, compute scratch — plus a fixed
// process overhead. The engine sizes its own buffers from compute_layout(), so the plan and the
// allocation cannot drift apart; the router calls plan_memory() before it spawns a worker.
// Only the "CPU" device exists for now.
//
// Pure functions of their inputs: safe from any thread.

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "gguf/gguf.h"

namespace hangar::estimate {

// The tensor dimensions of a transformer, read from `<arch>.*` keys and token_embd's shape.
// The one place these keys are read; the engine's hyper-parameters build on it.
struct ModelShape {
  std::string arch;
  int n_vocab = 0;
  int n_ctx_train = 0;
  int n_embd = 0;
  int n_layer = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim_k = 0;  // attention.key_length, default n_embd / n_head
  int head_dim_v = 0;  // attention.value_length, default n_embd / n_head
  int n_ff = 0;
  int n_rot = 0;  // rope.dimension_count, default head_dim_k

  // Products in 64 bits; read_model_shape() guarantees each is at most kMaxShapeProduct, so
  // code that indexes with them in `int` cannot wrap.
  int64_t n_embd_q() const { return int64_t{n_head} * head_dim_k; }
  int64_t n_embd_k_gqa() const { return int64_t{n_head_kv} * head_dim_k; }
  int64_t n_embd_v_gqa() const { return int64_t{n_head_kv} * head_dim_v; }
  int64_t n_embd_attn_out() const { return int64_t{n_head} * head_dim_v; }  // attn_output rows
};

// The largest single dimension read from a file (each `<arch>.*` size, the vocabulary), and the
// largest product of two of them (head count × head size): 2^30 keeps every product of a
// dimension with a row count or a batch far inside 64 bits, and every row index inside `int`.
inline constexpr int64_t kMaxShapeDim = (int64_t{1} << 30) - 1;
inline constexpr int64_t kMaxShapeProduct = int64_t{1} << 30;

// Every shape the engine or the plan derives from the header, validated: dimensions positive and
// at most kMaxShapeDim, head products at most kMaxShapeProduct, head counts dividing evenly.

StatusOr<ModelShape> read_model_shape(const gguf::GgufFile& file);

// Element counts of every buffer a Context allocates (engine/context.h describes each).
struct ComputeLayout {
  int n_ctx = 0;      // total KV positions (n_ctx_seq * n_seq)
  int n_ctx_seq = 0;  // positions per sequence
  int n_seq = 0;
  int n_batch = 0;
  uint64_t k_cache = 0;  // F16 elements: n_layer * n_ctx * n_embd_k_gqa
  uint64_t v_cache = 0;  // F16 elements: n_layer * n_ctx * n_embd_v_gqa
  // F32 scratch, per batch row: x, xn [n_embd]; q [n_embd_q]; k, v; attn [n_head*head_dim_v];
  // gate, up [n_ff]; rope [n_rot].
  uint64_t scratch_f32 = 0;
  uint64_t act_bytes = 0;       // converted activation rows: n_batch * widest matmul input * 4
  uint64_t act_row_stride = 0;  // bytes per activation row
  uint64_t attn_scratch = 0;    // F16 elements: n_threads * (head_dim_k + head_dim_v)
  uint64_t logits = 0;          // F32 elements for n_outputs rows: n_outputs * n_vocab
  uint64_t embd_out = 0;        // F32 elements: n_outputs * n_embd

  uint64_t kv_bytes() const { return (k_cache + v_cache) * 2; }
  uint64_t compute_bytes() const {
    return scratch_f32 * 4 + act_bytes + attn_scratch * 2 + (logits + embd_out) * 4 +
           static_cast<uint64_t>(n_ctx) /* valid flags */ + static_cast<uint64_t>(n_batch) * 8;
  }
};

// n_ctx: total positions over all sequences (0 = training context); n_seq: sequences (slots);
// n_outputs: logits rows planned per decode (the worker asks for one per active slot).
// Every element and byte count is computed with overflow checks: a shape whose buffers would not
// fit in 2^62 bytes is an InvalidArgument, never a wrapped (small) size.
StatusOr<ComputeLayout> compute_layout(const ModelShape& shape, int n_ctx, int n_seq, int n_batch,
                                       int n_threads, int n_outputs);

struct DevicePlan {
  std::string device;    // "CPU"
  uint64_t weights = 0;  // tensor bytes (mapped)
  uint64_t kv_cache = 0;
  uint64_t compute = 0;
  // The process: code, libraries, thread stacks (kProcessOverheadBytes) plus the heap that
  // grows with the header: the parsed metadata and the tokenizer's tables (header_heap_bytes).
  uint64_t overhead = 0;
  uint64_t total() const { return weights + kv_cache + compute + overhead; }
};

struct MemoryPlan {
  std::vector<DevicePlan> devices;
  uint64_t total() const;
};

struct PlanOptions {
  int n_batch = 512;
  int n_threads = 1;
};

// The fixed part of a worker's footprint: its code and libraries (their Pss share), thread
// stacks, HTTP buffers and allocator slack. Measured at about 3 MiB of Pss (6 MiB RSS) for
// `hangar run -t 1` before any model is loaded; the rest is margin for more threads.
inline constexpr uint64_t kProcessOverheadBytes = 8ull << 20;

// The tokenizer's tables per vocabulary entry and per BPE merge (strings, id maps, scores,
// types), fitted to measurements of hangar's tokenizer on the fixture vocabularies (32k
// SentencePiece, 128k and 152k byte-level BPE): 146 and 108 bytes, rounded up.
inline constexpr uint64_t kTokenizerBytesPerToken = 152;
inline constexpr uint64_t kTokenizerBytesPerMerge = 112;

// The heap a loaded model holds for its header: what the GGUF reader counts for the parsed
// header (GgufFile::header_heap_bytes: metadata stored compactly, about its size in the file),
// plus the tokenizer's tables built from tokenizer.ggml.tokens/merges.
uint64_t header_heap_bytes(const gguf::GgufFile& file);

// ctx_size: llama-server's -c, the total context shared by the n_parallel slots (0 = training
// context).
StatusOr<MemoryPlan> plan_memory(const gguf::GgufFile& file, int ctx_size, int n_parallel,
                                 const PlanOptions& options = {});

}  // namespace hangar::estimate
