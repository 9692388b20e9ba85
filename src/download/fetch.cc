// Single-flight file downloads with resume, verification, retry and stall detection.
#include "download/fetch.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include "download/hasher.h"
#include "download/transfer.h"

namespace hangar::download {
namespace {

// Every unfinished flight by blob path. Leaked on purpose: detached flight threads may still
// touch it while the process exits.
struct Table {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<Flight>> flights;  // guarded by mu
};
Table& table() {
  static Table* t = new Table();
  return *t;
}

uint64_t file_size_or_zero(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

bool write_all(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// "bytes 100-999/1000" → 100; nullopt when malformed.
std::optional<uint64_t> range_start(const std::string& cr) {
  size_t sp = cr.find(' ');
  if (sp == std::string::npos) return std::nullopt;
  char* end = nullptr;
  unsigned long long v = std::strtoull(cr.c_str() + sp + 1, &end, 10);
  if (!end || *end != '-') return std::nullopt;
  return v;
}

}  // namespace

uint64_t Flight::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

bool Flight::finished() const {
  std::lock_guard<std::mutex> lock(mu_);
  return finished_;
}

bool Flight::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return finished_; });
}

Status Flight::result() const {
  std::lock_guard<std::mutex> lock(mu_);
  return result_;
}

bool Flight::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancel_;
}

bool Flight::join() {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_ || cancel_) return false;
  ++waiters_;
  return true;
}

bool Flight::leave() {
  Table& t = table();
  std::lock_guard<std::mutex> tl(t.mu);
  std::lock_guard<std::mutex> lock(mu_);
  if (--waiters_ > 0 || finished_) return false;
  cancel_ = true;
  cv_.notify_all();
  // New callers start a new flight (which waits for this one to clean up first).
  auto it = t.flights.find(job_.blob);
  if (it != t.flights.end() && it->second.get() == this) t.flights.erase(it);
  return true;
}

std::shared_ptr<Flight> start_or_join(const FileJob& job) {
  Table& t = table();
  std::lock_guard<std::mutex> tl(t.mu);
  std::shared_ptr<Flight> previous;
  auto it = t.flights.find(job.blob);
  if (it != t.flights.end()) {
    if (it->second->join()) return it->second;
    previous = it->second;
  }
  auto flight = std::make_shared<Flight>(job);
  flight->join();
  t.flights[job.blob] = flight;
  std::thread([flight, previous] { flight->run(previous); }).detach();
  return flight;
}

void Flight::run(std::shared_ptr<Flight> previous) {
  // A cancelled predecessor may still be removing the same partial file.
  while (previous && !previous->wait_for(std::chrono::milliseconds(100))) {
    if (cancelled()) break;
  }
  Status s = cancelled() ? cancelled_error("download: '" + job_.file.path + "' cancelled")
                         : transfer_with_retries();
  if (!s.ok() && s.code() == StatusCode::kCancelled) {
    std::error_code ec;
    std::filesystem::remove(job_.blob + ".downloadInProgress", ec);
  }
  {
    Table& t = table();
    std::lock_guard<std::mutex> tl(t.mu);
    auto it = t.flights.find(job_.blob);
    if (it != t.flights.end() && it->second.get() == this) t.flights.erase(it);
  }
  std::lock_guard<std::mutex> lock(mu_);
  result_ = s;
  finished_ = true;
  cv_.notify_all();
}

Status Flight::transfer_with_retries() {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(job_.blob).parent_path(), ec);
  if (ec)
    return unavailable_error("download: cannot create the folder of '" + job_.blob +
                             "': " + ec.message());
  const int attempts = std::max(1, job_.options.max_attempts);
  std::chrono::milliseconds delay = job_.options.retry_delay;
  Status last;
  for (int i = 1; i <= attempts; ++i) {
    bool retryable = false;
    last = attempt(&retryable);
    if (last.ok() || !retryable || last.code() == StatusCode::kCancelled) return last;
    if (i == attempts) break;
    spdlog::warn("download: {} (attempt {} of {}); retrying in {} ms", last.message(), i, attempts,
                 delay.count());
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, delay, [&] { return cancel_; })) {
      return cancelled_error("download: '" + job_.file.path + "' cancelled");
    }
    delay *= 2;
  }
  return last.with_context("after " + std::to_string(attempts) + " attempts");
}

Status Flight::attempt(bool* retryable) {
  const RemoteFile& f = job_.file;
  const std::string partial = job_.blob + ".downloadInProgress";
  const std::string what = "download: '" + f.path + "'";
  uint64_t offset = file_size_or_zero(partial);
  if (offset > f.size) {
    ::unlink(partial.c_str());
    offset = 0;
  }
  int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return unavailable_error(what + ": cannot open '" + partial + "': " + strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::ftruncate(fd, static_cast<off_t>(offset)) != 0 ||
      ::lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) {
    return unavailable_error(what + ": cannot seek '" + partial + "': " + strerror(errno));
  }
  const Hasher::Kind kind = f.sha256.empty() ? Hasher::Kind::kGitSha1 : Hasher::Kind::kSha256;
  auto hasher = std::make_unique<Hasher>(kind, f.size);
  const bool resumed = offset > 0;
  if (resumed) HANGAR_RETURN_IF_ERROR(hash_file_prefix(partial, offset, *hasher));
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = offset;
  }

  Status body_error;
  bool stop_retrying = false;
  if (offset < f.size) {
    StreamRequest req;
    req.url = job_.url;
    req.token = job_.options.token;
    req.connect_timeout = job_.options.connect_timeout;
    req.stall_timeout = job_.options.stall_timeout;
    if (offset > 0) req.headers.push_back("Range: bytes=" + std::to_string(offset) + "-");
    req.cancelled = [this] { return cancelled(); };
    req.on_head = [&](const ResponseHead& h) {
      if (h.status == 206 && offset > 0) {
        if (range_start(h.content_range) != offset) {
          body_error = unavailable_error(what + ": the server resumed at '" + h.content_range +
                                         "', not at byte " + std::to_string(offset));
          ::unlink(partial.c_str());
          return false;
        }
      } else if (h.status == 200) {
        if (offset > 0) {  // Range ignored: start over
          offset = 0;
          hasher = std::make_unique<Hasher>(kind, f.size);
          if (::ftruncate(fd, 0) != 0 || ::lseek(fd, 0, SEEK_SET) < 0) {
            body_error = unavailable_error(what + ": cannot truncate '" + partial + "'");
            return false;
          }
          std::lock_guard<std::mutex> lock(mu_);
          done_ = 0;
        }
      } else {
        std::string status = std::to_string(h.status);
        if (h.status == 416) {
          ::unlink(partial.c_str());
          body_error = unavailable_error(what + ": the server refused the range from byte " +
                                         std::to_string(offset) + " (416); starting over");
        } else if (h.status == 429 || h.status >= 500) {
          body_error = unavailable_error(
              what + ": " + job_.url + " answered " + status +
              (h.retry_after.empty() ? "" : " (Retry-After " + h.retry_after + ")"));
        } else {
          stop_retrying = true;
          std::string hint = (h.status == 401 || h.status == 403)
                                 ? "; a gated or private repository needs HF_TOKEN"
                                 : "";
          body_error =
              failed_precondition_error(what + ": " + job_.url + " answered " + status + hint);
        }
        return false;
      }
      if (h.content_length && offset + *h.content_length != f.size) {
        stop_retrying = true;
        body_error = data_loss_error(what + ": the server sends " +
                                     std::to_string(offset + *h.content_length) +
                                     " bytes but the hub lists " + std::to_string(f.size));
        return false;
      }
      return true;
    };
    req.on_body = [&](const char* data, size_t n) {
      if (offset + n > f.size) {
        stop_retrying = true;
        body_error = data_loss_error(what + ": the server sent more than the " +
                                     std::to_string(f.size) + " bytes the hub lists");
        return false;
      }
      if (!write_all(fd, data, n)) {
        stop_retrying = true;
        body_error =
            unavailable_error(what + ": cannot write '" + partial + "': " + strerror(errno));
        return false;
      }
      hasher->update(data, n);
      offset += n;
      std::lock_guard<std::mutex> lock(mu_);
      done_ = offset;
      return true;
    };
    StreamOutcome out = stream_get(req);
    if (out.cancelled || cancelled()) return cancelled_error(what + " cancelled");
    if (!body_error.ok()) {
      if (body_error.code() == StatusCode::kDataLoss) ::unlink(partial.c_str());
      *retryable = !stop_retrying;
      return body_error;
    }
    if (!out.complete) {
      *retryable = true;
      return unavailable_error(what + ": " + out.error + " at byte " + std::to_string(offset) +
                               " of " + std::to_string(f.size));
    }
    if (offset != f.size) {
      *retryable = true;
      return unavailable_error(what + ": the body ended at byte " + std::to_string(offset) +
                               " of " + std::to_string(f.size));
    }
  }
  if (::fsync(fd) != 0) {
    return unavailable_error(what + ": cannot sync '" + partial + "': " + strerror(errno));
  }
  const std::string actual = hasher->finish_hex();
  const std::string& expected = f.sha256.empty() ? f.oid : f.sha256;
  if (actual != expected) {
    ::unlink(partial.c_str());
    // A resumed prefix may be what was wrong: one more try from byte 0.
    *retryable = resumed;
    return data_loss_error(what + ": " + (f.sha256.empty() ? "git SHA-1" : "SHA-256") + " is " +
                           actual + " but the hub lists " + expected + "; the file was deleted");
  }
  if (::rename(partial.c_str(), job_.blob.c_str()) != 0) {
    return unavailable_error(what + ": cannot rename to '" + job_.blob + "': " + strerror(errno));
  }
  return ok_status();
}

}  // namespace hangar::download
