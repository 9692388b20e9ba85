#pragma once
// Transfer: one HTTP GET on libcurl, streamed through callbacks — the only code that includes
// curl. Follows redirects (http/https only); the bearer token goes as a custom Authorization
// header, which libcurl sends to the original host only, so a redirect to a CDN never carries it.
// A transfer that receives no body byte for `stall_timeout` is aborted and reported as stalled.
//
// Thread-safety: stream_get() and http_get() may run on many threads at once (one curl easy
// handle per call; libcurl's global init happens once, behind std::call_once).

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace hangar::download {

// The final response's head (after redirects).
struct ResponseHead {
  int status = 0;
  std::optional<uint64_t> content_length;
  std::string content_range;  // "bytes 100-999/1000" or empty
  std::string etag;
  std::string retry_after;
};

struct StreamRequest {
  std::string url;
  std::string token;                 // empty: no Authorization
  std::vector<std::string> headers;  // extra "Name: value" lines (Range, If-None-Match)
  std::chrono::milliseconds connect_timeout{30'000};
  std::chrono::milliseconds stall_timeout{60'000};
  std::chrono::milliseconds total_timeout{0};  // 0: none (files); API calls set one
  // Runs once before the first body byte (or at the end for an empty body). false: abort.
  std::function<bool(const ResponseHead&)> on_head;
  // Each body chunk. false: abort (a write error; the callback keeps its own Status).
  std::function<bool(const char* data, size_t n)> on_body;
  // Polled while the transfer runs; true: abort as cancelled.
  std::function<bool()> cancelled;
};

struct StreamOutcome {
  ResponseHead head;
  bool head_seen = false;
  bool complete = false;   // the whole body arrived (curl finished without error)
  bool stalled = false;    // aborted by the stall timeout
  bool cancelled = false;  // aborted by `cancelled`
  bool aborted = false;    // aborted by on_head/on_body returning false
  std::string error;       // curl's message when not complete
};

StreamOutcome stream_get(const StreamRequest& request);

// A small GET whose body is kept (hub API calls): Unavailable on a network error or a body over
// `max_body`; otherwise the status and body, whatever the status.
struct SmallResponse {
  int status = 0;
  std::string body;
  std::string retry_after;
};
StatusOr<SmallResponse> http_get(const std::string& url, const std::string& token,
                                 std::chrono::milliseconds connect_timeout,
                                 std::chrono::milliseconds total_timeout, size_t max_body);

}  // namespace hangar::download
