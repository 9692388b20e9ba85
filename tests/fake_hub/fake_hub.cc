// FakeHub: routes, Range, faults. Bodies stream from memory or from a file with pread, paced by
// the responder's backpressure (on_drained), so a large file never sits in a buffer whole.
#include "fake_hub.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "http/server.h"

namespace hangar::testing {
namespace {

using http::Headers;
using http::Request;
using http::Responder;
using http::Response;
using nlohmann::json;

std::string digest_hex(const EVP_MD* md, const std::string& prefix, const std::string& path,
                       const std::string& content) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, md, nullptr);
  if (!prefix.empty()) EVP_DigestUpdate(ctx, prefix.data(), prefix.size() + 1);
  if (path.empty()) {
    EVP_DigestUpdate(ctx, content.data(), content.size());
  } else {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> buf(1 << 20);
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(in.gcount()));
    }
  }
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, d, &n);
  EVP_MD_CTX_free(ctx);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out += kHex[d[i] >> 4];
    out += kHex[d[i] & 15];
  }
  return out;
}

struct StoredFile {
  HubFile file;
  uint64_t size = 0;
  std::string sha256;
  std::string git_oid;
};

struct Repo {
  std::string commit;
  std::vector<StoredFile> files;  // tree order
};

struct UrlFile {
  std::string content;
  std::string etag;
};

// One streamed body: [pos, end) of a file, with the fault that shapes it.
struct Stream : std::enable_shared_from_this<Stream> {
  std::shared_ptr<Responder> r;
  http::Server* server = nullptr;
  std::shared_ptr<const StoredFile> file;
  int fd = -1;
  uint64_t pos = 0;
  uint64_t end = 0;
  std::optional<Fault> fault;
  std::atomic<uint64_t>* sent = nullptr;

  ~Stream() {
    if (fd >= 0) ::close(fd);
  }

  std::string read(uint64_t at, size_t n) {
    std::string out;
    if (file->file.source.empty()) {
      out = file->file.content.substr(at, n);
    } else {
      out.resize(n);
      ssize_t got = ::pread(fd, out.data(), n, static_cast<off_t>(at));
      out.resize(got > 0 ? static_cast<size_t>(got) : 0);
    }
    if (fault && fault->kind == FaultKind::kCorrupt && fault->after_bytes >= at &&
        fault->after_bytes < at + out.size()) {
      out[fault->after_bytes - at] ^= 0x5a;
    }
    return out;
  }

  void pump() {
    auto self = shared_from_this();
    while (pos < end) {
      if (r->is_closed()) return;
      size_t chunk = 256 * 1024;
      if (fault && fault->kind == FaultKind::kTrickle) chunk = fault->chunk;
      if (fault && (fault->kind == FaultKind::kDrop || fault->kind == FaultKind::kStall)) {
        if (pos >= fault->after_bytes) {
          if (fault->kind == FaultKind::kDrop) {
            r->abort();
          } else {
            // Hold the connection open, silent, until the client gives up (or 30 s pass).
            server->run_after(std::chrono::seconds(30), [self] { self->r->abort(); });
          }
          return;
        }
        chunk = static_cast<size_t>(std::min<uint64_t>(chunk, fault->after_bytes - pos));
      }
      chunk = static_cast<size_t>(std::min<uint64_t>(chunk, end - pos));
      std::string bytes = read(pos, chunk);
      if (bytes.empty()) {
        r->abort();
        return;
      }
      pos += bytes.size();
      sent->fetch_add(bytes.size());
      r->write(std::move(bytes));
      if (pos >= end) break;
      if (fault && fault->kind == FaultKind::kTrickle) {
        server->run_after(fault->delay, [self] { self->pump(); });
        return;
      }
      if (r->buffered_bytes() > Responder::kHighWaterBytes) {
        r->on_drained([self] { self->pump(); });
        return;
      }
    }
    if (pos >= end) r->finish();
  }
};

}  // namespace

struct FakeHub::Impl {
  http::Server server{[] {
    http::ServerOptions o;
    o.threads = 2;
    o.idle_timeout = std::chrono::milliseconds(120'000);
    return o;
  }()};
  mutable std::mutex mu;
  std::map<std::string, Repo> repos;                      // guarded by mu
  std::map<std::string, UrlFile> urls;                    // guarded by mu
  std::map<std::string, std::vector<Fault>> file_faults;  // guarded by mu
  int api_fault_status = 0;                               // guarded by mu
  int api_fault_times = 0;                                // guarded by mu
  std::vector<SeenRequest> seen;                          // guarded by mu
  std::atomic<uint64_t> sent{0};

  std::optional<Fault> take_fault(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu);
    for (const std::string& key : {path, std::string("*")}) {
      auto it = file_faults.find(key);
      if (it == file_faults.end() || it->second.empty()) continue;
      Fault f = it->second.front();
      if (it->second.front().times > 0 && --it->second.front().times == 0) {
        it->second.erase(it->second.begin());
      }
      return f;
    }
    return std::nullopt;
  }

  void handle(Request req, std::shared_ptr<Responder> r) {
    {
      std::lock_guard<std::mutex> lock(mu);
      seen.push_back({req.path, req.headers.get_or("Range", ""),
                      req.headers.get_or("Authorization", ""), req.headers.get_or("Host", "")});
    }
    if (req.method != "GET") {
      r->send(http::error_response(405, "GET only", "invalid_request_error"));
      return;
    }
    std::vector<std::string> parts;
    for (size_t start = 1; start <= req.path.size();) {
      size_t slash = req.path.find('/', start);
      if (slash == std::string::npos) slash = req.path.size();
      parts.push_back(req.path.substr(start, slash - start));
      start = slash + 1;
    }
    auto rest = [&](size_t from) {
      std::string out;
      for (size_t i = from; i < parts.size(); ++i) out += (out.empty() ? "" : "/") + parts[i];
      return out;
    };
    if (parts.size() >= 5 && parts[0] == "api" && parts[1] == "models") {
      api(parts[2] + "/" + parts[3], parts, r);
    } else if (parts.size() >= 5 && parts[2] == "resolve") {
      file(req, parts[0] + "/" + parts[1], parts[3], rest(4), /*may_fault=*/true, r);
    } else if (parts.size() >= 4 && parts[0] == "cdn") {
      std::string repo = parts[1] + "/" + parts[2];
      file(req, repo, "main", rest(3), /*may_fault=*/false, r);
    } else if (parts.size() == 2 && parts[0] == "urls") {
      url(req, parts[1], r);
    } else {
      r->send(http::error_response(404, "no route " + req.path, "not_found_error"));
    }
  }

  void api(const std::string& repo_id, const std::vector<std::string>& parts,
           const std::shared_ptr<Responder>& r) {
    std::unique_lock<std::mutex> lock(mu);
    if (api_fault_times != 0) {
      if (api_fault_times > 0) --api_fault_times;
      int status = api_fault_status;
      lock.unlock();
      Response resp = http::error_response(status, "injected", "server_error");
      if (status == 429) resp.headers.add("Retry-After", "0");
      r->send(resp);
      return;
    }
    auto it = repos.find(repo_id);
    if (it == repos.end()) {
      lock.unlock();
      r->send(Response::json(404, R"({"error":"Repository not found"})"));
      return;
    }
    const Repo& repo = it->second;
    if (parts.size() == 5 && parts[4] == "refs") {
      json j = {
          {"branches",
           json::array(
               {{{"name", "main"}, {"ref", "refs/heads/main"}, {"targetCommit", repo.commit}}})},
          {"tags", json::array()},
          {"converts", json::array()}};
      lock.unlock();
      r->send(Response::json(200, j.dump()));
      return;
    }
    if (parts.size() == 6 && parts[4] == "tree") {
      if (parts[5] != repo.commit && parts[5] != "main") {
        lock.unlock();
        r->send(Response::json(404, R"({"error":"Revision not found"})"));
        return;
      }
      json arr = json::array();
      for (const StoredFile& f : repo.files) {
        json e = {{"type", "file"}, {"path", f.file.path}, {"size", f.size}, {"oid", f.git_oid}};
        if (f.file.lfs) e["lfs"] = {{"oid", f.sha256}, {"size", f.size}, {"pointerSize", 134}};
        arr.push_back(e);
      }
      lock.unlock();
      r->send(Response::json(200, arr.dump()));
      return;
    }
    lock.unlock();
    r->send(http::error_response(404, "no such API route", "not_found_error"));
  }

  void file(const Request& req, const std::string& repo_id, const std::string& rev,
            const std::string& path, bool may_fault, const std::shared_ptr<Responder>& r) {
    std::shared_ptr<const StoredFile> stored;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = repos.find(repo_id);
      if (it != repos.end() && (rev == it->second.commit || rev == "main")) {
        for (const StoredFile& f : it->second.files) {
          if (f.file.path == path) stored = std::make_shared<StoredFile>(f);
        }
      }
    }
    if (!stored) {
      r->send(Response::json(404, R"({"error":"Entry not found"})"));
      return;
    }
    std::optional<Fault> fault = may_fault ? take_fault(path) : std::nullopt;
    if (fault && fault->kind == FaultKind::kStatus) {
      Response resp = http::error_response(fault->status, "injected", "server_error");
      if (fault->status == 429 || fault->status == 503) resp.headers.add("Retry-After", "0");
      r->send(resp);
      return;
    }
    if (fault &&
        (fault->kind == FaultKind::kRedirect || fault->kind == FaultKind::kRedirectOtherHost)) {
      Response resp;
      resp.status = 302;
      std::string host = fault->kind == FaultKind::kRedirect ? "127.0.0.1" : "localhost";
      resp.headers.add("Location", "http://" + host + ":" + std::to_string(server.port()) +
                                       "/cdn/" + repo_id + "/" + path);
      r->send(resp);
      return;
    }
    uint64_t begin = 0;
    bool ranged = false;
    std::string range = req.headers.get_or("Range", "");
    if (!range.empty() && range.rfind("bytes=", 0) == 0 &&
        !(fault && fault->kind == FaultKind::kIgnoreRange)) {
      begin = std::strtoull(range.c_str() + 6, nullptr, 10);
      ranged = true;
      if (begin >= stored->size) {
        Response resp = Response::text(416, "range not satisfiable");
        resp.headers.add("Content-Range", "bytes */" + std::to_string(stored->size));
        r->send(resp);
        return;
      }
    }
    auto s = std::make_shared<Stream>();
    s->r = r;
    s->server = &server;
    s->file = stored;
    s->pos = begin;
    s->end = stored->size;
    s->fault = fault;
    s->sent = &sent;
    if (!stored->file.source.empty()) {
      s->fd = ::open(stored->file.source.c_str(), O_RDONLY | O_CLOEXEC);
      if (s->fd < 0) {
        r->send(http::error_response(500, "cannot open " + stored->file.source, "server_error"));
        return;
      }
    }
    Headers h;
    h.add("Content-Type", "application/octet-stream");
    h.add("Accept-Ranges", "bytes");
    h.add("ETag", "\"" + stored->sha256 + "\"");
    h.add("Content-Length", std::to_string(stored->size - begin));
    if (ranged) {
      h.add("Content-Range", "bytes " + std::to_string(begin) + "-" +
                                 std::to_string(stored->size - 1) + "/" +
                                 std::to_string(stored->size));
    }
    if (!r->start(ranged ? 206 : 200, h)) return;
    s->pump();
  }

  void url(const Request& req, const std::string& name, const std::shared_ptr<Responder>& r) {
    UrlFile u;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = urls.find(name);
      if (it == urls.end()) {
        r->send(Response::text(404, "no such file"));
        return;
      }
      u = it->second;
    }
    std::optional<Fault> fault = take_fault("urls/" + name);
    if (fault && fault->kind == FaultKind::kStatus) {
      r->send(http::error_response(fault->status, "injected", "server_error"));
      return;
    }
    if (req.headers.get_or("If-None-Match", "") == u.etag) {
      Response resp;
      resp.status = 304;
      resp.headers.add("ETag", u.etag);
      r->send(resp);
      return;
    }
    Response resp;
    resp.status = 200;
    resp.headers.add("ETag", u.etag);
    resp.headers.add("Content-Type", "application/octet-stream");
    resp.body = u.content;
    sent.fetch_add(u.content.size());
    r->send(resp);
  }
};

std::string sha256_hex(const std::string& bytes) { return digest_hex(EVP_sha256(), "", "", bytes); }

FakeHub::FakeHub() : impl_(std::make_shared<Impl>()) {
  Impl* impl = impl_.get();
  impl_->server.set_fallback(
      [impl](Request req, std::shared_ptr<Responder> r) { impl->handle(std::move(req), r); });
}

FakeHub::~FakeHub() { impl_->server.drain(std::chrono::milliseconds(0)); }

Status FakeHub::start() { return impl_->server.listen().status(); }

uint16_t FakeHub::port() const { return impl_->server.port(); }

std::string FakeHub::endpoint() const { return "http://127.0.0.1:" + std::to_string(port()) + "/"; }

void FakeHub::add_repo(const std::string& repo, std::vector<HubFile> files, std::string commit) {
  Repo r;
  r.commit = commit.empty() ? digest_hex(EVP_sha1(), "", "", "commit of " + repo) : commit;
  for (HubFile& f : files) {
    StoredFile s;
    s.size = f.source.empty()
                 ? f.content.size()
                 : static_cast<uint64_t>(
                       std::ifstream(f.source, std::ios::binary | std::ios::ate).tellg());
    s.sha256 = digest_hex(EVP_sha256(), "", f.source, f.content);
    s.git_oid = digest_hex(EVP_sha1(), "blob " + std::to_string(s.size), f.source, f.content);
    s.file = std::move(f);
    r.files.push_back(std::move(s));
  }
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->repos[repo] = std::move(r);
}

namespace {
const StoredFile* find_file(const std::map<std::string, Repo>& repos, const std::string& repo,
                            const std::string& path) {
  auto it = repos.find(repo);
  if (it == repos.end()) return nullptr;
  for (const StoredFile& f : it->second.files) {
    if (f.file.path == path) return &f;
  }
  return nullptr;
}
}  // namespace

std::string FakeHub::commit_of(const std::string& repo) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->repos.find(repo);
  return it == impl_->repos.end() ? "" : it->second.commit;
}

std::string FakeHub::sha256_of(const std::string& repo, const std::string& path) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  const StoredFile* f = find_file(impl_->repos, repo, path);
  return f ? f->sha256 : "";
}

std::string FakeHub::git_oid_of(const std::string& repo, const std::string& path) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  const StoredFile* f = find_file(impl_->repos, repo, path);
  return f ? f->git_oid : "";
}

uint64_t FakeHub::size_of(const std::string& repo, const std::string& path) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  const StoredFile* f = find_file(impl_->repos, repo, path);
  return f ? f->size : 0;
}

void FakeHub::add_url_file(const std::string& name, std::string content, std::string etag) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->urls[name] = UrlFile{std::move(content), std::move(etag)};
}

void FakeHub::fault_file(const std::string& path, Fault fault) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->file_faults[path].push_back(fault);
}

void FakeHub::fault_api(int status, int times) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->api_fault_status = status;
  impl_->api_fault_times = times;
}

void FakeHub::clear_faults() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->file_faults.clear();
  impl_->api_fault_times = 0;
}

std::vector<SeenRequest> FakeHub::seen(const std::string& suffix) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<SeenRequest> out;
  for (const SeenRequest& s : impl_->seen) {
    if (s.path.size() >= suffix.size() &&
        s.path.compare(s.path.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(s);
    }
  }
  return out;
}

uint64_t FakeHub::body_bytes_sent() const { return impl_->sent.load(); }

}  // namespace hangar::testing
