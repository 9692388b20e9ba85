// File choice and naming rules of hf-cache.md.
#include "download/select.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <tuple>

namespace hangar::download {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string_view basename(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string_view dirname(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
}

bool ends_with_gguf(std::string_view path) {
  return path.size() > 5 && lower(path.substr(path.size() - 5)) == ".gguf";
}

bool valid_part(std::string_view part) {
  if (part.empty()) return false;
  for (char c : part) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return false;
    }
  }
  auto edge = [](char c) { return c == '.' || c == '-'; };
  return !edge(part.front()) && !edge(part.back());
}

// True when `path` contains TAG followed by '.' or '-' (llama.cpp's case-insensitive `TAG[.-]`).
bool matches_tag(std::string_view path, std::string_view tag) {
  std::string p = lower(path);
  std::string t = lower(tag);
  for (size_t at = p.find(t); at != std::string::npos; at = p.find(t, at + 1)) {
    size_t end = at + t.size();
    if (end < p.size() && (p[end] == '.' || p[end] == '-')) return true;
  }
  return false;
}

// The bit width a quant tag names: Q4_K_M → 4, Q8_0 → 8, F16/BF16 → 16, F32 → 32; 0 unknown.
int quant_bits(std::string_view tag) {
  std::string t = upper(tag);
  if (t == "F32") return 32;
  if (t == "F16" || t == "BF16") return 16;
  for (size_t i = 0; i < t.size(); ++i) {
    if (std::isdigit(static_cast<unsigned char>(t[i]))) return std::atoi(t.c_str() + i);
  }
  return 0;
}

bool is_ancestor_dir(std::string_view dir, std::string_view of) {
  if (dir.empty()) return true;
  return of == dir ||
         (of.size() > dir.size() && of.substr(0, dir.size()) == dir && of[dir.size()] == '/');
}

}  // namespace

bool valid_repo_id(std::string_view repo) {
  if (repo.size() > 256) return false;
  size_t slash = repo.find('/');
  if (slash == std::string_view::npos || repo.find('/', slash + 1) != std::string_view::npos) {
    return false;
  }
  return valid_part(repo.substr(0, slash)) && valid_part(repo.substr(slash + 1));
}

bool is_model_file(std::string_view path) {
  if (!ends_with_gguf(path)) return false;
  std::string name = lower(basename(path));
  for (const char* marker : {"mmproj", "imatrix", "mtp-", "eagle3-", "dflash-", "dspark-"}) {
    if (name.find(marker) != std::string::npos) return false;
  }
  return true;
}

bool is_mmproj_file(std::string_view path) {
  return ends_with_gguf(path) && lower(basename(path)).find("mmproj") != std::string::npos;
}

std::optional<Shard> parse_shard(std::string_view path) {
  // ^(.+)-(\d{5})-of-(\d{5})\.gguf$
  constexpr std::string_view kTail = "-00000-of-00000.gguf";
  if (path.size() <= kTail.size()) return std::nullopt;
  std::string_view tail = path.substr(path.size() - kTail.size());
  for (size_t i = 0; i < kTail.size(); ++i) {
    bool digit = kTail[i] == '0';
    if (digit ? !std::isdigit(static_cast<unsigned char>(tail[i])) : tail[i] != kTail[i]) {
      return std::nullopt;
    }
  }
  Shard s;
  s.prefix = std::string(path.substr(0, path.size() - kTail.size()));
  s.index = std::atoi(std::string(tail.substr(1, 5)).c_str());
  s.count = std::atoi(std::string(tail.substr(10, 5)).c_str());
  return s;
}

std::string tag_of(std::string_view path) {
  std::string stem(basename(path));
  if (auto shard = parse_shard(stem)) {
    stem = shard->prefix;
  } else if (ends_with_gguf(stem)) {
    stem.resize(stem.size() - 5);
  }
  // The last [-.]([A-Za-z0-9_]+): the word after the last '-' or '.'.
  size_t end = stem.size();
  size_t begin = end;
  while (begin > 0 &&
         (std::isalnum(static_cast<unsigned char>(stem[begin - 1])) || stem[begin - 1] == '_')) {
    --begin;
  }
  if (begin == 0 || begin == end || (stem[begin - 1] != '-' && stem[begin - 1] != '.')) return "";
  return upper(stem.substr(begin));
}

StatusOr<Selection> select_files(const std::vector<RemoteFile>& files, std::string_view repo,
                                 std::string_view tag) {
  std::optional<size_t> chosen;
  auto first_matching = [&](std::string_view t) -> std::optional<size_t> {
    for (size_t i = 0; i < files.size(); ++i) {
      if (is_model_file(files[i].path) && matches_tag(files[i].path, t)) return i;
    }
    return std::nullopt;
  };
  if (!tag.empty()) {
    chosen = first_matching(tag);
  } else {
    chosen = first_matching("Q4_K_M");
    if (!chosen) chosen = first_matching("Q8_0");
    if (!chosen) {
      for (size_t i = 0; i < files.size() && !chosen; ++i) {
        if (is_model_file(files[i].path)) chosen = i;
      }
    }
  }
  if (!chosen) {
    std::string offered;
    for (const RemoteFile& f : files) {
      if (!is_model_file(f.path)) continue;
      std::string t = tag_of(f.path);
      if (t.empty() || offered.find(" " + t + ",") != std::string::npos) continue;
      offered += " " + t + ",";
    }
    if (!offered.empty()) offered.pop_back();
    return not_found_error(
        "download: " + std::string(repo) + " has no .gguf model file" +
        (tag.empty() ? std::string() : " matching tag '" + std::string(tag) + "'") +
        (offered.empty() ? std::string() : "; it offers:" + offered));
  }

  Selection sel;
  if (auto shard = parse_shard(files[*chosen].path)) {
    std::map<int, size_t> by_index;
    for (size_t i = 0; i < files.size(); ++i) {
      auto s = parse_shard(files[i].path);
      if (s && s->prefix == shard->prefix && s->count == shard->count) by_index[s->index] = i;
    }
    for (int k = 1; k <= shard->count; ++k) {
      auto it = by_index.find(k);
      if (it == by_index.end()) {
        char name[64];
        std::snprintf(name, sizeof name, "-%05d-of-%05d.gguf", k, shard->count);
        return not_found_error("download: " + std::string(repo) + " lacks shard '" + shard->prefix +
                               name + "' of a split model");
      }
      sel.files.push_back(it->second);
    }
  } else {
    sel.files.push_back(*chosen);
  }
  sel.tag = tag_of(files[sel.files[0]].path);

  // The sidecar: deepest folder shared with the model, then an exact -TAG. match, then the
  // nearest quant width, then tree order.
  const std::string_view model_dir = dirname(files[sel.files[0]].path);
  const int model_bits = quant_bits(sel.tag);
  std::string tag_mark = "-";
  tag_mark += lower(sel.tag);
  tag_mark += '.';
  std::optional<size_t> best;
  auto key = [&](size_t i) {
    std::string name = lower(basename(files[i].path));
    int depth = static_cast<int>(dirname(files[i].path).size());
    int exact = name.find(tag_mark) != std::string::npos ? 1 : 0;
    int dist = std::abs(quant_bits(tag_of(files[i].path)) - model_bits);
    return std::make_tuple(-depth, -exact, dist);
  };
  for (size_t i = 0; i < files.size(); ++i) {
    if (!is_mmproj_file(files[i].path)) continue;
    if (!is_ancestor_dir(dirname(files[i].path), model_dir)) continue;
    if (!best || key(i) < key(*best)) best = i;
  }
  sel.mmproj = best;
  return sel;
}

}  // namespace hangar::download
