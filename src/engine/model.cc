#include "engine/model.h"

#include <fmt/format.h>

#include <cmath>

#include "common/status.h"
#include "estimate/memory_plan.h"

namespace hangar::engine {
namespace {

StatusOr<float> get_float_key(const gguf::GgufFile& f, const std::string& arch, const char* key,
                              float def) {
  const std::string name = arch + "." + key;
  const gguf::Value* v = f.find(name);
  if (!v) return def;
  auto d = v->as_float();
  if (!d || !std::isfinite(*d)) {
    return invalid_argument_error(fmt::format("model '{}': '{}' must be a finite number", f.path(), name));
  }
  return static_cast<float>(*d);
}

}  // namespace

StatusOr<HParams> read_hparams(const gguf::GgufFile& f) {
  HParams hp;
  const std::string a = f.architecture();
  if (a == "llama") {
    hp.family = Arch::kLlama;
    hp.rope_mode = RopeMode::kNormal;
  } else if (a == "qwen2") {
    hp.family = Arch::kQwen2;
    hp.rope_mode = RopeMode::kNeox;
  } else if (a == "qwen3") {
    hp.family = Arch::kQwen3;
    hp.rope_mode = RopeMode::kNeox;
  } else {
    return unimplemented_error(fmt::format(
        "model '{}': architecture '{}' is not supported (supported: llama, qwen2, qwen3)", f.path(),
        a.empty() ? "<missing general.architecture>" : a));
  }
  // The dimensions come from the one reader the memory plan also uses.
  HANGAR_ASSIGN_OR_RETURN(static_cast<estimate::ModelShape&>(hp), estimate::read_model_shape(f));
  HANGAR_ASSIGN_OR_RETURN(hp.rms_eps, get_float_key(f, a, "attention.layer_norm_rms_epsilon", 1e-5f));
  HANGAR_ASSIGN_OR_RETURN(hp.rope_freq_base, get_float_key(f, a, "rope.freq_base", 10000.0f));
  if (hp.rms_eps <= 0.0f) {
    return invalid_argument_error(fmt::format("model '{}': layer_norm_rms_epsilon {} must be positive", f.path(), hp.rms_eps));
  }
  if (const std::string* type = f.get_string(a + ".rope.scaling.type"); type && *type == "linear") {
    HANGAR_ASSIGN_OR_RETURN(float factor, get_float_key(f, a, "rope.scaling.factor", 1.0f));
    if (factor <= 0.0f) {
      return invalid_argument_error(fmt::format("model '{}': rope.scaling.factor {} must be positive", f.path(), factor));
    }
    hp.rope_freq_scale = 1.0f / factor;
  }
  return hp;
}

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

class TensorBinder {
 public:
  explicit TensorBinder(const gguf::GgufFile& f) : f_(f) {}

  const gguf::TensorInfo* find(const std::string& name) const { return f_.find_tensor(name); }

  Status check_shape(const gguf::TensorInfo& t, const std::vector<int64_t>& shape) const {
    if (t.shape != shape) {
      return invalid_argument_error(fmt::format("model '{}': tensor '{}' has shape {}, expected {}",
                                                f_.path(), t.name, shape_str(t.shape), shape_str(shape)));
    }
    if (!t.data) return internal_error(fmt::format("model '{}': tensor '{}' is not mapped", f_.path(), t.name));
    return ok_status();
  }

  StatusOr<Weight> matrix(const std::string& name, int64_t n_in, int64_t n_out) const {
    const gguf::TensorInfo* t = find(name);
    if (!t) return not_found_error(fmt::format("model '{}': tensor '{}' is missing", f_.path(), name));
    HANGAR_RETURN_IF_ERROR(check_shape(*t, {n_in, n_out}));
    Weight w;
    w.kernel = find_vec_dot(t->type);
    if (!w.kernel) {
      return unimplemented_error(fmt::format("model '{}': tensor '{}' has type {}, which the engine does not compute yet",
                                             f_.path(), name, gguf::type_traits(t->type).name));
    }
    if (n_in % w.kernel->block != 0) {
      return invalid_argument_error(fmt::format("model '{}': tensor '{}' rows of {} are not whole blocks of {}",
                                                f_.path(), name, n_in, w.kernel->block));
    }
    w.data = t->data;
    w.n_in = n_in;
    w.n_out = n_out;
    w.row_bytes = w.kernel->weight_row_bytes(n_in);
    if (w.row_bytes * static_cast<uint64_t>(n_out) != t->bytes) {
      return data_loss_error(fmt::format("model '{}': tensor '{}' holds {} bytes, expected {}", f_.path(),
                                         name, t->bytes, w.row_bytes * n_out));
    }
    return w;
  }

  // A 1-D F32 vector; `optional` returns nullptr when absent.
  StatusOr<const float*> vector(const std::string& name, int64_t n, bool optional = false) const {
    const gguf::TensorInfo* t = find(name);
    if (!t) {
      if (optional) return static_cast<const float*>(nullptr);
      return not_found_error(fmt::format("model '{}': tensor '{}' is missing", f_.path(), name));
    }
    HANGAR_RETURN_IF_ERROR(check_shape(*t, {n}));
    if (t->type != gguf::GgmlType::kF32) {
      return unimplemented_error(fmt::format("model '{}': tensor '{}' has type {}; 1-D tensors must be f32",
                                             f_.path(), name, gguf::type_traits(t->type).name));
    }
    return reinterpret_cast<const float*>(t->data);
  }

 private:
  const gguf::GgufFile& f_;
};

}  // namespace

Status Model::load_weights() {
  const HParams& hp = hparams_;
  TensorBinder b(*file_);
  ModelWeights& w = weights_;
  HANGAR_ASSIGN_OR_RETURN(w.tok_embd, b.matrix("token_embd.weight", hp.n_embd, hp.n_vocab));
  HANGAR_ASSIGN_OR_RETURN(w.output_norm, b.vector("output_norm.weight", hp.n_embd));
  if (b.find("output.weight")) {
    HANGAR_ASSIGN_OR_RETURN(w.output, b.matrix("output.weight", hp.n_embd, hp.n_vocab));
  } else {
    w.output = w.tok_embd;  // tied embeddings, as llama.cpp falls back to token_embd
  }
  HANGAR_ASSIGN_OR_RETURN(w.rope_freqs, b.vector("rope_freqs.weight", hp.n_rot / 2, /*optional=*/true));
  const bool biases = hp.family == Arch::kQwen2;
  const bool qk_norm = hp.family == Arch::kQwen3;
  // Each layer has several tensors: a block_count above the tensor count is a corrupt header,
  // refused before it sizes the layer table.
  if (static_cast<size_t>(hp.n_layer) > file_->tensors().size()) {
    return invalid_argument_error(fmt::format("model '{}': block_count {} but the file has only {} tensors",
                                              file_->path(), hp.n_layer, file_->tensors().size()));
  }
  w.layers.resize(hp.n_layer);
  for (int i = 0; i < hp.n_layer; ++i) {
    LayerWeights& l = w.layers[i];
    const std::string p = "blk." + std::to_string(i) + ".";
    HANGAR_ASSIGN_OR_RETURN(l.attn_norm, b.vector(p + "attn_norm.weight", hp.n_embd));
    HANGAR_ASSIGN_OR_RETURN(l.wq, b.matrix(p + "attn_q.weight", hp.n_embd, hp.n_embd_q()));
    HANGAR_ASSIGN_OR_RETURN(l.wk, b.matrix(p + "attn_k.weight", hp.n_embd, hp.n_embd_k_gqa()));
    HANGAR_ASSIGN_OR_RETURN(l.wv, b.matrix(p + "attn_v.weight", hp.n_embd, hp.n_embd_v_gqa()));
    HANGAR_ASSIGN_OR_RETURN(l.wo, b.matrix(p + "attn_output.weight", hp.n_embd_attn_out(), hp.n_embd));
    if (biases) {
      HANGAR_ASSIGN_OR_RETURN(l.bq, b.vector(p + "attn_q.bias", hp.n_embd_q()));
      HANGAR_ASSIGN_OR_RETURN(l.bk, b.vector(p + "attn_k.bias", hp.n_embd_k_gqa()));
      HANGAR_ASSIGN_OR_RETURN(l.bv, b.vector(p + "attn_v.bias", hp.n_embd_v_gqa()));
    }
    if (qk_norm) {
      HANGAR_ASSIGN_OR_RETURN(l.q_norm, b.vector(p + "attn_q_norm.weight", hp.head_dim_k));
      HANGAR_ASSIGN_OR_RETURN(l.k_norm, b.vector(p + "attn_k_norm.weight", hp.head_dim_k));
    }
    HANGAR_ASSIGN_OR_RETURN(l.ffn_norm, b.vector(p + "ffn_norm.weight", hp.n_embd));
    HANGAR_ASSIGN_OR_RETURN(l.w_gate, b.matrix(p + "ffn_gate.weight", hp.n_embd, hp.n_ff));
    HANGAR_ASSIGN_OR_RETURN(l.w_up, b.matrix(p + "ffn_up.weight", hp.n_embd, hp.n_ff));
    HANGAR_ASSIGN_OR_RETURN(l.w_down, b.matrix(p + "ffn_down.weight", hp.n_ff, hp.n_embd));
  }
  return ok_status();
}

StatusOr<std::unique_ptr<Model>> Model::load(const std::string& path, const LoadOptions& options) {
  std::unique_ptr<Model> m(new Model());
  HANGAR_ASSIGN_OR_RETURN(m->file_, gguf::GgufFile::open(path));
  HANGAR_ASSIGN_OR_RETURN(m->hparams_, read_hparams(*m->file_));
  HANGAR_RETURN_IF_ERROR(m->load_weights());
  if (options.load_tokenizer) {
    HANGAR_ASSIGN_OR_RETURN(m->tokenizer_, Tokenizer::from_gguf(*m->file_));
  }
  return m;
}

}  // namespace hangar::engine
