// `model-url` sources: one file by URL into <root>/url/<hash>/<name>, with its ETag and size in
// <name>.json beside it. Reused when the server answers the ETag with 304, when offline, or when
// the server fails; the body's size is checked against Content-Length.
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "download/cache.h"
#include "download/download.h"
#include "download/hasher.h"
#include "download/hub.h"
#include "download/transfer.h"

namespace hangar::download {
namespace fs = std::filesystem;
namespace {

using nlohmann::json;

struct Meta {
  std::string etag;
  uint64_t size = 0;
};

std::optional<Meta> read_meta(const std::string& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  json j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("etag") || !j["etag"].is_string() || !j.contains("size") ||
      !j["size"].is_number_unsigned()) {
    return std::nullopt;
  }
  return Meta{j["etag"].get<std::string>(), j["size"].get<uint64_t>()};
}

std::string file_name_of(std::string_view url) {
  std::string u(url.substr(0, url.find_first_of("?#")));
  std::string name = u.substr(u.rfind('/') + 1);
  if (name.empty() || name == "." || name == "..") name = "model.gguf";
  for (char& c : name) {
    if (c == '\\' || c == '\0') c = '_';
  }
  return name;
}

}  // namespace

StatusOr<std::string> ensure_url(std::string_view url_text, const Options& options,
                                 const ProgressCallback& progress, const CancelToken& cancel) {
  const Options o = effective_options(options);
  const std::string url(url_text);
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    return invalid_argument_error("download: model-url '" + url + "' is not an http(s) URL");
  }
  Hasher h(Hasher::Kind::kSha256, 0);
  h.update(url.data(), url.size());
  const std::string dir = o.cache_dir + "/url/" + h.finish_hex().substr(0, 16);
  const std::string name = file_name_of(url);
  const std::string file = dir + "/" + name;
  const std::string meta_path = file + ".json";
  const std::string partial = file + ".downloadInProgress";

  std::optional<Meta> meta = read_meta(meta_path);
  std::error_code ec;
  const bool cached =
      meta && fs::is_regular_file(file, ec) && fs::file_size(file, ec) == meta->size;
  if (o.offline) {
    if (cached) return file;
    return not_found_error("download: offline and model-url " + url + " is not in the cache (" +
                           file + ")");
  }
  fs::create_directories(dir, ec);
  if (ec) return unavailable_error("download: cannot create '" + dir + "': " + ec.message());

  Status last;
  std::chrono::milliseconds delay = o.retry_delay;
  for (int attempt = 1; attempt <= std::max(1, o.max_attempts); ++attempt) {
    if (attempt > 1) {
      if (cancel.wait_for(delay)) break;
      delay *= 2;
    }
    FILE* out = std::fopen(partial.c_str(), "wb");
    if (!out) return unavailable_error("download: cannot write '" + partial + "'");
    Status head_error;
    bool retryable = true;
    uint64_t written = 0;
    uint64_t total = 0;
    StreamRequest req;
    req.url = url;
    req.token = o.token;
    req.connect_timeout = o.connect_timeout;
    req.stall_timeout = o.stall_timeout;
    if (cached && !meta->etag.empty()) req.headers.push_back("If-None-Match: " + meta->etag);
    req.cancelled = [&] { return cancel.cancelled(); };
    ResponseHead head;
    req.on_head = [&](const ResponseHead& hd) {
      head = hd;
      if (hd.status == 304) return true;
      if (hd.status != 200) {
        retryable = hd.status == 429 || hd.status >= 500;
        head_error = unavailable_error("download: model-url " + url + " answered " +
                                       std::to_string(hd.status));
        return false;
      }
      total = hd.content_length.value_or(0);
      if (total > 0) {
        auto free = o.free_space ? o.free_space(dir) : StatusOr<uint64_t>(uint64_t{0});
        if (!o.free_space) {
          struct statvfs st;
          if (::statvfs(dir.c_str(), &st) == 0)
            free = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
          else
            free = std::numeric_limits<uint64_t>::max();
        }
        if (free.ok() && *free < total) {
          retryable = false;
          head_error = resource_exhausted_error("download: model-url " + url + " needs " +
                                                std::to_string(total) + " bytes but only " +
                                                std::to_string(*free) + " are free in " + dir);
          return false;
        }
      }
      return true;
    };
    req.on_body = [&](const char* data, size_t n) {
      if (head.status == 304) return true;
      if (std::fwrite(data, 1, n, out) != n) {
        retryable = false;
        head_error = unavailable_error("download: cannot write '" + partial + "'");
        return false;
      }
      written += n;
      if (progress) {
        Progress p;
        p.files.push_back({name, written, std::max(total, written)});
        p.done = written;
        p.total = std::max(total, written);
        progress(p);
      }
      return true;
    };
    StreamOutcome res = stream_get(req);
    const bool flushed = std::fclose(out) == 0;
    if (res.complete && head.status == 304) {
      ::unlink(partial.c_str());
      return file;
    }
    if (res.cancelled) {
      ::unlink(partial.c_str());
      return cancelled_error("download: model-url " + url + " cancelled");
    }
    if (res.complete && flushed) {
      if (head.content_length && written != *head.content_length) {
        ::unlink(partial.c_str());
        last = data_loss_error("download: model-url " + url + " sent " + std::to_string(written) +
                               " bytes but Content-Length said " +
                               std::to_string(*head.content_length));
        continue;
      }
      fs::rename(partial, file, ec);
      if (ec)
        return unavailable_error("download: cannot rename to '" + file + "': " + ec.message());
      std::ofstream m(meta_path, std::ios::trunc);
      m << json{{"url", url}, {"etag", head.etag}, {"size", written}}.dump();
      return file;
    }
    ::unlink(partial.c_str());
    last = head_error.ok() ? unavailable_error("download: model-url " + url + ": " + res.error)
                           : head_error;
    if (!retryable) break;
  }
  if (cancel.cancelled()) return cancelled_error("download: model-url " + url + " cancelled");
  if (cached && last.code() != StatusCode::kResourceExhausted) {
    spdlog::warn("{}; using the cached copy {}", last.message(), file);
    return file;
  }
  return last;
}

}  // namespace hangar::download
