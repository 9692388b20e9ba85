#pragma once
// Upstream and forward(): the router's proxy path. An Upstream is a keep-alive connection pool
// to one worker (host:port or a Unix socket) living on a Server's io_context; forward() sends a request there and
// streams the response back through a Responder piece by piece as it arrives (SSE passes
// through with no added delay; no whole body is ever buffered), with no thread hop when the
// Responder belongs to the same Server.
//
// Hop-by-hop headers (Connection and the fields it names, Keep-Alive, Transfer-Encoding, TE,
// Trailer, Upgrade, Proxy-*) are dropped in both directions; Host is rewritten to the upstream.
// A client disconnect cancels the upstream request (that connection is closed, not pooled).
// Failures:
//  - nothing sent to the client yet (refused, reset, upstream closed before a response head):
//    the client gets 502 {"error":{"code":502,"message":…,"type":"unavailable_error"}};
//  - mid-stream (upstream died after the head): for text/event-stream a final
//    `data: {"error":{"code":502,…,"type":"unavailable_error"}}` event is written and the
//    stream finished cleanly (as llama-server ends a failed stream); other bodies are cut
//    (Responder::abort: the connection closes without the terminating chunk) so the client
//    sees the truncation.
// Small bodies with a known length (≤ 1 MiB, the usual JSON answer) are read whole and sent in
// one write; everything else streams with backpressure (the upstream is not read while the
// client is more than Responder::kHighWaterBytes behind).
// A request sent on a pooled connection that the upstream had closed meanwhile is retried once
// on a fresh connection (only when no response byte was received).
//
// Thread-safety: Upstream methods and forward() may be called from any thread. The Upstream
// must be kept alive by the caller's shared_ptr until on_done ran for every forward() (forward
// holds its own reference too).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "http/address.h"
#include "http/message.h"
#include "http/responder.h"
#include "http/server.h"

namespace hangar::http {

struct UpstreamOptions {
  size_t max_idle_connections = 64;  // pooled idle connections kept; more are closed
  std::chrono::milliseconds connect_timeout{5'000};
  // Longest silence while waiting for the response head or the next body byte; 0 = none
  // (a long generation may think for minutes before its first token).
  std::chrono::milliseconds read_timeout{0};
  size_t max_header_bytes = 64 * 1024;  // larger upstream response heads are a 502
};

struct UpstreamStats {
  uint64_t connections_opened = 0;  // connections made so far
  uint64_t requests = 0;            // requests sent (retries included)
  uint64_t idle_connections = 0;    // now in the pool
};

class Upstream {
 public:
  // A pool to `address` (TCP or a Unix socket) on `server`'s io_context. `server` must outlive
  // the Upstream.
  static std::shared_ptr<Upstream> create(Server& server, Address address,
                                          UpstreamOptions options = {});
  static std::shared_ptr<Upstream> create(Server& server, std::string host, uint16_t port,
                                          UpstreamOptions options = {});
  ~Upstream();

  const Address& address() const;
  // Closes the pooled idle connections (in-flight requests continue).
  void close_idle();
  UpstreamStats stats() const;

  struct Impl;  // internal (upstream.cc)
  Impl& impl() { return *impl_; }
  explicit Upstream(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

// What a forward() ended with, for metrics and logs.
struct ForwardResult {
  Status status;           // OK, or why it failed (Unavailable, Cancelled = client gone, ...)
  int upstream_status = 0; // the upstream's status code, 0 if none was received
  bool sent_to_client = false;  // whether anything reached the client's Responder
  uint64_t body_bytes = 0;      // response body bytes passed to the client
};

// Forwards `request` (method, target, headers, body as given; edit them before calling) to
// `upstream` and streams the answer into `responder`. Returns at once; `on_done` runs exactly
// once, on an io thread, after the last byte was handed to the responder or on failure (the
// client has already been answered as described above). Callable from any thread.
void forward(Request request, std::shared_ptr<Responder> responder,
             std::shared_ptr<Upstream> upstream, std::function<void(const ForwardResult&)> on_done);

}  // namespace hangar::http
