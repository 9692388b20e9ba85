// The public entry points of download.h: parse, resolve, ensure_downloaded (disk-space check,
// single-flight file downloads, snapshot links and refs), cache fallbacks and offline mode.
#include "download/download.h"

#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "download/cache.h"
#include "download/fetch.h"
#include "download/hub.h"
#include "download/select.h"

namespace hangar::download {
namespace fs = std::filesystem;

struct CancelToken::State {
  std::atomic<bool> flag{false};
  std::mutex mu;
  std::condition_variable cv;
};

CancelToken::CancelToken() : state_(std::make_shared<State>()) {}

void CancelToken::cancel() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->flag.store(true);
  state_->cv.notify_all();
}

bool CancelToken::cancelled() const { return state_->flag.load(); }

bool CancelToken::wait_for(std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(state_->mu);
  return state_->cv.wait_for(lock, timeout, [&] { return state_->flag.load(); });
}

StatusOr<ModelSpec> parse_spec(std::string_view spec) {
  ModelSpec s;
  size_t colon = spec.find(':');
  s.repo = std::string(spec.substr(0, colon));
  if (colon != std::string_view::npos) s.tag = std::string(spec.substr(colon + 1));
  if (!valid_repo_id(s.repo)) {
    return invalid_argument_error("download: '" + std::string(spec) +
                                  "' is not owner/repo[:TAG] (letters, digits, '_', '.', '-')");
  }
  for (char c : s.tag) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return invalid_argument_error("download: tag '" + s.tag + "' of '" + std::string(spec) +
                                    "' may hold only letters, digits, '_', '.' and '-'");
    }
  }
  if (colon != std::string_view::npos && s.tag.empty()) {
    return invalid_argument_error("download: '" + std::string(spec) + "' has an empty tag");
  }
  return s;
}

namespace {

StatusOr<uint64_t> statvfs_free(const std::string& path) {
  struct statvfs st;
  if (::statvfs(path.c_str(), &st) != 0) {
    return unavailable_error("download: statvfs('" + path + "') failed: " + strerror(errno));
  }
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

// The nearest existing folder at or above `path` (statvfs needs one).
std::string existing_ancestor(fs::path p) {
  std::error_code ec;
  p = fs::absolute(p, ec);
  while (!p.empty() && !fs::is_directory(p, ec) && p != p.parent_path()) p = p.parent_path();
  return p.empty() ? "/" : p.string();
}

std::string human_bytes(uint64_t b) {
  char buf[32];
  if (b >= (1ull << 30)) {
    std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(b) / (1ull << 30));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1ull << 20));
  }
  return buf;
}

uint64_t size_or_zero(const std::string& path) {
  std::error_code ec;
  uint64_t s = fs::file_size(path, ec);
  return ec ? 0 : s;
}

// The cached copy in any root, or an error naming what is missing (offline mode).
StatusOr<LocalModel> from_cache_or_error(const ModelSpec& spec, const Options& o,
                                         const std::string& why) {
  std::string missing;
  for (const std::string& root : cache_roots(o)) {
    RootLookup l = find_in_root(root, spec);
    if (l.model) return std::move(*l.model);
    if (missing.empty() && !l.missing.empty())
      missing = repo_dir(root, spec.repo) + "/" + l.missing;
  }
  if (!missing.empty()) {
    return not_found_error("download: " + why + "; '" + missing + "' of " + spec.to_string() +
                           " is missing or incomplete in the cache");
  }
  return not_found_error("download: " + why + "; " + spec.to_string() + " is not in the cache (" +
                         writable_root(o) + "); pull it first without --offline");
}

std::vector<RemoteFile> all_files(const ResolvedModel& r) {
  std::vector<RemoteFile> files = r.files;
  if (r.mmproj) files.push_back(*r.mmproj);
  return files;
}

}  // namespace

StatusOr<ResolvedModel> resolve(std::string_view spec_text, const Options& options) {
  HANGAR_ASSIGN_OR_RETURN(ModelSpec spec, parse_spec(spec_text));
  const Options o = effective_options(options);
  auto cached = [&](const Status& why) -> StatusOr<ResolvedModel> {
    for (const std::string& root : cache_roots(o)) {
      const std::string dir = repo_dir(root, spec.repo);
      auto commit = read_commit(dir);
      if (!commit) continue;
      std::vector<SnapshotEntry> entries = read_snapshot(dir, *commit);
      std::vector<RemoteFile> files;
      for (const SnapshotEntry& e : entries) files.push_back(e.file);
      auto sel = select_files(files, spec.repo, spec.tag);
      if (!sel.ok()) continue;
      ResolvedModel r;
      r.spec = spec;
      r.tag = sel->tag;
      r.commit = *commit;
      r.from_cache = true;
      for (size_t i : sel->files) r.files.push_back(files[i]);
      if (sel->mmproj) r.mmproj = files[*sel->mmproj];
      return r;
    }
    return why;
  };
  if (o.offline)
    return cached(
        not_found_error("download: offline and " + spec.to_string() + " is not in the cache"));
  auto tree = fetch_tree(spec.repo, o, CancelToken());
  if (!tree.ok()) return cached(tree.status());
  HANGAR_ASSIGN_OR_RETURN(Selection sel, select_files(tree->files, spec.repo, spec.tag));
  ResolvedModel r;
  r.spec = spec;
  r.tag = sel.tag;
  r.commit = tree->commit;
  for (size_t i : sel.files) r.files.push_back(tree->files[i]);
  if (sel.mmproj) r.mmproj = tree->files[*sel.mmproj];
  return r;
}

StatusOr<LocalModel> ensure_downloaded(std::string_view spec_text, const Options& options,
                                       const ProgressCallback& progress,
                                       const CancelToken& cancel) {
  HANGAR_ASSIGN_OR_RETURN(ModelSpec spec, parse_spec(spec_text));
  const Options o = effective_options(options);
  if (o.offline) return from_cache_or_error(spec, o, "offline");

  auto tree = fetch_tree(spec.repo, o, cancel);
  if (!tree.ok()) {
    if (tree.status().code() == StatusCode::kCancelled) return tree.status();
    auto fallback = from_cache_or_error(spec, o, tree.status().message());
    if (fallback.ok()) {
      spdlog::warn("{}; using the cached copy of {}", tree.status().message(), spec.to_string());
      return fallback;
    }
    return tree.status();
  }
  auto sel = select_files(tree->files, spec.repo, spec.tag);
  if (!sel.ok()) return sel.status();
  ResolvedModel r;
  r.spec = spec;
  r.tag = sel->tag;
  r.commit = tree->commit;
  for (size_t i : sel->files) r.files.push_back(tree->files[i]);
  if (sel->mmproj) r.mmproj = tree->files[*sel->mmproj];
  const std::vector<RemoteFile> files = all_files(r);
  const std::string root = o.cache_dir;

  // A read-only root that holds this very commit serves as it is.
  std::vector<std::string> roots = cache_roots(o);
  for (size_t i = 1; i < roots.size(); ++i) {
    RootLookup l = find_in_root(roots[i], ModelSpec{spec.repo, r.tag});
    if (l.model && l.model->commit == r.commit) return std::move(*l.model);
  }

  // What is missing, and is there room for it?
  std::vector<size_t> missing;
  uint64_t needed = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string blob = blob_path(root, spec.repo, files[i].oid);
    std::error_code ec;
    if (fs::is_regular_file(blob, ec) && size_or_zero(blob) == files[i].size) continue;
    missing.push_back(i);
    const uint64_t have = size_or_zero(partial_path(root, spec.repo, files[i].oid));
    needed += files[i].size - std::min(have, files[i].size);
  }
  if (needed > 0) {
    const std::string where = existing_ancestor(repo_dir(root, spec.repo));
    auto free = o.free_space ? o.free_space(where) : statvfs_free(where);
    if (!free.ok()) return free.status();
    if (*free < needed) {
      return resource_exhausted_error("download: " + spec.repo + ":" + r.tag + " needs " +
                                      std::to_string(needed) + " bytes (" + human_bytes(needed) +
                                      ") more but only " + std::to_string(*free) + " bytes (" +
                                      human_bytes(*free) + ") are free in " + where +
                                      "; free some space or choose another --cache-dir");
    }
  }

  // One flight per missing file; the caller's progress is aggregated and never goes back.
  std::vector<std::shared_ptr<Flight>> flights(files.size());
  for (size_t i : missing) {
    FileJob job;
    job.url = resolve_url(o, spec.repo, r.commit, files[i].path);
    job.blob = blob_path(root, spec.repo, files[i].oid);
    job.file = files[i];
    job.options = o;
    flights[i] = start_or_join(job);
  }
  Progress p;
  for (const RemoteFile& f : files) p.files.push_back({f.path, f.size, f.size});
  for (size_t i : missing) p.files[i].done = 0;
  auto report = [&] {
    p.done = p.total = 0;
    for (size_t i = 0; i < files.size(); ++i) {
      if (flights[i]) p.files[i].done = std::max(p.files[i].done, flights[i]->done());
      p.done += p.files[i].done;
      p.total += p.files[i].total;
    }
    if (progress) progress(p);
  };
  report();
  Status failed;
  for (size_t i : missing) {
    while (!flights[i]->wait_for(std::chrono::milliseconds(100))) {
      if (cancel.cancelled()) {
        // A transfer only this caller wanted stops at its next progress check (well within
        // a second) and removes its partial file; wait for that so the caller sees it gone.
        for (size_t j : missing) {
          if (!flights[j]->finished() && flights[j]->leave()) {
            flights[j]->wait_for(std::chrono::seconds(30));
          }
        }
        return cancelled_error("download: " + spec.repo + ":" + r.tag + " cancelled");
      }
      report();
    }
    Status s = flights[i]->result();
    if (!s.ok() && failed.ok()) failed = s;
  }
  if (!failed.ok()) {
    if (failed.code() != StatusCode::kDataLoss && failed.code() != StatusCode::kCancelled) {
      auto fallback = from_cache_or_error(spec, o, failed.message());
      if (fallback.ok()) {
        spdlog::warn("{}; using the cached copy of {}", failed.message(), spec.to_string());
        return fallback;
      }
    }
    return failed;
  }
  report();

  LocalModel m;
  m.id = spec.repo + ":" + r.tag;
  m.commit = r.commit;
  m.root = root;
  for (size_t i = 0; i < files.size(); ++i) {
    HANGAR_RETURN_IF_ERROR(link_snapshot(root, spec.repo, r.commit, files[i]));
    const std::string local = snapshot_path(root, spec.repo, r.commit, files[i].path);
    if (i < r.files.size()) {
      m.files.push_back(local);
    } else {
      m.mmproj = local;
    }
    m.bytes += files[i].size;
  }
  HANGAR_RETURN_IF_ERROR(write_ref(root, spec.repo, r.commit));
  m.path = m.files.front();
  return m;
}

StatusOr<std::string> ensure_repo_file(std::string_view repo_text, const std::string& path,
                                       const Options& options) {
  HANGAR_ASSIGN_OR_RETURN(ModelSpec spec, parse_spec(repo_text));
  const Options o = effective_options(options);
  const std::string what = spec.repo + "/" + path;
  // The cached copy, from any root (the commit refs/main names).
  auto cached = [&]() -> std::optional<std::string> {
    for (const std::string& root : cache_roots(o)) {
      const std::string dir = repo_dir(root, spec.repo);
      auto commit = read_commit(dir);
      if (!commit) continue;
      for (const SnapshotEntry& e : read_snapshot(dir, *commit)) {
        if (e.file.path == path && e.complete) return e.local;
      }
    }
    return std::nullopt;
  };
  if (o.offline) {
    if (auto local = cached()) return *local;
    return not_found_error("download: offline and " + what + " is not in the cache");
  }
  auto tree = fetch_tree(spec.repo, o, CancelToken());
  if (!tree.ok()) {
    if (auto local = cached()) {
      spdlog::warn("{}; using the cached copy of {}", tree.status().message(), what);
      return *local;
    }
    return tree.status();
  }
  auto it = std::find_if(tree->files.begin(), tree->files.end(),
                         [&](const RemoteFile& f) { return f.path == path; });
  if (it == tree->files.end()) {
    return not_found_error("download: " + spec.repo + " has no file '" + path + "'");
  }
  const std::string root = o.cache_dir;
  const std::string blob = blob_path(root, spec.repo, it->oid);
  std::error_code ec;
  if (!(fs::is_regular_file(blob, ec) && size_or_zero(blob) == it->size)) {
    FileJob job;
    job.url = resolve_url(o, spec.repo, tree->commit, it->path);
    job.blob = blob;
    job.file = *it;
    job.options = o;
    std::shared_ptr<Flight> flight = start_or_join(job);
    while (!flight->wait_for(std::chrono::milliseconds(100))) {
    }
    HANGAR_RETURN_IF_ERROR(flight->result());
  }
  HANGAR_RETURN_IF_ERROR(link_snapshot(root, spec.repo, tree->commit, *it));
  HANGAR_RETURN_IF_ERROR(write_ref(root, spec.repo, tree->commit));
  return snapshot_path(root, spec.repo, tree->commit, it->path);
}

}  // namespace hangar::download
