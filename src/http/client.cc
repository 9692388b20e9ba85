// Blocking HTTP clients (see client.h): each call drives a private io_context on the caller's
// thread through one coroutine, so timeouts and streaming share one code path.

#include "http/client.h"

#include <fmt/format.h>

#include <optional>
#include <vector>

#include "http/asio_internal.h"

namespace hangar::http {

namespace {

using namespace internal;  // NOLINT: asio, beast, tcp
namespace http = beast::http;
using asio::redirect_error;
using asio::use_awaitable;

// TCP or a Unix socket (FetchOptions::unix_socket).
using Stream = beast::basic_stream<stream_protocol>;
using HeadFn = std::function<void(int, const Headers&)>;
using BodyFn = std::function<bool(std::string_view)>;

std::string describe(std::string_view host, uint16_t port) {
  return fmt::format("{}:{}", host, port);
}

Status transport_error(const beast::error_code& ec, std::string_view what, std::string_view where) {
  if (ec == beast::error::timeout) {
    return deadline_exceeded_error(fmt::format("http: {} {} timed out", what, where));
  }
  return unavailable_error(fmt::format("http: {} {} failed: {}", what, where, ec.message()));
}

asio::awaitable<Status> connect(Stream& stream, const std::string& host, uint16_t port,
                                std::chrono::milliseconds timeout) {
  beast::error_code ec;
  tcp::resolver resolver(stream.get_executor());
  auto results = co_await resolver.async_resolve(host, std::to_string(port),
                                                 redirect_error(use_awaitable, ec));
  if (ec) co_return transport_error(ec, "resolving", describe(host, port));
  std::vector<stream_protocol::endpoint> endpoints;
  for (const auto& r : results) endpoints.emplace_back(r.endpoint());
  stream.expires_after(timeout);
  co_await stream.async_connect(endpoints, redirect_error(use_awaitable, ec));
  if (ec) co_return transport_error(ec, "connecting to", describe(host, port));
  stream.socket().set_option(tcp::no_delay(true), ec);
  co_return ok_status();
}

asio::awaitable<Status> connect_unix(Stream& stream, const std::string& path,
                                     std::chrono::milliseconds timeout) {
  auto endpoint = endpoint_of(Address::unix_socket(path));
  if (!endpoint.ok()) co_return endpoint.status();
  beast::error_code ec;
  stream.expires_after(timeout);
  co_await stream.async_connect(*endpoint, redirect_error(use_awaitable, ec));
  if (ec) co_return transport_error(ec, "connecting to", "unix:" + path);
  co_return ok_status();
}

struct ExchangeResult {
  Status status;
  bool reusable = false;          // the server allows another request on this connection
  bool received_anything = false; // some response byte arrived (no retry then)
};

// Sends one request and reads its response, calling on_head/on_body. When `rearm` the timeout
// applies to each wait; otherwise to the whole exchange.
asio::awaitable<ExchangeResult> exchange(Stream& stream, beast::flat_buffer& buffer,
                                         std::string_view method, std::string_view target,
                                         std::string_view host_port, const FetchOptions& o,
                                         bool keep_alive, bool rearm, const HeadFn& on_head,
                                         const BodyFn& on_body) {
  ExchangeResult result;
  beast::error_code ec;
  http::request<http::string_body> req;
  req.method_string(beast::string_view(method.data(), method.size()));
  req.target(beast::string_view(target.data(), target.size()));
  req.version(11);
  for (const auto& [name, value] : o.headers) {
    if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding") ||
        iequals(name, "Connection")) {
      continue;
    }
    req.insert(beast::string_view(name.data(), name.size()),
               beast::string_view(value.data(), value.size()));
  }
  if (!o.headers.has("Host")) req.set(http::field::host, std::string(host_port));
  req.body() = o.body;
  req.keep_alive(keep_alive);
  if (!o.body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    req.prepare_payload();
  }
  stream.expires_after(o.timeout);
  co_await http::async_write(stream, req, redirect_error(use_awaitable, ec));
  if (ec) {
    result.status = transport_error(ec, "sending to", host_port);
    co_return result;
  }
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(o.max_body_bytes);
  if (rearm) stream.expires_after(o.timeout);
  co_await http::async_read_header(stream, buffer, parser, redirect_error(use_awaitable, ec));
  if (ec) {
    result.received_anything = parser.got_some() || buffer.size() > 0;
    if (ec == beast::error::timeout) {
      result.status = transport_error(ec, "waiting for the response of", host_port);
    } else {
      result.status = data_loss_error(fmt::format(
          "http: {} closed the connection before a complete response head: {}", host_port,
          ec.message()));
    }
    co_return result;
  }
  result.received_anything = true;
  auto& msg = parser.get();
  on_head(static_cast<int>(msg.result_int()), to_headers(msg));
  char buf[16 * 1024];
  while (!parser.is_done()) {
    msg.body().data = buf;
    msg.body().size = sizeof buf;
    if (rearm) stream.expires_after(o.timeout);
    co_await http::async_read_some(stream, buffer, parser, redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    size_t n = sizeof buf - msg.body().size;
    if (n > 0 && !on_body(std::string_view(buf, n))) {
      result.status = cancelled_error("http: the body callback stopped the transfer");
      co_return result;
    }
    if (ec == http::error::body_limit) {
      result.status = resource_exhausted_error(fmt::format(
          "http: the response from {} exceeds {} bytes", host_port, o.max_body_bytes));
      co_return result;
    }
    if (ec) {
      if (ec == beast::error::timeout) {
        result.status = transport_error(ec, "reading the body from", host_port);
      } else {
        result.status = data_loss_error(fmt::format(
            "http: {} closed the connection mid-response: {}", host_port, ec.message()));
      }
      co_return result;
    }
  }
  result.reusable = msg.keep_alive();
  co_return result;
}

// Runs `aw` to completion on `ioc` (the caller's thread) and returns its value.
template <typename T>
T run_blocking(asio::io_context& ioc, asio::awaitable<T> aw) {
  std::optional<T> out;
  asio::co_spawn(ioc, std::move(aw), [&](std::exception_ptr e, T value) {
    if (!e) out = std::move(value);
  });
  ioc.restart();
  ioc.run();
  if (!out) return T(internal_error("http: client coroutine failed"));
  return std::move(*out);
}

asio::awaitable<Status> one_shot(const Url& url, const FetchOptions& o, bool rearm,
                                 const HeadFn& on_head, const BodyFn& on_body) {
  auto ex = co_await asio::this_coro::executor;
  Stream stream(ex);
  beast::flat_buffer buffer;
  // (Not one ?: expression: gcc 12 miscompiles co_await inside a conditional operator.)
  Status st;
  if (o.unix_socket.empty()) {
    st = co_await connect(stream, url.host, url.port, o.timeout);
  } else {
    st = co_await connect_unix(stream, o.unix_socket, o.timeout);
  }
  if (!st.ok()) co_return st;
  // The Host header (and the name in errors): the URL's host alone over a Unix socket.
  std::string host_port = o.unix_socket.empty() ? describe(url.host, url.port) : url.host;
  ExchangeResult r = co_await exchange(stream, buffer, o.method, url.target, host_port, o, false,
                                       rearm, on_head, on_body);
  beast::error_code ec;
  stream.socket().shutdown(asio::socket_base::shutdown_both, ec);
  co_return r.status;
}

}  // namespace

StatusOr<Url> parse_url(std::string_view url) {
  std::string_view rest = url;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.find("://") != std::string_view::npos) {
    return invalid_argument_error(fmt::format("http: only http:// URLs are supported: '{}'", url));
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  Url out;
  out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  size_t colon = authority.rfind(':');
  if (colon == std::string_view::npos) {
    out.host = std::string(authority);
    out.port = 80;
  } else {
    out.host = std::string(authority.substr(0, colon));
    std::string_view p = authority.substr(colon + 1);
    unsigned value = 0;
    if (p.empty() || p.size() > 5) {
      return invalid_argument_error(fmt::format("http: bad port '{}' in URL '{}'", p, url));
    }
    for (char c : p) {
      if (c < '0' || c > '9') {
        return invalid_argument_error(fmt::format("http: bad port '{}' in URL '{}'", p, url));
      }
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value == 0 || value > 65535) {
      return invalid_argument_error(fmt::format("http: bad port '{}' in URL '{}'", p, url));
    }
    out.port = static_cast<uint16_t>(value);
  }
  if (out.host.empty()) {
    return invalid_argument_error(fmt::format("http: no host in URL '{}'", url));
  }
  return out;
}

StatusOr<Response> fetch(std::string_view url, const FetchOptions& options) {
  HANGAR_ASSIGN_OR_RETURN(Url u, parse_url(url));
  Response response;
  asio::io_context ioc;
  Status st = run_blocking(
      ioc, one_shot(
               u, options, false,
               [&](int status, const Headers& h) {
                 response.status = status;
                 response.headers = h;
               },
               [&](std::string_view piece) {
                 response.body.append(piece);
                 return true;
               }));
  if (!st.ok()) return st;
  return response;
}

StatusOr<Response> fetch(std::string_view method, std::string_view url, std::string body,
                         Headers headers, std::chrono::milliseconds timeout) {
  FetchOptions o;
  o.method = std::string(method);
  o.body = std::move(body);
  o.headers = std::move(headers);
  o.timeout = timeout;
  return fetch(url, o);
}

Status fetch_stream(std::string_view url, const FetchOptions& options, const HeadFn& on_head,
                    const BodyFn& on_body) {
  HANGAR_ASSIGN_OR_RETURN(Url u, parse_url(url));
  asio::io_context ioc;
  return run_blocking(ioc, one_shot(u, options, true, on_head, on_body));
}

struct Client::Impl {
  std::string host;
  uint16_t port;
  asio::io_context ioc;
  std::optional<Stream> stream;
  beast::flat_buffer buffer;
  int opened = 0;
};

Client::Client(std::string host, uint16_t port) : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
}

Client::~Client() = default;

int Client::connections_opened() const { return impl_->opened; }

void Client::close() {
  if (impl_->stream) {
    beast::error_code ec;
    impl_->stream->socket().shutdown(asio::socket_base::shutdown_both, ec);
    impl_->stream.reset();
  }
  impl_->buffer.clear();
}

StatusOr<Response> Client::request(std::string_view method, std::string_view target,
                                   std::string body, Headers headers,
                                   std::chrono::milliseconds timeout) {
  FetchOptions o;
  o.method = std::string(method);
  o.body = std::move(body);
  o.headers = std::move(headers);
  o.timeout = timeout;
  std::string host_port = describe(impl_->host, impl_->port);
  // A kept-alive connection the server closed meanwhile fails before any response byte: then
  // retry once on a fresh connection.
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = impl_->stream.has_value();
    if (!reused) {
      impl_->stream.emplace(impl_->ioc);
      impl_->buffer.clear();
      Status st = run_blocking(impl_->ioc, connect(*impl_->stream, impl_->host, impl_->port,
                                                   timeout));
      if (!st.ok()) {
        impl_->stream.reset();
        return st;
      }
      impl_->opened++;
    }
    Response response;
    // Named: the coroutine keeps references to them past this statement.
    HeadFn on_head = [&](int status, const Headers& h) {
      response.status = status;
      response.headers = h;
    };
    BodyFn on_body = [&](std::string_view piece) {
      response.body.append(piece);
      return true;
    };
    auto aw = exchange(*impl_->stream, impl_->buffer, o.method, target, host_port, o, true,
                       false, on_head, on_body);
    std::optional<ExchangeResult> r;
    asio::co_spawn(impl_->ioc, std::move(aw), [&](std::exception_ptr e, ExchangeResult v) {
      if (!e) r = std::move(v);
    });
    impl_->ioc.restart();
    impl_->ioc.run();
    if (!r) return internal_error("http: client coroutine failed");
    if (!r->status.ok()) {
      close();
      if (reused && !r->received_anything) continue;
      return r->status;
    }
    if (!r->reusable) close();
    return response;
  }
  return unavailable_error(fmt::format("http: {} closed the connection twice", host_port));
}

}  // namespace hangar::http
