#pragma once
// The hub's API (hf-cache.md, "The hub"): the endpoint and token from Options or the
// environment, refs → commit of main, tree → the repository's files, the resolve URL of a file.
// Every path and oid the hub returns is checked before it can become a path on disk.
//
// Thread-safety: pure functions and blocking calls; no shared state.

#include <string>
#include <vector>

#include "common/status.h"
#include "download/download.h"

namespace hangar::download {

// Options with empty fields filled from the environment (endpoint always ends in '/').
Options effective_options(const Options& options);

// A repository's main commit and its files in tree order. Unavailable for network errors,
// 429 and 5xx (after retries); NotFound for 404; FailedPrecondition for 401/403.
struct RepoTree {
  std::string commit;
  std::vector<RemoteFile> files;
};
StatusOr<RepoTree> fetch_tree(const std::string& repo, const Options& effective,
                              const CancelToken& cancel);

std::string resolve_url(const Options& effective, const std::string& repo,
                        const std::string& commit, const std::string& path);

// A relative path with no empty, "." or ".." part and no backslash or NUL.
bool safe_relative_path(const std::string& path);

}  // namespace hangar::download
