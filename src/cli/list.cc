// `hangar list`: the models the router would serve (same flags as `hangar serve`), with their
// source, path and aliases. Exits 1 with the start-up error when the sources are invalid.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/command.h"
#include "router/registry.h"

namespace hangar::cli {
namespace {

struct ListFlags {
  router::RegistrySources sources;
  bool json = false;
};

// The bytes of a model's files (every shard, and its projector), 0 when not on disk.
uint64_t size_on_disk(const router::ModelConfig& m) {
  uint64_t total = 0;
  std::error_code ec;
  for (const std::string& p : {m.path, m.mmproj}) {
    if (p.empty()) continue;
    const auto n = std::filesystem::file_size(p, ec);  // follows the cache's symlinks
    if (!ec) total += n;
  }
  return total;
}

int list(ListFlags f) {
  f.sources.scan_cache = true;  // as `hangar serve`: the Hugging Face cache's models too
  auto reg = router::Registry::scan(f.sources);
  if (!reg.ok()) {
    std::fprintf(stderr, "hangar list: %s\n", reg.status().message().c_str());
    return 1;
  }
  if (f.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const router::ModelConfig& m : reg->models()) {
      out.push_back({{"id", m.id},
                     {"aliases", m.aliases},
                     {"source", m.source},
                     {"source_file", m.source_file},
                     {"path", m.path},
                     {"mmproj", m.mmproj},
                     {"hf_repo", m.hf_repo},
                     {"size", size_on_disk(m)},
                     {"args", m.worker_args}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  if (reg->models().empty()) {
    std::printf("no models (give --models-dir or --models-preset, or pull one)\n");
    return 0;
  }
  for (const router::ModelConfig& m : reg->models()) {
    std::string aliases;
    for (const std::string& a : m.aliases) aliases += (aliases.empty() ? "" : ",") + a;
    std::string where = m.path.empty() ? (m.hf_repo.empty() ? m.model_url : "hf:" + m.hf_repo)
                                       : m.path;
    const uint64_t bytes = size_on_disk(m);
    const std::string size = bytes == 0 ? std::string("-")
                                        : std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB";
    std::printf("%-32s %-10s %10s  %s%s%s\n", m.id.c_str(), m.source.c_str(), size.c_str(),
                where.c_str(), aliases.empty() ? "" : "  aliases: ", aliases.c_str());
  }
  return 0;
}

}  // namespace

void register_list(CLI::App& root, Commands& commands) {
  CLI::App* app = root.add_subcommand("list", "List the models `hangar serve` would serve");
  auto f = std::make_shared<ListFlags>();
  app->add_option("--models-dir", f->sources.models_dir, "folder of .gguf models");
  app->add_option("--models-preset", f->sources.preset_file, "INI file of model presets");
  app->add_flag("--json", f->json, "print JSON");
  app->add_option("--cache-dir", f->sources.download.cache_dir,
                  "the model cache (default as llama.cpp: LLAMA_CACHE, HF_HUB_CACHE, ...)");
  commands.push_back({app, [f] { return list(*f); }});
}

}  // namespace hangar::cli
