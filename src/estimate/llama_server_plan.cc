#include "estimate/llama_server_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <string_view>

#include "gguf/ggml_type.h"

namespace hangar::estimate {
namespace {

// ---------------------------------------------------------------------------------------------
// Arguments

// The largest values accepted: far above any real use, small enough that every product below
// stays inside 64 bits before the saturating arithmetic has to step in.
constexpr int kMaxCtx = 1 << 26;     // 64 M positions
constexpr int kMaxBatch = 1 << 20;   // tokens per batch
constexpr int kMaxParallel = 4096;   // slots
constexpr int kAllLayers = 1 << 20;  // -ngl all / auto

bool is_one_of(std::string_view s, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), s) != names.end();
}

StatusOr<int> parse_int(std::string_view name, std::string_view text) {
  int v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) {
    return invalid_argument_error(
        fmt::format("llama-server argument '{}': '{}' is not an integer", name, text));
  }
  return v;
}

// "3,1" or "3/1" (llama.cpp accepts both separators) → {3, 1}.
StatusOr<std::vector<float>> parse_split(std::string_view name, std::string_view text) {
  std::vector<float> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find_first_of(",/", start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view part = text.substr(start, end - start);
    float v = 0;
    auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (part.empty() || ec != std::errc() || p != part.data() + part.size() || !(v >= 0) ||
        v > 1e9f) {
      return invalid_argument_error(fmt::format(
          "llama-server argument '{}': '{}' is not a list of proportions >= 0 such as 3,1", name,
          text));
    }
    out.push_back(v);
    if (out.size() > 256) {
      return invalid_argument_error(
          fmt::format("llama-server argument '{}': more than 256 proportions", name));
    }
    start = end + 1;
  }
  return out;
}

Status check_cache_type(std::string_view name, const std::string& type) {
  if (!is_one_of(type, {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"})) {
    return invalid_argument_error(fmt::format(
        "llama-server argument '{}': cache type '{}' is not one of f32, f16, bf16, q8_0, q4_0, "
        "q4_1, iq4_nl, q5_0, q5_1",
        name, type));
  }
  return Status();
}

}  // namespace

StatusOr<LlamaServerArgs> parse_llama_server_args(const std::vector<std::string>& args) {
  LlamaServerArgs a;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view name = args[i];
    std::optional<std::string_view> inline_value;
    if (name.starts_with("--")) {
      if (size_t eq = name.find('='); eq != std::string_view::npos) {
        inline_value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
    }
    // The option's value: "--x=v" or the next argument.
    auto value = [&]() -> StatusOr<std::string_view> {
      if (inline_value) return *inline_value;
      if (i + 1 >= args.size()) {
        return invalid_argument_error(
            fmt::format("llama-server argument '{}' needs a value", name));
      }
      return std::string_view(args[++i]);
    };
    if (is_one_of(name, {"-c", "--ctx-size"})) {
      HANGAR_ASSIGN_OR_RETURN(std::string_view v, value());
      HANGAR_ASSIGN_OR_RETURN(a.ctx_size, parse_int(name, v));
    } else if (is_one_of(name, {"-np", "--parallel"})) {
      HANGAR_ASSIGN_OR_RETURN(std::string_view v, value());
      HANGAR_ASSIGN_OR_RETURN(a.parallel, parse_int(name, v));
    } else if (is_one_of(name, {"-kvu", "--kv-unified"})) {
      a.kv_unified = true;
    } else if (is_one_of(name, {"-no-kvu", "--no-kv-unified"})) {
      a.kv_unified = false;
    } else if (is_one_of(name, {"-ngl", "--gpu-layers", "--n-gpu-layers"})) {
      HANGAR_ASSIGN_OR_RETURN(std::string_view v, value());
      if (v == "auto") {
        a.n_gpu_layers = -1;
      } else if (v == "all") {
        a.n_gpu_layers = kAllLayers;
      } else {
        HANGAR_ASSIGN_OR_RETURN(int n, parse_int(name, v));
        a.n_gpu_layers = n < 0 ? -1 : std::min(n, kAllLayers);
      }
    } else if (is_one_of(name, {"-ts", "--tensor-split"})) {
      HANGAR_ASSIGN_OR_RETURN(std::string_view v, value());
      HANGAR_ASSIGN_OR_RETURN(a.tensor_split, parse_split(name, v));
    } else if (is_one_of(name, {"-mg", "--main-gpu"})) {
      HANGAR_ASSIGN_OR_RETURN(std::string_view v, value());
      HANGAR_ASSIGN_OR_RETURN(a.main_gpu, parse_int(name, v));
    } else if (is_one_of(name, {"-sm", "--split-mode"})) {
      HANGAR_ASSIGN_OR_RETURN(std::string_view v, value());
      if (!is_one_of(v, {"none", "layer", "row"})) {
        return invalid_argument_error(fmt::format(
            "llama-server argument '{}': '{}' is not one of none, layer, row", name, v));
      }
      a.split_mode = std::string(v);
    } else if (is_one_of(name, {"-ctk", "--cache-type-k"})) {
      HANGAR_ASSIGN_OR_RETURN(std::string_view v, value());
      a.cache_type_k = std::string(v);
      HANGAR_RETURN_IF_ERROR(check_cache_type(name, a.cache_type_k));
    } else if (is_one_of(name, {"-ctv", "--cache-type-v"})) {
      HANGAR_ASSIGN_OR_RETURN(std::string_view v, value());
      a.cache_type_v = std::string(v);
      HANGAR_RETURN_IF_ERROR(check_cache_type(name, a.cache_type_v));
    } else if (is_one_of(name, {"-b", "--batch-size"})) {
      HANGAR_ASSIGN_OR_RETURN(std::string_view v, value());
      HANGAR_ASSIGN_OR_RETURN(a.batch, parse_int(name, v));
    } else if (is_one_of(name, {"-ub", "--ubatch-size"})) {
      HANGAR_ASSIGN_OR_RETURN(std::string_view v, value());
      HANGAR_ASSIGN_OR_RETURN(a.ubatch, parse_int(name, v));
    } else if (is_one_of(name, {"-nkvo", "--no-kv-offload"})) {
      a.kv_offload = false;
    } else if (is_one_of(name, {"-kvo", "--kv-offload"})) {
      a.kv_offload = true;
    } else if (is_one_of(name, {"-fa", "--flash-attn"})) {
      // Today `-fa on|off|auto`; before late 2025 a bare flag meaning on.
      std::optional<std::string_view> v = inline_value;
      if (!v && i + 1 < args.size() &&
          is_one_of(args[i + 1],
                    {"on", "off", "auto", "true", "false", "1", "0", "enabled", "disabled"})) {
        v = args[++i];
      }
      if (!v) {
        a.flash_attn = "on";
      } else if (is_one_of(*v, {"on", "true", "1", "enabled"})) {
        a.flash_attn = "on";
      } else if (is_one_of(*v, {"off", "false", "0", "disabled"})) {
        a.flash_attn = "off";
      } else if (*v == "auto") {
        a.flash_attn = "auto";
      } else {
        return invalid_argument_error(
            fmt::format("llama-server argument '{}': '{}' is not one of on, off, auto", name, *v));
      }
    } else if (name == "--no-op-offload") {
      a.op_offload = false;
    } else if (is_one_of(name, {"-cmoe", "--cpu-moe"})) {
      a.cpu_moe = true;
    } else if (is_one_of(name, {"-ncmoe", "--n-cpu-moe"})) {
      HANGAR_ASSIGN_OR_RETURN(std::string_view v, value());
      HANGAR_ASSIGN_OR_RETURN(a.n_cpu_moe, parse_int(name, v));
    }
  }
  return a;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Arithmetic: every size saturates at kCap instead of wrapping; a plan with a value at kCap is
// refused as too large (2^58 bytes is far above any machine).
constexpr uint64_t kCap = uint64_t{1} << 58;

uint64_t mul(uint64_t a, uint64_t b) {
  uint64_t r = 0;
  return __builtin_mul_overflow(a, b, &r) ? kCap : std::min(r, kCap);
}
uint64_t mul(uint64_t a, uint64_t b, uint64_t c) { return mul(mul(a, b), c); }
uint64_t add(uint64_t a, uint64_t b) { return std::min(a + std::min(b, kCap), kCap); }

uint64_t pad(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }

// The layer a tensor belongs to: N for "blk.N.*", -1 for anything else.
int block_of(const std::string& name) {
  if (!name.starts_with("blk.")) return -1;
  int n = -1;
  const char* begin = name.data() + 4;
  const char* end = name.data() + name.size();
  auto [p, ec] = std::from_chars(begin, end, n);
  if (ec != std::errc() || p == end || *p != '.' || n < 0) return -1;
  return n;
}

bool is_input_tensor(const std::string& name) {
  return name.starts_with("token_embd.") || name.starts_with("pos_embd.") ||
         name.starts_with("token_types.");
}

// Where llama.cpp puts layer `il` (0..n_layer; n_layer is the output layer): an index into the
// GPU list, or -1 for the host. llama-model.cpp's load_tensors, the form of 2024–2025:
// i_gpu_start = max(n_layer - ngl, 0), act_gpu_layers = min(ngl, n_layer + 1), and a layer's GPU
// is the first whose cumulative split exceeds (il - i_gpu_start) / act_gpu_layers.
class Placement {
 public:
  Placement(int n_layer, int n_gpu_layers, std::vector<float> cumulative_splits)
      : n_layer_(n_layer), splits_(std::move(cumulative_splits)) {
    const int ngl = std::min(n_gpu_layers, n_layer + 1);
    i_gpu_start_ = std::max(n_layer - ngl, 0);
    act_gpu_layers_ = splits_.empty() ? 0 : ngl;
  }

  int device_of(int il) const {
    if (il < i_gpu_start_ || il - i_gpu_start_ >= act_gpu_layers_) return -1;
    const float at = static_cast<float>(il - i_gpu_start_) / static_cast<float>(act_gpu_layers_);
    const auto it = std::upper_bound(splits_.begin(), splits_.end(), at);
    return static_cast<int>(
        std::min<ptrdiff_t>(it - splits_.begin(), static_cast<ptrdiff_t>(splits_.size()) - 1));
  }
  int output_device() const { return device_of(n_layer_); }

 private:
  int n_layer_;
  std::vector<float> splits_;
  int i_gpu_start_ = 0;
  int act_gpu_layers_ = 0;
};

Status too_large(const gguf::GgufFile& file) {
  return invalid_argument_error(fmt::format(
      "llama-server plan: the buffers of model '{}' with these arguments do not fit in 2^58 bytes",
      file.path()));
}

}  // namespace

StatusOr<MemoryPlan> plan_llama_server_devices(const gguf::GgufFile& file, const LlamaServerArgs& a,
                                               int n_gpus) {
  HANGAR_ASSIGN_OR_RETURN(ModelShape s, read_model_shape(file));
  if (a.ctx_size < 0 || a.ctx_size > kMaxCtx) {
    return invalid_argument_error(
        fmt::format("llama-server plan: -c {} must be in [0, {}]", a.ctx_size, kMaxCtx));
  }
  if (a.parallel == 0 || a.parallel < -1 || a.parallel > kMaxParallel) {
    return invalid_argument_error(fmt::format(
        "llama-server plan: -np {} must be -1 (auto) or in [1, {}]", a.parallel, kMaxParallel));
  }
  if (a.batch < 1 || a.batch > kMaxBatch || a.ubatch < 1 || a.ubatch > kMaxBatch) {
    return invalid_argument_error(fmt::format(
        "llama-server plan: -b {} and -ub {} must be in [1, {}]", a.batch, a.ubatch, kMaxBatch));
  }
  if (n_gpus < 0 || n_gpus > 256) {
    return invalid_argument_error(
        fmt::format("llama-server plan: {} GPUs must be in [0, 256]", n_gpus));
  }
  HANGAR_RETURN_IF_ERROR(check_cache_type("-ctk", a.cache_type_k));
  HANGAR_RETURN_IF_ERROR(check_cache_type("-ctv", a.cache_type_v));
  const gguf::GgmlType type_k = *gguf::type_from_name(a.cache_type_k);
  const gguf::GgmlType type_v = *gguf::type_from_name(a.cache_type_v);
  const std::optional<uint64_t> k_row = gguf::row_bytes(type_k, s.n_embd_k_gqa());
  const std::optional<uint64_t> v_row = gguf::row_bytes(type_v, s.n_embd_v_gqa());
  if (!k_row || !v_row) {
    return invalid_argument_error(fmt::format(
        "llama-server plan: model '{}': K/V rows of {}/{} values are not whole blocks of cache "
        "types {}/{}",
        file.path(), s.n_embd_k_gqa(), s.n_embd_v_gqa(), a.cache_type_k, a.cache_type_v));
  }
  // -fa auto resolves to on where llama.cpp supports it (CUDA and CPU, for the architectures
  // planned here); a quantized V cache needs it and llama-server refuses to start without it.
  const bool flash_attn = a.flash_attn != "off";
  if (!flash_attn && gguf::type_traits(type_v).block_size > 1) {
    return invalid_argument_error(fmt::format(
        "llama-server plan: a quantized V cache (-ctv {}) needs flash attention, but -fa is off",
        a.cache_type_v));
  }

  // The GPUs this process uses, by CUDA index.
  std::vector<int> gpus;
  if (a.split_mode == "none") {
    if (n_gpus > 0) {
      if (a.main_gpu < 0 || a.main_gpu >= n_gpus) {
        return invalid_argument_error(
            fmt::format("llama-server plan: -mg {} is not one of the {} GPUs", a.main_gpu, n_gpus));
      }
      gpus.push_back(a.main_gpu);
    }
  } else {
    for (int g = 0; g < n_gpus; ++g) gpus.push_back(g);
  }
  // Cumulative, normalized split points over `gpus`, as llama.cpp computes them.
  std::vector<float> splits(gpus.size(), 0.0f);
  for (size_t i = 0; i < gpus.size() && i < a.tensor_split.size(); ++i) {
    splits[i] = a.tensor_split[i];
  }
  if (std::all_of(splits.begin(), splits.end(), [](float f) { return f == 0.0f; })) {
    std::fill(splits.begin(), splits.end(), 1.0f);  // llama.cpp: by free memory; we: equally
  }
  float sum = 0;
  for (float& f : splits) f = (sum += f);
  for (float& f : splits) f /= sum;

  const int ngl = a.n_gpu_layers < 0 ? kAllLayers : a.n_gpu_layers;
  const Placement place(s.n_layer, ngl, splits);
  const int output_dev = place.output_device();

  // Device index 0 is the host; GPU list entry g is index g + 1.
  MemoryPlan plan;
  plan.devices.push_back({"CPU", 0, 0, 0, 0});
  for (int g : gpus) plan.devices.push_back({"CUDA" + std::to_string(g), 0, 0, 0, 0});
  auto at = [&](int gpu_index) -> DevicePlan& { return plan.devices[gpu_index + 1]; };

  // Weights. The largest matrix left on the host that a matmul reads: with GPUs present,
  // llama.cpp copies it through the first GPU's compute buffer for a big batch (op offload).
  const bool tied = file.find_tensor("output.weight") == nullptr;
  uint64_t largest_host_matrix = 0;
  for (const gguf::TensorInfo& t : file.tensors()) {
    int dev = -1;
    const int block = block_of(t.name);
    if (is_input_tensor(t.name)) {
      dev = -1;  // llama.cpp keeps the input embeddings on the host
    } else if (block >= 0 && block < s.n_layer) {
      const bool expert = t.name.find("_exps.") != std::string::npos;
      dev = expert && (a.cpu_moe || block < a.n_cpu_moe) ? -1 : place.device_of(block);
    } else {
      dev = output_dev;  // output.weight, output_norm.*, and anything outside the blocks
    }
    at(dev).weights = add(at(dev).weights, t.bytes);
    if (dev < 0 && t.shape.size() >= 2 && !is_input_tensor(t.name)) {
      largest_host_matrix = std::max(largest_host_matrix, t.bytes);
    }
    if (tied && t.name == "token_embd.weight") {
      if (output_dev >= 0) {
        // The tied output matrix is loaded a second time, into the output GPU's buffer.
        at(output_dev).weights = add(at(output_dev).weights, t.bytes);
      } else {
        largest_host_matrix = std::max(largest_host_matrix, t.bytes);
      }
    }
  }

  // KV cache (llama-context.cpp): n_ctx padded to 256; a unified cache is one stream of n_ctx
  // cells, otherwise each of the n_seq streams has n_ctx / n_seq cells, padded to 256.
  const uint64_t n_seq = a.parallel < 0 ? 4 : static_cast<uint64_t>(a.parallel);
  const bool unified = a.kv_unified.value_or(a.parallel < 0);
  uint64_t n_ctx = pad(
      a.ctx_size == 0 ? static_cast<uint64_t>(s.n_ctx_train) : static_cast<uint64_t>(a.ctx_size),
      256);
  uint64_t n_ctx_seq = n_ctx;
  if (!unified) {
    n_ctx_seq = pad(n_ctx / n_seq, 256);
    if (n_ctx_seq == 0) {
      return invalid_argument_error(
          fmt::format("llama-server plan: -c {} is too small for -np {}", a.ctx_size, n_seq));
    }
    n_ctx = n_ctx_seq * n_seq;
  }
  const uint64_t kv_per_layer = mul(n_ctx, *k_row + *v_row);
  for (int il = 0; il < s.n_layer; ++il) {
    DevicePlan& d = at(a.kv_offload ? place.device_of(il) : -1);
    d.kv_cache = add(d.kv_cache, kv_per_layer);
  }

  // Compute buffers: the peak of the worst-case graph (n_ubatch tokens, every one an output, the
  // whole cache in view) that ggml's allocator reserves per device, from the tensor shapes.
  const uint64_t u = static_cast<uint64_t>(std::min(a.ubatch, a.batch));
  const uint64_t n_kv = n_ctx_seq;  // cells one stream's attention reads
  const auto dim = [](int64_t v) { return static_cast<uint64_t>(v); };
  // Residual stream and the layer's input, F32 [n_embd, u] each.
  const uint64_t residual = mul(2 * u, dim(s.n_embd), 4);
  // Q, K (before and after RoPE), V and the attention output, F32.
  const uint64_t attn_act = mul(u, 4,
                                add(mul(2, add(dim(s.n_embd_q()), dim(s.n_embd_k_gqa()))),
                                    add(dim(s.n_embd_v_gqa()), dim(s.n_embd_attn_out()))));
  // Without flash attention KQ is materialized, F32 [n_kv, u, n_head] (softmax runs in place);
  // with it, only the mask's F16 copy [n_kv, u].
  const uint64_t scores = flash_attn ? mul(n_kv, u, 2) : mul(mul(n_kv, u), dim(s.n_head), 4);
  // gate and up F32 [n_ff, u] (SiLU and the product in place), and the down projection.
  const uint64_t ffn = mul(u, 4, add(mul(2, dim(s.n_ff)), dim(s.n_embd)));
  const uint64_t layer_peak_attn_here = add(residual, std::max(add(attn_act, scores), ffn));
  const uint64_t layer_peak_attn_elsewhere = add(residual, std::max(attn_act, ffn));
  // Output: the normalized hidden state and the logits, F32 [n_embd + n_vocab, u].
  const uint64_t output_peak = mul(u, 4, add(dim(s.n_embd), dim(s.n_vocab)));
  // Host inputs: the embeddings' get_rows F32 [n_embd, u] and the KQ mask F32 [n_kv, u].
  const uint64_t host_inputs = add(mul(u, dim(s.n_embd), 4), mul(n_kv, u, 4));
  // The logits buffer llama_context keeps on the host: one row per slot.
  const uint64_t logits_buffer = mul(n_seq, dim(s.n_vocab), 4);

  std::vector<bool> holds_layers(gpus.size() + 1, false);
  for (int il = 0; il < s.n_layer; ++il) holds_layers[place.device_of(il) + 1] = true;
  for (int g = -1; g < static_cast<int>(gpus.size()); ++g) {
    uint64_t peak = 0;
    if (holds_layers[g + 1]) {
      // With --no-kv-offload the attention over the cache runs on the host.
      peak = (g < 0 || a.kv_offload) ? layer_peak_attn_here : layer_peak_attn_elsewhere;
    }
    if (g < 0 && !holds_layers[0] && !a.kv_offload) peak = add(scores, attn_act);
    if (output_dev == g) peak = std::max(peak, output_peak);
    if (g == 0 && a.op_offload && largest_host_matrix > 0) {
      // A big batch's host matmuls run here: the weight's copy and the activations.
      peak = add(std::max({peak, layer_peak_attn_elsewhere, output_dev < 0 ? output_peak : 0}),
                 largest_host_matrix);
    }
    if (g < 0) peak = add(peak, add(host_inputs, logits_buffer));
    at(g).compute = peak;
  }

  // Per-process overhead: the host's code, libraries and the tokenizer's tables; each GPU's CUDA
  // context.
  at(-1).overhead =
      add(add(kLlamaServerHostBytes, header_heap_bytes(file)), gpus.empty() ? 0 : kCudaHostBytes);
  for (size_t g = 0; g < gpus.size(); ++g) at(static_cast<int>(g)).overhead = kCudaContextBytes;

  for (const DevicePlan& d : plan.devices) {
    if (d.weights >= kCap || d.kv_cache >= kCap || d.compute >= kCap || d.total() >= kCap) {
      return too_large(file);
    }
  }
  return plan;
}

StatusOr<std::map<std::string, uint64_t>> plan_llama_server(const gguf::GgufFile& file,
                                                            const LlamaServerArgs& args,
                                                            int n_gpus) {
  HANGAR_ASSIGN_OR_RETURN(MemoryPlan plan, plan_llama_server_devices(file, args, n_gpus));
  std::map<std::string, uint64_t> out;
  for (const DevicePlan& d : plan.devices) out[d.device] = d.total();
  return out;
}

}  // namespace hangar::estimate
