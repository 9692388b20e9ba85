#include "estimate/memory_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace hangar::estimate {
namespace {

// `<arch>.<key>` as a positive int below 2^30; `def` < 0 means required.
StatusOr<int> positive_key(const gguf::GgufFile& f, const std::string& arch, const char* key,
                           int64_t def) {
  const std::string name = arch + "." + key;
  const gguf::Value* v = f.find(name);
  if (!v) {
    if (def > 0) return static_cast<int>(def);
    return not_found_error(fmt::format("model '{}': missing hyper-parameter '{}'", f.path(), name));
  }
  auto i = v->as_int();
  if (!i || *i <= 0 || *i >= (int64_t{1} << 30)) {
    return invalid_argument_error(
        fmt::format("model '{}': '{}' must be a positive integer below 2^30", f.path(), name));
  }
  return static_cast<int>(*i);
}

}  // namespace

StatusOr<ModelShape> read_model_shape(const gguf::GgufFile& f) {
  ModelShape s;
  s.arch = f.architecture();
  if (s.arch.empty()) {
    return invalid_argument_error(
        fmt::format("model '{}': general.architecture is missing", f.path()));
  }
  const std::string& a = s.arch;
  HANGAR_ASSIGN_OR_RETURN(s.n_ctx_train, positive_key(f, a, "context_length", -1));
  HANGAR_ASSIGN_OR_RETURN(s.n_embd, positive_key(f, a, "embedding_length", -1));
  HANGAR_ASSIGN_OR_RETURN(s.n_layer, positive_key(f, a, "block_count", -1));
  HANGAR_ASSIGN_OR_RETURN(s.n_ff, positive_key(f, a, "feed_forward_length", -1));
  HANGAR_ASSIGN_OR_RETURN(s.n_head, positive_key(f, a, "attention.head_count", -1));
  HANGAR_ASSIGN_OR_RETURN(s.n_head_kv, positive_key(f, a, "attention.head_count_kv", s.n_head));
  const bool explicit_dims =
      f.find(a + ".attention.key_length") && f.find(a + ".attention.value_length");
  if (!explicit_dims && s.n_embd % s.n_head != 0) {
    return invalid_argument_error(
        fmt::format("model '{}': embedding_length {} is not a multiple of head_count {}", f.path(),
                    s.n_embd, s.n_head));
  }
  HANGAR_ASSIGN_OR_RETURN(s.head_dim_k,
                          positive_key(f, a, "attention.key_length", s.n_embd / s.n_head));
  HANGAR_ASSIGN_OR_RETURN(s.head_dim_v,
                          positive_key(f, a, "attention.value_length", s.n_embd / s.n_head));
  HANGAR_ASSIGN_OR_RETURN(s.n_rot, positive_key(f, a, "rope.dimension_count", s.head_dim_k));
  if (s.n_head % s.n_head_kv != 0) {
    return invalid_argument_error(
        fmt::format("model '{}': head_count {} is not a multiple of head_count_kv {}", f.path(),
                    s.n_head, s.n_head_kv));
  }
  if (s.n_rot > s.head_dim_k || s.n_rot % 2 != 0) {
    return invalid_argument_error(
        fmt::format("model '{}': rope.dimension_count {} must be even and at most the head size {}",
                    f.path(), s.n_rot, s.head_dim_k));
  }
  const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
  if (!embd || embd->shape.size() != 2) {
    return not_found_error(
        fmt::format("model '{}': tensor 'token_embd.weight' (2-D) is missing", f.path()));
  }
  if (embd->shape[1] <= 0 || embd->shape[1] >= (int64_t{1} << 30)) {
    return invalid_argument_error(
        fmt::format("model '{}': token_embd.weight has {} rows", f.path(), embd->shape[1]));
  }
  s.n_vocab = static_cast<int>(embd->shape[1]);
  return s;
}

StatusOr<ComputeLayout> compute_layout(const ModelShape& s, int n_ctx, int n_seq, int n_batch,
                                       int n_threads, int n_outputs) {
  if (n_seq < 1 || n_seq > 4096) {
    return invalid_argument_error(
        fmt::format("memory plan: n_seq_max {} must be in [1, 4096]", n_seq));
  }
  if (n_ctx < 0 || n_batch < 1 || n_batch > 65536) {
    return invalid_argument_error(fmt::format(
        "memory plan: n_ctx {} must be >= 0 and n_batch {} in [1, 65536]", n_ctx, n_batch));
  }
  if (n_threads < 1 || n_threads > 1024 || n_outputs < 0) {
    return invalid_argument_error(fmt::format(
        "memory plan: n_threads {} must be in [1, 1024], n_outputs {} >= 0", n_threads, n_outputs));
  }
  const int total = n_ctx == 0 ? s.n_ctx_train : n_ctx;
  if (total < n_seq) {
    return invalid_argument_error(
        fmt::format("memory plan: n_ctx {} is smaller than n_seq_max {}", total, n_seq));
  }
  ComputeLayout l;
  l.n_seq = n_seq;
  l.n_ctx_seq = total / n_seq;
  l.n_ctx = l.n_ctx_seq * n_seq;
  l.n_batch = n_batch;
  const uint64_t cells = static_cast<uint64_t>(s.n_layer) * l.n_ctx;
  l.k_cache = cells * s.n_embd_k_gqa();
  l.v_cache = cells * s.n_embd_v_gqa();
  const uint64_t per_row = 2ull * s.n_embd + s.n_embd_q() + s.n_embd_k_gqa() + s.n_embd_v_gqa() +
                           static_cast<uint64_t>(s.n_head) * s.head_dim_v + 2ull * s.n_ff + s.n_rot;
  l.scratch_f32 = per_row * n_batch;
  const int max_in = std::max({s.n_embd, s.n_ff, s.n_head * s.head_dim_v});
  l.act_row_stride = static_cast<uint64_t>(max_in) * 4;  // F32 is the widest activation type
  l.act_bytes = l.act_row_stride * n_batch;
  l.attn_scratch = static_cast<uint64_t>(n_threads) * (s.head_dim_k + s.head_dim_v);
  l.logits = static_cast<uint64_t>(n_outputs) * s.n_vocab;
  l.embd_out = static_cast<uint64_t>(n_outputs) * s.n_embd;
  return l;
}

namespace {

// Bytes a std::string of `n` characters allocates on the heap: nothing within libstdc++'s
// 15-character small-string buffer, else n + 1 rounded up to glibc malloc's 16-byte chunks
// with its 8-byte header.
uint64_t string_heap_bytes(size_t n) {
  if (n <= 15) return 0;
  return (static_cast<uint64_t>(n) + 1 + 8 + 15) & ~uint64_t{15};
}

uint64_t value_heap_bytes(const gguf::Value& v) {
  if (v.type == gguf::ValueType::kString) {
    return string_heap_bytes(std::get<std::string>(v.data).size());
  }
  if (v.type != gguf::ValueType::kArray) return 0;
  const auto& items = std::get<gguf::Array>(v.data).items;
  uint64_t bytes = static_cast<uint64_t>(items.size()) * sizeof(gguf::Value);
  for (const gguf::Value& item : items) bytes += value_heap_bytes(item);
  return bytes;
}

}  // namespace

uint64_t header_heap_bytes(const gguf::GgufFile& file) {
  uint64_t bytes = 0;
  for (const auto& [key, value] : file.metadata()) {
    bytes += string_heap_bytes(key.size()) + sizeof(gguf::Value) + value_heap_bytes(value);
  }
  if (const gguf::Array* tokens = file.get_array("tokenizer.ggml.tokens")) {
    bytes += static_cast<uint64_t>(tokens->items.size()) * kTokenizerBytesPerToken;
  }
  if (const gguf::Array* merges = file.get_array("tokenizer.ggml.merges")) {
    bytes += static_cast<uint64_t>(merges->items.size()) * kTokenizerBytesPerMerge;
  }
  return bytes;
}

uint64_t MemoryPlan::total() const {
  uint64_t t = 0;
  for (const auto& d : devices) t += d.total();
  return t;
}

StatusOr<MemoryPlan> plan_memory(const gguf::GgufFile& file, int ctx_size, int n_parallel,
                                 const PlanOptions& options) {
  HANGAR_ASSIGN_OR_RETURN(ModelShape shape, read_model_shape(file));
  HANGAR_ASSIGN_OR_RETURN(ComputeLayout layout,
                          compute_layout(shape, ctx_size, n_parallel, options.n_batch,
                                         options.n_threads, std::max(n_parallel, 1)));
  DevicePlan cpu;
  cpu.device = "CPU";
  for (const auto& t : file.tensors()) cpu.weights += t.bytes;
  cpu.kv_cache = layout.kv_bytes();
  cpu.compute = layout.compute_bytes();
  cpu.overhead = kProcessOverheadBytes + header_heap_bytes(file);
  MemoryPlan plan;
  plan.devices.push_back(cpu);
  return plan;
}

}  // namespace hangar::estimate
