#pragma once
// The hub cache on disk (hf-cache.md, "Where the cache is", "Layout", "Listing and removal"):
// which roots exist, the paths of one repository's refs, blobs and snapshots, reading a
// snapshot (dangling or missing links count as absent), writing links and refs, listing and
// removal. No network.
//
// Thread-safety: functions over the filesystem; concurrent writers of one repository are safe
// because every write is a rename or a link replacing a link, never a rewrite in place.

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "download/download.h"

namespace hangar::download {

// The writable root by precedence (--cache-dir, LLAMA_CACHE, HF_HUB_CACHE, ...).
std::string writable_root(const Options& options);

std::string repo_dir(const std::string& root, const std::string& repo);  // root/models--o--r
std::string blob_path(const std::string& root, const std::string& repo, const std::string& oid);
// llama.cpp's partial-file name: blobs/<oid>.downloadInProgress
std::string partial_path(const std::string& root, const std::string& repo, const std::string& oid);
std::string snapshot_path(const std::string& root, const std::string& repo,
                          const std::string& commit, const std::string& path);

bool valid_commit(const std::string& s);  // 40 lower- or upper-case hex digits
// refs/main, else the first valid ref (sorted); nullopt when none.
std::optional<std::string> read_commit(const std::string& repo_dir);

// One entry of snapshots/<commit>/: a regular file or a symlink.
struct SnapshotEntry {
  RemoteFile file;        // path, size of the target (0 when absent), oid from the link target
  std::string local;      // the entry's path on disk
  bool complete = false;  // the target exists and is a regular file
};
// Every entry under snapshots/<commit>/, sorted by path.
std::vector<SnapshotEntry> read_snapshot(const std::string& repo_dir, const std::string& commit);

// snapshots/<commit>/<path> → ../../blobs/<oid> (one more ../ per folder of path); replaces an
// existing entry; copies the blob when a symlink cannot be made.
Status link_snapshot(const std::string& root, const std::string& repo, const std::string& commit,
                     const RemoteFile& file);
// refs/main = commit (written to refs/main.tmp, then renamed).
Status write_ref(const std::string& root, const std::string& repo, const std::string& commit);

// The cached model `spec` means in one root: the model, or the first file the snapshot lacks
// (named in `missing`), or neither when the repository or a matching file is not there.
struct RootLookup {
  std::optional<LocalModel> model;
  std::string missing;  // "snapshots/<commit>/<path>" that is absent or dangling
};
RootLookup find_in_root(const std::string& root, const ModelSpec& spec);

}  // namespace hangar::download
