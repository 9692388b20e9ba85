#pragma once
// Estimator: a model's memory need per device before it loads (design §5), cached by the file's
// path, size and mtime and the arguments that change memory. Preset `memory=` overrides; a
// hangar worker's need is its memory plan (src/estimate, the same function the worker and
// `hangar estimate` use), read from the GGUF header only.
//
// A --backend (llama-server) model is estimated with the llama-server placement formula
// (estimate/llama_server_plan.h: layers by -ngl and -ts over the GPUs in order, KV with its
// layers, compute buffers, a CUDA context per GPU used; docs/estimate.md).
//
// Thread-safety: estimate() may be called from any thread; the cache has its own mutex.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "router/registry.h"

namespace hangar::router {

struct NeedEstimate {
  std::map<std::string, uint64_t> bytes;  // device → bytes
  std::string error;                      // non-empty: no estimate, and why
  std::string source;                     // "preset", "plan"
};

class Estimator {
 public:
  // `backend`: the model runs under a llama-server-compatible --backend over `n_gpus` GPUs.
  NeedEstimate estimate(const ModelConfig& m, bool backend = false, int n_gpus = 0);

 private:
  std::mutex mu_;
  std::map<std::string, NeedEstimate> cache_;  // guarded by mu_; key: file identity + args
};

}  // namespace hangar::router
