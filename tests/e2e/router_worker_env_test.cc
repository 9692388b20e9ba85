// The router's HANGAR_* environment never reaches its workers (issue 16 item 5): HANGAR_PORT
// would make every worker bind the router's port, HANGAR_API_KEY would make workers refuse the
// X-Api-Key and lowercase-bearer clients the router accepts. Worker options given through the
// environment (HANGAR_CTX_SIZE) still reach the workers, as arguments. The workers listen on Unix
// sockets in a private directory, never on TCP (issue 16 item 7).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
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

// How many TCP sockets in LISTEN state process `pid` holds (/proc/net/tcp{,6} by inode).
int tcp_listeners_of(pid_t pid) {
  std::set<std::string> inodes;
  const std::filesystem::path fds = "/proc/" + std::to_string(pid) + "/fd";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(fds, ec)) {
    std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    if (!ec && target.starts_with("socket:[")) inodes.insert(target.substr(8, target.size() - 9));
  }
  int n = 0;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::vector<std::string> f;
      for (std::string w; fields >> w;) f.push_back(w);
      // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
      if (f.size() > 9 && f[3] == "0A" && inodes.count(f[9]) != 0) ++n;
    }
  }
  return n;
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
  // It listens on a Unix socket in a directory only our user can enter (issue 16 item 7), and on
  // no TCP port at all: another local user cannot reach it past the router's key.
  const std::string shown = joined.str();
  const size_t at = shown.find("--listen unix:");
  ASSERT_NE(at, std::string::npos) << shown;
  const std::string socket_path = shown.substr(at + 14, shown.find(' ', at + 14) - (at + 14));
  const std::filesystem::path socket_dir = std::filesystem::path(socket_path).parent_path();
  struct stat dir_stat {};
  ASSERT_EQ(stat(socket_dir.c_str(), &dir_stat), 0) << socket_dir;
  EXPECT_EQ(dir_stat.st_mode & 0777, 0700u) << socket_dir;
  EXPECT_EQ(dir_stat.st_uid, getuid());
  EXPECT_GE(tcp_listeners_of(serve.process().pid()), 1) << "the router's own port is not seen";
  EXPECT_EQ(tcp_listeners_of(workers[0]), 0) << "the worker listens on TCP";
  auto direct = http::fetch("http://localhost/health",
                            {.timeout = kHangDetector, .unix_socket = socket_path});
  ASSERT_TRUE(direct.ok()) << direct.status().message();
  EXPECT_EQ(direct->status, 200);
  EXPECT_EQ(serve.process().stop(SIGTERM), 0) << serve.process().output();
  EXPECT_FALSE(std::filesystem::exists(socket_dir)) << "the socket directory outlived the router";
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
