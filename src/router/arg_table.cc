#include "router/arg_table.h"

#include <algorithm>
#include <cctype>

namespace hangar::router {
namespace {

// Names follow llama.cpp's server README; hangar's own preset keys (pin, ttl, memory) are
// preset-only. Keep sorted by topic, not alphabetically: this is read by people.
const std::vector<ArgSpec>& arg_table() {
  static const std::vector<ArgSpec> table = {
      // Model selection: read by the router, turned into `-m PATH` itself.
      {"model", {"m"}, "LLAMA_ARG_MODEL", ArgKind::kPresetOnly},
      {"model-url", {"mu"}, "LLAMA_ARG_MODEL_URL", ArgKind::kPresetOnly},
      {"hf-repo", {"hf", "hfr"}, "LLAMA_ARG_HF_REPO", ArgKind::kPresetOnly},
      {"hf-file", {"hff"}, "LLAMA_ARG_HF_FILE", ArgKind::kPresetOnly},
      {"alias", {"a"}, "LLAMA_ARG_ALIAS", ArgKind::kPresetOnly},
      {"load-on-startup", {}, "", ArgKind::kPresetOnly},
      {"stop-timeout", {}, "", ArgKind::kPresetOnly},
      {"dedup-cache-models", {}, "", ArgKind::kPresetOnly},
      {"pin", {}, "", ArgKind::kPresetOnly},
      {"ttl", {}, "", ArgKind::kPresetOnly},
      {"memory", {}, "", ArgKind::kPresetOnly},
      // The router's own settings.
      {"host", {}, "LLAMA_ARG_HOST", ArgKind::kRouterOwned},
      {"port", {}, "LLAMA_ARG_PORT", ArgKind::kRouterOwned},
      {"api-key", {}, "LLAMA_API_KEY", ArgKind::kRouterOwned},
      {"api-key-file", {}, "", ArgKind::kRouterOwned},
      {"models-dir", {}, "LLAMA_ARG_MODELS_DIR", ArgKind::kRouterOwned},
      {"models-preset", {}, "LLAMA_ARG_MODELS_PRESET", ArgKind::kRouterOwned},
      {"models-max", {}, "LLAMA_ARG_MODELS_MAX", ArgKind::kRouterOwned},
      {"models-autoload", {"no-models-autoload"}, "LLAMA_ARG_MODELS_AUTOLOAD",
       ArgKind::kRouterOwned},
      {"models-memory-margin", {}, "", ArgKind::kRouterOwned},
      // Worker arguments.
      {"threads", {"t"}, "LLAMA_ARG_THREADS", ArgKind::kValue},
      {"threads-batch", {"tb"}, "LLAMA_ARG_THREADS_BATCH", ArgKind::kValue},
      {"threads-http", {}, "LLAMA_ARG_THREADS_HTTP", ArgKind::kValue},
      {"ctx-size", {"c"}, "LLAMA_ARG_CTX_SIZE", ArgKind::kValue},
      {"n-predict", {"n", "predict"}, "LLAMA_ARG_N_PREDICT", ArgKind::kValue},
      {"batch-size", {"b"}, "LLAMA_ARG_BATCH", ArgKind::kValue},
      {"ubatch-size", {"ub"}, "LLAMA_ARG_UBATCH", ArgKind::kValue},
      {"keep", {}, "", ArgKind::kValue},
      {"parallel", {"np"}, "LLAMA_ARG_N_PARALLEL", ArgKind::kValue},
      {"n-gpu-layers", {"ngl", "gpu-layers"}, "LLAMA_ARG_N_GPU_LAYERS", ArgKind::kValue},
      {"split-mode", {"sm"}, "LLAMA_ARG_SPLIT_MODE", ArgKind::kValue},
      {"tensor-split", {"ts"}, "LLAMA_ARG_TENSOR_SPLIT", ArgKind::kValue},
      {"main-gpu", {"mg"}, "LLAMA_ARG_MAIN_GPU", ArgKind::kValue},
      {"device", {"dev"}, "LLAMA_ARG_DEVICE", ArgKind::kValue},
      {"override-tensor", {"ot"}, "LLAMA_ARG_OVERRIDE_TENSOR", ArgKind::kValue},
      {"n-cpu-moe", {"ncmoe"}, "LLAMA_ARG_N_CPU_MOE", ArgKind::kValue},
      {"cpu-moe", {"cmoe"}, "LLAMA_ARG_CPU_MOE", ArgKind::kFlag},
      {"flash-attn", {"fa"}, "LLAMA_ARG_FLASH_ATTN", ArgKind::kValue},
      {"cache-type-k", {"ctk"}, "LLAMA_ARG_CACHE_TYPE_K", ArgKind::kValue},
      {"cache-type-v", {"ctv"}, "LLAMA_ARG_CACHE_TYPE_V", ArgKind::kValue},
      {"cache-ram", {"cram"}, "LLAMA_ARG_CACHE_RAM", ArgKind::kValue},
      {"cache-reuse", {}, "LLAMA_ARG_CACHE_REUSE", ArgKind::kValue},
      {"kv-offload", {"kvo"}, "LLAMA_ARG_KV_OFFLOAD", ArgKind::kFlag, true},
      {"kv-unified", {"kvu"}, "LLAMA_ARG_KV_UNIFIED", ArgKind::kFlag, true},
      {"swa-full", {}, "LLAMA_ARG_SWA_FULL", ArgKind::kFlag},
      {"mmap", {}, "LLAMA_ARG_MMAP", ArgKind::kFlag, true},
      {"mlock", {}, "LLAMA_ARG_MLOCK", ArgKind::kFlag},
      {"cont-batching", {"cb"}, "LLAMA_ARG_CONT_BATCHING", ArgKind::kFlag, true},
      {"context-shift", {}, "LLAMA_ARG_CONTEXT_SHIFT", ArgKind::kFlag, true},
      {"rope-scaling", {}, "LLAMA_ARG_ROPE_SCALING_TYPE", ArgKind::kValue},
      {"rope-scale", {}, "LLAMA_ARG_ROPE_SCALE", ArgKind::kValue},
      {"rope-freq-base", {}, "LLAMA_ARG_ROPE_FREQ_BASE", ArgKind::kValue},
      {"rope-freq-scale", {}, "LLAMA_ARG_ROPE_FREQ_SCALE", ArgKind::kValue},
      {"mmproj", {"mm"}, "LLAMA_ARG_MMPROJ", ArgKind::kValue},
      {"mmproj-url", {"mmu"}, "LLAMA_ARG_MMPROJ_URL", ArgKind::kValue},
      {"model-draft", {"md"}, "LLAMA_ARG_MODEL_DRAFT", ArgKind::kValue},
      {"draft-max", {"draft", "draft-n"}, "LLAMA_ARG_DRAFT_MAX", ArgKind::kValue},
      {"draft-min", {"draft-n-min"}, "LLAMA_ARG_DRAFT_MIN", ArgKind::kValue},
      {"gpu-layers-draft", {"ngld", "n-gpu-layers-draft"}, "LLAMA_ARG_N_GPU_LAYERS_DRAFT",
       ArgKind::kValue},
      {"lora", {}, "", ArgKind::kValue},
      {"chat-template", {}, "LLAMA_ARG_CHAT_TEMPLATE", ArgKind::kValue},
      {"chat-template-file", {}, "LLAMA_ARG_CHAT_TEMPLATE_FILE", ArgKind::kValue},
      {"jinja", {}, "LLAMA_ARG_JINJA", ArgKind::kFlag, true},
      {"reasoning-format", {}, "LLAMA_ARG_THINK", ArgKind::kValue},
      {"reasoning-budget", {}, "LLAMA_ARG_THINK_BUDGET", ArgKind::kValue},
      {"embedding", {"embeddings"}, "LLAMA_ARG_EMBEDDINGS", ArgKind::kFlag},
      {"reranking", {"rerank"}, "LLAMA_ARG_RERANKING", ArgKind::kFlag},
      {"pooling", {}, "LLAMA_ARG_POOLING", ArgKind::kValue},
      {"metrics", {}, "LLAMA_ARG_ENDPOINT_METRICS", ArgKind::kFlag},
      {"slots", {}, "LLAMA_ARG_ENDPOINT_SLOTS", ArgKind::kFlag, true},
      {"props", {}, "LLAMA_ARG_ENDPOINT_PROPS", ArgKind::kFlag},
      {"timeout", {"to"}, "LLAMA_ARG_TIMEOUT", ArgKind::kValue},
      {"sleep-idle-seconds", {}, "LLAMA_ARG_SLEEP_IDLE_SECONDS", ArgKind::kValue},
      {"seed", {"s"}, "LLAMA_ARG_SEED", ArgKind::kValue},
      {"temp", {"temperature"}, "LLAMA_ARG_TEMPERATURE", ArgKind::kValue},
      {"top-k", {}, "LLAMA_ARG_TOP_K", ArgKind::kValue},
      {"top-p", {}, "LLAMA_ARG_TOP_P", ArgKind::kValue},
      {"min-p", {}, "LLAMA_ARG_MIN_P", ArgKind::kValue},
      {"repeat-penalty", {}, "LLAMA_ARG_REPEAT_PENALTY", ArgKind::kValue},
      {"repeat-last-n", {}, "", ArgKind::kValue},
      {"presence-penalty", {}, "LLAMA_ARG_PRESENCE_PENALTY", ArgKind::kValue},
      {"frequency-penalty", {}, "LLAMA_ARG_FREQUENCY_PENALTY", ArgKind::kValue},
      {"samplers", {}, "", ArgKind::kValue},
      {"ignore-eos", {}, "", ArgKind::kFlag},
      {"verbose", {"v", "log-verbose"}, "", ArgKind::kFlag},
      {"verbosity", {"lv", "log-verbosity"}, "LLAMA_ARG_LOG_VERBOSITY", ArgKind::kValue},
      {"offline", {}, "LLAMA_ARG_OFFLINE", ArgKind::kFlag},
  };
  return table;
}

}  // namespace

const std::vector<ArgSpec>& all_args() { return arg_table(); }

std::optional<WorkerSupport> worker_support(const ArgSpec& spec) {
  if (spec.kind != ArgKind::kValue && spec.kind != ArgKind::kFlag) return std::nullopt;
  // Applied by `hangar run` (src/cli/run.cc binds each to a worker option).
  static constexpr std::string_view kHonoured[] = {
      "threads",        "ctx-size",         "n-predict",         "batch-size", "ubatch-size",
      "parallel",       "chat-template",    "seed",              "temp",       "top-k",
      "top-p",          "min-p",            "repeat-penalty",    "repeat-last-n",
      "presence-penalty", "frequency-penalty"};
  // They would change what the model answers, and hangar's engine cannot apply them.
  static constexpr std::string_view kUnsupported[] = {
      "rope-scaling",     "rope-scale",       "rope-freq-base",    "rope-freq-scale",
      "lora",             "mmproj",           "mmproj-url",        "model-draft",
      "draft-max",        "draft-min",        "gpu-layers-draft",  "chat-template-file",
      "reasoning-format", "reasoning-budget", "pooling",           "reranking",
      "samplers",         "ignore-eos"};
  for (std::string_view n : kHonoured) {
    if (spec.long_name == n) return WorkerSupport::kHonoured;
  }
  for (std::string_view n : kUnsupported) {
    if (spec.long_name == n) return WorkerSupport::kUnsupported;
  }
  return WorkerSupport::kIgnored;
}

std::optional<std::string> long_option_for(std::string_view word) {
  if (word.size() < 3 || word[0] != '-' || word[1] == '-') return std::nullopt;
  const std::string_view key = word.substr(1);
  for (const ArgSpec& spec : arg_table()) {
    for (std::string_view a : spec.aliases) {
      if (a == key) return "--" + std::string(spec.long_name);
    }
  }
  return std::nullopt;
}

const ArgSpec* find_arg(std::string_view key, bool* negated) {
  if (negated) *negated = false;
  for (const ArgSpec& spec : arg_table()) {
    if (spec.long_name == key || (!spec.env.empty() && spec.env == key)) return &spec;
    for (std::string_view a : spec.aliases) {
      if (a == key) return &spec;
    }
  }
  if (key.starts_with("no-")) {
    std::string_view rest = key.substr(3);
    for (const ArgSpec& spec : arg_table()) {
      if (spec.kind == ArgKind::kFlag && spec.negatable && spec.long_name == rest) {
        if (negated) *negated = true;
        return &spec;
      }
    }
  }
  return nullptr;
}

bool parse_bool(std::string_view text, bool* value) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "true" || lower == "1" || lower == "on") {
    *value = true;
    return true;
  }
  if (lower == "false" || lower == "0" || lower == "off") {
    *value = false;
    return true;
  }
  return false;
}

}  // namespace hangar::router
