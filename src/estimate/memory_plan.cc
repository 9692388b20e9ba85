#include "estimate/memory_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>

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
  // Products of two dimensions below 2^30 cannot overflow 64 bits; bound them so that nothing
  // downstream (the engine's row counts, `int` indices) sees a value that wraps.
  const struct {
    const char* what;
    int64_t value;
  } products[] = {{"head_count × key_length", s.n_embd_q()},
                  {"head_count × value_length", s.n_embd_attn_out()},
                  {"head_count_kv × key_length", s.n_embd_k_gqa()},
                  {"head_count_kv × value_length", s.n_embd_v_gqa()}};
  for (const auto& p : products) {
    if (p.value > kMaxShapeProduct) {
      return invalid_argument_error(
          fmt::format("model '{}': {} is {}, above the limit of 2^30 (head_count {}, "
                      "head_count_kv {}, key_length {}, value_length {})",
                      f.path(), p.what, p.value, s.n_head, s.n_head_kv, s.head_dim_k, s.head_dim_v));
    }
  }
  return s;
}

namespace {

// Every count and byte size of a plan stays below 2^58 (256 PiB): far above any machine, and
// low enough that ComputeLayout's sums of a few such terms cannot overflow 64 bits.
constexpr uint64_t kMaxPlanValue = uint64_t{1} << 58;

// *out = a × b; false when it would reach kMaxPlanValue.
bool mul(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out) && *out < kMaxPlanValue;
}

// *out = the sum of `terms`; false when it would reach kMaxPlanValue.
bool sum(std::initializer_list<uint64_t> terms, uint64_t* out) {
  *out = 0;
  for (uint64_t t : terms) {
    if (t >= kMaxPlanValue || (*out += t) >= kMaxPlanValue) return false;
  }
  return true;
}

Status too_large(const ModelShape& s, const char* what) {
  return invalid_argument_error(
      fmt::format("memory plan: the {} of a {} model (n_layer {}, n_embd {}, n_head {}, "
                  "head sizes {}/{}, n_ff {}, n_vocab {}) does not fit in 2^58 bytes",
                  what, s.arch, s.n_layer, s.n_embd, s.n_head, s.head_dim_k, s.head_dim_v, s.n_ff,
                  s.n_vocab));
}

}  // namespace

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
  // Each product is checked, so a hostile shape (or a hand-built one) is refused instead of
  // wrapping to a small size; a negative dimension reads as a huge one and is refused too.
  const auto u = [](int64_t v) { return static_cast<uint64_t>(v); };
  uint64_t cells = 0;
  uint64_t bytes = 0;
  if (!mul(u(s.n_layer), u(l.n_ctx), &cells) || !mul(cells, u(s.n_embd_k_gqa()), &l.k_cache) ||
      !mul(cells, u(s.n_embd_v_gqa()), &l.v_cache) || !mul(l.k_cache + l.v_cache, 2, &bytes)) {
    return too_large(s, "KV cache");
  }
  uint64_t per_row = 0;
  if (!sum({2 * u(s.n_embd), u(s.n_embd_q()), u(s.n_embd_k_gqa()), u(s.n_embd_v_gqa()),
            u(s.n_embd_attn_out()), 2 * u(s.n_ff), u(s.n_rot)},
           &per_row)) {
    return too_large(s, "compute scratch");
  }
  if (!mul(per_row, u(n_batch), &l.scratch_f32) || !mul(l.scratch_f32, 4, &bytes)) {
    return too_large(s, "compute scratch");
  }
  const int64_t max_in = std::max({int64_t{s.n_embd}, int64_t{s.n_ff}, s.n_embd_attn_out()});
  // F32 is the widest activation type.
  if (!mul(u(max_in), 4, &l.act_row_stride) || !mul(l.act_row_stride, u(n_batch), &l.act_bytes)) {
    return too_large(s, "activation rows");
  }
  if (!mul(u(n_threads), u(s.head_dim_k) + u(s.head_dim_v), &l.attn_scratch) ||
      !mul(u(n_outputs), u(s.n_vocab), &l.logits) || !mul(l.logits, 4, &bytes) ||
      !mul(u(n_outputs), u(s.n_embd), &l.embd_out) || !mul(l.embd_out, 4, &bytes)) {
    return too_large(s, "output buffers");
  }
  if (l.kv_bytes() >= kMaxPlanValue || l.compute_bytes() >= kMaxPlanValue) {
    return too_large(s, "buffers");
  }
  return l;
}

uint64_t header_heap_bytes(const gguf::GgufFile& file) {
  uint64_t bytes = file.header_heap_bytes();
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
