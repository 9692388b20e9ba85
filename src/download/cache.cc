// Cache roots, layout, listing and removal.
#include "download/cache.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <system_error>

#include "download/select.h"

namespace hangar::download {
namespace fs = std::filesystem;
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// The precedence list of hf-cache.md (without --cache-dir), unset entries skipped.
std::vector<std::string> precedence_roots() {
  std::vector<std::string> out;
  for (const char* name : {"LLAMA_CACHE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"}) {
    if (!env(name).empty()) out.push_back(env(name));
  }
  if (!env("HF_HOME").empty()) out.push_back(env("HF_HOME") + "/hub");
  if (!env("XDG_CACHE_HOME").empty()) out.push_back(env("XDG_CACHE_HOME") + "/huggingface/hub");
  if (!env("HOME").empty()) out.push_back(env("HOME") + "/.cache/huggingface/hub");
  return out;
}

// A name no other writer (thread or process) uses at the same time.
std::string unique_suffix() {
  static std::atomic<uint64_t> counter{0};
  return ".tmp" + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
}

std::string normal(const std::string& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  return ec ? fs::path(p).lexically_normal().string() : c.string();
}

std::string repo_of_folder(const std::string& name) {
  // models--owner--repo → owner/repo (the owner part cannot contain "--": '-' never ends a part)
  const std::string prefix = "models--";
  if (name.rfind(prefix, 0) != 0) return "";
  std::string rest = name.substr(prefix.size());
  size_t sep = rest.find("--");
  if (sep == std::string::npos) return "";
  std::string repo = rest.substr(0, sep) + "/" + rest.substr(sep + 2);
  return valid_repo_id(repo) ? repo : "";
}

}  // namespace

std::string writable_root(const Options& options) {
  if (!options.cache_dir.empty()) return options.cache_dir;
  if (!env("HANGAR_CACHE_DIR").empty()) return env("HANGAR_CACHE_DIR");
  std::vector<std::string> roots = precedence_roots();
  return roots.empty() ? std::string(".cache/huggingface/hub") : roots.front();
}

std::vector<std::string> cache_roots(const Options& options) {
  std::vector<std::string> out = {writable_root(options)};
  std::set<std::string> seen = {normal(out[0])};
  for (const std::string& r : precedence_roots()) {
    std::error_code ec;
    if (!fs::is_directory(r, ec)) continue;
    if (seen.insert(normal(r)).second) out.push_back(r);
  }
  return out;
}

std::string repo_dir(const std::string& root, const std::string& repo) {
  std::string name = "models--" + repo;
  size_t slash = name.find('/');
  if (slash != std::string::npos) name.replace(slash, 1, "--");
  return root + "/" + name;
}

std::string blob_path(const std::string& root, const std::string& repo, const std::string& oid) {
  return repo_dir(root, repo) + "/blobs/" + oid;
}

std::string partial_path(const std::string& root, const std::string& repo, const std::string& oid) {
  return blob_path(root, repo, oid) + ".downloadInProgress";
}

std::string snapshot_path(const std::string& root, const std::string& repo,
                          const std::string& commit, const std::string& path) {
  return repo_dir(root, repo) + "/snapshots/" + commit + "/" + path;
}

bool valid_commit(const std::string& s) {
  return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c));
         });
}

namespace {
std::optional<std::string> read_ref_file(const fs::path& p) {
  std::ifstream in(p);
  std::string s;
  if (!(in >> s) || !valid_commit(s)) return std::nullopt;
  return s;
}
}  // namespace

std::optional<std::string> read_commit(const std::string& dir) {
  if (auto c = read_ref_file(fs::path(dir) / "refs" / "main")) return c;
  std::error_code ec;
  std::vector<fs::path> refs;
  for (auto it = fs::recursive_directory_iterator(fs::path(dir) / "refs", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) refs.push_back(it->path());
  }
  std::sort(refs.begin(), refs.end());
  for (const fs::path& p : refs) {
    if (auto c = read_ref_file(p)) return c;
  }
  return std::nullopt;
}

std::vector<SnapshotEntry> read_snapshot(const std::string& dir, const std::string& commit) {
  std::vector<SnapshotEntry> out;
  const fs::path base = fs::path(dir) / "snapshots" / commit;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(base, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code e2;
    fs::file_status ls = it->symlink_status(e2);
    if (e2 || !(fs::is_regular_file(ls) || fs::is_symlink(ls))) continue;
    SnapshotEntry e;
    e.local = it->path().string();
    e.file.path = it->path().lexically_relative(base).generic_string();
    if (fs::is_symlink(ls)) e.file.oid = fs::read_symlink(it->path(), e2).filename().string();
    std::error_code e3;
    e.complete = fs::is_regular_file(it->path(), e3);  // follows the link
    if (e.complete) e.file.size = fs::file_size(it->path(), e3);
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), [](const SnapshotEntry& a, const SnapshotEntry& b) {
    return a.file.path < b.file.path;
  });
  return out;
}

Status link_snapshot(const std::string& root, const std::string& repo, const std::string& commit,
                     const RemoteFile& file) {
  const fs::path link = snapshot_path(root, repo, commit, file.path);
  std::error_code ec;
  fs::create_directories(link.parent_path(), ec);
  if (ec) {
    return unavailable_error("download: cannot create '" + link.parent_path().string() +
                             "': " + ec.message());
  }
  std::string target;
  for (size_t i = 0, n = 2 + std::count(file.path.begin(), file.path.end(), '/'); i < n; ++i) {
    target += "../";
  }
  target += "blobs/" + file.oid;
  // A new link under a temporary name, renamed over the old entry: readers never see a gap.
  const fs::path tmp = link.string() + unique_suffix();
  fs::remove(tmp, ec);
  fs::create_symlink(target, tmp, ec);
  if (ec) {
    fs::copy_file(blob_path(root, repo, file.oid), tmp, fs::copy_options::overwrite_existing, ec);
    if (ec) {
      return unavailable_error("download: cannot link or copy '" + link.string() +
                               "': " + ec.message());
    }
  }
  fs::rename(tmp, link, ec);
  if (ec)
    return unavailable_error("download: cannot rename to '" + link.string() + "': " + ec.message());
  return ok_status();
}

Status write_ref(const std::string& root, const std::string& repo, const std::string& commit) {
  const fs::path refs = fs::path(repo_dir(root, repo)) / "refs";
  std::error_code ec;
  fs::create_directories(refs, ec);
  const fs::path tmp = refs / ("main" + unique_suffix());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << commit;
    if (!out) return unavailable_error("download: cannot write '" + tmp.string() + "'");
  }
  fs::rename(tmp, refs / "main", ec);
  if (ec) return unavailable_error("download: cannot write '" + (refs / "main").string() + "'");
  return ok_status();
}

RootLookup find_in_root(const std::string& root, const ModelSpec& spec) {
  RootLookup out;
  const std::string dir = repo_dir(root, spec.repo);
  std::optional<std::string> commit = read_commit(dir);
  if (!commit) return out;
  std::vector<SnapshotEntry> entries = read_snapshot(dir, *commit);
  std::vector<RemoteFile> files;
  for (const SnapshotEntry& e : entries) files.push_back(e.file);
  auto sel = select_files(files, spec.repo, spec.tag);
  if (!sel.ok()) return out;
  LocalModel m;
  m.id = spec.repo + ":" + sel->tag;
  m.commit = *commit;
  m.root = root;
  for (size_t i : sel->files) {
    if (!entries[i].complete) {
      out.missing = "snapshots/" + *commit + "/" + entries[i].file.path;
      return out;
    }
    m.files.push_back(entries[i].local);
    m.bytes += entries[i].file.size;
  }
  if (sel->mmproj && entries[*sel->mmproj].complete) {
    m.mmproj = entries[*sel->mmproj].local;
    m.bytes += entries[*sel->mmproj].file.size;
  }
  m.path = m.files.front();
  out.model = std::move(m);
  return out;
}

StatusOr<std::optional<LocalModel>> find_cached(std::string_view spec, const Options& options) {
  HANGAR_ASSIGN_OR_RETURN(ModelSpec s, parse_spec(spec));
  for (const std::string& root : cache_roots(options)) {
    RootLookup l = find_in_root(root, s);
    if (l.model) return std::optional<LocalModel>(std::move(l.model));
  }
  return std::optional<LocalModel>();
}

std::vector<CachedModel> list_cache(const Options& options) {
  std::map<std::string, CachedModel> by_id;
  std::vector<std::string> roots = cache_roots(options);
  for (size_t r = 0; r < roots.size(); ++r) {
    std::error_code ec;
    std::vector<std::string> repos;
    for (auto it = fs::directory_iterator(roots[r], ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      std::string repo = repo_of_folder(it->path().filename().string());
      if (!repo.empty()) repos.push_back(repo);
    }
    for (const std::string& repo : repos) {
      const std::string dir = repo_dir(roots[r], repo);
      std::optional<std::string> commit = read_commit(dir);
      if (!commit) continue;
      std::vector<SnapshotEntry> entries = read_snapshot(dir, *commit);
      std::set<std::string> tags;
      for (const SnapshotEntry& e : entries) {
        if (!is_model_file(e.file.path)) continue;
        auto shard = parse_shard(e.file.path);
        if (shard && shard->index != 1) continue;
        std::string tag = tag_of(e.file.path);
        if (tag.empty() || !tags.insert(tag).second) continue;
        RootLookup l = find_in_root(roots[r], ModelSpec{repo, tag});
        if (!l.model) continue;
        CachedModel c;
        c.repo = repo;
        c.tag = tag;
        c.id = repo + ":" + tag;
        c.writable = r == 0;
        c.model = std::move(*l.model);
        c.model.id = c.id;
        by_id.emplace(c.id, std::move(c));  // the first root wins
      }
    }
  }
  std::vector<CachedModel> out;
  for (auto& [id, c] : by_id) out.push_back(std::move(c));
  return out;
}

Status remove_cached(std::string_view spec, const Options& options) {
  HANGAR_ASSIGN_OR_RETURN(ModelSpec s, parse_spec(spec));
  const std::string root = writable_root(options);
  const std::string dir = repo_dir(root, s.repo);
  std::optional<std::string> commit = read_commit(dir);
  if (!commit) return not_found_error("download: " + s.to_string() + " is not in " + root);
  std::vector<SnapshotEntry> entries = read_snapshot(dir, *commit);
  std::vector<RemoteFile> files;
  for (const SnapshotEntry& e : entries) files.push_back(e.file);
  auto sel = select_files(files, s.repo, s.tag);
  if (!sel.ok()) return not_found_error("download: " + s.to_string() + " is not in " + root);
  std::vector<size_t> doomed = sel->files;
  if (sel->mmproj) {
    // The sidecar goes too unless another listed model of the snapshot still uses it.
    bool shared = false;
    for (const SnapshotEntry& e : entries) {
      if (!is_model_file(e.file.path) || e.file.path == entries[sel->files[0]].file.path) continue;
      auto other = select_files(files, s.repo, tag_of(e.file.path));
      if (other.ok() && other->mmproj == sel->mmproj && other->files != sel->files) shared = true;
    }
    if (!shared) doomed.push_back(*sel->mmproj);
  }
  std::error_code ec;
  for (size_t i : doomed) {
    fs::remove(entries[i].local, ec);
    if (ec)
      return unavailable_error("download: cannot remove '" + entries[i].local +
                               "': " + ec.message());
  }
  // Blobs no remaining link (of any snapshot) points at go, with their partial files.
  std::set<std::string> referenced;
  for (auto it = fs::recursive_directory_iterator(fs::path(dir) / "snapshots", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code e2;
    if (it->is_symlink(e2)) referenced.insert(fs::read_symlink(it->path(), e2).filename().string());
  }
  ec.clear();
  for (auto it = fs::directory_iterator(fs::path(dir) / "blobs", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    std::string oid = name.substr(0, name.find('.'));
    if (!referenced.count(oid)) {
      std::error_code e2;
      fs::remove(it->path(), e2);
    }
  }
  // Empty folders of the snapshot, then the repository when no file is left.
  for (bool removed = true; removed;) {
    removed = false;
    std::vector<fs::path> empty;
    ec.clear();
    for (auto it = fs::recursive_directory_iterator(fs::path(dir) / "snapshots", ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      std::error_code e2;
      if (it->is_directory(e2) && !it->is_symlink(e2) && fs::is_empty(it->path(), e2)) {
        empty.push_back(it->path());
      }
    }
    for (const fs::path& p : empty) removed |= fs::remove(p, ec);
  }
  bool any_file = false;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code e2;
    if (!it->is_directory(e2) && it->path().parent_path().filename() != "refs") any_file = true;
  }
  if (!any_file) fs::remove_all(dir, ec);
  return ok_status();
}

}  // namespace hangar::download
