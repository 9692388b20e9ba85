#pragma once
// Random-weight test models (llama, qwen2, qwen3) of any shape, written as GGUF: what
// `hangar make-model` runs, and what tests use to make models in-process. Tensor names and shapes
// follow llama.cpp's converter (fixtures README §3); 1-D tensors are F32, 2-D tensors the chosen
// type. Weights are N(0, std²) with the fixtures' std rules so generation is not degenerate.
// Stateless: safe from any thread.

#include <cstdint>
#include <string>

#include "common/status.h"
#include "gguf/ggml_type.h"
#include "gguf/gguf_writer.h"

namespace hangar::gguf {

struct ModelSpec {
  std::string arch = "llama";  // llama | qwen2 | qwen3
  std::string name;            // general.name; defaults to arch
  int64_t n_embd = 64;
  int64_t n_layer = 2;
  int64_t n_head = 4;
  int64_t n_head_kv = 2;
  int64_t head_dim = 0;        // 0: n_embd / n_head
  int64_t n_ff = 192;
  int64_t n_ctx = 256;
  int64_t n_vocab = 32000;     // used only without vocab_from
  GgmlType type = GgmlType::kF32;
  uint64_t seed = 1;
  bool tie_embeddings = false;  // no output.weight (llama.cpp then uses token_embd)
  double rope_freq_base = 0;    // 0: 10000 for llama, 1e6 for qwen2/qwen3
  double rms_eps = 0;           // 0: 1e-5 for llama, 1e-6 for qwen2/qwen3
  std::string vocab_from;       // GGUF file whose tokenizer.* keys are copied
  int threads = 0;              // 0: hardware concurrency
};

// Checks the spec and builds the writer holding the whole model (no file written).
StatusOr<GgufWriter> make_model(const ModelSpec& spec);
// make_model + write to `path`.
Status write_model(const ModelSpec& spec, const std::string& path);

// general.file_type for a model whose 2-D tensors are `type` (llama_ftype), or nullopt.
std::optional<uint32_t> file_type_of(GgmlType type);

}  // namespace hangar::gguf
