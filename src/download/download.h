#pragma once
// hangar::download: models from a Hugging Face hub (or a plain URL) into the hub cache that
// llama.cpp and huggingface_hub share (../shared/hf-cache.md is the contract: cache roots,
// layout, partial-file name, file choice, hub API routes).
//
// What it owns: resolving `owner/repo[:TAG]` to files, downloading them (resume, retry with
// backoff, stall timeout, size and SHA-256 verified before a file enters blobs/), the cache's
// layout on disk (blobs/, snapshots/, refs/), listing and removing cached models, and `model-url`
// downloads. It is the only folder that uses libcurl.
//
// Environment: an empty field of Options is read from the environment at each call —
// cache root (HANGAR_CACHE_DIR, LLAMA_CACHE, HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME,
// XDG_CACHE_HOME, HOME), hub (MODEL_ENDPOINT, HF_ENDPOINT), token (HF_TOKEN), LLAMA_OFFLINE.
//
// Calls block (the router runs them on its own threads) and report through callbacks. They never
// throw.
//
// Thread-safety: every function may be called from any thread, concurrently. Downloads are
// single-flight per file: concurrent ensure_downloaded() calls (in this process) that need the
// same blob share one transfer, which runs on a thread owned by this library and stops when the
// last caller waiting for it cancels. Progress callbacks run on the caller's thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace hangar::download {

struct Options {
  std::string cache_dir;  // the writable root (--cache-dir); empty: hf-cache.md's precedence
  std::string endpoint;   // hub base URL; empty: MODEL_ENDPOINT, HF_ENDPOINT, huggingface.co
  std::string token;      // bearer token; empty: HF_TOKEN
  bool offline = false;   // never touch the network (also when LLAMA_OFFLINE is set)

  int max_attempts = 3;                             // per file, first try included
  std::chrono::milliseconds retry_delay{2000};      // before the 2nd attempt; doubles after each
  std::chrono::milliseconds stall_timeout{60'000};  // no byte for this long → retry
  std::chrono::milliseconds connect_timeout{30'000};
  std::chrono::milliseconds api_timeout{60'000};  // a whole hub API call

  // Bytes free for new files on the filesystem holding `path` (an existing folder). Empty:
  // statvfs. Tests inject a size they control.
  std::function<StatusOr<uint64_t>(const std::string& path)> free_space;
};

// `owner/repo[:TAG]` (TAG empty when absent). A repo id that breaks hf-cache.md's rules is
// refused: it would become a path.
struct ModelSpec {
  std::string repo;
  std::string tag;
  std::string to_string() const { return tag.empty() ? repo : repo + ":" + tag; }
};
StatusOr<ModelSpec> parse_spec(std::string_view spec);

// One file of a repository as the hub lists it.
struct RemoteFile {
  std::string path;  // inside the repository: "sub/model-Q4_K_M.gguf"
  uint64_t size = 0;
  std::string oid;     // the blob's name in the cache: lfs sha256, else the git sha1
  std::string sha256;  // lfs.oid; empty for a non-LFS file (then oid is the git blob sha1)
};

// What a spec means on the hub (or in the cache, offline or when the hub fails).
struct ResolvedModel {
  ModelSpec spec;
  std::string tag;                   // the tag of the chosen file, upper-cased ("Q4_K_M")
  std::string commit;                // 40 hex
  std::vector<RemoteFile> files;     // the model file, or every shard in order
  std::optional<RemoteFile> mmproj;  // the sidecar that goes with it
  bool from_cache = false;           // the hub was not asked (offline) or failed
};
StatusOr<ResolvedModel> resolve(std::string_view spec, const Options& options);

// A model whose files are all present and complete.
struct LocalModel {
  std::string id;                  // "owner/repo:TAG"
  std::string path;                // the model file (shard 1): snapshots/<commit>/<path>
  std::vector<std::string> files;  // every shard, in order (files[0] == path)
  std::string mmproj;              // empty when none
  std::string commit;
  std::string root;    // the cache root it was found in
  uint64_t bytes = 0;  // all files together, mmproj included
};

// Per-file progress; `done` never decreases between two calls, even across a retry that
// restarts a file from byte 0.
struct FileProgress {
  std::string path;  // as in RemoteFile::path
  uint64_t done = 0;
  uint64_t total = 0;
};
struct Progress {
  std::vector<FileProgress> files;  // every file of the model, cached ones as done == total
  uint64_t done = 0;                // sums of the above
  uint64_t total = 0;
};
using ProgressCallback = std::function<void(const Progress&)>;

// Set by the caller (any thread) to give up a download. Copies share the flag.
class CancelToken {
 public:
  CancelToken();
  void cancel() const;
  bool cancelled() const;
  // Waits up to `timeout`; true as soon as the token is cancelled (a cancellable backoff).
  bool wait_for(std::chrono::milliseconds timeout) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Resolves `spec` and downloads whatever of it is missing, then returns it. Before any byte is
// written it checks that the cache's filesystem has room for what is missing (ResourceExhausted
// naming needed, free and path). A hub failure falls back to a cached copy when there is one.
// Cancelled: returns kCancelled; a transfer no other caller waits for stops and its partial file
// is removed. Failures name the file; a verification failure is kDataLoss with both hashes.
StatusOr<LocalModel> ensure_downloaded(std::string_view spec, const Options& options,
                                       const ProgressCallback& progress = nullptr,
                                       const CancelToken& cancel = CancelToken());

// The cached copy of `spec` (writable root first, then the read-only ones), nullopt when it is not
// cached completely. Never touches the network. Error only for a malformed spec.
StatusOr<std::optional<LocalModel>> find_cached(std::string_view spec, const Options& options);

// One file of a repository (`owner/repo`, no tag), e.g. a remote preset's `preset.ini`: from the
// hub into the cache (verified like a model file) and its snapshot path returned; from the cache
// when offline or when the hub fails. NotFound when the repository has no such file.
StatusOr<std::string> ensure_repo_file(std::string_view repo, const std::string& path,
                                       const Options& options);

// Every model in the cache roots, as llama.cpp names them; sidecars and incomplete models are
// left out. Sorted by id; a model in several roots is listed once (the first root wins).
struct CachedModel {
  std::string id;  // "owner/repo:TAG"
  std::string repo;
  std::string tag;
  bool writable = false;  // in the root hangar writes (remove_cached works on it)
  LocalModel model;
};
std::vector<CachedModel> list_cache(const Options& options);

// Removes `spec`'s snapshot links from the writable root, then every blob no remaining link
// points at (and the repository folder when nothing is left). NotFound when it is not there.
Status remove_cached(std::string_view spec, const Options& options);

// `model-url = URL`: downloads URL into <root>/url/<hash of URL>/<file name>, once. A cached copy
// is reused when the server answers its ETag with 304 (or offline, or when the server fails);
// the size is checked against Content-Length. Returns the file's path.
StatusOr<std::string> ensure_url(std::string_view url, const Options& options,
                                 const ProgressCallback& progress = nullptr,
                                 const CancelToken& cancel = CancelToken());

// The cache roots: [0] the writable one, then the other roots of the precedence list that exist
// (read-only), without duplicates.
std::vector<std::string> cache_roots(const Options& options);

}  // namespace hangar::download
