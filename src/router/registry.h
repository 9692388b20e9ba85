#pragma once
// The registry: which models the router serves and from which source (design §3.5, issue 5
// item 1). Sources are --models-dir (top-level *.gguf; one sub-folder level holding shards
// NAME-00001-of-N.gguf and/or an mmproj*.gguf) and --models-preset (llama.cpp's INI format). A
// preset section named like a models-dir model configures it; any other section must name its
// own `model` (or `hf-repo` / `model-url`). Ids and aliases share one namespace: a collision is a
// start-up error naming the file, line and key.
//
// A Registry is an immutable value built by Registry::scan(); the router swaps whole registries
// on reload (GET /models?reload=1). Safe to share read-only across threads.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "download/download.h"
#include "router/preset.h"

namespace hangar::router {

struct ModelConfig {
  std::string id;
  std::vector<std::string> aliases;
  std::string path;    // the main GGUF (first shard); empty when only a download source is known
  std::string mmproj;  // the projector found next to it, or ""
  std::string source;  // "models-dir", "preset" or "cache"
  std::string source_file;  // the models dir, or the preset file that defines the model
  std::string model_url;
  std::string hf_repo;
  // Worker arguments after precedence (router command line > model section > [*]), without
  // the model path and without router-owned keys, e.g. {"--ctx-size", "512", "--jinja"}.
  std::vector<std::string> worker_args;
  bool load_on_startup = false;
  int stop_timeout_s = 10;
  bool pin = false;
  int ttl_s = 0;  // 0 = never unload for idleness
  std::vector<std::pair<std::string, uint64_t>> memory_mib;  // preset `memory=`, device → MiB

  friend bool operator==(const ModelConfig&, const ModelConfig&) = default;
};

struct RegistrySources {
  std::string models_dir;   // "" = none
  std::string preset_file;  // "" = none
  // Worker arguments given on the router's command line (highest precedence), as entries with
  // canonical keys; see parse_worker_cli_args().
  std::vector<PresetEntry> cli_args;
  // The Hugging Face cache (design §5, issue 13): when `scan_cache`, every model already in
  // the cache roots is listed as `owner/repo:TAG` (after the models dir and the preset, whose
  // names win); an `hf-repo` preset model whose files are cached gets their path.
  bool scan_cache = false;
  download::Options download;
};

// Turns `--ctx-size 512 -np 2 --jinja` (the router's extra arguments) into entries with
// canonical keys. Unknown options are an error naming the option.
StatusOr<std::vector<PresetEntry>> parse_worker_cli_args(const std::vector<std::string>& args);

class Registry {
 public:
  Registry() = default;

  // Reads every source. Errors name the file, line and key (preset) or the two paths (dir).
  static StatusOr<Registry> scan(const RegistrySources& sources);
  // Builds a registry from ready configs (tests, and scan's last step): checks names.
  static StatusOr<Registry> from_models(std::vector<ModelConfig> models);

  const std::vector<ModelConfig>& models() const { return models_; }
  // The model whose id or alias is `name`, or nullptr.
  const ModelConfig* resolve(std::string_view name) const;

 private:
  std::vector<ModelConfig> models_;            // sorted by id
  std::map<std::string, size_t, std::less<>> names_;  // id or alias → index in models_
};

}  // namespace hangar::router
