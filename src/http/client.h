#pragma once
// Blocking HTTP/1.1 clients for tests, the router's fake worker and health polls: one-shot
// fetch(), a keep-alive Client, and a streaming fetch that calls back per body piece as it
// arrives (for causal SSE tests). Each call runs its own private io_context on the caller's
// thread; nothing here touches a Server's io threads. (The proxy path uses http/upstream.h.)
//
// Thread-safety: fetch()/fetch_stream() are reentrant. A Client is used by one thread at a time.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "http/message.h"

namespace hangar::http {

// "http://host:port/target", "host:port/target" or "host:port" (target "/").
struct Url {
  std::string host;
  uint16_t port = 80;
  std::string target = "/";
};
StatusOr<Url> parse_url(std::string_view url);

struct FetchOptions {
  std::string method = "GET";
  std::string body;
  Headers headers;  // Host and Content-Length are set for you
  // The whole exchange (connect, send, receive) must finish within this; DeadlineExceeded
  // otherwise. For fetch_stream it is the longest wait for the next byte.
  std::chrono::milliseconds timeout{30'000};
  size_t max_body_bytes = 256 * 1024 * 1024;  // a larger response is ResourceExhausted
  // Non-empty: connect to this Unix socket instead of the URL's host:port (as curl's
  // --unix-socket; the URL still gives the target and the Host header).
  std::string unix_socket;
};

// One request on a fresh connection (Connection: close). Any status code is a successful
// StatusOr; transport failures are Unavailable (refused), DeadlineExceeded, or DataLoss
// (connection closed mid-response).
StatusOr<Response> fetch(std::string_view url, const FetchOptions& options = {});
// Shorthand: fetch(url, {method, body, headers, timeout}).
StatusOr<Response> fetch(std::string_view method, std::string_view url, std::string body = {},
                         Headers headers = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Streams one response: on_head(status, headers) once, then on_body(piece) for each piece of
// body as it comes off the socket (chunk boundaries are not preserved; feed an SseParser for
// events). on_body returning false stops reading and closes the connection (Cancelled).
// Returns OK after the complete body.
Status fetch_stream(std::string_view url, const FetchOptions& options,
                    const std::function<void(int status, const Headers& headers)>& on_head,
                    const std::function<bool(std::string_view piece)>& on_body);

// A keep-alive connection to one host:port, reconnecting when the server closed it.
class Client {
 public:
  Client(std::string host, uint16_t port);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends `method target` on the current connection (a new one if none is open).
  StatusOr<Response> request(std::string_view method, std::string_view target,
                             std::string body = {}, Headers headers = {},
                             std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // How many TCP connections this client opened so far.
  int connections_opened() const;
  // Closes the connection now.
  void close();

  struct Impl;  // internal

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace hangar::http
