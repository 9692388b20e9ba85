// The router's HANGAR_* environment never reaches its workers (issue 16 item 5): HANGAR_PORT
// would make every worker bind the router's port, HANGAR_API_KEY would make workers refuse the
// X-Api-Key and lowercase-bearer clients the router accepts. Worker options given through the
// environment (HANGAR_CTX_SIZE) still reach the workers, as arguments.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fstream>
#include <sstream>

#include "e2e/router_process.h"

namespace hangar::e2e {
namespace {

// A listening socket on 127.0.0.1 whose port nobody else may bind while it lives.
class BusyPort {
 public:
  BusyPort() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        listen(fd_, 1) != 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      return;
    }
    port_ = ntohs(a.sin_port);
  }
  ~BusyPort() {
    if (fd_ >= 0) close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// The NAME=value entries of /proc/PID/environ.
std::vector<std::string> environ_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::vector<std::string> out;
  for (std::string entry; std::getline(in, entry, '\0');) out.push_back(entry);
  return out;
}

TEST(RouterWorkerEnvTest, HangarVariablesOfTheRouterDoNotReachWorkers) {
  HANGAR_REQUIRE_FIXTURES();
  const auto dir = make_models_dir(fixtures, {"llama-spm-f16"});
  BusyPort busy;
  ASSERT_NE(busy.port(), 0);
  Serve serve({"--models-dir", dir.string()},
              {"HANGAR_PORT=" + std::to_string(busy.port()), "HANGAR_API_KEY=sesame",
               "HANGAR_CTX_SIZE=384", "HANGAR_HOST=0.0.0.0"});
  ASSERT_NE(serve.port(), 0) << serve.process().output();

  // The router took its key from HANGAR_API_KEY; these clients authenticate the two ways the
  // router accepts and a worker with the same key did not.
  const json body = {{"model", "llama-spm-f16"},
                     {"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                     {"max_tokens", 4},
                     {"temperature", 0}};
  for (const auto& header : std::vector<http::Headers::Field>{{"X-Api-Key", "sesame"},
                                                              {"Authorization", "bearer sesame"}}) {
    http::Headers h{header, {"Content-Type", "application/json"}};
    auto r = http::fetch("POST", serve.url("/v1/chat/completions"), body.dump(), h,
                         kHangDetector);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->status, 200) << header.first << ": " << r->body << "\n"
                              << serve.process().output();
  }
  auto unauthenticated =
      http::fetch("POST", serve.url("/v1/chat/completions"), body.dump(), {}, kHangDetector);
  ASSERT_TRUE(unauthenticated.ok());
  EXPECT_EQ(unauthenticated->status, 401);

  // The worker's environment holds no HANGAR_* variable; its context came as an argument and it
  // listens on loopback only.
  std::vector<pid_t> workers = children_of(serve.process().pid());
  ASSERT_EQ(workers.size(), 1u);
  for (const std::string& entry : environ_of(workers[0])) {
    EXPECT_FALSE(entry.starts_with("HANGAR_")) << entry;
  }
  auto models = http::fetch("GET", serve.url("/models"), {}, {{"X-Api-Key", "sesame"}},
                            kHangDetector);
  ASSERT_TRUE(models.ok());
  json listing = json::parse(models->body);
  const json args = listing["data"][0]["status"]["args"];
  std::ostringstream joined;
  for (const json& a : args) joined << a.get<std::string>() << " ";
  EXPECT_NE(joined.str().find("--ctx-size 384 "), std::string::npos) << joined.str();
  EXPECT_NE(joined.str().find("--host 127.0.0.1 "), std::string::npos) << joined.str();
  EXPECT_EQ(serve.process().stop(SIGTERM), 0) << serve.process().output();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace hangar::e2e

namespace hangar::e2e {
namespace {

// The --port a process was started with (from /proc/PID/cmdline), or 0.
uint16_t port_argument_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::vector<std::string> args;
  for (std::string a; std::getline(in, a, '\0');) args.push_back(a);
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--port") return static_cast<uint16_t>(std::atoi(args[i + 1].c_str()));
  }
  return 0;
}

TEST(RouterBackendKeyTest, ABackendTakesAKeyOnlyTheRouterKnows) {
  HANGAR_REQUIRE_FIXTURES();
  const auto dir = make_models_dir(fixtures, {"llama-spm-f16"});
  // hangar run itself as the llama-server-compatible backend: it demands the key.
  Serve serve({"--models-dir", dir.string(), "-c", "256", "--backend",
               testing::hangar_binary() + " run -m {model} --port {port} --api-key {api_key} {args}"});
  ASSERT_NE(serve.port(), 0) << serve.process().output();
  const json body = {{"model", "llama-spm-f16"},
                     {"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                     {"max_tokens", 2}};
  auto through = http::fetch("POST", serve.url("/v1/chat/completions"), body.dump(),
                             {{"Content-Type", "application/json"}}, kHangDetector);
  ASSERT_TRUE(through.ok());
  EXPECT_EQ(through->status, 200) << through->body << serve.process().output();
  std::vector<pid_t> workers = children_of(serve.process().pid());
  ASSERT_EQ(workers.size(), 1u);
  const uint16_t port = port_argument_of(workers[0]);
  ASSERT_NE(port, 0);
  // Another local user reaching the worker directly has no key.
  auto direct = http::fetch("POST", "http://127.0.0.1:" + std::to_string(port) +
                                        "/v1/chat/completions",
                            body.dump(), {{"Content-Type", "application/json"}}, kHangDetector);
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(direct->status, 401);
  EXPECT_EQ(serve.process().stop(SIGTERM), 0) << serve.process().output();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace hangar::e2e
