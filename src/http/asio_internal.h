#pragma once
// Private to src/http (never included from another folder): the Asio/Beast includes in the
// order Debian's Boost 1.74 needs, and the few hooks server.cc shares with upstream.cc and
// client.cc. Thread-safety: see each declaration.

// Boost 1.74's Asio uses std::exchange without including <utility> itself.
#include <utility>

#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <memory>
#include <optional>

#include "common/status.h"
#include "http/address.h"
#include "http/server.h"

namespace hangar::http::internal {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
// Sockets that are TCP or Unix, chosen by the endpoint they open with (one code path for both).
using stream_protocol = asio::generic::stream_protocol;
using local = asio::local::stream_protocol;
using Acceptor = asio::basic_socket_acceptor<stream_protocol>;

// The endpoint of `address`: a Unix socket path, or a TCP numeric host (InvalidArgument for a
// name that needs resolving, or a path too long for sockaddr_un).
StatusOr<stream_protocol::endpoint> endpoint_of(const Address& address);
// The port of a TCP endpoint; 0 for a Unix one.
uint16_t tcp_port_of(const stream_protocol::endpoint& endpoint);
// "host:port" of a TCP endpoint, "unix" for a Unix one (the peer of a Unix socket has no name).
std::string describe_peer(const stream_protocol::endpoint& endpoint);
// The executor of one io thread's event loop. Every io_context here is run by exactly one
// thread, so its executor already serializes what runs on it, like a strand, without a strand's
// extra queue hop on every completion (each hop costs an event-loop round and an epoll_wait).
using Loop = asio::io_context::executor_type;

// The Server's first io_context (post(), run_after() and Upstream's default loop run there;
// valid from construction until the Server is destroyed). Connections live on all of them.
asio::io_context& io_context_of(Server& server);

// Implemented by the server's own Responder: the loop its connection runs on, so forward()
// can run its coroutine there and write to the client with no thread hop.
class LoopBound {
 public:
  virtual ~LoopBound() = default;
  // nullopt once the connection is gone. Holds no executor itself: an executor must not
  // outlive its io_context, and a Responder may outlive its Server.
  virtual std::optional<Loop> loop() const = 0;
};

// A wake-up for one coroutine on a loop, cheaper than a steady_timer used as a condition
// (no timer queue, no timerfd system call). wait() completes at the next notify(); a notify()
// with no waiter is lost, so a waiter checks its condition before waiting and again after (all
// on the one loop thread, so nothing slips in between). Used on its loop only. A waiter keeps
// its coroutine frame (and whatever that holds) alive until notified: the owner notifies when it
// shuts down.
class Signal {
 public:
  explicit Signal(Loop loop) : loop_(std::move(loop)) {}

  template <typename CompletionToken>
  auto wait(CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void()>(
        [this](auto handler) {
          waiter_ = std::make_unique<Waiter<decltype(handler)>>(std::move(handler));
        },
        token);
  }

  // True while a coroutine waits (no notify() since its wait()).
  bool has_waiter() const { return waiter_ != nullptr; }

  // Resumes the waiter from the loop's queue.
  void notify() {
    if (waiter_) asio::post(loop_, [w = std::move(waiter_)]() { w->resume(); });
  }

  // Resumes the waiter here, before returning: saves a trip through the loop's queue. Only on
  // the loop's thread, and only where the caller holds no lock the waiter might take.
  void notify_here() {
    if (auto w = std::move(waiter_)) w->resume();
  }

 private:
  struct WaiterBase {
    virtual ~WaiterBase() = default;
    virtual void resume() = 0;
  };
  template <typename Handler>
  struct Waiter final : WaiterBase {
    explicit Waiter(Handler h) : handler(std::move(h)) {}
    void resume() override { std::move(handler)(); }
    Handler handler;
  };

  Loop loop_;
  std::unique_ptr<WaiterBase> waiter_;
};

// True for hop-by-hop header names (RFC 9110 §7.6.1 plus Proxy-*), which a proxy drops.
bool is_hop_by_hop(std::string_view name);

// Beast's header fields → our Headers.
template <typename Fields>
Headers to_headers(const Fields& fields) {
  Headers out;
  for (const auto& f : fields) {
    out.add(std::string(f.name_string()), std::string(f.value()));
  }
  return out;
}

}  // namespace hangar::http::internal
