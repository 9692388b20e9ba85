#include "router/registry.h"

#include <algorithm>
#include <map>
#include <set>
#include <charconv>
#include <filesystem>
#include <system_error>

#include "router/arg_table.h"

namespace hangar::router {
namespace fs = std::filesystem;
namespace {

bool ends_with_gguf(const std::string& name) {
  return name.size() > 5 && name.compare(name.size() - 5, 5, ".gguf") == 0;
}

bool is_mmproj(const std::string& name) { return name.find("mmproj") != std::string::npos; }

// "NAME-00002-of-00006.gguf" → shard 2; 0 when the name is not a shard.
int shard_index(const std::string& name) {
  // -XXXXX-of-YYYYY.gguf is 20 characters.
  if (name.size() < 21) return 0;
  std::string_view tail(name.data() + name.size() - 20, 20);
  if (tail[0] != '-' || tail.substr(6, 4) != "-of-" || tail.substr(15) != ".gguf") return 0;
  int index = 0;
  auto r = std::from_chars(tail.data() + 1, tail.data() + 6, index);
  if (r.ec != std::errc() || r.ptr != tail.data() + 6) return 0;
  return index;
}

std::string stem_of(const std::string& file) {
  if (int s = shard_index(file); s > 0) return file.substr(0, file.size() - 20);
  return file.substr(0, file.size() - 5);
}

// Where a name was defined, for collision messages.
struct NameOrigin {
  std::string where;  // "preset F line N key 'alias'" or "models-dir PATH"
};

Status scan_models_dir(const std::string& dir, std::vector<ModelConfig>* out,
                       std::vector<NameOrigin>* origins) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return not_found_error("--models-dir " + dir + ": not a directory");
  }
  std::vector<fs::directory_entry> entries;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    entries.push_back(*it);
  }
  if (ec) return not_found_error("--models-dir " + dir + ": cannot list: " + ec.message());
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.path() < b.path(); });
  for (const fs::directory_entry& e : entries) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.front() == '.') continue;
    std::error_code tec;
    if (e.is_regular_file(tec)) {
      if (!ends_with_gguf(name) || is_mmproj(name)) continue;
      int shard = shard_index(name);
      if (shard > 1) continue;  // later shards belong to the first one
      ModelConfig m;
      m.id = stem_of(name);
      m.path = e.path().string();
      m.source = "models-dir";
      m.source_file = dir;
      out->push_back(std::move(m));
      origins->push_back({"models-dir file " + e.path().string()});
    } else if (e.is_directory(tec)) {
      std::vector<std::string> files;
      for (fs::directory_iterator it(e.path(), tec), end; !tec && it != end; it.increment(tec)) {
        std::error_code fec;
        if (it->is_regular_file(fec) && ends_with_gguf(it->path().filename().string())) {
          files.push_back(it->path().filename().string());
        }
      }
      std::sort(files.begin(), files.end());
      std::string main_file, mmproj;
      for (const std::string& f : files) {
        if (is_mmproj(f)) {
          if (mmproj.empty()) mmproj = f;
          continue;
        }
        int shard = shard_index(f);
        if (shard > 1) continue;
        if (main_file.empty()) main_file = f;
      }
      if (main_file.empty()) continue;  // a folder without a model is not a model
      ModelConfig m;
      m.id = name;
      m.path = (e.path() / main_file).string();
      if (!mmproj.empty()) m.mmproj = (e.path() / mmproj).string();
      m.source = "models-dir";
      m.source_file = dir;
      out->push_back(std::move(m));
      origins->push_back({"models-dir folder " + e.path().string()});
    }
  }
  return ok_status();
}

std::string where(const Preset& p, const PresetEntry& e) {
  return "preset " + p.file + " line " + std::to_string(e.line) + " key '" + e.key + "'";
}

StatusOr<int> parse_seconds(const Preset& p, const PresetEntry& e) {
  int v = 0;
  auto r = std::from_chars(e.value.data(), e.value.data() + e.value.size(), v);
  if (r.ec != std::errc() || r.ptr != e.value.data() + e.value.size() || v < 0) {
    return invalid_argument_error(where(p, e) + ": expected a whole number of seconds >= 0, got '" +
                                  e.value + "'");
  }
  return v;
}

StatusOr<bool> parse_flag(const Preset& p, const PresetEntry& e) {
  bool b = false;
  if (!parse_bool(e.value, &b)) {
    return invalid_argument_error(where(p, e) + ": expected true/false/1/0/on/off, got '" +
                                  e.value + "'");
  }
  return b;
}

// "CUDA0:20480,CPU:2048" → {{"CUDA0",20480},{"CPU",2048}}.
StatusOr<std::vector<std::pair<std::string, uint64_t>>> parse_memory(const Preset& p,
                                                                    const PresetEntry& e) {
  std::vector<std::pair<std::string, uint64_t>> out;
  std::string_view rest = e.value;
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    size_t colon = item.find(':');
    uint64_t mib = 0;
    if (colon == std::string_view::npos || colon == 0) {
      return invalid_argument_error(where(p, e) + ": expected DEVICE:MiB[,DEVICE:MiB...], got '" +
                                    e.value + "'");
    }
    std::string_view num = item.substr(colon + 1);
    auto r = std::from_chars(num.data(), num.data() + num.size(), mib);
    if (r.ec != std::errc() || r.ptr != num.data() + num.size()) {
      return invalid_argument_error(where(p, e) + ": '" + std::string(num) +
                                    "' is not a whole number of MiB");
    }
    out.emplace_back(std::string(item.substr(0, colon)), mib);
  }
  return out;
}

void set_entry(std::vector<PresetEntry>* merged, const PresetEntry& e) {
  for (PresetEntry& m : *merged) {
    if (m.key == e.key) {
      m = e;
      return;
    }
  }
  merged->push_back(e);
}

// Applies the merged entries (precedence already resolved) to a model.
Status apply_entries(const Preset& preset, const std::vector<PresetEntry>& merged,
                     ModelConfig* m, std::vector<int>* alias_lines) {
  m->worker_args.clear();
  for (const PresetEntry& e : merged) {
    const ArgSpec* spec = find_arg(e.key);
    if (spec == nullptr) continue;  // cannot happen: keys were normalised by the parser
    switch (spec->kind) {
      case ArgKind::kRouterOwned:
        break;  // design §3.5: stripped from worker arguments
      case ArgKind::kValue:
        m->worker_args.push_back("--" + e.key);
        m->worker_args.push_back(e.value);
        break;
      case ArgKind::kFlag: {
        bool b = false;
        parse_bool(e.value, &b);
        if (b) {
          m->worker_args.push_back("--" + e.key);
        } else if (spec->negatable) {
          m->worker_args.push_back("--no-" + e.key);
        }
        break;
      }
      case ArgKind::kPresetOnly:
        if (e.key == "model") {
          fs::path p(e.value);
          m->path = e.value;
        } else if (e.key == "model-url") {
          m->model_url = e.value;
        } else if (e.key == "hf-repo") {
          m->hf_repo = e.value;
        } else if (e.key == "alias") {
          m->aliases.clear();
          alias_lines->clear();
          std::string_view rest = e.value;
          while (!rest.empty()) {
            size_t comma = rest.find(',');
            std::string_view a = rest.substr(0, comma);
            while (!a.empty() && a.front() == ' ') a.remove_prefix(1);
            while (!a.empty() && a.back() == ' ') a.remove_suffix(1);
            if (!a.empty()) {
              m->aliases.emplace_back(a);
              alias_lines->push_back(e.line);
            }
            rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
          }
        } else if (e.key == "load-on-startup") {
          HANGAR_ASSIGN_OR_RETURN(m->load_on_startup, parse_flag(preset, e));
        } else if (e.key == "stop-timeout") {
          HANGAR_ASSIGN_OR_RETURN(m->stop_timeout_s, parse_seconds(preset, e));
        } else if (e.key == "pin") {
          HANGAR_ASSIGN_OR_RETURN(m->pin, parse_flag(preset, e));
        } else if (e.key == "ttl") {
          HANGAR_ASSIGN_OR_RETURN(m->ttl_s, parse_seconds(preset, e));
        } else if (e.key == "memory") {
          HANGAR_ASSIGN_OR_RETURN(m->memory_mib, parse_memory(preset, e));
        }
        break;
    }
  }
  return ok_status();
}

Status check_names(const std::vector<ModelConfig>& models, const std::vector<NameOrigin>& origins,
                   std::map<std::string, size_t, std::less<>>* names) {
  names->clear();
  for (size_t i = 0; i < models.size(); ++i) {
    auto add = [&](const std::string& name, const std::string& what) -> Status {
      auto [it, inserted] = names->emplace(name, i);
      if (!inserted) {
        const std::string first = it->second < origins.size() ? origins[it->second].where : "";
        const std::string second = i < origins.size() ? origins[i].where : "";
        return already_exists_error("model name collision: " + what + " '" + name + "' of " +
                                    (second.empty() ? "model '" + models[i].id + "'" : second) +
                                    " is already used by " +
                                    (first.empty() ? "model '" + models[it->second].id + "'"
                                                   : first));
      }
      return ok_status();
    };
    HANGAR_RETURN_IF_ERROR(add(models[i].id, "id"));
    for (const std::string& a : models[i].aliases) HANGAR_RETURN_IF_ERROR(add(a, "alias"));
  }
  return ok_status();
}

}  // namespace

StatusOr<std::vector<PresetEntry>> parse_worker_cli_args(const std::vector<std::string>& args) {
  std::vector<PresetEntry> out;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (a.size() < 2 || a[0] != '-') {
      return invalid_argument_error("worker argument '" + a + "' is not an option (expected -x or --name)");
    }
    std::string key = a.substr(a[1] == '-' ? 2 : 1);
    std::string inline_value;
    bool has_inline = false;
    if (size_t eq = key.find('='); eq != std::string::npos) {
      inline_value = key.substr(eq + 1);
      key = key.substr(0, eq);
      has_inline = true;
    }
    bool negated = false;
    const ArgSpec* spec = find_arg(key, &negated);
    if (spec == nullptr) {
      return invalid_argument_error("unknown worker argument '" + a + "'");
    }
    PresetEntry e{std::string(spec->long_name), "", 0};
    if (spec->kind == ArgKind::kFlag) {
      e.value = negated ? "false" : "true";
      if (has_inline) {
        bool b = false;
        if (!parse_bool(inline_value, &b)) {
          return invalid_argument_error("worker argument '" + a + "' needs a boolean");
        }
        e.value = (b != negated) ? "true" : "false";
      }
    } else if (has_inline) {
      e.value = inline_value;
    } else {
      if (i + 1 >= args.size()) {
        return invalid_argument_error("worker argument '" + a + "' needs a value");
      }
      e.value = args[++i];
    }
    set_entry(&out, e);
  }
  return out;
}

StatusOr<Registry> Registry::scan(const RegistrySources& sources) {
  std::vector<ModelConfig> models;
  std::vector<NameOrigin> origins;
  if (!sources.models_dir.empty()) {
    HANGAR_RETURN_IF_ERROR(scan_models_dir(sources.models_dir, &models, &origins));
  }
  Preset preset;
  bool has_preset = !sources.preset_file.empty();
  if (has_preset) {
    HANGAR_ASSIGN_OR_RETURN(preset, load_preset_file(sources.preset_file));
  }
  // Sections that configure a models-dir model, then sections that define new models.
  std::vector<const PresetSection*> section_of(models.size(), nullptr);
  std::vector<const PresetSection*> new_sections;
  for (const PresetSection& s : preset.sections) {
    auto it = std::find_if(models.begin(), models.end(),
                           [&](const ModelConfig& m) { return m.id == s.name; });
    if (it != models.end()) {
      section_of[it - models.begin()] = &s;
    } else {
      new_sections.push_back(&s);
    }
  }
  for (const PresetSection* s : new_sections) {
    if (!s->find("model") && !s->find("hf-repo") && !s->find("model-url")) {
      return invalid_argument_error("preset " + preset.file + " line " + std::to_string(s->line) +
                                    ": section [" + s->name +
                                    "] is not a model in --models-dir and sets no 'model', "
                                    "'hf-repo' or 'model-url'");
    }
    ModelConfig m;
    m.id = s->name;
    m.source = "preset";
    m.source_file = preset.file;
    models.push_back(std::move(m));
    section_of.push_back(s);
    origins.push_back({"preset " + preset.file + " line " + std::to_string(s->line) +
                       " section [" + s->name + "]"});
  }
  for (size_t i = 0; i < models.size(); ++i) {
    std::vector<PresetEntry> merged = preset.defaults.entries;
    // `model` in [*] would point every model at one file: only a model's own section sets it.
    std::erase_if(merged, [](const PresetEntry& e) { return e.key == "model" || e.key == "alias"; });
    if (section_of[i]) {
      for (const PresetEntry& e : section_of[i]->entries) set_entry(&merged, e);
    }
    for (const PresetEntry& e : sources.cli_args) set_entry(&merged, e);
    std::vector<int> alias_lines;
    HANGAR_RETURN_IF_ERROR(apply_entries(preset, merged, &models[i], &alias_lines));
    if (!alias_lines.empty() && has_preset) {
      // Aliases came from the preset: name the line in collision messages.
      origins[i].where = "preset " + preset.file + " line " + std::to_string(alias_lines[0]) +
                         " key 'alias' of [" + models[i].id + "]";
    }
  }
  // hf-repo models whose files are already in the cache (never the network here).
  for (ModelConfig& m : models) {
    if (!m.path.empty() || m.hf_repo.empty()) continue;
    auto cached = download::find_cached(m.hf_repo, sources.download);
    if (cached.ok() && cached->has_value()) {
      m.path = (*cached)->path;
      if (m.mmproj.empty()) m.mmproj = (*cached)->mmproj;
    }
  }
  // Models already in the Hugging Face cache: listed as llama.cpp names them, unless the name is
  // taken (a models-dir or preset model of that name wins) or a preset serves that hf-repo.
  // `dedup-cache-models = true` (in [*] or any section): a cache entry that a preset model
  // already serves through its hf-repo is not listed again; its name still resolves, to that
  // preset model.
  bool dedup = false;
  std::vector<const PresetSection*> all_sections = {&preset.defaults};
  for (const PresetSection& sec : preset.sections) all_sections.push_back(&sec);
  for (const PresetSection* sec : all_sections) {
    for (const PresetEntry& e : sec->entries) {
      bool on = false;
      if (e.key == "dedup-cache-models" && parse_bool(e.value, &on) && on) dedup = true;
    }
  }
  std::map<std::string, std::string> served_by;  // cache id → the preset model serving it
  if (sources.scan_cache) {
    std::set<std::string> taken;
    for (const ModelConfig& m : models) {
      taken.insert(m.id);
      taken.insert(m.aliases.begin(), m.aliases.end());
      if (!m.hf_repo.empty()) served_by.emplace(m.hf_repo, m.id);
    }
    for (const download::CachedModel& c : download::list_cache(sources.download)) {
      if (taken.count(c.id) > 0) continue;
      if (dedup && served_by.count(c.id) > 0) continue;
      ModelConfig m;
      m.id = c.id;
      m.path = c.model.path;
      m.mmproj = c.model.mmproj;
      m.source = "cache";
      m.source_file = c.model.root;
      m.hf_repo = c.id;
      std::vector<PresetEntry> merged = preset.defaults.entries;
      std::erase_if(merged, [](const PresetEntry& e) {
        return e.key == "model" || e.key == "alias" || e.key == "hf-repo" || e.key == "model-url";
      });
      for (const PresetEntry& e : sources.cli_args) set_entry(&merged, e);
      std::vector<int> alias_lines;
      HANGAR_RETURN_IF_ERROR(apply_entries(preset, merged, &m, &alias_lines));
      m.path = c.model.path;  // the cache's file, whatever [*] says
      m.hf_repo = c.id;
      models.push_back(std::move(m));
      origins.push_back(NameOrigin{"cache " + c.model.root});
      taken.insert(c.id);
    }
  }
  // Sort by id while keeping origins aligned.
  std::vector<size_t> order(models.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return models[a].id < models[b].id; });
  std::vector<ModelConfig> sorted;
  std::vector<NameOrigin> sorted_origins;
  for (size_t i : order) {
    sorted.push_back(std::move(models[i]));
    sorted_origins.push_back(std::move(origins[i]));
  }
  Registry r;
  HANGAR_RETURN_IF_ERROR(check_names(sorted, sorted_origins, &r.names_));
  r.models_ = std::move(sorted);
  if (dedup) {
    for (const auto& [cache_id, model_id] : served_by) {
      auto it = r.names_.find(model_id);
      if (it != r.names_.end()) r.names_.emplace(cache_id, it->second);
    }
  }
  return r;
}

StatusOr<Registry> Registry::from_models(std::vector<ModelConfig> models) {
  std::sort(models.begin(), models.end(),
            [](const ModelConfig& a, const ModelConfig& b) { return a.id < b.id; });
  Registry r;
  HANGAR_RETURN_IF_ERROR(check_names(models, {}, &r.names_));
  r.models_ = std::move(models);
  return r;
}

const ModelConfig* Registry::resolve(std::string_view name) const {
  auto it = names_.find(name);
  return it == names_.end() ? nullptr : &models_[it->second];
}

}  // namespace hangar::router
