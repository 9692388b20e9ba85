#pragma once
// The memory plan of a llama-server (`--backend`) process (design §5), from the GGUF header and
// the llama-server arguments that change memory: what each device ("CPU", "CUDA0", …) will hold
// — weights, KV cache, compute buffer, per-process overhead. hangar cannot run llama-server, so
// this is a model of llama.cpp's own placement code (llama-model.cpp load_tensors, llama-context
// and llama-kv-cache), with its known limits written down in docs/estimate.md.
//
// Placement, as llama.cpp does it (layer split, "row" treated as "layer"):
// - token_embd (the input layer) always stays on the host;
// - the repeating layers blk.N.* go, the last n_gpu_layers of them, to the GPUs in order, split
//   by --tensor-split proportions (llama.cpp splits by free memory when -ts is absent; we split
//   equally, since the free memory at load time is not known when planning);
// - the output layer (output.weight, output_norm.*; a copy of token_embd when the embeddings are
//   tied) goes to the last GPU only when every layer is offloaded (n_gpu_layers > n_layer);
// - each layer's KV cache sits on its layer's device (--no-kv-offload: on the host).
//
// Pure functions of their inputs: safe from any thread.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "estimate/memory_plan.h"
#include "gguf/gguf.h"

namespace hangar::estimate {

// llama-server's arguments that change memory. Defaults are llama-server's own when the argument
// is absent (llama.cpp late 2025 and later), so a model started without -c or -np is planned as
// llama-server would start it.
struct LlamaServerArgs {
  int ctx_size = 0;   // -c: total context over all slots; 0 = the model's training context
  int parallel = -1;  // -np: slots; -1 = auto (llama-server: 4 slots over a unified KV cache)
  // -kvu / -no-kvu. Unset: unified only when -np is auto (llama-server's rule).
  std::optional<bool> kv_unified;
  // -ngl: -1 = auto, planned as "all layers" (llama.cpp's model default is 999; its --fit,
  // which may lower it to what free memory allows, is not modelled: this is the upper bound).
  // "all" and any value above n_layer also mean all layers.
  int n_gpu_layers = -1;
  std::vector<float> tensor_split;   // -ts 3,1: proportions per GPU; empty or all 0 = equal
  int main_gpu = 0;                  // -mg: the one GPU used with -sm none
  std::string split_mode = "layer";  // -sm: layer | row (planned as layer) | none
  std::string cache_type_k = "f16";  // -ctk: f32 f16 bf16 q8_0 q4_0 q4_1 iq4_nl q5_0 q5_1
  std::string cache_type_v = "f16";  // -ctv
  int batch = 2048;                  // -b: logical batch
  int ubatch = 512;                  // -ub: physical batch; the compute graph's width
  bool kv_offload = true;            // --no-kv-offload (-nkvo): KV cache and attention on host
  std::string flash_attn = "auto";   // -fa on|off|auto; auto resolves to on (CUDA and CPU)
  bool op_offload = true;            // --no-op-offload: host matmuls of big batches stay on host
  bool cpu_moe = false;              // -cmoe: every layer's expert tensors (*_exps) on the host
  int n_cpu_moe = 0;                 // -ncmoe N: the experts of the first N layers on the host
};

// Reads the arguments above from a llama-server command line (short and long forms, "--x=v"
// too); every other argument, and its value, is ignored. A bad value (a non-number for -c, an
// unknown -sm or cache type) is an InvalidArgument naming the argument.
StatusOr<LlamaServerArgs> parse_llama_server_args(const std::vector<std::string>& args);

// Per-GPU and per-process constants (docs/estimate.md says where they come from).
// A CUDA context, cuBLAS handles and ggml-cuda's first pool allocations: about 300–500 MiB of
// device memory per GPU a process touches; llama.cpp touches every GPU it is given, even
// with -ngl 0.
inline constexpr uint64_t kCudaContextBytes = 512ull << 20;
// llama-server's code, libraries, threads and HTTP server on the host, before the model.
inline constexpr uint64_t kLlamaServerHostBytes = 64ull << 20;
// The host side of the CUDA driver and runtime (their allocations and the pages of the CUDA
// libraries they touch), once per process that uses a GPU.
inline constexpr uint64_t kCudaHostBytes = 256ull << 20;

// The plan per device: "CPU" first, then "CUDA0".."CUDA<n_gpus-1>" for the GPUs llama-server
// uses (every GPU, or only -mg with -sm none). n_gpus = 0 plans a CPU-only process whatever -ngl
// says. Each DevicePlan's fields: weights (tensor bytes placed there), kv_cache, compute (the
// graph's buffer, plus on the host the logits buffer), overhead (per process, per device).
StatusOr<MemoryPlan> plan_llama_server_devices(const gguf::GgufFile& file,
                                               const LlamaServerArgs& args, int n_gpus);

// The same as device name → total bytes, the form the router's admission takes.
StatusOr<std::map<std::string, uint64_t>> plan_llama_server(const gguf::GgufFile& file,
                                                            const LlamaServerArgs& args,
                                                            int n_gpus);

}  // namespace hangar::estimate
