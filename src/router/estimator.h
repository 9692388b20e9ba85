#pragma once
// Estimator: a model's memory need per device before it loads (design §5), cached by the file's
// path, size and mtime and the arguments that change memory. Preset `memory=` overrides; a
// hangar worker's need is its memory plan (src/estimate, the same function the worker and
// `hangar estimate` use), read from the GGUF header only.
//
// A --backend (llama-server) model is estimated with the same plan on CPU for now: the
// llama-server placement formula (-ngl over the GPUs) is not built yet (issue 12, left for a
// later session); give such models a preset `memory=` to budget their GPUs.
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
  NeedEstimate estimate(const ModelConfig& m);

 private:
  std::mutex mu_;
  std::map<std::string, NeedEstimate> cache_;  // guarded by mu_; key: file identity + args
};

}  // namespace hangar::router
