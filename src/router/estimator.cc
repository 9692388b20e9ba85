#include "router/estimator.h"

#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <thread>

#include "estimate/llama_server_plan.h"
#include "estimate/memory_plan.h"
#include "gguf/gguf.h"

namespace hangar::router {
namespace {

// The value of worker argument `--name` in `args` ("--ctx-size", "4096"), or `fallback`.
int arg_int(const std::vector<std::string>& args, std::string_view name, int fallback) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] != name) continue;
    int v = 0;
    const std::string& text = args[i + 1];
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec == std::errc() && p == text.data() + text.size()) fallback = v;
  }
  return fallback;
}

// "path:size:mtime" for the file, "" when it cannot be read.
std::string identity(const std::string& path) {
  struct stat st{};
  if (path.empty() || stat(path.c_str(), &st) != 0) return "";
  return path + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

NeedEstimate backend_need(const ModelConfig& m, int n_gpus) {
  NeedEstimate out;
  out.source = "llama-server formula";
  auto args = estimate::parse_llama_server_args(m.worker_args);
  if (!args.ok()) {
    out.error = "cannot estimate the memory of model '" + m.id + "': " + args.status().message();
    return out;
  }
  auto file = gguf::GgufFile::open(m.path);
  if (!file.ok()) {
    out.error = "cannot estimate the memory of model '" + m.id + "': " + file.status().message();
    return out;
  }
  auto plan = estimate::plan_llama_server(**file, *args, n_gpus);
  if (!plan.ok()) {
    out.error = "cannot estimate the memory of model '" + m.id + "': " + plan.status().message();
    return out;
  }
  out.bytes = *plan;
  return out;
}

NeedEstimate plan_need(const ModelConfig& m) {
  NeedEstimate out;
  out.source = "plan";
  // hangar run's defaults, and the arguments that change memory.
  const int ctx = arg_int(m.worker_args, "--ctx-size", 4096);
  const int parallel = arg_int(m.worker_args, "--parallel", 1);
  estimate::PlanOptions po;
  po.n_threads = arg_int(m.worker_args, "--threads",
                         static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  po.n_batch = std::min(arg_int(m.worker_args, "--batch-size", 512),
                        arg_int(m.worker_args, "--ubatch-size", 512));
  auto file = gguf::GgufFile::open(m.path);
  if (!file.ok()) {
    out.error = "cannot estimate the memory of model '" + m.id + "': " + file.status().message();
    return out;
  }
  auto plan = estimate::plan_memory(**file, ctx, parallel, po);
  if (!plan.ok()) {
    out.error = "cannot estimate the memory of model '" + m.id + "': " + plan.status().message();
    return out;
  }
  for (const estimate::DevicePlan& d : plan->devices) out.bytes[d.device] += d.total();
  if (!m.mmproj.empty()) {
    struct stat st{};
    if (stat(m.mmproj.c_str(), &st) == 0) out.bytes["CPU"] += static_cast<uint64_t>(st.st_size);
  }
  return out;
}

}  // namespace

NeedEstimate Estimator::estimate(const ModelConfig& m, bool backend, int n_gpus) {
  if (!m.memory_mib.empty()) {
    NeedEstimate out;
    out.source = "preset";
    for (const auto& [device, mib] : m.memory_mib) out.bytes[device] = mib << 20;
    return out;
  }
  if (m.path.empty()) {
    return {{}, "model '" + m.id + "' has no local file to estimate", "plan"};
  }
  std::string key = identity(m.path);
  if (key.empty()) return backend ? backend_need(m, n_gpus) : plan_need(m);  // names the file
  for (const std::string& a : m.worker_args) key.append(1, '\x1f').append(a);
  key.append(1, '\x1f').append(identity(m.mmproj));
  key.append(backend ? "\x1f" "backend:" + std::to_string(n_gpus) : std::string());
  {
    std::lock_guard lock(mu_);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  }
  NeedEstimate fresh = backend ? backend_need(m, n_gpus) : plan_need(m);
  std::lock_guard lock(mu_);
  cache_[key] = fresh;
  return fresh;
}

}  // namespace hangar::router
