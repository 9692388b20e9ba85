// forward() and Upstream: a proxy Server in front of a "worker" Server, both in-process.

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include "http/client.h"
#include "http/server.h"
#include "http/sse.h"
#include "http/upstream.h"
#include "echo_clients.h"
#include "raw_socket.h"

namespace hangar::http {
namespace {

using namespace std::chrono_literals;
using testing::RawSocket;

constexpr auto kHang = 20s;  // a hang detector, never a speed assertion

template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

// A worker server and a proxy server forwarding everything to it.
class ForwardTest : public ::testing::Test {
 protected:
  void start_worker(std::function<void(Server&)> routes) {
    worker_ = std::make_unique<Server>(ServerOptions{});
    routes(*worker_);
    ASSERT_TRUE(worker_->listen().ok());
    start_proxy(worker_->port());
  }

  void start_proxy(uint16_t upstream_port, UpstreamOptions uo = {}) {
    ServerOptions o;
    o.threads = 2;
    proxy_ = std::make_unique<Server>(o);
    proxy_->set_fallback([this](Request req, std::shared_ptr<Responder> r) {
      forward(std::move(req), std::move(r), upstream_, [this](const ForwardResult& res) {
        std::lock_guard lock(mu_);
        results_.push_back(res);
        cv_.notify_all();
      });
    });
    ASSERT_TRUE(proxy_->listen().ok());
    upstream_ = Upstream::create(*proxy_, "127.0.0.1", upstream_port, uo);
  }

  std::string proxy_url(std::string_view target) const {
    return cat("http://127.0.0.1:", std::to_string(proxy_->port()), target);
  }

  // Waits until `n` forwards reported on_done; returns the n-th result.
  ForwardResult wait_result(size_t n) {
    std::unique_lock lock(mu_);
    bool ok = cv_.wait_for(lock, kHang, [&] { return results_.size() >= n; });
    EXPECT_TRUE(ok) << "on_done did not run";
    return ok ? results_[n - 1] : ForwardResult{};
  }

  void TearDown() override {
    if (proxy_) proxy_->drain(5s);
    if (worker_) worker_->drain(5s);
  }

  std::unique_ptr<Server> worker_;
  std::unique_ptr<Server> proxy_;
  std::shared_ptr<Upstream> upstream_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ForwardResult> results_;  // guarded by mu_
};

TEST_F(ForwardTest, PlainResponsePassesThroughWithStatusHeadersAndBody) {
  Headers seen;
  start_worker([&](Server& s) {
    s.route("POST", "/v1/echo", [&](Request req, std::shared_ptr<Responder> r) {
      seen = req.headers;
      Response resp = Response::json(201, cat("{\"got\":", req.body, ",\"q\":\"",
                                              req.query_param("model").value_or(""), "\"}"));
      resp.headers.add("X-Worker", "w1");
      resp.headers.add("Keep-Alive", "timeout=5");
      r->send(std::move(resp));
    });
  });
  RawSocket sock(proxy_->port());
  sock.send(
      "POST /v1/echo?model=m%201 HTTP/1.1\r\nHost: router\r\nContent-Length: 2\r\n"
      "Connection: close, X-Secret\r\nX-Secret: s\r\nProxy-Authorization: p\r\nTE: trailers\r\n"
      "Authorization: Bearer k\r\n\r\n42");
  std::string all = sock.read_all();
  EXPECT_EQ(all.substr(0, 12), "HTTP/1.1 201") << all;
  EXPECT_NE(all.find("X-Worker: w1\r\n"), std::string::npos) << all;
  EXPECT_EQ(all.find("Keep-Alive"), std::string::npos) << all;
  EXPECT_NE(all.find("\r\n\r\n{\"got\":42,\"q\":\"m 1\"}"), std::string::npos) << all;
  // Hop-by-hop fields (and those Connection names) do not reach the worker; end-to-end do.
  EXPECT_FALSE(seen.has("X-Secret"));
  EXPECT_FALSE(seen.has("Proxy-Authorization"));
  EXPECT_FALSE(seen.has("TE"));
  EXPECT_EQ(seen.get_or("Authorization", ""), "Bearer k");
  EXPECT_EQ(seen.get_or("Host", ""), cat("127.0.0.1:", std::to_string(worker_->port())));
  ForwardResult res = wait_result(1);
  EXPECT_TRUE(res.status.ok()) << res.status.to_string();
  EXPECT_EQ(res.upstream_status, 201);
}

TEST_F(ForwardTest, SseStreamsThroughChunkByChunkCausally) {
  std::promise<std::shared_ptr<Responder>> worker_responder;
  start_worker([&](Server& s) {
    s.route("POST", "/v1/chat/completions", [&](Request, std::shared_ptr<Responder> r) {
      r->start(200, {{"Content-Type", "text/event-stream"}});
      worker_responder.set_value(r);
    });
  });
  std::promise<void> saw_first;
  std::vector<std::string> seen;
  int status = 0;
  std::string content_type;
  std::thread client([&] {
    SseParser parser;
    FetchOptions o;
    o.method = "POST";
    o.body = "{}";
    o.timeout = kHang;
    Status st = fetch_stream(
        proxy_url("/v1/chat/completions"), o,
        [&](int s, const Headers& h) {
          status = s;
          content_type = h.get_or("Content-Type", "");
        },
        [&](std::string_view piece) {
          parser.feed(piece, [&](const SseEvent& e) {
            seen.push_back(e.data);
            if (seen.size() == 1) saw_first.set_value();
          });
          return true;
        });
    EXPECT_TRUE(st.ok()) << st.to_string();
  });
  auto fr = worker_responder.get_future();
  ASSERT_EQ(fr.wait_for(kHang), std::future_status::ready);
  auto r = fr.get();
  r->write(sse_data("chunk 1"));
  // The worker holds chunk 2 until the client has seen chunk 1 through the proxy.
  ASSERT_EQ(saw_first.get_future().wait_for(kHang), std::future_status::ready);
  r->write(sse_data("chunk 2"));
  r->write(sse_data("[DONE]"));
  r->finish();
  client.join();
  EXPECT_EQ(status, 200);
  EXPECT_EQ(content_type, "text/event-stream");
  EXPECT_EQ(seen, (std::vector<std::string>{"chunk 1", "chunk 2", "[DONE]"}));
  EXPECT_TRUE(wait_result(1).status.ok());
}

TEST_F(ForwardTest, ReusesPooledUpstreamConnections) {
  start_worker([](Server& s) {
    s.route("GET", "/health", [](Request, std::shared_ptr<Responder> r) {
      r->send(Response::json(200, "{\"status\":\"ok\"}"));
    });
  });
  for (int i = 0; i < 10; ++i) {
    // A fresh client connection each time: only the upstream side is pooled.
    auto r = fetch("GET", proxy_url("/health"));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->body, "{\"status\":\"ok\"}");
    wait_result(static_cast<size_t>(i + 1));
  }
  // One pooled connection per proxy io thread (2 here): a forward only uses connections of its
  // own thread. Ten requests, at most two connections.
  EXPECT_LE(worker_->stats().accepted_connections, 2u);
  EXPECT_GE(worker_->stats().accepted_connections, 1u);
  EXPECT_EQ(upstream_->stats().connections_opened, worker_->stats().accepted_connections);
  EXPECT_EQ(upstream_->stats().idle_connections, upstream_->stats().connections_opened);
}

TEST_F(ForwardTest, RetriesOnceWhenThePooledConnectionWasClosedByTheWorker) {
  ServerOptions wo;
  wo.idle_timeout = 50ms;  // the worker closes idle keep-alive connections quickly
  worker_ = std::make_unique<Server>(wo);
  worker_->route("GET", "/x", [](Request, std::shared_ptr<Responder> r) {
    r->send(Response::text(200, "x"));
  });
  ASSERT_TRUE(worker_->listen().ok());
  start_proxy(worker_->port());
  ASSERT_TRUE(fetch("GET", proxy_url("/x")).ok());
  wait_result(1);
  // Wait (event-driven) until the worker has closed the pooled connection.
  std::promise<void> closed;
  std::function<void()> poll = [&] {
    if (worker_->stats().open_connections == 0) {
      closed.set_value();
    } else {
      proxy_->run_after(5ms, poll);
    }
  };
  proxy_->post(poll);
  ASSERT_EQ(closed.get_future().wait_for(kHang), std::future_status::ready);
  auto r = fetch("GET", proxy_url("/x"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "x");
}

TEST_F(ForwardTest, RefusedUpstreamGives502OpenAiError) {
  uint16_t dead_port;
  {
    Server gone{ServerOptions{}};
    dead_port = gone.listen().value();
  }
  start_proxy(dead_port);
  auto r = fetch("POST", proxy_url("/v1/chat/completions"), "{}");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(r->body.find(R"({"error":{"code":502,"message":")"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find(R"("type":"unavailable_error"}})"), std::string::npos) << r->body;
  ForwardResult res = wait_result(1);
  EXPECT_EQ(res.status.code(), StatusCode::kUnavailable);
  EXPECT_FALSE(res.status.ok());
}

TEST_F(ForwardTest, SilentUpstreamPastTheReadTimeoutGives502) {
  std::shared_ptr<Responder> held;  // the worker never answers
  worker_ = std::make_unique<Server>(ServerOptions{});
  worker_->route("GET", "/hang", [&](Request, std::shared_ptr<Responder> r) { held = r; });
  ASSERT_TRUE(worker_->listen().ok());
  UpstreamOptions uo;
  uo.read_timeout = 50ms;
  start_proxy(worker_->port(), uo);
  auto r = fetch("GET", proxy_url("/hang"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(r->body.find("did not answer within 50 ms"), std::string::npos) << r->body;
  EXPECT_EQ(wait_result(1).status.code(), StatusCode::kUnavailable);
}

TEST_F(ForwardTest, UpstreamDyingMidSseStreamEndsWithAnErrorEvent) {
  start_worker([&](Server& s) {
    s.route("POST", "/v1/completions", [&](Request, std::shared_ptr<Responder> r) {
      r->start(200, {{"Content-Type", "text/event-stream"}});
      r->write(sse_data("partial"));
      r->abort();  // the worker dies: connection cut without the terminating chunk
    });
  });
  FetchOptions o;
  o.method = "POST";
  o.timeout = kHang;
  std::vector<std::string> seen;
  SseParser parser;
  Status st = fetch_stream(proxy_url("/v1/completions"), o, [](int, const Headers&) {},
                           [&](std::string_view piece) {
                             parser.feed(piece, [&](const SseEvent& e) { seen.push_back(e.data); });
                             return true;
                           });
  EXPECT_TRUE(st.ok()) << st.to_string();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], "partial");
  EXPECT_NE(seen[1].find(R"({"error":{"code":502,)"), std::string::npos) << seen[1];
  EXPECT_NE(seen[1].find("unavailable_error"), std::string::npos) << seen[1];
  ForwardResult res = wait_result(1);
  EXPECT_EQ(res.status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(res.sent_to_client);
}

TEST_F(ForwardTest, UpstreamDyingMidPlainStreamTruncatesTheClientResponse) {
  start_worker([&](Server& s) {
    s.route("GET", "/big", [&](Request, std::shared_ptr<Responder> r) {
      r->start(200, {{"Content-Type", "application/octet-stream"}});
      r->write(std::string(1000, 'a'));
      r->abort();
    });
  });
  auto r = fetch("GET", proxy_url("/big"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().to_string();
  EXPECT_EQ(wait_result(1).status.code(), StatusCode::kUnavailable);
}

TEST_F(ForwardTest, ClientDisconnectCancelsTheUpstreamRequest) {
  std::promise<void> worker_saw_close;
  std::shared_ptr<Responder> held;
  start_worker([&](Server& s) {
    s.route("POST", "/v1/chat/completions", [&](Request, std::shared_ptr<Responder> r) {
      r->on_close([&] { worker_saw_close.set_value(); });
      r->start(200, {{"Content-Type", "text/event-stream"}});
      r->write(sse_data("first"));
      held = r;  // generation "continues" until the worker notices the disconnect
    });
  });
  FetchOptions o;
  o.method = "POST";
  o.timeout = kHang;
  Status st = fetch_stream(proxy_url("/v1/chat/completions"), o, [](int, const Headers&) {},
                           [](std::string_view) { return false; });  // hang up after 1 piece
  EXPECT_EQ(st.code(), StatusCode::kCancelled);
  ASSERT_EQ(worker_saw_close.get_future().wait_for(kHang), std::future_status::ready);
  EXPECT_EQ(wait_result(1).status.code(), StatusCode::kCancelled);
  EXPECT_EQ(upstream_->stats().idle_connections, 0u);  // a cancelled connection is not pooled
}

TEST_F(ForwardTest, LargeStreamedBodyArrivesIntactThroughBackpressure) {
  constexpr int kChunks = 256;
  constexpr size_t kChunk = 16 * 1024;  // 4 MiB in all, more than the high-water mark
  start_worker([&](Server& s) {
    s.route("GET", "/blob", [&](Request, std::shared_ptr<Responder> r) {
      // A producer that keeps pace: writes only while the client side is not behind.
      r->start(200, {{"Content-Type", "application/octet-stream"}});
      auto next = std::make_shared<int>(0);
      auto pump = std::make_shared<std::function<void()>>();
      *pump = [r, next, pump] {
        while (*next < kChunks && r->buffered_bytes() <= Responder::kHighWaterBytes) {
          std::string chunk(kChunk, static_cast<char>('a' + (*next % 26)));
          if (!r->write(std::move(chunk))) return;
          ++*next;
        }
        if (*next == kChunks) {
          r->finish();
          *pump = nullptr;  // break the cycle
        } else {
          r->on_drained([pump] { if (*pump) (*pump)(); });
        }
      };
      (*pump)();
    });
  });
  size_t total = 0;
  bool in_order = true;
  FetchOptions o;
  o.timeout = kHang;
  Status st = fetch_stream(proxy_url("/blob"), o, [](int, const Headers&) {},
                           [&](std::string_view piece) {
                             for (char c : piece) {
                               char want = static_cast<char>('a' + ((total / kChunk) % 26));
                               if (c != want) in_order = false;
                               ++total;
                             }
                             return true;
                           });
  EXPECT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(total, kChunks * kChunk);
  EXPECT_TRUE(in_order);
  EXPECT_TRUE(wait_result(1).status.ok());
}

TEST_F(ForwardTest, ForwardCanBeCalledLaterFromAnotherThread) {
  start_worker([](Server& s) {
    s.route("GET", "/m", [](Request, std::shared_ptr<Responder> r) {
      r->send(Response::text(200, "loaded"));
    });
  });
  // A second proxy route that queues the request (as while a model loads) and forwards it
  // from another thread.
  std::vector<std::thread> loaders;
  std::mutex loaders_mu;
  Server queued{ServerOptions{}};
  auto up = Upstream::create(queued, "127.0.0.1", worker_->port());
  queued.set_fallback([&](Request req, std::shared_ptr<Responder> r) {
    std::lock_guard lock(loaders_mu);
    loaders.emplace_back([&, req = std::move(req), r]() mutable {
      forward(std::move(req), r, up, [](const ForwardResult&) {});
    });
  });
  ASSERT_TRUE(queued.listen().ok());
  auto r = fetch("GET", cat("127.0.0.1:", std::to_string(queued.port()), "/m"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->body, "loaded");
  std::lock_guard lock(loaders_mu);
  for (auto& t : loaders) t.join();
  queued.drain(5s);
}

TEST_F(ForwardTest, ManyParallelClientsThroughTheProxy) {
  start_worker([](Server& s) {
    s.route("POST", "/echo", [](Request req, std::shared_ptr<Responder> r) {
      r->send(Response::text(200, req.body));
    });
  });
  constexpr int kClients = 8, kRequests = 20;
  EXPECT_EQ(testing::parallel_echo_clients(proxy_->port(), kClients, kRequests),
            kClients * kRequests);
  EXPECT_LE(upstream_->stats().connections_opened, static_cast<uint64_t>(kClients));
}

}  // namespace
}  // namespace hangar::http
