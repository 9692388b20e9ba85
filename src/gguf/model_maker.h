#pragma once
// Random-weight test models (llama, qwen2, qwen3) of any shape, written as GGUF: what
// `hangar make-model` runs, and what tests use to make models in-process. Tensor names and shapes
// follow llama.cpp's converter (fixtures README §3); 1-D tensors are F32, 2-D tensors the chosen
// type, or with --type q4_k_m the mixture llama-quantize writes for Q4_K_M (see Mixture).
// Weights are N(0, std²) with the fixtures' std rules so generation is not degenerate.
// Stateless: safe from any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "gguf/ggml_type.h"
#include "gguf/gguf_writer.h"

namespace hangar::gguf {

// A llama-quantize file type that mixes tensor types. kQ4_K_M: Q4_K for the 2-D tensors, Q6_K
// for the output matrix (token_embd when tied) and for attn_v / ffn_down of the layers
// llama.cpp's use_more_bits() picks (the first and last eighth, and every third between). A
// matrix whose rows are not whole 256-element blocks falls back as llama.cpp's does: Q4_K to
// Q5_0, Q6_K to Q8_0. The bytes are not llama-quantize's (our Q4_K/Q6_K quantizers are simpler).
enum class Mixture { kNone, kQ4_K_M };

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
  Mixture mixture = Mixture::kNone;  // kQ4_K_M overrides `type`
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

// Reads make-model's --type: "q4_k_m" (any case) sets the mixture, a plain type name sets `type`
// (mixture none). False for an unknown name.
bool set_model_type(std::string_view name, ModelSpec* spec);

// The type make-model gives the 2-D tensor `name` ("blk.3.attn_v.weight") of `spec`, whose rows
// hold n_in elements: spec.type, or the mixture's choice.
GgmlType tensor_type(const ModelSpec& spec, const std::string& name, int64_t n_in);

}  // namespace hangar::gguf
