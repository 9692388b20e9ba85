#pragma once
// Hasher: the digests a download is verified against, fed incrementally as bytes arrive — the
// SHA-256 of the content (a hub file's lfs.oid) or git's blob SHA-1 ("blob <size>\0" + content,
// a non-LFS file's oid). OpenSSL's libcrypto does the work.
//
// Thread-safety: one Hasher per transfer; not synchronized.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace hangar::download {

class Hasher {
 public:
  enum class Kind { kSha256, kGitSha1 };
  // For kGitSha1 the content's full size must be known up front (it is hashed first).
  Hasher(Kind kind, uint64_t content_size);
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void update(const void* data, size_t n);
  // Lower-case hex of the digest. Ends the Hasher.
  std::string finish_hex();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// Feeds the first `bytes` bytes of the file at `path` into `h` (a resumed download's prefix).
Status hash_file_prefix(const std::string& path, uint64_t bytes, Hasher& h);

}  // namespace hangar::download
