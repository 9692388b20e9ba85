// The HTTP server and the blocking clients: routing, keep-alive, chunked bodies, limits,
// malformed input, streaming/SSE causality, disconnects, concurrency, stop/drain, timers.

#include "http/server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "http/client.h"
#include "http/sse.h"
#include "echo_clients.h"
#include "raw_socket.h"

namespace hangar::http {
namespace {

using namespace std::chrono_literals;
using testing::RawSocket;

// A generous hang detector, never a speed assertion.
constexpr auto kHang = 20s;

// Concatenation by appending (gcc 12 warns falsely on "literal" + std::string temporaries).
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

std::string url(const Server& s, std::string_view target) {
  return cat("http://127.0.0.1:", std::to_string(s.port()), target);
}

std::unique_ptr<Server> start_server(std::function<void(Server&)> setup, ServerOptions o = {}) {
  auto s = std::make_unique<Server>(o);
  setup(*s);
  auto port = s->listen();
  EXPECT_TRUE(port.ok()) << port.status().to_string();
  return s;
}

void echo_route(Server& s) {
  s.route("POST", "/echo", [](Request req, std::shared_ptr<Responder> r) {
    Response resp = Response::text(200, req.body);
    resp.headers.add("X-Method", req.method);
    resp.headers.add("X-Path", req.path);
    resp.headers.add("X-Model", std::string(req.query_param("model").value_or("")));
    resp.headers.add("X-Auth", std::string(req.headers.get("authorization").value_or("")));
    r->send(std::move(resp));
  });
}

TEST(Server, RoutesByMethodAndPathAndAnswers404Otherwise) {
  auto s = start_server(echo_route);
  auto r = fetch("POST", url(*s, "/echo?model=a%20b"), "hello", {{"Authorization", "Bearer k"}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  EXPECT_EQ(r->headers.get("x-model").value(), "a b");
  EXPECT_EQ(r->headers.get("x-auth").value(), "Bearer k");
  EXPECT_EQ(r->headers.get("x-path").value(), "/echo");

  auto missing = fetch("GET", url(*s, "/nope"));
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  EXPECT_NE(missing->body.find("not_found_error"), std::string::npos) << missing->body;
  auto wrong_method = fetch("GET", url(*s, "/echo"));
  ASSERT_TRUE(wrong_method.ok());
  EXPECT_EQ(wrong_method->status, 404);
}

TEST(Server, FallbackHandlerSeesUnroutedRequests) {
  auto s = start_server([](Server& s) {
    s.set_fallback([](Request req, std::shared_ptr<Responder> r) {
      r->send(Response::text(299, req.target));
    });
  });
  auto r = fetch("GET", url(*s, "/any/thing?x=1"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 299);
  EXPECT_EQ(r->body, "/any/thing?x=1");
}

TEST(Server, KeepAliveReusesOneConnection) {
  auto s = start_server(echo_route);
  Client c("127.0.0.1", s->port());
  for (int i = 0; i < 5; ++i) {
    auto r = c.request("POST", "/echo", cat("n", std::to_string(i)));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->body, cat("n", std::to_string(i)));
  }
  EXPECT_EQ(c.connections_opened(), 1);
  EXPECT_EQ(s->stats().accepted_connections, 1u);
  EXPECT_EQ(s->stats().requests, 5u);
}

TEST(Server, PipelinedRequestsAreAnsweredInOrder) {
  auto s = start_server(echo_route);
  RawSocket sock(s->port());
  ASSERT_TRUE(sock.connected());
  sock.send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntwo");
  std::string all = sock.read_all();
  size_t one = all.find("\r\n\r\none");
  size_t two = all.find("\r\n\r\ntwo");
  ASSERT_NE(one, std::string::npos) << all;
  ASSERT_NE(two, std::string::npos) << all;
  EXPECT_LT(one, two);
}

TEST(Server, ChunkedRequestBodyIsDechunked) {
  auto s = start_server(echo_route);
  RawSocket sock(s->port());
  sock.send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  std::string all = sock.read_all();
  EXPECT_EQ(all.substr(0, 15), "HTTP/1.1 200 OK");
  EXPECT_NE(all.find("Content-Length: 11\r\n"), std::string::npos) << all;
  EXPECT_EQ(all.substr(all.size() - 11), "hello world");
}

TEST(Server, BodyOverTheLimitGets413) {
  ServerOptions o;
  o.max_body_bytes = 100;
  auto s = start_server(echo_route, o);
  auto ok = fetch("POST", url(*s, "/echo"), std::string(100, 'a'));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->status, 200);
  RawSocket sock(s->port());
  sock.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n");
  std::string all = sock.read_all();
  EXPECT_EQ(all.substr(0, 12), "HTTP/1.1 413") << all;
  EXPECT_NE(all.find("exceeds the limit of 100 bytes"), std::string::npos) << all;
  // A chunked body is counted as it arrives.
  RawSocket sock2(s->port());
  sock2.send(cat("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n",
                 std::string(101, 'b'), "\r\n0\r\n\r\n"));
  EXPECT_EQ(sock2.read_all().substr(0, 12), "HTTP/1.1 413");
  // A client that sends its whole large body anyway still reads the 413 (no reset).
  auto big = fetch("POST", url(*s, "/echo"), std::string(512 * 1024, 'c'));
  ASSERT_TRUE(big.ok()) << big.status().to_string();
  EXPECT_EQ(big->status, 413);
}

TEST(Server, MalformedRequestsGet400AndTheServerKeepsServing) {
  auto s = start_server(echo_route);
  const char* bad[] = {
      "GARBAGE\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
      "GET / HTTP/9.9\r\n\r\n",
      "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n",
  };
  for (const char* b : bad) {
    RawSocket sock(s->port());
    sock.send(b);
    std::string all = sock.read_all();
    EXPECT_EQ(all.substr(0, 12), "HTTP/1.1 400") << "for " << b << " got " << all;
  }
  auto r = fetch("POST", url(*s, "/echo"), "still");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "still");
}

TEST(Server, OversizedHeadGets431) {
  ServerOptions o;
  o.max_header_bytes = 1024;
  auto s = start_server(echo_route, o);
  RawSocket sock(s->port());
  sock.send(cat("GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: ", std::string(2000, 'x'), "\r\n\r\n"));
  EXPECT_EQ(sock.read_all().substr(0, 12), "HTTP/1.1 431");
}

TEST(Server, ExpectContinueGetsA100BeforeTheBody) {
  auto s = start_server(echo_route);
  RawSocket sock(s->port());
  sock.send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n"
      "Connection: close\r\n\r\n");
  EXPECT_EQ(sock.read_until("\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
  sock.send("body");
  std::string all = sock.read_all();
  EXPECT_EQ(all.substr(0, 15), "HTTP/1.1 200 OK") << all;
  EXPECT_EQ(all.substr(all.size() - 4), "body");
}

TEST(Server, HandlerThatThrowsGets500AndTheServerSurvives) {
  auto s = start_server([](Server& s) {
    s.route("GET", "/throw", [](Request, std::shared_ptr<Responder>) {
      throw std::runtime_error("boom");
    });
    echo_route(s);
  });
  auto r = fetch("GET", url(*s, "/throw"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 500);
  auto again = fetch("POST", url(*s, "/echo"), "alive");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->body, "alive");
}

TEST(Server, StreamsAChunkedResponsePieceByPiece) {
  auto s = start_server([](Server& s) {
    s.route("GET", "/stream", [](Request, std::shared_ptr<Responder> r) {
      r->start(200, {{"Content-Type", "text/plain"}});
      r->write("abc");
      r->write("");
      r->write("def");
      r->finish();
    });
  });
  RawSocket sock(s->port());
  sock.send("GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string all = sock.read_all();
  EXPECT_NE(all.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << all;
  EXPECT_NE(all.find("\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"), std::string::npos) << all;
  auto r = fetch("GET", url(*s, "/stream"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "abcdef");
}

TEST(Server, SseIsStreamedCausally) {
  // The producer writes event 2 only after the client has seen event 1: without streaming,
  // the test would hang (and the hang detector fails it).
  std::promise<std::shared_ptr<Responder>> got_responder;
  auto s = start_server([&](Server& s) {
    s.route("GET", "/events", [&](Request, std::shared_ptr<Responder> r) {
      r->start(200, {{"Content-Type", "text/event-stream"}});
      got_responder.set_value(r);
    });
  });
  std::promise<void> saw_first;
  std::vector<std::string> seen;
  std::thread client([&] {
    SseParser parser;
    FetchOptions o;
    o.timeout = kHang;
    Status st = fetch_stream(
        url(*s, "/events"), o, [](int, const Headers&) {},
        [&](std::string_view piece) {
          parser.feed(piece, [&](const SseEvent& e) {
            seen.push_back(e.data);
            if (seen.size() == 1) saw_first.set_value();
          });
          return true;
        });
    EXPECT_TRUE(st.ok()) << st.to_string();
  });
  auto fr = got_responder.get_future();
  ASSERT_EQ(fr.wait_for(kHang), std::future_status::ready);
  auto responder = fr.get();
  ASSERT_TRUE(responder->write(sse_data("{\"n\":1}")));
  ASSERT_EQ(saw_first.get_future().wait_for(kHang), std::future_status::ready);
  ASSERT_TRUE(responder->write(sse_data("{\"n\":2}")));
  ASSERT_TRUE(responder->write(sse_data("[DONE]")));
  responder->finish();
  client.join();
  EXPECT_EQ(seen, (std::vector<std::string>{"{\"n\":1}", "{\"n\":2}", "[DONE]"}));
}

TEST(Server, ResponderSeesClientDisconnect) {
  std::promise<std::shared_ptr<Responder>> got_responder;
  std::promise<void> closed;
  auto s = start_server([&](Server& s) {
    s.route("GET", "/events", [&](Request, std::shared_ptr<Responder> r) {
      r->on_close([&] { closed.set_value(); });
      r->start(200, {{"Content-Type", "text/event-stream"}});
      r->write(sse_data("first"));
      got_responder.set_value(r);
    });
  });
  FetchOptions o;
  o.timeout = kHang;
  // The client reads the first piece and hangs up.
  Status st = fetch_stream(url(*s, "/events"), o, [](int, const Headers&) {},
                           [](std::string_view) { return false; });
  EXPECT_EQ(st.code(), StatusCode::kCancelled);
  auto responder = got_responder.get_future().get();
  ASSERT_EQ(closed.get_future().wait_for(kHang), std::future_status::ready);
  EXPECT_TRUE(responder->is_closed());
  EXPECT_FALSE(responder->write("more"));
}

TEST(Server, HandlerThatDropsItsResponderGets500) {
  auto s = start_server([](Server& s) {
    s.route("GET", "/drop", [](Request, std::shared_ptr<Responder>) {});
  });
  auto r = fetch("GET", url(*s, "/drop"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 500);
}

TEST(Server, AnswersFromAnotherThreadLater) {
  std::vector<std::thread> workers;
  std::mutex mu;
  auto s = start_server([&](Server& s) {
    s.route("GET", "/later", [&](Request, std::shared_ptr<Responder> r) {
      std::lock_guard lock(mu);
      workers.emplace_back([r] { r->send(Response::json(200, "{\"late\":true}")); });
    });
  });
  auto r = fetch("GET", url(*s, "/later"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "{\"late\":true}");
  std::lock_guard lock(mu);
  for (auto& t : workers) t.join();
}

TEST(Server, ManyParallelClientsAllGetTheirOwnAnswers) {
  ServerOptions o;
  o.threads = 2;
  auto s = start_server(echo_route, o);
  constexpr int kClients = 16, kRequests = 25;
  EXPECT_EQ(testing::parallel_echo_clients(s->port(), kClients, kRequests), kClients * kRequests);
  EXPECT_EQ(s->stats().accepted_connections, static_cast<uint64_t>(kClients));
}

TEST(Server, StopRefusesNewConnectionsAndDrainWaitsForInFlight) {
  std::promise<std::shared_ptr<Responder>> got_responder;
  auto s = start_server([&](Server& s) {
    s.route("GET", "/slow", [&](Request, std::shared_ptr<Responder> r) {
      got_responder.set_value(r);
    });
  });
  std::string target = url(*s, "/slow");
  StatusOr<Response> slow = internal_error("not run");
  std::thread client([&] { slow = fetch("GET", target); });
  auto fr = got_responder.get_future();
  ASSERT_EQ(fr.wait_for(kHang), std::future_status::ready);
  auto responder = fr.get();
  s->stop();
  auto refused = fetch("GET", target, "", {}, 5s);
  EXPECT_FALSE(refused.ok());
  std::thread answer([&] { responder->send(Response::text(200, "done")); });
  EXPECT_TRUE(s->drain(kHang));
  answer.join();
  client.join();
  ASSERT_TRUE(slow.ok()) << slow.status().to_string();
  EXPECT_EQ(slow->body, "done");
}

TEST(Server, DrainGivesUpOnAStuckHandlerAndClosesItsConnection) {
  std::shared_ptr<Responder> held;
  std::promise<void> got;
  std::promise<void> closed;
  auto s = start_server([&](Server& s) {
    s.route("GET", "/stuck", [&](Request, std::shared_ptr<Responder> r) {
      r->on_close([&] { closed.set_value(); });
      held = r;
      got.set_value();
    });
  });
  StatusOr<Response> r = internal_error("not run");
  std::thread client([&] { r = fetch("GET", url(*s, "/stuck")); });
  ASSERT_EQ(got.get_future().wait_for(kHang), std::future_status::ready);
  EXPECT_FALSE(s->drain(50ms));
  client.join();
  EXPECT_FALSE(r.ok());
  ASSERT_EQ(closed.get_future().wait_for(kHang), std::future_status::ready);
  EXPECT_TRUE(held->is_closed());
  EXPECT_FALSE(held->send(Response::text(200, "too late")));  // inert, no crash
}

TEST(Server, IdleKeepAliveConnectionIsClosedAfterTheTimeout) {
  ServerOptions o;
  o.idle_timeout = 100ms;
  auto s = start_server(echo_route, o);
  RawSocket sock(s->port());
  sock.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
  // read_all returns when the server closes the idle connection (the socket's receive timeout
  // is the hang detector, and peer_closed() tells the two apart).
  std::string all = sock.read_all();
  EXPECT_EQ(all.substr(0, 15), "HTTP/1.1 200 OK");
  EXPECT_TRUE(sock.peer_closed());
}

// The idle timeout is for connections with nothing in progress: an answer that takes several
// timeouts to come, and a client that waits between requests for less than one, are not cut.
TEST(Server, IdleTimeoutNeverCutsASlowAnswerOrAnActiveClient) {
  ServerOptions o;
  o.idle_timeout = 100ms;
  auto s = start_server([](Server& srv) {
    srv.route("GET", "/slow", [](Request, std::shared_ptr<Responder> r) {
      std::thread([r] {
        std::this_thread::sleep_for(350ms);
        r->send(Response::text(200, "late"));
      }).detach();
    });
    srv.route("POST", "/echo", [](Request req, std::shared_ptr<Responder> r) {
      r->send(Response::text(200, req.body));
    });
  }, o);
  Client client("127.0.0.1", s->port());
  auto slow = client.request("GET", "/slow", "");
  ASSERT_TRUE(slow.ok()) << slow.status().to_string();
  EXPECT_EQ(slow->body, "late");
  for (int i = 0; i < 4; ++i) {  // 4 x 60 ms > the timeout, each gap < the timeout
    std::this_thread::sleep_for(60ms);
    auto r = client.request("POST", "/echo", std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->body, std::to_string(i));
  }
  EXPECT_EQ(s->stats().accepted_connections, 1u);  // one keep-alive connection throughout
}

TEST(Server, RunAfterRunsAndCancelPreventsRunning) {
  auto s = start_server([](Server&) {});
  std::promise<void> ran;
  s->run_after(1ms, [&] { ran.set_value(); });
  std::atomic<bool> cancelled_ran{false};
  TimerHandle h = s->run_after(1h, [&] { cancelled_ran = true; });
  EXPECT_TRUE(h.cancel());
  EXPECT_FALSE(h.cancel());
  ASSERT_EQ(ran.get_future().wait_for(kHang), std::future_status::ready);
  std::promise<void> posted;
  s->post([&] { posted.set_value(); });
  ASSERT_EQ(posted.get_future().wait_for(kHang), std::future_status::ready);
  EXPECT_FALSE(cancelled_ran);
}

TEST(Server, ListenFailsWithAClearErrorOnABusyPort) {
  auto s = start_server([](Server&) {});
  ServerOptions o;
  o.port = s->port();
  Server second(o);
  auto r = second.listen();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(std::to_string(s->port())), std::string::npos);
}

// With several io threads the listening sockets form an SO_REUSEPORT group; a second server of
// the same user must still be refused the port, not join the group and take half the traffic.
TEST(Server, ASecondMultiThreadedServerCannotShareTheBusyPort) {
  ServerOptions o;
  o.threads = 2;
  auto s = start_server(echo_route, o);
  ServerOptions same = o;
  same.port = s->port();
  Server second(same);
  auto r = second.listen();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(std::to_string(s->port())), std::string::npos);
  // The first still answers every request, on both of its io threads.
  EXPECT_EQ(testing::parallel_echo_clients(s->port(), 8, 5), 40);
}

TEST(Client, RefusedConnectionIsUnavailable) {
  uint16_t port;
  {
    auto s = start_server([](Server&) {});
    port = s->port();
  }
  auto r = fetch("GET", cat("127.0.0.1:", std::to_string(port), "/x"), "", {}, 5s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
}

TEST(Client, ParsesUrls) {
  auto u = parse_url("http://127.0.0.1:8080/v1/models?x=1");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->target, "/v1/models?x=1");
  auto bare = parse_url("localhost:9");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->target, "/");
  EXPECT_FALSE(parse_url("https://x:1/").ok());
  EXPECT_FALSE(parse_url("x:99999/").ok());
  EXPECT_FALSE(parse_url("x:abc/").ok());
}

}  // namespace
}  // namespace hangar::http
