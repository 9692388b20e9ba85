#pragma once
// Which files an `owner/repo[:TAG]` means (hf-cache.md, "Which files"), as pure functions over a
// repository's file list, so the hub's tree and a cached snapshot are chosen from by one rule.
// Also the naming rules: valid repo ids and the TAG of a file name.
//
// Thread-safety: pure functions.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "download/download.h"

namespace hangar::download {

// hf-cache.md: exactly one '/', [A-Za-z0-9_.-], '.' and '-' not at either end of a part, ≤ 256.
bool valid_repo_id(std::string_view repo);

// A *.gguf that is not a sidecar (mmproj, imatrix, mtp-, eagle3-, dflash-, dspark-).
bool is_model_file(std::string_view path);
// An mmproj*.gguf sidecar.
bool is_mmproj_file(std::string_view path);

// "dir/model-Q4_K_M-00001-of-00003.gguf" → prefix "dir/model-Q4_K_M", index 1, count 3.
struct Shard {
  std::string prefix;
  int index = 0;
  int count = 0;
};
std::optional<Shard> parse_shard(std::string_view path);

// The TAG llama.cpp lists a file under: the last [-.]([A-Za-z0-9_]+) of the file name without
// .gguf (and without the shard suffix), upper-cased. Empty when there is none.
std::string tag_of(std::string_view path);

struct Selection {
  std::vector<size_t> files;     // indexes into the list: the model file or every shard in order
  std::optional<size_t> mmproj;  // index of the sidecar, if any
  std::string tag;               // tag_of(files[0])
};
// Chooses from `files` (in the hub's tree order) as llama.cpp does. NotFound names the tag and
// what the repository offers; a split model with a shard missing from the list is NotFound too.
StatusOr<Selection> select_files(const std::vector<RemoteFile>& files, std::string_view repo,
                                 std::string_view tag);

}  // namespace hangar::download
