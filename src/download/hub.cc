// The hub's API on top of transfer.h.
#include "download/hub.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/json_limits.h"
#include "download/cache.h"
#include "download/transfer.h"

namespace hangar::download {
namespace {

using nlohmann::json;

constexpr size_t kMaxApiBody = 64 << 20;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// RFC 3986 unreserved characters pass; everything else is %XX.
std::string percent_encode(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

bool is_hex(const std::string& s, size_t len) {
  if (s.size() != len) return false;
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// One API GET with retries on network errors, 429 and 5xx; the body of a 200.
StatusOr<std::string> api_get(const std::string& url, const Options& o, const CancelToken& cancel) {
  std::chrono::milliseconds delay = o.retry_delay;
  Status last;
  for (int i = 1; i <= std::max(1, o.max_attempts); ++i) {
    if (i > 1) {
      spdlog::warn("{} (attempt {}); retrying in {} ms", last.message(), i - 1, delay.count());
      if (cancel.wait_for(delay)) return cancelled_error("download: cancelled");
      delay *= 2;
    }
    auto r = http_get(url, o.token, o.connect_timeout, o.api_timeout, kMaxApiBody);
    if (!r.ok()) {
      last = r.status();
      continue;
    }
    if (r->status == 200) return std::move(r->body);
    std::string msg = "download: " + url + " answered " + std::to_string(r->status);
    if (r->status == 429 || r->status >= 500) {
      last = unavailable_error(msg);
      continue;
    }
    if (r->status == 404) return not_found_error(msg + " (no such repository or revision)");
    if (r->status == 401 || r->status == 403) {
      return failed_precondition_error(msg + "; a gated or private repository needs HF_TOKEN");
    }
    return unavailable_error(msg);
  }
  return last;
}

StatusOr<json> parse_json(const std::string& body, const std::string& url) {
  if (Status s = check_json_depth(body, 32); !s.ok()) {
    return unavailable_error("download: " + url + ": " + s.message());
  }
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return unavailable_error("download: " + url + " answered invalid JSON");
  return j;
}

}  // namespace

Options effective_options(const Options& options) {
  Options o = options;
  if (o.endpoint.empty()) o.endpoint = env("MODEL_ENDPOINT");
  if (o.endpoint.empty()) o.endpoint = env("HF_ENDPOINT");
  if (o.endpoint.empty()) o.endpoint = "https://huggingface.co/";
  if (o.endpoint.back() != '/') o.endpoint += '/';
  if (o.token.empty()) o.token = env("HF_TOKEN");
  const std::string off = env("LLAMA_OFFLINE");
  if (!off.empty() && off != "0" && off != "false") o.offline = true;
  if (o.cache_dir.empty()) o.cache_dir = writable_root(options);
  return o;
}

bool safe_relative_path(const std::string& path) {
  if (path.empty() || path.size() > 4096 || path.front() == '/') return false;
  size_t start = 0;
  for (;;) {
    size_t slash = path.find('/', start);
    std::string part =
        path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  for (char c : path) {
    if (c == '\\' || c == '\0') return false;
  }
  return true;
}

std::string resolve_url(const Options& o, const std::string& repo, const std::string& commit,
                        const std::string& path) {
  std::string encoded;
  size_t start = 0;
  for (;;) {  // each part percent-encoded, the slashes kept
    size_t slash = path.find('/', start);
    encoded += percent_encode(
        path.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) break;
    encoded += '/';
    start = slash + 1;
  }
  return o.endpoint + repo + "/resolve/" + commit + "/" + encoded;
}

StatusOr<RepoTree> fetch_tree(const std::string& repo, const Options& o,
                              const CancelToken& cancel) {
  RepoTree tree;
  const std::string refs_url = o.endpoint + "api/models/" + repo + "/refs";
  HANGAR_ASSIGN_OR_RETURN(std::string refs_body, api_get(refs_url, o, cancel));
  HANGAR_ASSIGN_OR_RETURN(json refs, parse_json(refs_body, refs_url));
  if (refs.is_object() && refs.contains("branches") && refs["branches"].is_array()) {
    for (const json& b : refs["branches"]) {
      if (b.is_object() && b.value("name", json()).is_string() && b["name"] == "main" &&
          b.contains("targetCommit") && b["targetCommit"].is_string()) {
        tree.commit = b["targetCommit"].get<std::string>();
      }
    }
  }
  if (!is_hex(tree.commit, 40)) {
    return unavailable_error("download: " + refs_url + " names no 40-hex commit of branch main");
  }
  const std::string tree_url =
      o.endpoint + "api/models/" + repo + "/tree/" + tree.commit + "?recursive=true";
  HANGAR_ASSIGN_OR_RETURN(std::string tree_body, api_get(tree_url, o, cancel));
  HANGAR_ASSIGN_OR_RETURN(json entries, parse_json(tree_body, tree_url));
  if (!entries.is_array()) return unavailable_error("download: " + tree_url + " is not an array");
  for (const json& e : entries) {
    if (!e.is_object() || !e.contains("type") || e["type"] != "file") continue;
    if (!e.contains("path") || !e["path"].is_string()) continue;
    RemoteFile f;
    f.path = e["path"].get<std::string>();
    if (!safe_relative_path(f.path)) {
      spdlog::warn("download: {} lists an unsafe path; ignored", tree_url);
      continue;
    }
    if (e.contains("size") && e["size"].is_number_unsigned()) f.size = e["size"].get<uint64_t>();
    if (e.contains("oid") && e["oid"].is_string()) f.oid = e["oid"].get<std::string>();
    if (e.contains("lfs") && e["lfs"].is_object()) {
      const json& lfs = e["lfs"];
      if (lfs.contains("oid") && lfs["oid"].is_string()) f.sha256 = lfs["oid"].get<std::string>();
      if (lfs.contains("size") && lfs["size"].is_number_unsigned())
        f.size = lfs["size"].get<uint64_t>();
      if (!is_hex(f.sha256, 64)) continue;
      f.oid = f.sha256;
    } else if (!is_hex(f.oid, 40)) {
      continue;
    }
    for (char& c : f.oid) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (char& c : f.sha256) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    tree.files.push_back(std::move(f));
  }
  return tree;
}

}  // namespace hangar::download
