#pragma once
// Server: an HTTP/1.1 server on Boost.Beast/Asio coroutines, hidden behind this header.
//
// Keep-alive, chunked request bodies, streamed (chunked) responses and SSE, a request body size
// limit (413), 400 on malformed requests, an idle/keep-alive timeout, and a small router
// (method + exact path → handler; 404 JSON otherwise, or a fallback handler). The server also
// offers its io_context to callers as an event loop: post(), run_after() and Upstream
// (http/upstream.h) all run there, so a proxy never hops threads.
//
// Handlers run on an io thread and must not block: answer at once through the Responder, or
// keep it and answer later from any thread (an engine thread, a queue). One request per
// connection is handled at a time; a pipelined next request waits for the current response.
//
// Thread-safety: route()/set_fallback() before listen(). listen(), stop(), drain() from one
// controlling thread (not from an io thread). post(), run_after(), stats() and port() from any
// thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "http/address.h"
#include "http/message.h"
#include "http/responder.h"

namespace hangar::http {

using Handler = std::function<void(Request request, std::shared_ptr<Responder> responder)>;

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0 = the kernel picks; read it from listen() or port()
  // Non-empty: listen on this Unix socket instead of host:port (listen() then returns port 0).
  // A socket file already there is replaced; the file is removed when the server stops. The
  // caller chooses a directory others cannot enter: the socket's own mode is not relied on.
  std::string unix_path;
  int threads = 1;    // io threads
  size_t max_body_bytes = 16 * 1024 * 1024;  // larger request bodies → 413
  size_t max_header_bytes = 64 * 1024;       // larger request heads → 431
  // A connection with no request in progress (idle keep-alive, or a client still sending its
  // request) is closed after this long.
  std::chrono::milliseconds idle_timeout{60'000};
  // A streamed response whose unsent bytes exceed this is aborted (a client that stopped
  // reading cannot grow our memory without bound).
  size_t max_buffered_bytes = 8 * 1024 * 1024;
  // Open connections at most; at the cap the listener stops accepting until one closes (the
  // kernel's backlog holds the newcomers). 0 = the soft RLIMIT_NOFILE minus 128 (kept for
  // workers, files and upstream connections), at least 16.
  size_t max_connections = 0;
  // Request bodies of all connections together, in bytes (0 = no limit). A request whose
  // declared body (Content-Length; max_body_bytes for a chunked one) does not fit in what is
  // left gets 503 with Retry-After before its body is read. A body's bytes count until its
  // response is complete.
  size_t max_body_memory = 0;
  // Runs on the io thread right after a request's head is read, before its body: a returned
  // response answers the request at once (the body is never read, the connection closes after
  // it). Used for authentication, so an unauthenticated client cannot make us buffer a body.
  // `head` has everything but the body. Must not block.
  std::function<std::optional<Response>(const Request& head)> check_head;
};

struct ServerStats {
  uint64_t accepted_connections = 0;  // since listen()
  uint64_t open_connections = 0;
  uint64_t requests = 0;           // requests parsed and handed to a handler
  uint64_t in_flight = 0;          // responses not yet complete
  uint64_t accept_errors = 0;      // failed accept() calls (EMFILE...), each followed by a pause
  uint64_t body_memory = 0;        // bytes of request bodies held now (see max_body_memory)
};

// A timer or posted task that can be cancelled. Cancel is a no-op once it ran. Copyable; any
// copy cancels the same task. Thread-safe.
class TimerHandle {
 public:
  TimerHandle() = default;
  // Prevents `fn` from running if it has not started yet. Returns true if this call stopped it.
  bool cancel();
  // True once the task ran or was cancelled.
  bool done() const;

  struct State;  // internal
  explicit TimerHandle(std::shared_ptr<State> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<State> state_;
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // stop() + drain(0): closes every connection and joins the io threads
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Routes `method` + exact decoded `path` to `handler`. Call before listen().
  void route(std::string method, std::string path, Handler handler);
  // Handles every request no route matches (default: 404 not_found_error JSON).
  void set_fallback(Handler handler);

  // Binds, listens and starts the io threads. Returns the bound port. A second call fails.
  StatusOr<uint16_t> listen();
  // The bound port (0 before listen()).
  uint16_t port() const;

  // Stops accepting; idle keep-alive connections close; in-flight responses continue and
  // their connections close after them. Idempotent.
  void stop();
  // Waits up to `timeout` for in-flight responses to complete, then closes every connection,
  // stops the io threads and joins them. Calls stop() first. Returns true when every response
  // completed within the timeout. After drain() post()/run_after() do nothing.
  bool drain(std::chrono::milliseconds timeout);

  // Runs `fn` on an io thread soon.
  void post(std::function<void()> fn);
  // Runs `fn` on an io thread after `delay` unless cancelled first.
  TimerHandle run_after(std::chrono::milliseconds delay, std::function<void()> fn);

  ServerStats stats() const;

  struct Impl;  // internal (server.cc); Upstream reaches the io_context through it
  Impl& impl() { return *impl_; }

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace hangar::http
