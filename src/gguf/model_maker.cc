// Random test models (see model_maker.h). Each tensor draws from its own generator seeded from
// (seed, tensor index), so tensors are generated in parallel and the result does not depend on the
// thread count. Data is generated and quantized in row chunks to keep the F32 scratch small.
#include "gguf/model_maker.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "gguf/gguf.h"
#include "gguf/quantize.h"

namespace hangar::gguf {
namespace {

uint64_t splitmix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// xoshiro256** with Box-Muller normals: fast enough for ~10^9 draws per minute on one core.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& w : s_) w = splitmix64(&seed);
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in (0, 1].
  double uniform() { return (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53; }
  float normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(uniform()));
    const double theta = 2.0 * M_PI * uniform();
    spare_ = static_cast<float>(r * std::sin(theta));
    has_spare_ = true;
    return static_cast<float>(r * std::cos(theta));
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
  bool has_spare_ = false;
  float spare_ = 0;
};

struct TensorPlan {
  std::string name;
  std::vector<int64_t> shape;
  GgmlType type;
  float mean;  // 1 for norm weights, 0 otherwise
  float std;
  std::vector<uint8_t> data;
  Status status;
};

Status fill(TensorPlan* t, uint64_t seed) {
  Rng rng(seed);
  const int64_t ne0 = t->shape[0];
  const int64_t rows = t->shape.size() > 1 ? t->shape[1] : 1;
  const uint64_t rb = *row_bytes(t->type, ne0);
  t->data.resize(rb * static_cast<uint64_t>(rows));
  const int64_t chunk_rows = std::max<int64_t>(1, (1 << 20) / ne0);
  std::vector<float> scratch(static_cast<size_t>(std::min(rows, chunk_rows) * ne0));
  for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
    const int64_t nr = std::min(chunk_rows, rows - r0);
    const int64_t n = nr * ne0;
    for (int64_t i = 0; i < n; ++i) scratch[i] = t->mean + t->std * rng.normal();
    HANGAR_RETURN_IF_ERROR(quantize_into(t->type, scratch.data(), n, t->data.data() + r0 * rb));
  }
  return ok_status();
}

Status check_positive(const char* what, int64_t v) {
  if (v <= 0 || v > (int64_t{1} << 24)) {
    return invalid_argument_error(std::string("make-model: ") + what + " must be in 1.." +
                                  std::to_string(int64_t{1} << 24) + ", got " + std::to_string(v));
  }
  return ok_status();
}

// A minimal SentencePiece-style vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then filler
// pieces, so a tokenizer with byte fallback can encode any text.
void add_synthetic_vocab(GgufWriter* w, int64_t n_vocab) {
  std::vector<Value> tokens, scores, types;
  tokens.reserve(n_vocab);
  for (int64_t i = 0; i < n_vocab; ++i) {
    std::string piece;
    int32_t type = 1;  // normal
    if (i == 0) {
      piece = "<unk>", type = 2;
    } else if (i == 1) {
      piece = "<s>", type = 3;
    } else if (i == 2) {
      piece = "</s>", type = 3;
    } else if (i < 3 + 256) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "<0x%02X>", static_cast<unsigned>(i - 3));
      piece = buf, type = 6;
    } else {
      piece = "\xE2\x96\x81tok" + std::to_string(i);
    }
    tokens.push_back(Value::str(std::move(piece)));
    scores.push_back(Value::f32(-static_cast<float>(i)));
    types.push_back(Value::i32(type));
  }
  w->set("tokenizer.ggml.model", Value::str("llama"));
  w->set("tokenizer.ggml.pre", Value::str("default"));
  w->set("tokenizer.ggml.tokens", Value::array(ValueType::kString, std::move(tokens)));
  w->set("tokenizer.ggml.scores", Value::array(ValueType::kFloat32, std::move(scores)));
  w->set("tokenizer.ggml.token_type", Value::array(ValueType::kInt32, std::move(types)));
  w->set("tokenizer.ggml.bos_token_id", Value::u32(1));
  w->set("tokenizer.ggml.eos_token_id", Value::u32(2));
  w->set("tokenizer.ggml.unknown_token_id", Value::u32(0));
  w->set("tokenizer.ggml.add_bos_token", Value::boolean(true));
  w->set("tokenizer.ggml.add_eos_token", Value::boolean(false));
}

}  // namespace

std::optional<uint32_t> file_type_of(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return 0;
    case GgmlType::kF16: return 1;
    case GgmlType::kQ4_0: return 2;
    case GgmlType::kQ4_1: return 3;
    case GgmlType::kQ8_0: return 7;
    case GgmlType::kQ5_0: return 8;
    case GgmlType::kQ5_1: return 9;
    case GgmlType::kQ4_K: return 15;  // LLAMA_FTYPE_MOSTLY_Q4_K_M, also for a pure Q4_K file
    case GgmlType::kQ6_K: return 18;
    case GgmlType::kBF16: return 32;
    default: return std::nullopt;
  }
}

bool set_model_type(std::string_view name, ModelSpec* spec) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "q4_k_m") {
    spec->mixture = Mixture::kQ4_K_M;
    spec->type = GgmlType::kQ4_K;
    return true;
  }
  const std::optional<GgmlType> t = type_from_name(name);
  if (!t) return false;
  spec->mixture = Mixture::kNone;
  spec->type = *t;
  return true;
}

namespace {

// llama.cpp's use_more_bits(i, n): the layers a K-quant mixture gives more bits.
bool use_more_bits(int64_t i, int64_t n) {
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The layer of "blk.<i>.<rest>", or -1.
int64_t layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  int64_t i = 0;
  size_t p = 4;
  if (p >= name.size() || !std::isdigit(static_cast<unsigned char>(name[p]))) return -1;
  for (; p < name.size() && std::isdigit(static_cast<unsigned char>(name[p])); ++p) {
    i = i * 10 + (name[p] - '0');
  }
  return i;
}

}  // namespace

GgmlType tensor_type(const ModelSpec& spec, const std::string& name, int64_t n_in) {
  if (spec.mixture == Mixture::kNone) return spec.type;
  GgmlType t = GgmlType::kQ4_K;
  const bool is_output =
      name == "output.weight" || (spec.tie_embeddings && name == "token_embd.weight");
  if (is_output) {
    t = GgmlType::kQ6_K;
  } else if (ends_with(name, ".attn_v.weight") || ends_with(name, ".ffn_down.weight")) {
    const int64_t layer = layer_of(name);
    if (layer >= 0 && use_more_bits(layer, spec.n_layer)) t = GgmlType::kQ6_K;
  }
  if (n_in % type_traits(t).block_size != 0) {
    t = t == GgmlType::kQ4_K ? GgmlType::kQ5_0 : GgmlType::kQ8_0;  // as llama-quantize falls back
  }
  return t;
}

StatusOr<GgufWriter> make_model(const ModelSpec& spec) {
  const std::string& arch = spec.arch;
  const bool is_qwen = arch == "qwen2" || arch == "qwen3";
  if (arch != "llama" && !is_qwen) {
    return invalid_argument_error("make-model: unknown --arch '" + arch +
                                  "' (llama, qwen2 or qwen3)");
  }
  HANGAR_RETURN_IF_ERROR(check_positive("--n-embd", spec.n_embd));
  HANGAR_RETURN_IF_ERROR(check_positive("--n-layer", spec.n_layer));
  HANGAR_RETURN_IF_ERROR(check_positive("--n-head", spec.n_head));
  HANGAR_RETURN_IF_ERROR(check_positive("--n-head-kv", spec.n_head_kv));
  HANGAR_RETURN_IF_ERROR(check_positive("--n-ff", spec.n_ff));
  HANGAR_RETURN_IF_ERROR(check_positive("--ctx", spec.n_ctx));
  if (spec.n_head % spec.n_head_kv != 0) {
    return invalid_argument_error("make-model: --n-head " + std::to_string(spec.n_head) +
                                  " is not a multiple of --n-head-kv " +
                                  std::to_string(spec.n_head_kv));
  }
  const int64_t head_dim = spec.head_dim > 0 ? spec.head_dim : spec.n_embd / spec.n_head;
  if (spec.head_dim <= 0 && (arch != "qwen3") && spec.n_embd % spec.n_head != 0) {
    return invalid_argument_error("make-model: --n-embd " + std::to_string(spec.n_embd) +
                                  " is not a multiple of --n-head " + std::to_string(spec.n_head));
  }
  if (head_dim <= 0 || head_dim % 2 != 0) {
    return invalid_argument_error("make-model: head dimension " + std::to_string(head_dim) +
                                  " must be positive and even (RoPE)");
  }
  const std::optional<uint32_t> ftype =
      spec.mixture == Mixture::kQ4_K_M ? std::optional<uint32_t>(15) : file_type_of(spec.type);
  if (!ftype) {
    return invalid_argument_error(
        "make-model: --type '" + std::string(type_traits(spec.type).name) +
        "' is not one of f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q6_K, q4_k_m");
  }
  // A mixture falls back per tensor instead (tensor_type).
  const uint32_t block = spec.mixture == Mixture::kNone ? type_traits(spec.type).block_size : 1;
  for (int64_t in_dim : {spec.n_embd, spec.n_ff, spec.n_head * head_dim}) {
    if (in_dim % block != 0) {
      return invalid_argument_error("make-model: matrix input dimension " +
                                    std::to_string(in_dim) + " is not a multiple of the " +
                                    std::string(type_traits(spec.type).name) + " block size " +
                                    std::to_string(block));
    }
  }

  GgufWriter w;
  const std::string a = arch + ".";
  w.set("general.architecture", Value::str(arch));
  w.set("general.name", Value::str(spec.name.empty() ? arch : spec.name));
  w.set(a + "block_count", Value::u32(static_cast<uint32_t>(spec.n_layer)));
  w.set(a + "context_length", Value::u32(static_cast<uint32_t>(spec.n_ctx)));
  w.set(a + "embedding_length", Value::u32(static_cast<uint32_t>(spec.n_embd)));
  w.set(a + "feed_forward_length", Value::u32(static_cast<uint32_t>(spec.n_ff)));
  w.set(a + "attention.head_count", Value::u32(static_cast<uint32_t>(spec.n_head)));
  w.set(a + "attention.head_count_kv", Value::u32(static_cast<uint32_t>(spec.n_head_kv)));
  const double freq_base = spec.rope_freq_base > 0 ? spec.rope_freq_base : (is_qwen ? 1e6 : 1e4);
  const double eps = spec.rms_eps > 0 ? spec.rms_eps : (is_qwen ? 1e-6 : 1e-5);
  w.set(a + "rope.freq_base", Value::f32(static_cast<float>(freq_base)));
  w.set(a + "attention.layer_norm_rms_epsilon", Value::f32(static_cast<float>(eps)));
  w.set(a + "rope.dimension_count", Value::u32(static_cast<uint32_t>(head_dim)));
  if (arch == "qwen3" || head_dim * spec.n_head != spec.n_embd) {
    w.set(a + "attention.key_length", Value::u32(static_cast<uint32_t>(head_dim)));
    w.set(a + "attention.value_length", Value::u32(static_cast<uint32_t>(head_dim)));
  }

  int64_t n_vocab = spec.n_vocab;
  if (!spec.vocab_from.empty()) {
    HANGAR_ASSIGN_OR_RETURN(auto vocab, GgufFile::open(spec.vocab_from));
    const Array* tokens = vocab->get_array("tokenizer.ggml.tokens");
    if (tokens == nullptr || tokens->items.empty()) {
      return invalid_argument_error("make-model: --vocab-from '" + spec.vocab_from +
                                    "' has no tokenizer.ggml.tokens array");
    }
    n_vocab = static_cast<int64_t>(tokens->items.size());
    if (arch == "llama") w.set(a + "vocab_size", Value::u32(static_cast<uint32_t>(n_vocab)));
    w.set("general.file_type", Value::u32(*ftype));
    w.set("general.quantization_version", Value::u32(2));
    for (const auto& [key, value] : vocab->metadata()) {
      if (key.rfind("tokenizer.", 0) == 0) w.set(key, value);
    }
  } else {
    if (n_vocab < 3 + 256 || n_vocab > (int64_t{1} << 24)) {
      return invalid_argument_error("make-model: --n-vocab must be in 259.." +
                                    std::to_string(int64_t{1} << 24) + ", got " +
                                    std::to_string(n_vocab));
    }
    if (arch == "llama") w.set(a + "vocab_size", Value::u32(static_cast<uint32_t>(n_vocab)));
    w.set("general.file_type", Value::u32(*ftype));
    w.set("general.quantization_version", Value::u32(2));
    add_synthetic_vocab(&w, n_vocab);
  }

  // Tensors in llama.cpp's converter order, stds as in fixtures README §3.1.
  const int64_t e = spec.n_embd, q_dim = spec.n_head * head_dim, kv_dim = spec.n_head_kv * head_dim;
  const float inv_e = 1.0f / std::sqrt(static_cast<float>(e));
  std::vector<TensorPlan> plan;
  auto matrix = [&](std::string name, int64_t in, int64_t out, float std) {
    const GgmlType type = tensor_type(spec, name, in);
    plan.push_back({std::move(name), {in, out}, type, 0.0f, std, {}, {}});
  };
  auto vector = [&](std::string name, int64_t n, float mean, float std) {
    plan.push_back({std::move(name), {n}, GgmlType::kF32, mean, std, {}, {}});
  };
  matrix("token_embd.weight", e, n_vocab, 1.0f);
  for (int64_t i = 0; i < spec.n_layer; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    vector(b + "attn_norm.weight", e, 1.0f, 0.1f);
    matrix(b + "attn_q.weight", e, q_dim, 0.8f * inv_e);
    matrix(b + "attn_k.weight", e, kv_dim, 0.8f * inv_e);
    matrix(b + "attn_v.weight", e, kv_dim, inv_e);
    if (arch == "qwen2") {
      vector(b + "attn_q.bias", q_dim, 0.0f, 0.5f);
      vector(b + "attn_k.bias", kv_dim, 0.0f, 0.5f);
      vector(b + "attn_v.bias", kv_dim, 0.0f, 0.5f);
    }
    if (arch == "qwen3") {
      vector(b + "attn_q_norm.weight", head_dim, 1.0f, 0.1f);
      vector(b + "attn_k_norm.weight", head_dim, 1.0f, 0.1f);
    }
    matrix(b + "attn_output.weight", q_dim, e, 2.0f / std::sqrt(static_cast<float>(q_dim)));
    vector(b + "ffn_norm.weight", e, 1.0f, 0.1f);
    matrix(b + "ffn_gate.weight", e, spec.n_ff, inv_e);
    matrix(b + "ffn_up.weight", e, spec.n_ff, inv_e);
    matrix(b + "ffn_down.weight", spec.n_ff, e, 2.0f / std::sqrt(static_cast<float>(spec.n_ff)));
  }
  vector("output_norm.weight", e, 1.0f, 0.1f);
  if (!spec.tie_embeddings) matrix("output.weight", e, n_vocab, 2.5f * inv_e);

  // Largest tensors first so the threads finish together.
  std::vector<size_t> order(plan.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    return plan[x].shape[0] * (plan[x].shape.size() > 1 ? plan[x].shape[1] : 1) >
           plan[y].shape[0] * (plan[y].shape.size() > 1 ? plan[y].shape[1] : 1);
  });
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t k = next++; k < order.size(); k = next++) {
      const size_t i = order[k];
      plan[i].status = fill(&plan[i], spec.seed * 1000003ull + i);
    }
  };
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const unsigned n_threads =
      std::min<unsigned>(spec.threads > 0 ? static_cast<unsigned>(spec.threads) : hw, 64);
  std::vector<std::thread> threads;
  for (unsigned t = 1; t < n_threads; ++t) threads.emplace_back(worker);
  worker();
  for (std::thread& t : threads) t.join();

  for (TensorPlan& t : plan) {
    HANGAR_RETURN_IF_ERROR(t.status);
    HANGAR_RETURN_IF_ERROR(w.add_tensor(std::move(t.name), t.type, std::move(t.shape),
                                        std::move(t.data)));
  }
  return w;
}

Status write_model(const ModelSpec& spec, const std::string& path) {
  HANGAR_ASSIGN_OR_RETURN(GgufWriter w, make_model(spec));
  return w.write(path);
}

}  // namespace hangar::gguf
