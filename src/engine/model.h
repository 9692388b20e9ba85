#pragma once
// Model: a GGUF model ready for the forward pass: hyper-parameters (read in one place, from the
// `<arch>.*` keys), the tokenizer, and per-layer weights that point into the file's read-only
// mapping (never copied). Architectures: llama (incl. Llama 3.1 rope_freqs and tied
// embeddings), qwen2 (Q/K/V biases), qwen3 (per-head Q/K RMSNorm, explicit key_length).
// Adding an architecture is a case in read_hparams() plus its tensors in load_weights().
//
// A Model is immutable after load(): any number of Contexts and threads may share it.

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/ops.h"
#include "engine/tokenizer.h"
#include "engine/vec_dot.h"
#include "estimate/memory_plan.h"
#include "gguf/gguf.h"

namespace hangar::engine {

enum class Arch { kLlama, kQwen2, kQwen3 };

// The dimensions (arch name, n_embd, heads, ...) are the memory plan's ModelShape, read by the
// one reader both use; the rest is what only the forward pass needs.
struct HParams : estimate::ModelShape {
  Arch family = Arch::kLlama;  // from `arch`, general.architecture
  float rms_eps = 1e-5f;
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // 1 / rope.scaling.factor for linear scaling
  RopeMode rope_mode = RopeMode::kNormal;

};

// Reads and checks the hyper-parameters of `file` (header only; also used by src/estimate's
// callers through the engine).
StatusOr<HParams> read_hparams(const gguf::GgufFile& file);

// A 2-D matmul weight [n_in, n_out] (ggml order): n_out rows of n_in elements, row-major.
struct Weight {
  const uint8_t* data = nullptr;
  const VecDot* kernel = nullptr;
  int64_t n_in = 0;
  int64_t n_out = 0;
  size_t row_bytes = 0;
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes; }
};

struct LayerWeights {
  const float* attn_norm = nullptr;  // [n_embd]
  Weight wq, wk, wv, wo;             // [n_embd, n_embd_q], [n_embd, n_embd_k_gqa] x2, [n_embd_q(v), n_embd]
  const float* bq = nullptr;         // qwen2: [n_embd_q], [n_embd_k_gqa], [n_embd_v_gqa]
  const float* bk = nullptr;
  const float* bv = nullptr;
  const float* q_norm = nullptr;     // qwen3: [head_dim_k] each
  const float* k_norm = nullptr;
  const float* ffn_norm = nullptr;   // [n_embd]
  Weight w_gate, w_up, w_down;       // [n_embd, n_ff] x2, [n_ff, n_embd]
};

struct ModelWeights {
  Weight tok_embd;                   // [n_embd, n_vocab]; rows dequantized by get_rows
  std::vector<LayerWeights> layers;
  const float* output_norm = nullptr;  // [n_embd]
  Weight output;                       // [n_embd, n_vocab]; tok_embd when the file ties them
  const float* rope_freqs = nullptr;   // [n_rot / 2] or nullptr
};

struct LoadOptions {
  bool load_tokenizer = true;  // false: tokenizer() must not be called (tests of the graph only)
};

class Model {
 public:
  static StatusOr<std::unique_ptr<Model>> load(const std::string& path,
                                               const LoadOptions& options = {});

  const HParams& hparams() const { return hparams_; }
  const ModelWeights& weights() const { return weights_; }
  const gguf::GgufFile& file() const { return *file_; }
  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }

 private:
  Model() = default;
  Status load_weights();

  std::unique_ptr<gguf::GgufFile> file_;
  HParams hparams_;
  ModelWeights weights_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

}  // namespace hangar::engine
