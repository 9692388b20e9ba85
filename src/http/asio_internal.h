#pragma once
// Private to src/http (never included from another folder): the Asio/Beast includes in the
// order Debian's Boost 1.74 needs, and the few hooks server.cc shares with upstream.cc and
// client.cc. Thread-safety: see each declaration.

// Boost 1.74's Asio uses std::exchange without including <utility> itself.
#include <utility>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <optional>

#include "http/server.h"

namespace hangar::http::internal {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using Strand = asio::strand<asio::io_context::executor_type>;

// The Server's first io_context (its acceptor, post() and run_after() run there; valid from
// construction until the Server is destroyed). Connections are spread over all of them.
asio::io_context& io_context_of(Server& server);

// Implemented by the server's own Responder: the strand its connection runs on, so forward()
// can run its coroutine there and write to the client with no thread hop.
class StrandBound {
 public:
  virtual ~StrandBound() = default;
  // nullopt once the connection is gone. Holds no strand itself: a strand must not outlive
  // its io_context, and a Responder may outlive its Server.
  virtual std::optional<Strand> strand() const = 0;
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
