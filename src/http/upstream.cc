// The proxy path (see upstream.h): a keep-alive pool per worker and forward(), one coroutine
// per forwarded request, running on the client connection's io thread when it can.

#include "http/upstream.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <limits>
#include <mutex>
#include <vector>

#include "http/asio_internal.h"
#include "http/sse.h"

namespace hangar::http {

namespace {
using namespace internal;  // NOLINT: asio, beast, tcp, Loop
namespace http = beast::http;
using asio::redirect_error;
using asio::use_awaitable;

// A response with a known length up to this size is read whole and sent in one write (the
// common non-streamed JSON answer); anything else streams.
constexpr uint64_t kWholeBodyLimit = 1024 * 1024;

struct UpstreamConnection {
  explicit UpstreamConnection(asio::io_context& io) : ioc(&io), socket(io) {
    buffer.reserve(16 * 1024);  // a whole small answer, or many SSE events, in one recv
  }
  asio::io_context* ioc;  // the io thread its socket runs on
  stream_protocol::socket socket;
  beast::flat_buffer buffer;  // bytes read past the previous response (normally none)
};

}  // namespace

struct Upstream::Impl {
  Impl(asio::io_context& io, Address a, UpstreamOptions o)
      : ioc(io), address(std::move(a)), options(o) {}

  asio::io_context& ioc;
  const Address address;
  const UpstreamOptions options;
  const std::string host_port = address.to_string();     // for errors and logs
  const std::string host_header = address.host_header();  // Host of every request

  std::mutex mu;
  std::vector<std::unique_ptr<UpstreamConnection>> idle;  // guarded by mu

  std::atomic<uint64_t> opened{0};
  std::atomic<uint64_t> requests{0};

  // An idle connection on `io` (a forward uses only connections of its own io thread).
  std::unique_ptr<UpstreamConnection> take_idle(asio::io_context& io) {
    std::lock_guard lock(mu);
    for (size_t i = idle.size(); i-- > 0;) {
      if (idle[i]->ioc != &io) continue;
      auto c = std::move(idle[i]);
      idle.erase(idle.begin() + static_cast<std::ptrdiff_t>(i));
      return c;
    }
    return nullptr;
  }

  void give_back(std::unique_ptr<UpstreamConnection> c) {
    std::lock_guard lock(mu);
    if (idle.size() < options.max_idle_connections) idle.push_back(std::move(c));
  }
};

std::shared_ptr<Upstream> Upstream::create(Server& server, Address address,
                                           UpstreamOptions options) {
  return std::make_shared<Upstream>(
      std::make_unique<Impl>(io_context_of(server), std::move(address), options));
}

std::shared_ptr<Upstream> Upstream::create(Server& server, std::string host, uint16_t port,
                                           UpstreamOptions options) {
  return create(server, Address::tcp(std::move(host), port), options);
}

Upstream::Upstream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Upstream::~Upstream() = default;
const Address& Upstream::address() const { return impl_->address; }

void Upstream::close_idle() {
  std::vector<std::unique_ptr<UpstreamConnection>> drop;
  std::lock_guard lock(impl_->mu);
  drop.swap(impl_->idle);
  // Closing a socket with no pending operation is safe from any thread.
}

UpstreamStats Upstream::stats() const {
  UpstreamStats s;
  s.connections_opened = impl_->opened;
  s.requests = impl_->requests;
  std::lock_guard lock(impl_->mu);
  s.idle_connections = impl_->idle.size();
  return s;
}

namespace {

// The names listed in Connection fields, which are hop-by-hop for this message too.
std::vector<std::string> connection_tokens(const Headers& headers) {
  std::vector<std::string> out;
  for (const auto& [name, value] : headers) {
    if (!iequals(name, "Connection")) continue;
    size_t pos = 0;
    while (pos <= value.size()) {
      size_t comma = value.find(',', pos);
      if (comma == std::string::npos) comma = value.size();
      std::string_view tok = std::string_view(value).substr(pos, comma - pos);
      while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.remove_prefix(1);
      while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.remove_suffix(1);
      if (!tok.empty()) out.emplace_back(tok);
      pos = comma + 1;
    }
  }
  return out;
}

bool is_dropped(std::string_view name, const std::vector<std::string>& tokens) {
  if (is_hop_by_hop(name)) return true;
  for (const auto& t : tokens) {
    if (iequals(name, t)) return true;
  }
  return false;
}

std::string serialize_request_head(const Request& r, const std::string& host_port) {
  auto tokens = connection_tokens(r.headers);
  std::string out;
  out.reserve(256 + r.target.size());
  out += r.method;
  out += ' ';
  out += r.target.empty() ? "/" : r.target;
  out += " HTTP/1.1\r\n";
  for (const auto& [name, value] : r.headers) {
    if (is_dropped(name, tokens) || iequals(name, "Host") || iequals(name, "Content-Length") ||
        iequals(name, "Expect")) {
      continue;
    }
    if (name.find_first_of("\r\n") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      continue;
    }
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  out += "Host: ";
  out += host_port;
  out += "\r\n";
  if (!r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH") {
    out += "Content-Length: ";
    out += std::to_string(r.body.size());
    out += "\r\n";
  }
  out += "Connection: keep-alive\r\n\r\n";
  return out;
}

struct ForwardState : std::enable_shared_from_this<ForwardState> {
  explicit ForwardState(Loop s)
      : loop(std::move(s)), ioc(loop.context()), signal(loop),
        deadline(loop) {}

  Loop loop;
  asio::io_context& ioc;        // the loop's: sockets and timers stay on its thread
  asio::steady_timer signal;    // wakes the coroutine (drained / client gone); on loop
  asio::steady_timer deadline;  // connect and read timeouts
  Request request;
  std::shared_ptr<Responder> responder;
  std::shared_ptr<Upstream> upstream;
  std::function<void(const ForwardResult&)> on_done;
  std::unique_ptr<UpstreamConnection> conn;  // on loop only
  bool client_gone = false;                  // on loop only
  bool finished = false;                     // on loop only
  bool timed_out = false;                    // on loop only: the deadline closed the socket
  ForwardResult result;

  // Cancels the upstream exchange (on loop).
  void cancel_upstream() {
    client_gone = true;
    if (!finished && conn) {
      beast::error_code ec;
      conn->socket.cancel(ec);
      conn->socket.close(ec);
    }
    signal.cancel();
  }

  // Closes the socket if a read/connect takes longer than `timeout` (0 = no limit).
  void arm_deadline(std::chrono::milliseconds timeout) {
    if (timeout.count() <= 0) return;
    deadline.expires_after(timeout);
    deadline.async_wait(asio::bind_executor(
        loop, [self = shared_from_this()](const beast::error_code& ec) {
          if (ec || self->finished || !self->conn) return;
          self->timed_out = true;
          beast::error_code ignored;
          self->conn->socket.cancel(ignored);
          self->conn->socket.close(ignored);
        }));
  }
  void disarm_deadline() { deadline.cancel(); }
};

// Records an upstream failure; answers 502 when nothing reached the client yet.
void fail(ForwardState& st, Status status) {
  auto& r = *st.responder;
  st.result.status = std::move(status);
  if (st.client_gone) return;
  if (!st.result.sent_to_client) {
    r.send(error_response(502, st.result.status.message(), "unavailable_error"));
  }
}

asio::awaitable<void> run_forward(std::shared_ptr<ForwardState> st) {
  Upstream::Impl& up = st->upstream->impl();
  const auto& o = up.options;
  beast::error_code ec;
  st->responder->on_close([w = std::weak_ptr<ForwardState>(st)] {
    if (auto s = w.lock()) {
      asio::post(s->loop, [s] { s->cancel_upstream(); });
    }
  });

  std::string head = serialize_request_head(st->request, up.host_header);
  std::array<asio::const_buffer, 2> out_buffers{asio::buffer(head), asio::buffer(st->request.body)};
  std::optional<http::response_parser<http::buffer_body>> parser;
  Status failure;

  for (int attempt = 0; attempt < 2 && !st->client_gone; ++attempt) {
    failure = ok_status();
    st->conn = up.take_idle(st->ioc);
    bool reused = st->conn != nullptr;
    if (!reused) {
      st->conn = std::make_unique<UpstreamConnection>(st->ioc);
      stream_protocol::endpoint ep;
      if (auto numeric = endpoint_of(up.address); numeric.ok()) {
        ep = *numeric;
      } else if (up.address.is_unix()) {
        failure = unavailable_error(numeric.status().message());
        break;
      } else {
        tcp::resolver resolver(st->ioc);
        auto results = co_await resolver.async_resolve(
            up.address.host, std::to_string(up.address.port), redirect_error(use_awaitable, ec));
        if (ec || results.empty()) {
          failure = unavailable_error(fmt::format("upstream {} cannot be resolved: {}",
                                                  up.host_port, ec.message()));
          break;
        }
        ep = results.begin()->endpoint();
      }
      st->arm_deadline(o.connect_timeout);
      co_await st->conn->socket.async_connect(ep, redirect_error(use_awaitable, ec));
      st->disarm_deadline();
      if (ec) {
        failure = unavailable_error(
            st->timed_out ? fmt::format("upstream {} did not accept the connection within {} ms",
                                        up.host_port, o.connect_timeout.count())
                          : fmt::format("upstream {} refused the connection: {}", up.host_port,
                                        ec.message()));
        break;
      }
      if (!up.address.is_unix()) st->conn->socket.set_option(tcp::no_delay(true), ec);
      up.opened++;
    }
    up.requests++;
    co_await asio::async_write(st->conn->socket, out_buffers, redirect_error(use_awaitable, ec));
    if (ec) {
      failure = unavailable_error(fmt::format("sending to upstream {} failed: {}", up.host_port,
                                              ec.message()));
      if (reused) continue;  // a pooled connection the upstream had closed: retry fresh
      break;
    }
    parser.emplace();
    parser->body_limit(std::numeric_limits<std::uint64_t>::max());
    parser->header_limit(static_cast<uint32_t>(std::min<size_t>(o.max_header_bytes, UINT32_MAX)));
    st->arm_deadline(o.read_timeout);
    co_await http::async_read_header(st->conn->socket, st->conn->buffer, *parser,
                                     redirect_error(use_awaitable, ec));
    st->disarm_deadline();
    if (ec) {
      failure = st->timed_out
                    ? unavailable_error(fmt::format("upstream {} did not answer within {} ms",
                                                    up.host_port, o.read_timeout.count()))
                    : unavailable_error(fmt::format(
                          "upstream {} closed the connection before answering: {}",
                          up.host_port, ec.message()));
      if (reused && !parser->got_some() && st->conn->buffer.size() == 0) continue;
      break;
    }
    break;
  }

  auto done = [&](bool reusable) {
    st->finished = true;
    if (reusable && st->conn && !st->client_gone) {
      up.give_back(std::move(st->conn));
    }
    st->conn.reset();
    if (st->result.status.ok() && st->client_gone) {
      st->result.status = cancelled_error("the client disconnected");
    }
    auto on_done = std::move(st->on_done);
    st->on_done = nullptr;
    if (on_done) on_done(st->result);
  };

  if (st->client_gone) {
    st->result.status = cancelled_error("the client disconnected before the upstream answered");
    done(false);
    co_return;
  }
  if (!failure.ok()) {
    fail(*st, failure);
    done(false);
    co_return;
  }

  auto& msg = parser->get();
  int status = static_cast<int>(msg.result_int());
  st->result.upstream_status = status;
  Headers headers = to_headers(msg);
  auto tokens = connection_tokens(headers);
  Headers out_headers;
  for (const auto& [name, value] : headers) {
    if (is_dropped(name, tokens) || iequals(name, "Content-Length")) continue;
    out_headers.add(name, value);
  }
  bool sse = headers.get_or("Content-Type", "").starts_with("text/event-stream");
  auto length = parser->content_length();
  bool head_request = st->request.method == "HEAD";

  char buf[16 * 1024];
  auto read_some = [&]() -> asio::awaitable<size_t> {
    msg.body().data = buf;
    msg.body().size = sizeof buf;
    st->arm_deadline(o.read_timeout);
    co_await http::async_read_some(st->conn->socket, st->conn->buffer, *parser,
                                   redirect_error(use_awaitable, ec));
    st->disarm_deadline();
    if (ec == http::error::need_buffer) ec = {};
    co_return sizeof buf - msg.body().size;
  };

  if (parser->is_done() || head_request ||
      (length && *length <= kWholeBodyLimit)) {
    // Small or empty body: read it whole, answer in one write.
    Response whole;
    whole.status = status;
    whole.headers = std::move(out_headers);
    if (!head_request) {
      whole.body.reserve(length.value_or(0));
      while (!parser->is_done() && !st->client_gone) {
        size_t n = co_await read_some();
        whole.body.append(buf, n);
        if (ec) break;
      }
    }
    if (st->client_gone) {
      done(false);
      co_return;
    }
    if (ec) {
      fail(*st, unavailable_error(fmt::format("upstream {} died mid-response: {}", up.host_port,
                                              ec.message())));
      done(false);
      co_return;
    }
    st->result.body_bytes = whole.body.size();
    st->result.sent_to_client = true;
    st->responder->send(std::move(whole));
    done(parser->keep_alive() && parser->is_done());
    co_return;
  }

  // Streamed body: head now, then every piece as it arrives. Body bytes that came with the
  // head (an SSE answer's first events often do) are parsed at once and leave with the head.
  std::string first;
  for (bool progress = true; progress && st->conn->buffer.size() > 0 && !parser->is_done();) {
    msg.body().data = buf;
    msg.body().size = sizeof buf;
    size_t used = parser->put(st->conn->buffer.data(), ec);
    st->conn->buffer.consume(used);
    size_t produced = sizeof buf - msg.body().size;
    first.append(buf, produced);
    if (ec == http::error::need_buffer || ec == http::error::need_more) ec = {};
    if (ec) break;
    progress = used > 0 || produced > 0;
  }
  if (ec) {
    fail(*st, unavailable_error(fmt::format("upstream {} sent a malformed body: {}",
                                            up.host_port, ec.message())));
    done(false);
    co_return;
  }
  if (length) out_headers.set("Content-Length", std::to_string(*length));
  if (!st->responder->start(status, std::move(out_headers))) {
    st->result.status = cancelled_error("the client disconnected before the response started");
    done(false);
    co_return;
  }
  st->result.sent_to_client = true;
  if (!first.empty()) {
    st->result.body_bytes += first.size();
    st->responder->write(std::move(first));
  }
  while (!parser->is_done() && !st->client_gone) {
    size_t n = co_await read_some();
    if (n > 0 && !st->client_gone) {
      st->result.body_bytes += n;
      st->responder->write(std::string(buf, n));
    }
    if (ec) break;
    // Backpressure: stop reading the upstream while the client is behind.
    while (!st->client_gone && st->responder->buffered_bytes() > Responder::kHighWaterBytes) {
      st->signal.expires_at(asio::steady_timer::time_point::max());
      st->responder->on_drained([w = std::weak_ptr<ForwardState>(st)] {
        if (auto s = w.lock()) asio::post(s->loop, [s] { s->signal.cancel(); });
      });
      beast::error_code wait_ec;
      co_await st->signal.async_wait(redirect_error(use_awaitable, wait_ec));
    }
  }
  if (st->client_gone) {
    done(false);
    co_return;
  }
  if (ec) {
    st->result.status = unavailable_error(
        fmt::format("upstream {} died mid-stream: {}", up.host_port, ec.message()));
    if (sse) {
      st->responder->write(
          sse_data(error_json(502, st->result.status.message(), "unavailable_error")));
      st->responder->finish();
    } else {
      st->responder->abort();
    }
    done(false);
    co_return;
  }
  st->responder->finish();
  done(parser->keep_alive());
}

}  // namespace

void forward(Request request, std::shared_ptr<Responder> responder,
             std::shared_ptr<Upstream> upstream,
             std::function<void(const ForwardResult&)> on_done) {
  auto& ioc = upstream->impl().ioc;
  Loop loop = [&] {
    if (auto* bound = dynamic_cast<LoopBound*>(responder.get())) {
      if (auto s = bound->loop()) return *s;
    }
    return ioc.get_executor();
  }();
  auto st = std::make_shared<ForwardState>(loop);
  st->request = std::move(request);
  st->responder = std::move(responder);
  st->upstream = std::move(upstream);
  st->on_done = std::move(on_done);
  asio::co_spawn(loop, run_forward(st), [st](std::exception_ptr e) {
    if (!e) return;
    // Our code does not throw; a third-party exception here is a bug worth a log line.
    spdlog::error("http: forward() to {} failed with an exception",
                  st->upstream->address().to_string());
    if (st->on_done) {
      st->result.status = internal_error("forward failed with an exception");
      auto fn = std::move(st->on_done);
      fn(st->result);
    }
  });
}

}  // namespace hangar::http
