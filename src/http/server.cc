// The HTTP/1.1 server (see server.h): one reader and one writer coroutine per connection, both
// on the connection's io thread; the Exchange between a handler's Responder and the writer.

#include "http/server.h"

#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <algorithm>
#include <condition_variable>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "http/asio_internal.h"

namespace hangar::http {

namespace internal {
namespace {

namespace http = beast::http;
using asio::redirect_error;
using asio::use_awaitable;

// Shared by a Server and every Exchange it made: posting to the io_context is allowed only
// while alive is true, so a Responder kept by another thread after the Server is gone is inert.
struct Liveness {
  std::mutex mu;
  bool alive = true;  // guarded by mu
};

// The bytes of one request body counted in Server::Impl::body_memory until released (its
// response completed, or the connection went). Move-only; used on one loop.
class BodyReservation {
 public:
  BodyReservation() = default;
  BodyReservation(BodyReservation&& o) noexcept
      : pool_(std::exchange(o.pool_, nullptr)), bytes_(o.bytes_) {}
  BodyReservation& operator=(BodyReservation&& o) noexcept {
    if (this != &o) {
      release();
      pool_ = std::exchange(o.pool_, nullptr);
      bytes_ = o.bytes_;
    }
    return *this;
  }
  ~BodyReservation() { release(); }

  // Counts `bytes` in `pool` unless that would pass `limit`. False (and nothing counted) then.
  bool take(std::atomic<uint64_t>& pool, uint64_t limit, uint64_t bytes) {
    release();
    uint64_t held = pool.load();
    do {
      if (bytes > limit || held > limit - bytes) return false;
    } while (!pool.compare_exchange_weak(held, held + bytes));
    pool_ = &pool;
    bytes_ = bytes;
    return true;
  }
  void release() {
    if (pool_ != nullptr) pool_->fetch_sub(bytes_);
    pool_ = nullptr;
  }

 private:
  std::atomic<uint64_t>* pool_ = nullptr;
  uint64_t bytes_ = 0;
};

bool has_crlf(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }

// "HTTP/1.1 <status> <reason>\r\n<fields>\r\n" with our own framing fields.
std::string serialize_head(int status, const Headers& headers, bool chunked,
                           std::optional<uint64_t> content_length, bool keep_alive) {
  std::string out;
  out.reserve(256);
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reason_phrase(status);
  out += "\r\n";
  for (const auto& [name, value] : headers) {
    if (is_hop_by_hop(name) || iequals(name, "Content-Length")) continue;
    if (name.empty() || has_crlf(name) || has_crlf(value)) continue;  // no header injection
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  if (chunked) {
    out += "Transfer-Encoding: chunked\r\n";
  } else if (content_length) {
    out += "Content-Length: ";
    out += std::to_string(*content_length);
    out += "\r\n";
  }
  out += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  return out;
}

bool status_has_no_body(int status) {
  return (status >= 100 && status < 200) || status == 204 || status == 304;
}

class Connection;

// The state of one request/response exchange, shared by the handler's Responder (any thread)
// and the connection's writer (its loop). All fields below mu_ are guarded by mu_.
class Exchange {
 public:
  Exchange(std::weak_ptr<Connection> conn, std::shared_ptr<Liveness> liveness, bool keep_alive,
           bool head_request, size_t max_buffered)
      : conn_(std::move(conn)),
        liveness_(std::move(liveness)),
        keep_alive_(keep_alive),
        head_request_(head_request),
        max_buffered_(max_buffered) {}

  bool send(Response r) {
    std::unique_lock lock(mu_);
    if (phase_ != Phase::kIdle || closed_) return false;
    bool no_body = status_has_no_body(r.status);
    std::string bytes = serialize_head(r.status, r.headers, false,
                                       no_body ? std::nullopt : std::optional<uint64_t>(r.body.size()),
                                       keep_alive_);
    if (!no_body && !head_request_) bytes += r.body;
    phase_ = Phase::kDone;
    started_ = true;
    queue_locked(std::move(bytes));
    lock.unlock();
    notify();
    return true;
  }

  bool start(int status, Headers headers) {
    std::unique_lock lock(mu_);
    if (phase_ != Phase::kIdle || closed_) return false;
    std::optional<uint64_t> length;
    if (auto cl = headers.get("Content-Length")) {
      uint64_t v = 0;
      bool valid = !cl->empty() && cl->size() < 19;
      for (char c : *cl) {
        if (c < '0' || c > '9') valid = false;
        else v = v * 10 + static_cast<uint64_t>(c - '0');
      }
      if (valid) length = v;
    }
    chunked_ = !length && !head_request_ && !status_has_no_body(status);
    phase_ = (head_request_ || status_has_no_body(status)) ? Phase::kBodyless : Phase::kStreaming;
    started_ = true;
    queue_locked(serialize_head(status, headers, chunked_, length, keep_alive_));
    lock.unlock();
    // Not written before start() returns: a body chunk written right after it (an SSE proxy
    // that has the first events at hand) goes out in the same write as the head.
    notify(/*here=*/false);
    return true;
  }

  bool write(std::string chunk) {
    std::unique_lock lock(mu_);
    if (closed_ || (phase_ != Phase::kStreaming && phase_ != Phase::kBodyless)) return false;
    if (chunk.empty() || phase_ == Phase::kBodyless) return true;
    if (buffered_ + chunk.size() > max_buffered_) {
      // The client does not read fast enough and the producer ignored backpressure: bound the
      // memory by giving up on this client.
      spdlog::warn("http: aborting a response: {} bytes unsent exceed the limit of {}",
                   buffered_ + chunk.size(), max_buffered_);
      aborted_ = true;
      closed_ = true;
      lock.unlock();
      notify();
      return false;
    }
    if (chunked_) {
      char size_line[24];
      int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", chunk.size());
      std::string framed;
      framed.reserve(chunk.size() + static_cast<size_t>(n) + 2);
      framed.append(size_line, static_cast<size_t>(n));
      framed += chunk;
      framed += "\r\n";
      queue_locked(std::move(framed));
    } else {
      queue_locked(std::move(chunk));
    }
    lock.unlock();
    notify();
    return true;
  }

  void finish() {
    {
      std::lock_guard lock(mu_);
      if (phase_ != Phase::kStreaming && phase_ != Phase::kBodyless) return;
      bool chunked = chunked_ && phase_ == Phase::kStreaming;
      phase_ = Phase::kDone;
      if (closed_) return;
      if (chunked) queue_locked("0\r\n\r\n");
    }
    notify();
  }

  void abort() {
    {
      std::lock_guard lock(mu_);
      if (phase_ == Phase::kDone && pending_.empty()) return;  // already complete
      aborted_ = true;
    }
    notify();
  }

  bool is_closed() const {
    std::lock_guard lock(mu_);
    return closed_;
  }
  bool started() const {
    std::lock_guard lock(mu_);
    return started_;
  }
  size_t buffered_bytes() const {
    std::lock_guard lock(mu_);
    return buffered_;
  }

  void on_close(std::function<void()> fn) {
    {
      std::lock_guard lock(mu_);
      if (!closed_) {
        if (phase_ == Phase::kDone && complete_) return;  // completed: it will never close early
        close_callbacks_.push_back(std::move(fn));
        return;
      }
    }
    fn();
  }

  void on_drained(std::function<void()> fn) {
    {
      std::lock_guard lock(mu_);
      if (!closed_ && buffered_ > Responder::kHighWaterBytes / 4) {
        drained_callback_ = std::move(fn);
        return;
      }
    }
    fn();
  }

  // The handler dropped its last Responder reference.
  void dropped() {
    std::unique_lock lock(mu_);
    if (closed_) return;
    if (phase_ == Phase::kIdle) {
      lock.unlock();
      spdlog::error("http: a handler dropped its Responder without answering; sending 500");
      send(error_response(500, "the handler did not answer", "server_error"));
    } else if (phase_ != Phase::kDone && !aborted_) {
      spdlog::error("http: a handler dropped its Responder mid-stream; aborting the response");
      aborted_ = true;
      lock.unlock();
      notify();
    }
  }

  // --- connection side, on the loop ---

  struct Output {
    std::vector<std::string> pieces;
    bool done = false;     // the whole response is in `pieces` or already written
    bool aborted = false;  // close after `pieces`
  };
  void take(Output* out) {
    std::lock_guard lock(mu_);
    out->pieces.swap(pending_);
    pending_.clear();
    out->done = phase_ == Phase::kDone;
    out->aborted = aborted_ || closed_;
    notify_posted_ = false;
  }

  // `n` bytes reached the socket; may run the drained callback.
  void consumed(size_t n) {
    std::function<void()> cb;
    {
      std::lock_guard lock(mu_);
      buffered_ -= std::min(n, buffered_);
      if (drained_callback_ && buffered_ <= Responder::kHighWaterBytes / 4) {
        cb = std::move(drained_callback_);
        drained_callback_ = nullptr;
      }
    }
    if (cb) cb();
  }

  // The response went out completely: close callbacks will never run; drop them (they may hold
  // references that would otherwise form cycles).
  void completed() {
    std::vector<std::function<void()>> drop;
    std::function<void()> drop_drained;
    {
      std::lock_guard lock(mu_);
      complete_ = true;
      drop.swap(close_callbacks_);
      drop_drained.swap(drained_callback_);
    }
  }

  // The connection is gone (client left, abort, server stop): runs the close callbacks.
  void mark_closed() {
    std::vector<std::function<void()>> cbs;
    std::function<void()> drained;
    {
      std::lock_guard lock(mu_);
      if (complete_) return;
      closed_ = true;
      cbs.swap(close_callbacks_);
      drained.swap(drained_callback_);
    }
    for (auto& cb : cbs) cb();
    if (drained) drained();
  }

  // The connection object is being destroyed: never touch it again.
  void detach() {
    mark_closed();
    std::lock_guard lock(mu_);
    conn_.reset();
  }

  bool keep_alive() const { return keep_alive_; }
  // Whether the handler has begun its answer (a head is queued or sent).
  bool answer_started() const {
    std::lock_guard lock(mu_);
    return started_;
  }

  // The connection's loop while the connection exists.
  std::optional<Loop> loop() const;

 private:
  enum class Phase { kIdle, kStreaming, kBodyless, kDone };

  void queue_locked(std::string bytes) {
    buffered_ += bytes.size();
    pending_.push_back(std::move(bytes));
  }
  // Wakes the connection's writer: with `here`, before returning when called on its loop; else
  // through the loop's queue. Called without mu_ held (the writer takes it).
  void notify(bool here = true);

  mutable std::mutex mu_;
  std::weak_ptr<Connection> conn_;             // guarded by mu_
  std::shared_ptr<Liveness> liveness_;
  const bool keep_alive_;
  const bool head_request_;
  const size_t max_buffered_;
  Phase phase_ = Phase::kIdle;                 // guarded by mu_
  bool chunked_ = false;                       // guarded by mu_
  bool started_ = false;                       // guarded by mu_
  bool closed_ = false;                        // guarded by mu_
  bool aborted_ = false;                       // guarded by mu_
  bool complete_ = false;                      // guarded by mu_: every byte was written
  bool notify_posted_ = false;                 // guarded by mu_: a wake-up is on its way
  size_t buffered_ = 0;                        // guarded by mu_
  std::vector<std::string> pending_;           // guarded by mu_: bytes for the writer
  std::vector<std::function<void()>> close_callbacks_;  // guarded by mu_
  std::function<void()> drained_callback_;     // guarded by mu_
};

// The Responder a handler holds; dropping the last reference tells the Exchange.
class ConnectionResponder final : public Responder, public LoopBound {
 public:
  explicit ConnectionResponder(std::shared_ptr<Exchange> exchange)
      : exchange_(std::move(exchange)) {}
  ~ConnectionResponder() override { exchange_->dropped(); }

  bool send(Response response) override { return exchange_->send(std::move(response)); }
  bool start(int status, Headers headers) override {
    return exchange_->start(status, std::move(headers));
  }
  bool write(std::string chunk) override { return exchange_->write(std::move(chunk)); }
  void finish() override { exchange_->finish(); }
  void abort() override { exchange_->abort(); }
  bool is_closed() const override { return exchange_->is_closed(); }
  bool started() const override { return exchange_->started(); }
  void on_close(std::function<void()> fn) override { exchange_->on_close(std::move(fn)); }
  size_t buffered_bytes() const override { return exchange_->buffered_bytes(); }
  void on_drained(std::function<void()> fn) override { exchange_->on_drained(std::move(fn)); }
  std::optional<Loop> loop() const override { return exchange_->loop(); }

 private:
  std::shared_ptr<Exchange> exchange_;
};

}  // namespace
}  // namespace internal

// ---------------------------------------------------------------------------------------------

struct TimerHandle::State {
  std::mutex mu;
  bool done = false;          // guarded by mu
  std::function<void()> fn;   // guarded by mu
};

bool TimerHandle::cancel() {
  if (!state_) return false;
  std::lock_guard lock(state_->mu);
  if (state_->done) return false;
  state_->done = true;
  state_->fn = nullptr;
  return true;
}

bool TimerHandle::done() const {
  if (!state_) return true;
  std::lock_guard lock(state_->mu);
  return state_->done;
}

struct Server::Impl {
  explicit Impl(ServerOptions o) : options(std::move(o)) {
    const int n = std::max(1, options.threads);
    for (int i = 0; i < n; ++i) iocs.push_back(std::make_unique<internal::asio::io_context>(1));
    max_connections = options.max_connections;
    if (max_connections == 0) {
      rlimit rl{};
      uint64_t soft = 1024;
      if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        soft = rl.rlim_cur == RLIM_INFINITY ? (1u << 20) : static_cast<uint64_t>(rl.rlim_cur);
      }
      max_connections = static_cast<size_t>(std::max<uint64_t>(16, soft > 128 ? soft - 128 : 0));
    }
  }

  // Wakes the accept loops paused at max_connections (any thread).
  void wake_acceptors();

  ServerOptions options;
  std::map<std::pair<std::string, std::string>, Handler> routes;  // (method, path); before listen
  Handler fallback;

  std::mutex mu;                // guards connections, listening, drained
  std::condition_variable cv;   // signalled when in_flight or open_connections drop
  std::list<std::weak_ptr<internal::Connection>> connections;  // guarded by mu
  bool listening = false;       // guarded by mu
  bool joined = false;          // guarded by mu

  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> accept_errors{0};
  std::atomic<uint64_t> open{0};
  std::atomic<uint64_t> body_memory{0};  // bytes reserved by request bodies (max_body_memory)
  size_t max_connections = 0;            // resolved from options at construction
  // Accept loops paused at max_connections; a closing connection wakes them.
  std::atomic<int> paused_acceptors{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> in_flight{0};
  std::atomic<bool> stopping{false};
  std::atomic<uint16_t> port{0};

  std::shared_ptr<internal::Liveness> liveness = std::make_shared<internal::Liveness>();

  // One io_context per io thread. A connection, its timers and the upstream connections its
  // requests are forwarded on all live on one of them, so a request is served without waking
  // another thread (one shared io_context with 2 threads added ~30 us per proxied request).
  // Declared after everything the connections touch when they are destroyed, so they are
  // destroyed first (pending coroutine frames die with them).
  std::vector<std::unique_ptr<internal::asio::io_context>> iocs;  // [max(1, threads)]
  // TCP: one acceptor per io_context (an SO_REUSEPORT group when there are several): a new
  // connection is accepted by one io thread and stays there, with no hand-over to another
  // thread. acceptors[i] is used on iocs[i] only. A Unix socket has one acceptor, on iocs[0],
  // which hands its connections to the io threads in turn.
  std::vector<std::unique_ptr<internal::Acceptor>> acceptors;
  // accept_signals[i]: acceptors[i]'s loop waits on it while paused (used on iocs[i] only).
  std::vector<std::unique_ptr<internal::Signal>> accept_signals;
  std::vector<internal::asio::executor_work_guard<internal::asio::io_context::executor_type>>
      work;
  std::vector<std::thread> threads;

  // post(), run_after() and Upstream's default loop run here.
  internal::asio::io_context& main_ioc() { return *iocs.front(); }

  void dispatch(Request request, std::shared_ptr<Responder> responder) {
    // Our handlers do not throw, but one that does must not take the io thread down.
    try {
      dispatch_unguarded(std::move(request), responder);
    } catch (const std::exception& e) {
      spdlog::error("http: a handler threw: {}", e.what());
      responder->send(error_response(500, "internal error in the handler", "server_error"));
    } catch (...) {
      spdlog::error("http: a handler threw a non-standard exception");
      responder->send(error_response(500, "internal error in the handler", "server_error"));
    }
  }

  void dispatch_unguarded(Request request, const std::shared_ptr<Responder>& responder) {
    auto it = routes.find({request.method, request.path});
    if (it != routes.end()) {
      it->second(std::move(request), responder);
    } else if (fallback) {
      fallback(std::move(request), responder);
    } else {
      responder->send(error_response(
          404, fmt::format("no route for {} {}", request.method, request.path), "not_found_error"));
    }
  }

  void shut_down_io() {
    {
      std::lock_guard lock(liveness->mu);
      liveness->alive = false;
    }
    work.clear();
    for (auto& ioc : iocs) ioc->stop();
    for (auto& t : threads) t.join();
    threads.clear();
  }

  ~Impl() {
    if (!threads.empty()) shut_down_io();
    std::lock_guard lock(liveness->mu);
    liveness->alive = false;
  }
};

namespace internal {
namespace {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Socket = asio::basic_stream_socket<stream_protocol, Loop>;

  Connection(Server::Impl* server, Socket socket)
      : server_(server),
        socket_(std::move(socket)),
        loop_(socket_.get_executor()),
        writer_signal_(loop_),
        reader_signal_(loop_),
        idle_timer_(loop_) {
    beast::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) remote_ = describe_peer(ep);
    if (!ec && ep.protocol().family() != AF_UNIX) {
      socket_.set_option(tcp::no_delay(true), ec);  // small SSE frames go out at once
    }
  }

  ~Connection() {
    if (current_) current_->detach();
    server_->open--;
    if (server_->paused_acceptors.load() > 0) server_->wake_acceptors();
    std::lock_guard lock(server_->mu);
    server_->cv.notify_all();
  }

  // On the loop (the accept loop of the connection's io thread).
  void start() {
    auto self = shared_from_this();
    asio::co_spawn(loop_, [self]() { return self->run_reader(); }, asio::detached);
    asio::co_spawn(loop_, [self]() { return self->run_writer(); }, asio::detached);
    idle_since_ = std::chrono::steady_clock::now();
    arm_idle_timer(idle_since_ + server_->options.idle_timeout);
  }

  const Loop& loop() const { return loop_; }
  // On the loop: resumes a waiting writer from the loop's queue.
  void wake_soon() { writer_signal_.notify(); }
  // On the loop: response bytes are queued. Resumes a waiting writer here, so an answer given on
  // this thread reaches the socket before the answering call returns (one trip through the
  // loop's queue less per response).
  void wake() {
    bool was_inline = resumed_inline_;
    resumed_inline_ = true;
    writer_signal_.notify_here();
    resumed_inline_ = was_inline;
  }

  // On the loop: the server stops. Idle connections close now, busy ones after the response.
  void on_server_stop() {
    stopping_ = true;
    if (!current_) close();
  }

  // On the loop: close everything now (drain timed out).
  void force_close() {
    if (current_) current_->mark_closed();
    close();
  }

 private:
  struct Pending {
    int error_status = 0;  // 400/413/431: answer this and close
    std::string error_message;
    std::optional<Response> answer;  // refused after its head (check_head, body memory): close
    Request request;
    bool head_request = false;
    BodyReservation body;
  };

  void close() {
    if (closing_) return;
    closing_ = true;
    beast::error_code ec;
    socket_.shutdown(asio::socket_base::shutdown_both, ec);
    socket_.close(ec);
    writer_signal_.notify();
    reader_signal_.notify();
    idle_timer_.cancel();
  }

  // The idle timeout without a timer system call per request: the timer fires at the deadline
  // it was armed for; a connection that was busy meanwhile re-arms it for its new deadline.
  void arm_idle_timer(std::chrono::steady_clock::time_point deadline) {
    idle_timer_.expires_at(deadline);
    idle_timer_.async_wait([w = weak_from_this()](const beast::error_code& ec) {
      if (ec) return;
      if (auto self = w.lock()) self->on_idle_timer();
    });
  }

  void on_idle_timer() {
    if (closing_) return;
    const auto now = std::chrono::steady_clock::now();
    const auto timeout = server_->options.idle_timeout;
    if (current_ || next_) {
      arm_idle_timer(now + timeout);  // busy: the idle clock restarts when the answer is out
    } else if (now < idle_since_ + timeout) {
      arm_idle_timer(idle_since_ + timeout);
    } else {
      spdlog::debug("http: closing {} after {} ms without a request", remote_, timeout.count());
      close();
    }
  }

  asio::awaitable<void> run_reader() {
    auto self = shared_from_this();
    beast::error_code ec;
    while (!closing_) {
      // A request read ahead waits until the one being answered is done, then starts.
      if (next_) {
        if (current_ || answering_error_) {
          co_await reader_signal_.wait(use_awaitable);
          continue;
        }
        if (server_->stopping || stopping_) break;
        if (!start_next()) co_return;  // an error answer: the writer takes the socket over
        // Not answered yet (the writer still waits): let what the handler set going, such as a
        // forward's first write, run before our read-ahead.
        if (writer_signal_.has_waiter()) co_await asio::post(loop_, use_awaitable);
        continue;
      }
      http::request_parser<http::string_body> parser;
      parser.body_limit(server_->options.max_body_bytes);
      parser.header_limit(static_cast<uint32_t>(
          std::min<size_t>(server_->options.max_header_bytes, UINT32_MAX)));
      co_await http::async_read_header(socket_, buffer_, parser,
                                       redirect_error(use_awaitable, ec));
      Pending p;
      if (!ec) {
        read_head(parser, &p);
        if (p.error_status == 0) screen(parser, &p);
      }
      const bool refused = p.error_status != 0 || p.answer;
      if (!ec && !refused && parser.get()[http::field::expect] == "100-continue" &&
          !parser.is_done()) {
        // curl waits for this before sending a body; say go ahead (after the answer being
        // written, so the two never interleave).
        while ((current_ || answering_error_) && !closing_) {
          co_await reader_signal_.wait(use_awaitable);
        }
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        if (!closing_) {
          co_await asio::async_write(socket_, asio::buffer(kContinue.data(), kContinue.size()),
                                     redirect_error(use_awaitable, ec));
        }
      }
      if (!ec && !refused && !parser.is_done() && !closing_) {
        co_await http::async_read(socket_, buffer_, parser, redirect_error(use_awaitable, ec));
      }
      if (closing_) break;
      if (ec) {
        if (ec == http::error::body_limit) {
          p.error_status = 413;
          p.error_message = fmt::format("request body exceeds the limit of {} bytes",
                                        server_->options.max_body_bytes);
        } else if (ec == http::error::header_limit) {
          p.error_status = 431;
          p.error_message = fmt::format("request header exceeds the limit of {} bytes",
                                        server_->options.max_header_bytes);
        } else if (&ec.category() == &http::make_error_code(http::error::bad_method).category() &&
                   ec != http::error::end_of_stream && ec != http::error::partial_message) {
          p.error_status = 400;
          p.error_message = "malformed HTTP request: " + ec.message();
        }
        if (p.error_status == 0) {
          if (ec == http::error::end_of_stream && current_ && !current_->answer_started() &&
              buffer_.size() == 0) {
            // EOF between requests while one is being answered: a client that half-closed
            // after sending it (shutdown(SHUT_WR)) still waits for the answer, so "no more
            // requests", not "gone". It is written, then the connection closes. (A client that
            // really left is noticed when the answer is written. Once a streamed answer has
            // started, EOF still means gone: streams are cancelled at once.)
            stopping_ = true;
            while (current_ && !closing_) co_await reader_signal_.wait(use_awaitable);
            break;
          }
          peer_gone();
          break;
        }
      } else if (!refused) {
        p.request.body = std::move(parser.get().body());
      }
      next_ = std::move(p);
    }
    close();
  }

  // The request line and header fields of `parser`'s message into p->request (or a 400).
  void read_head(const http::request_parser<http::string_body>& parser, Pending* p) {
    const auto& msg = parser.get();
    p->request.method = std::string(msg.method_string());
    p->request.target = std::string(msg.target());
    p->request.keep_alive = msg.keep_alive();
    p->request.remote = remote_;
    p->head_request = msg.method() == http::verb::head;
    Status st = parse_target(p->request.target, &p->request.path, &p->request.query);
    if (!st.ok()) {
      p->error_status = 400;
      p->error_message = "malformed request target: " + st.message();
      return;
    }
    p->request.headers = to_headers(msg);
  }

  // Before the body is read: the owner's check_head (authentication), then room for the body
  // in max_body_memory. Sets p->answer when the request is refused.
  void screen(const http::request_parser<http::string_body>& parser, Pending* p) {
    const ServerOptions& o = server_->options;
    if (o.check_head) {
      std::optional<Response> answer;
      try {
        answer = o.check_head(p->request);
      } catch (const std::exception& e) {
        spdlog::error("http: check_head threw: {}", e.what());
        answer = error_response(500, "internal error checking the request", "server_error");
      }
      if (answer) {
        p->answer = std::move(answer);
        return;
      }
    }
    if (o.max_body_memory == 0) return;
    uint64_t bytes = 0;
    if (auto length = parser.content_length()) {
      bytes = *length;
    } else if (parser.chunked()) {
      bytes = o.max_body_bytes;  // unknown until read: the most it may be
    }
    if (bytes == 0 || bytes > o.max_body_bytes) return;  // nothing to hold, or 413 when read
    if (!p->body.take(server_->body_memory, o.max_body_memory, bytes)) {
      Response r = error_response(
          503,
          fmt::format("the server is holding {} bytes of request bodies (limit {}); a body of {} "
                      "bytes does not fit now, retry shortly",
                      server_->body_memory.load(), o.max_body_memory, bytes),
          "unavailable_error");
      r.headers.set("Retry-After", "1");
      p->answer = std::move(r);
    }
  }

  // Starts the request read ahead: hands it to its handler, or an error answer to the writer
  // (then returns false: nothing more is read from this connection).
  bool start_next() {
    Pending p = std::move(*next_);
    next_.reset();
    if (p.error_status != 0 || p.answer) {
      answering_error_ = true;
      error_ = p.answer ? std::move(*p.answer)
                        : error_response(p.error_status, p.error_message,
                                         "invalid_request_error");
      writer_signal_.notify();
      return false;
    }
    current_body_ = std::move(p.body);
    bool keep_alive = p.request.keep_alive && !server_->stopping && !stopping_;
    auto exchange = std::make_shared<Exchange>(weak_from_this(), server_->liveness, keep_alive,
                                               p.head_request,
                                               server_->options.max_buffered_bytes);
    current_ = exchange;
    server_->requests++;
    server_->in_flight++;
    {
      auto responder = std::make_shared<ConnectionResponder>(exchange);
      server_->dispatch(std::move(p.request), std::move(responder));
    }
    // The writer needs no wake-up here: the exchange wakes it when there is something to write
    // (or the connection closes).
    return true;
  }

  void peer_gone() {
    if (current_) current_->mark_closed();
    close();
  }

  asio::awaitable<void> run_writer() {
    auto self = shared_from_this();
    beast::error_code ec;
    while (true) {
      // Idle: wait for a request to answer (the idle timer closes the connection meanwhile).
      while (!current_ && !answering_error_ && !closing_) {
        co_await writer_signal_.wait(use_awaitable);
      }
      if (answering_error_) {
        Response& r = error_;
        std::string bytes = serialize_head(r.status, r.headers, false, r.body.size(), false);
        bytes += r.body;
        if (!closing_) {
          co_await asio::async_write(socket_, asio::buffer(bytes),
                                     redirect_error(use_awaitable, ec));
          if (!ec) co_await linger();
        }
        break;
      }
      if (!current_) break;  // closing with nothing in flight
      std::shared_ptr<Exchange> exchange = current_;
      bool ok = co_await pump(*exchange);
      if (ok) exchange->completed(); else exchange->mark_closed();
      current_.reset();
      current_body_.release();
      idle_since_ = std::chrono::steady_clock::now();
      if (--server_->in_flight == 0) {
        std::lock_guard lock(server_->mu);
        server_->cv.notify_all();
      }
      reader_signal_.notify();
      if (!ok || !exchange->keep_alive() || stopping_ || server_->stopping) break;
    }
    close();
  }

  // After an error answer to a request we did not read completely: stop sending, then read and
  // discard what the client still sends (bounded in bytes and time) so that closing does not
  // reset the connection before the client has read the answer.
  asio::awaitable<void> linger() {
    beast::error_code ec;
    socket_.shutdown(asio::socket_base::shutdown_send, ec);
    asio::steady_timer limit(loop_);
    limit.expires_after(std::min<std::chrono::milliseconds>(server_->options.idle_timeout,
                                                            std::chrono::seconds(2)));
    limit.async_wait([self = shared_from_this()](const beast::error_code& e) {
      if (e) return;
      beast::error_code ignored;
      self->socket_.cancel(ignored);
    });
    char discard[16 * 1024];
    size_t total = buffer_.size();
    while (total < 1024 * 1024) {
      size_t n = co_await socket_.async_read_some(asio::buffer(discard),
                                                  redirect_error(use_awaitable, ec));
      if (ec) break;
      total += n;
    }
    limit.cancel();
  }

  // Writes the exchange's bytes as they are queued. True when the response completed.
  asio::awaitable<bool> pump(Exchange& exchange) {
    beast::error_code ec;
    Exchange::Output out;
    std::vector<asio::const_buffer> buffers;
    while (true) {
      exchange.take(&out);
      if (out.pieces.empty() && resumed_inline_) {
        // Woken inside an answering call with nothing to write: finish from the loop's queue,
        // not inside the caller (close and completion callbacks may take the caller's locks).
        co_await asio::post(loop_, use_awaitable);
        continue;
      }
      if (!out.pieces.empty()) {
        buffers.clear();
        size_t total = 0;
        for (const auto& s : out.pieces) {
          buffers.emplace_back(s.data(), s.size());
          total += s.size();
        }
        co_await asio::async_write(socket_, buffers, redirect_error(use_awaitable, ec));
        if (ec) co_return false;
        exchange.consumed(total);
        out.pieces.clear();
        continue;  // more may have been queued meanwhile
      }
      if (out.aborted || closing_) co_return false;
      if (out.done) co_return true;
      co_await writer_signal_.wait(use_awaitable);
    }
  }

  Server::Impl* server_;
  Socket socket_;
  Loop loop_;
  Signal writer_signal_;           // the writer waits on it for a request or response bytes
  Signal reader_signal_;           // the reader waits on it while a request is pending
  asio::steady_timer idle_timer_;  // closes the connection once idle for idle_timeout
  beast::flat_buffer buffer_;
  std::string remote_;
  // All below: only touched on loop_.
  std::optional<Pending> next_;       // read ahead, not yet started
  std::shared_ptr<Exchange> current_;  // being answered
  BodyReservation current_body_;       // current_'s request body, counted until it completes
  bool answering_error_ = false;       // the writer answers error_ and closes
  Response error_;
  bool resumed_inline_ = false;        // the writer runs inside wake()
  bool closing_ = false;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point idle_since_;  // when the last response completed
};

std::optional<Loop> Exchange::loop() const {
  std::lock_guard lock(mu_);
  auto conn = conn_.lock();
  if (!conn) return std::nullopt;
  return conn->loop();
}

void Exchange::notify(bool here) {
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(mu_);
    if (notify_posted_) return;
    conn = conn_.lock();
    if (!conn) return;
    if (!conn->loop().running_in_this_thread()) {
      std::lock_guard live(liveness_->mu);
      if (!liveness_->alive) return;
      notify_posted_ = true;
      asio::post(conn->loop(), [w = conn_]() {
        if (auto c = w.lock()) c->wake();
      });
      return;
    }
  }
  if (here) {
    conn->wake();
  } else {
    conn->wake_soon();
  }
}

asio::awaitable<void> accept_loop(Server::Impl* server, size_t index) {
  using std::chrono::milliseconds;
  beast::error_code ec;
  Acceptor& acceptor = *server->acceptors[index];
  // A Unix socket's one acceptor gives each io thread a connection in turn.
  const bool hand_over = server->acceptors.size() < server->iocs.size();
  size_t turn = 0;
  Signal& resume = *server->accept_signals[index];
  asio::steady_timer backoff(acceptor.get_executor());
  milliseconds pause{0};  // the pause after the last failed accept; 0 outside an episode
  while (acceptor.is_open()) {
    if (server->open.load() >= server->max_connections) {
      // At the cap: leave newcomers in the kernel's backlog until a connection closes. The
      // count is read again after announcing the pause, so a close in between is not missed
      // (it sees paused_acceptors and posts a wake-up to this loop).
      server->paused_acceptors++;
      if (server->open.load() >= server->max_connections && !server->stopping) {
        co_await resume.wait(use_awaitable);
      }
      server->paused_acceptors--;
      continue;
    }
    const size_t target = hand_over ? turn++ % server->iocs.size() : index;
    Connection::Socket socket(server->iocs[target]->get_executor());
    co_await acceptor.async_accept(socket, redirect_error(use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      // Out of descriptors (EMFILE, ENFILE) or memory: retrying at once would spin. Back off,
      // doubling up to 1 s, and log once per episode.
      server->accept_errors++;
      if (pause.count() == 0) {
        spdlog::warn("http: accept failed: {}; pausing new connections until it succeeds again",
                     ec.message());
      }
      pause = std::clamp(pause * 2, milliseconds(10), milliseconds(1000));
      backoff.expires_after(pause);
      co_await backoff.async_wait(redirect_error(use_awaitable, ec));
      continue;
    }
    if (pause.count() != 0) {
      spdlog::info("http: accepting new connections again");
      pause = milliseconds(0);
    }
    server->accepted++;
    server->open++;
    auto conn = std::make_shared<Connection>(server, std::move(socket));
    {
      std::lock_guard lock(server->mu);
      std::erase_if(server->connections, [](const auto& w) { return w.expired(); });
      server->connections.push_back(conn);
    }
    if (target == index) {
      conn->start();
    } else {
      asio::post(conn->loop(), [conn] { conn->start(); });
    }
  }
}

}  // namespace

asio::io_context& io_context_of(Server& server) { return server.impl().main_ioc(); }

}  // namespace internal

void Server::Impl::wake_acceptors() {
  std::lock_guard lock(liveness->mu);
  if (!liveness->alive) return;
  for (size_t i = 0; i < accept_signals.size(); ++i) {
    internal::asio::post(*iocs[i], [this, i] { accept_signals[i]->notify(); });
  }
}

namespace internal {

bool is_hop_by_hop(std::string_view name) {
  static constexpr std::string_view kHop[] = {"Connection", "Keep-Alive", "Transfer-Encoding",
                                              "TE", "Trailer", "Upgrade", "Proxy-Connection"};
  for (auto h : kHop) {
    if (iequals(name, h)) return true;
  }
  return name.size() >= 6 && iequals(name.substr(0, 6), "Proxy-");
}

}  // namespace internal

// ---------------------------------------------------------------------------------------------

Server::Server(ServerOptions options) : impl_(std::make_shared<Impl>(std::move(options))) {}

Server::~Server() {
  stop();
  drain(std::chrono::milliseconds(0));
}

void Server::route(std::string method, std::string path, Handler handler) {
  impl_->routes[{std::move(method), std::move(path)}] = std::move(handler);
}

void Server::set_fallback(Handler handler) { impl_->fallback = std::move(handler); }

namespace internal {

StatusOr<stream_protocol::endpoint> endpoint_of(const Address& address) {
  if (address.is_unix()) {
    if (address.unix_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return invalid_argument_error(fmt::format(
          "http: the Unix socket path '{}' is {} bytes; the limit is {}", address.unix_path,
          address.unix_path.size(), sizeof(sockaddr_un{}.sun_path) - 1));
    }
    return stream_protocol::endpoint(local::endpoint(address.unix_path));
  }
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(address.host, ec);
  if (ec) {
    return invalid_argument_error(
        fmt::format("http: '{}' is not a numeric address: {}", address.host, ec.message()));
  }
  return stream_protocol::endpoint(tcp::endpoint(ip, address.port));
}

namespace {
// The TCP endpoint inside a generic one (AF_INET or AF_INET6).
tcp::endpoint tcp_of(const stream_protocol::endpoint& e) {
  tcp::endpoint out;
  std::memcpy(out.data(), e.data(), std::min(e.size(), out.capacity()));
  return out;
}
}  // namespace

uint16_t tcp_port_of(const stream_protocol::endpoint& endpoint) {
  const int family = endpoint.protocol().family();
  return family == AF_INET || family == AF_INET6 ? tcp_of(endpoint).port() : 0;
}

std::string describe_peer(const stream_protocol::endpoint& endpoint) {
  const int family = endpoint.protocol().family();
  if (family != AF_INET && family != AF_INET6) return "unix";
  tcp::endpoint t = tcp_of(endpoint);
  return t.address().to_string() + ":" + std::to_string(t.port());
}

}  // namespace internal

StatusOr<uint16_t> Server::listen() {
  namespace asio = internal::asio;
  using internal::Acceptor;
  using internal::stream_protocol;
  std::lock_guard lock(impl_->mu);
  if (impl_->listening || impl_->joined) {
    return failed_precondition_error("http: Server::listen called twice");
  }
  const auto& o = impl_->options;
  const Address where = o.unix_path.empty() ? Address::tcp(o.host, o.port)
                                            : Address::unix_socket(o.unix_path);
  auto endpoint = internal::endpoint_of(where);
  if (!endpoint.ok()) {
    return invalid_argument_error(
        fmt::format("http: bad listen address '{}': {}", where.to_string(),
                    endpoint.status().message()));
  }
  if (where.is_unix()) {
    // A socket file left by an earlier process of ours would make bind fail; anything else at
    // that path is not ours to remove.
    struct stat st {};
    if (lstat(o.unix_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      ::unlink(o.unix_path.c_str());
    }
  }
  boost::system::error_code ec;
  auto& acceptors = impl_->acceptors;
  const size_t count = where.is_unix() ? 1 : impl_->iocs.size();
  for (size_t i = 0; i < count; ++i) {
    acceptors.push_back(
        std::make_unique<Acceptor>(impl_->iocs[i]->get_executor()));
    impl_->accept_signals.push_back(
        std::make_unique<internal::Signal>(impl_->iocs[i]->get_executor()));
  }
  // With several io threads, each listens on its own TCP socket of one SO_REUSEPORT group: the
  // kernel gives each new connection to one of them, so exactly one io thread wakes for it and
  // serves it. A group would also share the port with another hangar of the same user, so a
  // fixed port is first checked free with an ordinary socket.
  using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
  const bool group = acceptors.size() > 1;
  if (group && o.port != 0) {
    Acceptor probe(impl_->main_ioc());
    probe.open(endpoint->protocol(), ec);
    if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) probe.bind(*endpoint, ec);
  }
  for (size_t i = 0; i < acceptors.size() && !ec; ++i) {
    auto& a = *acceptors[i];
    stream_protocol::endpoint at = *endpoint;
    if (i > 0) {  // the port port 0 gave the first
      auto first = acceptors[0]->local_endpoint(ec);
      if (!ec) at = first;
    }
    if (!ec) a.open(endpoint->protocol(), ec);
    if (!ec && !where.is_unix()) a.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && group) a.set_option(reuse_port(true), ec);
    if (!ec) a.bind(at, ec);
    if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    acceptors.clear();
    impl_->accept_signals.clear();
    return unavailable_error(fmt::format("http: cannot listen on {}: {}", where.to_string(),
                                         ec.message()));
  }
  if (!where.is_unix()) {
    impl_->port = internal::tcp_port_of(acceptors.front()->local_endpoint(ec));
  }
  impl_->listening = true;
  for (auto& ioc : impl_->iocs) impl_->work.emplace_back(ioc->get_executor());
  for (size_t i = 0; i < acceptors.size(); ++i) {
    asio::co_spawn(impl_->iocs[i]->get_executor(), internal::accept_loop(impl_.get(), i),
                   asio::detached);
  }
  for (auto& ioc : impl_->iocs) {
    impl_->threads.emplace_back([ioc = ioc.get()] { ioc->run(); });
  }
  spdlog::debug("http: listening on {}",
                where.is_unix() ? where.to_string() : o.host + ":" + std::to_string(port()));
  return impl_->port.load();
}

uint16_t Server::port() const { return impl_->port; }

// The live connections. Taken under mu, used without it: dropping the last reference runs
// ~Connection, which locks mu itself.
static std::vector<std::shared_ptr<internal::Connection>> live_connections(Server::Impl& impl) {
  std::vector<std::shared_ptr<internal::Connection>> out;
  std::lock_guard lock(impl.mu);
  for (auto& w : impl.connections) {
    if (auto c = w.lock()) out.push_back(std::move(c));
  }
  return out;
}

void Server::stop() {
  if (impl_->stopping.exchange(true)) return;
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->listening) return;
    for (size_t i = 0; i < impl_->acceptors.size(); ++i) {
      internal::asio::post(*impl_->iocs[i], [impl = impl_.get(), i] {
        boost::system::error_code ec;
        impl->acceptors[i]->close(ec);
        impl->accept_signals[i]->notify();  // a loop paused at max_connections ends
      });
    }
    // New clients get "no such file" rather than a socket nobody accepts on.
    if (!impl_->options.unix_path.empty()) ::unlink(impl_->options.unix_path.c_str());
  }
  for (auto& c : live_connections(*impl_)) {
    internal::asio::post(c->loop(), [c] { c->on_server_stop(); });
  }
}

bool Server::drain(std::chrono::milliseconds timeout) {
  stop();
  std::unique_lock lock(impl_->mu);
  if (!impl_->listening || impl_->joined) return impl_->in_flight == 0;
  bool all_done = impl_->cv.wait_for(lock, timeout, [&] { return impl_->in_flight == 0; });
  lock.unlock();
  for (auto& c : live_connections(*impl_)) {
    internal::asio::post(c->loop(), [c] { c->force_close(); });
  }
  lock.lock();
  // Closing is quick; the wait only guards against a stuck io thread.
  impl_->cv.wait_for(lock, std::chrono::seconds(2), [&] { return impl_->open == 0; });
  impl_->joined = true;
  lock.unlock();
  impl_->shut_down_io();
  return all_done;
}

void Server::post(std::function<void()> fn) {
  std::lock_guard lock(impl_->liveness->mu);
  if (!impl_->liveness->alive) return;
  internal::asio::post(impl_->main_ioc(), std::move(fn));
}

TimerHandle Server::run_after(std::chrono::milliseconds delay, std::function<void()> fn) {
  auto state = std::make_shared<TimerHandle::State>();
  state->fn = std::move(fn);
  std::lock_guard lock(impl_->liveness->mu);
  if (!impl_->liveness->alive) return TimerHandle(state);
  auto timer = std::make_shared<internal::asio::steady_timer>(impl_->main_ioc(), delay);
  timer->async_wait([timer, state](const boost::system::error_code& ec) {
    std::function<void()> fn;
    {
      std::lock_guard lock(state->mu);
      if (state->done) return;
      state->done = true;
      fn = std::move(state->fn);
    }
    if (!ec && fn) fn();
  });
  return TimerHandle(state);
}

ServerStats Server::stats() const {
  ServerStats s;
  s.accepted_connections = impl_->accepted;
  s.open_connections = impl_->open;
  s.requests = impl_->requests;
  s.in_flight = impl_->in_flight;
  s.accept_errors = impl_->accept_errors;
  s.body_memory = impl_->body_memory;
  return s;
}

}  // namespace hangar::http
