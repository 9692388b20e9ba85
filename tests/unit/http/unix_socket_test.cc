// Unix sockets (issue 16 item 7, design §6): the router's own workers listen on a Unix socket in
// a directory only the router's user can enter. The Server listens there, fetch() and the
// proxy's Upstream connect there, and the socket file lives only while the server listens.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "http/client.h"
#include "http/server.h"
#include "http/upstream.h"
#include "support/test_support.h"

namespace hangar::http {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class UnixSocketTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = hangar::testing::make_temp_dir("hangar-unix"); }
  void TearDown() override { fs::remove_all(dir_); }

  // A server on `path` answering every request with "hello from <path>" and its remote.
  std::unique_ptr<Server> echo_server(const std::string& path, int threads = 1) {
    ServerOptions o;
    o.unix_path = path;
    o.threads = threads;
    auto server = std::make_unique<Server>(o);
    server->set_fallback([](Request req, std::shared_ptr<Responder> r) {
      Response resp;
      resp.status = 200;
      resp.body = req.method + " " + req.target + " from " + req.remote + " host " +
                  std::string(req.headers.get("Host").value_or(""));
      r->send(std::move(resp));
    });
    return server;
  }
  StatusOr<Response> get(const std::string& path, const std::string& target) {
    FetchOptions o;
    o.unix_socket = path;
    o.timeout = 10s;
    return fetch("http://localhost" + target, o);
  }

  fs::path dir_;
};

TEST_F(UnixSocketTest, ServesOnASocketFileThatIsGoneWhenItStops) {
  const std::string path = (dir_ / "w.sock").string();
  auto server = echo_server(path);
  auto port = server->listen();
  ASSERT_TRUE(port.ok()) << port.status().message();
  EXPECT_EQ(*port, 0);  // no TCP port at all
  struct stat st {};
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  auto r = get(path, "/health?x=1");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /health?x=1 from unix host localhost");
  server->stop();
  EXPECT_FALSE(fs::exists(path));
  auto after = get(path, "/health");
  EXPECT_FALSE(after.ok());
  server->drain(1s);
}

TEST_F(UnixSocketTest, ReplacesAStaleSocketButNeverAnotherFile) {
  const std::string path = (dir_ / "w.sock").string();
  {
    auto first = echo_server(path);
    ASSERT_TRUE(first->listen().ok());
    // A process killed without stopping leaves its socket file: simulate by recreating it.
  }
  {
    // Leave a socket file behind the way SIGKILL does: bind and never unlink.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof(a.sun_path), "%s", path.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ::close(fd);
  }
  ASSERT_TRUE(fs::exists(path));
  auto second = echo_server(path);
  ASSERT_TRUE(second->listen().ok());
  auto r = get(path, "/");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);
  second.reset();

  const std::string regular = (dir_ / "data.txt").string();
  std::ofstream(regular) << "keep me";
  auto third = echo_server(regular);
  auto bound = third->listen();
  ASSERT_FALSE(bound.ok());
  EXPECT_NE(bound.status().message().find(regular), std::string::npos) << bound.status().message();
  std::ifstream in(regular);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "keep me");
}

TEST_F(UnixSocketTest, APathTooLongIsAClearError) {
  const std::string path = (dir_ / std::string(150, 'x')).string();
  auto server = echo_server(path);
  auto bound = server->listen();
  ASSERT_FALSE(bound.ok());
  EXPECT_NE(bound.status().message().find("limit"), std::string::npos)
      << bound.status().message();
}

TEST_F(UnixSocketTest, EveryIoThreadServesConnections) {
  const std::string path = (dir_ / "w.sock").string();
  auto server = echo_server(path, 3);
  ASSERT_TRUE(server->listen().ok());
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 12; ++i) {
    clients.emplace_back([&] {
      auto r = get(path, "/x");
      if (r.ok() && r->status == 200) ok++;
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 12);
  EXPECT_EQ(server->stats().accepted_connections, 12u);
}

TEST_F(UnixSocketTest, TheProxyForwardsToAWorkerOnAUnixSocket) {
  const std::string path = (dir_ / "w.sock").string();
  ServerOptions wo;
  wo.unix_path = path;
  Server worker(wo);
  worker.route("GET", "/stream", [](Request, std::shared_ptr<Responder> r) {
    Headers h;
    h.set("Content-Type", "text/event-stream");
    r->start(200, std::move(h));
    for (int i = 0; i < 3; ++i) r->write("data: " + std::to_string(i) + "\n\n");
    r->finish();
  });
  ASSERT_TRUE(worker.listen().ok());

  Server proxy(ServerOptions{});
  auto upstream = Upstream::create(proxy, Address::unix_socket(path));
  EXPECT_EQ(upstream->address().to_string(), "unix:" + path);
  proxy.set_fallback([&](Request req, std::shared_ptr<Responder> r) {
    forward(std::move(req), std::move(r), upstream, [](const ForwardResult&) {});
  });
  auto port = proxy.listen();
  ASSERT_TRUE(port.ok());
  for (int i = 0; i < 3; ++i) {  // the pooled connection is reused
    auto r = fetch("GET", "http://127.0.0.1:" + std::to_string(*port) + "/stream");
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
  }
  EXPECT_EQ(upstream->stats().connections_opened, 1u);

  worker.stop();
  worker.drain(1s);
  upstream->close_idle();
  auto gone = fetch("GET", "http://127.0.0.1:" + std::to_string(*port) + "/stream");
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->status, 502);
  EXPECT_NE(gone->body.find("unix:" + path), std::string::npos) << gone->body;
  proxy.drain(1s);
}

}  // namespace
}  // namespace hangar::http
