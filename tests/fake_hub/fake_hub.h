#pragma once
// FakeHub: a Hugging Face hub stand-in for the download tests and benchmark — a real HTTP server
// (hangar's http::Server) on 127.0.0.1, port 0, serving exactly the routes of
// ../shared/hf-cache.md ("The hub"):
//   GET /api/models/{owner}/{repo}/refs
//   GET /api/models/{owner}/{repo}/tree/{commit}?recursive=true
//   GET /{owner}/{repo}/resolve/{commit or main}/{path}     (Range honoured: 206 / 416)
// plus GET /cdn/{owner}/{repo}/{path} (where redirects point) and GET /urls/{name} (model-url
// files with an ETag; If-None-Match → 304).
//
// Faults on demand, each for the next `times` file requests of one path ("*": any file):
// a connection dropped after N bytes, a status (500, 429, 404...), Range ignored, wrong bytes
// (one byte flipped, so the SHA-256 no longer matches), a slow trickle, a stall (bytes stop but
// the connection stays open), a redirect to the same host or to another host name (localhost).
//
// Thread-safety: set-up (add_*, fault_*) and observations may be called from any thread while
// the server runs; the server's io threads serve requests concurrently.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"

namespace hangar::testing {

struct HubFile {
  std::string path;     // inside the repository: "sub/model-Q4_K_M.gguf"
  std::string content;  // the bytes, or empty with `source` set
  std::string source;   // a file on disk served as this file (read when requested)
  bool lfs = true;      // listed with lfs {oid: sha256, size}; false: oid = git blob sha1 only
};

enum class FaultKind {
  kDrop,               // close the connection after `after_bytes` body bytes
  kStatus,             // answer `status` (with Retry-After: 0 for 429/503)
  kIgnoreRange,        // answer 200 with the whole file whatever Range says
  kCorrupt,            // flip the byte at `after_bytes` of the file
  kTrickle,            // `chunk` bytes every `delay`
  kStall,              // send `after_bytes` bytes, then nothing (the connection stays open)
  kRedirect,           // 302 to /cdn/... on 127.0.0.1
  kRedirectOtherHost,  // 302 to /cdn/... on "localhost" (another host name)
};

struct Fault {
  FaultKind kind = FaultKind::kStatus;
  int times = 1;  // how many requests it applies to (-1: all)
  int status = 500;
  uint64_t after_bytes = 0;
  size_t chunk = 4096;
  std::chrono::milliseconds delay{5};
};

// What the hub saw of one request.
struct SeenRequest {
  std::string path;   // the decoded request path
  std::string range;  // the Range header or ""
  std::string auth;   // the Authorization header or ""
  std::string host;   // the Host header
};

class FakeHub {
 public:
  FakeHub();
  ~FakeHub();
  FakeHub(const FakeHub&) = delete;
  FakeHub& operator=(const FakeHub&) = delete;

  // Listens on 127.0.0.1:0. Call once, after or before adding repositories.
  Status start();
  uint16_t port() const;
  std::string endpoint() const;  // "http://127.0.0.1:PORT/"

  // Adds (or replaces) a repository at `commit` (default: derived from the repo id).
  void add_repo(const std::string& repo, std::vector<HubFile> files, std::string commit = "");
  std::string commit_of(const std::string& repo) const;
  // The digests the tree lists for a file.
  std::string sha256_of(const std::string& repo, const std::string& path) const;
  std::string git_oid_of(const std::string& repo, const std::string& path) const;
  uint64_t size_of(const std::string& repo, const std::string& path) const;

  // A model-url file at /urls/{name}.
  void add_url_file(const std::string& name, std::string content, std::string etag);

  void fault_file(const std::string& path, Fault fault);  // path inside the repo, or "*"
  void fault_api(int status, int times);                  // the next API calls answer `status`
  void clear_faults();

  // Requests seen so far whose decoded path ends with `suffix` (a repo file path, "/refs"...).
  std::vector<SeenRequest> seen(const std::string& suffix) const;
  // Body bytes sent for file routes so far.
  uint64_t body_bytes_sent() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// SHA-256 (lower-case hex) of bytes, as the hub lists lfs.oid.
std::string sha256_hex(const std::string& bytes);

}  // namespace hangar::testing
