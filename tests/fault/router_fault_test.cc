// Hostile clients and careless operators against the router (issue 16): an unauthenticated
// client cannot make the router read its body (item 4), CORS preflights and HEAD /health need
// no key (item 19), nonsense numbers on the command line are refused at start (item 20).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "fault/processes.h"
#include "integration/router_harness.h"
#include "unit/http/raw_socket.h"

namespace hangar::router::testing {
namespace {

using http::testing::RawSocket;

class RouterFault : public RouterHarness {};

TEST_F(RouterFault, WrongKeyIsRefusedBeforeTheBodyIsRead) {
  options.api_key = "sesame";
  add_model("m");
  start();
  RawSocket c(port_, 20);
  // A 16 MB body is declared and never sent: the 401 comes without waiting for it.
  ASSERT_TRUE(c.send(
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
      "Content-Type: application/json\r\nContent-Length: 16000000\r\n\r\n"));
  std::string answer = c.read_until("}}");
  EXPECT_NE(answer.find("HTTP/1.1 401"), std::string::npos) << answer;
  EXPECT_NE(answer.find("authentication_error"), std::string::npos) << answer;
  // The right key still works, both spellings.
  EXPECT_EQ(get("/models", {{"Authorization", "Bearer sesame"}}).status, 200);
  EXPECT_EQ(get("/models", {{"X-Api-Key", "sesame"}}).status, 200);
  EXPECT_EQ(get("/models", {{"X-Api-Key", "sesamf"}}).status, 401);
  EXPECT_EQ(get("/models", {{"X-Api-Key", "sesame2"}}).status, 401);
}

TEST_F(RouterFault, PreflightAndHeadHealthNeedNoKey) {
  options.api_key = "sesame";
  start();
  auto preflight = http::fetch("OPTIONS", url("/v1/chat/completions"), {},
                               {{"Origin", "http://example.test"},
                                {"Access-Control-Request-Method", "POST"}},
                               kHangDetector);
  ASSERT_TRUE(preflight.ok());
  EXPECT_EQ(preflight->status, 204);
  EXPECT_EQ(preflight->headers.get("Access-Control-Allow-Origin"),
            std::optional<std::string_view>("*"));
  RawSocket head(port_, 20);
  ASSERT_TRUE(head.send("HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  const std::string answer = head.read_all();
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
  EXPECT_EQ(answer.find("{"), std::string::npos) << "a HEAD answer has no body: " << answer;
  EXPECT_EQ(get("/props").status, 401);
}

TEST_F(RouterFault, ANameThatIsNotUtf8NeverBreaksTheListing) {
  add_model("good");
  add_model("bad\xff\xfe");
  start();
  http::Response r = get("/models");
  ASSERT_EQ(r.status, 200) << r.body;
  json listing = json::parse(r.body, nullptr, false);  // strict: invalid UTF-8 is a parse error
  ASSERT_FALSE(listing.is_discarded()) << r.body;
  std::vector<std::string> ids;
  for (const json& m : listing["data"]) ids.push_back(m["id"].get<std::string>());
  EXPECT_EQ(ids.size(), 2u);
  EXPECT_NE(std::find(ids.begin(), ids.end(), "good"), ids.end());
  EXPECT_NE(std::find(ids.begin(), ids.end(), "bad\xef\xbf\xbd\xef\xbf\xbd"), ids.end());
  EXPECT_EQ(get("/v1/models").status, 200);
  EXPECT_EQ(chat("good").status, 200);
}

TEST_F(RouterFault, ASecondModelKeyIsRefused) {
  add_model("a");
  add_model("b");
  start();
  auto r = http::fetch("POST", url("/v1/chat/completions"),
                       R"({"model":"a","messages":[{"role":"user","content":"x"}],"model":"b"})",
                       {{"Content-Type", "application/json"}}, kHangDetector);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("appears twice"), std::string::npos) << r->body;
  EXPECT_EQ(state_of("a"), "unloaded");
}

TEST_F(RouterFault, SseSubscribersAreBoundedAndALeavingOneIsDroppedAtOnce) {
  start();  // the harness's own watcher is one subscriber
  std::vector<std::unique_ptr<RawSocket>> subscribers;
  auto subscribe = [&] {
    auto c = std::make_unique<RawSocket>(port_, 20);
    c->send("GET /models/sse HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string head = c->read_until("\r\n\r\n");
    subscribers.push_back(std::move(c));
    return head;
  };
  for (int i = 1; i < 256; ++i) {
    std::string head = subscribe();
    ASSERT_EQ(head.rfind("HTTP/1.1 200", 0), 0u) << i << ": " << head;
  }
  std::string refused = subscribe();
  EXPECT_EQ(refused.rfind("HTTP/1.1 503", 0), 0u) << refused;
  subscribers.pop_back();
  subscribers.front()->close();  // one leaves: its place is free again
  bool admitted = false;
  const auto deadline = std::chrono::steady_clock::now() + kHangDetector;
  while (!admitted && std::chrono::steady_clock::now() < deadline) {
    std::string head = subscribe();
    admitted = head.rfind("HTTP/1.1 200", 0) == 0;
    if (!admitted) subscribers.pop_back();
  }
  EXPECT_TRUE(admitted);
}

TEST_F(RouterFault, ABackendWrapperTakesItsServerDownWhenUnloaded) {
  add_model("wrapped");
  const auto wrapper = dir_ / "wrapper.sh";
  std::ofstream(wrapper) << "#!/bin/sh\n\"" << HANGAR_FAKE_WORKER
                         << "\" -m \"$1\" --port \"$2\" &\nwait\n";
  options.backend = "/bin/sh " + wrapper.string() + " {model} {port}";
  start();
  EXPECT_EQ(chat("wrapped").status, 200);
  const std::string model_file = (models_dir_ / "wrapped.gguf").string();
  EXPECT_FALSE(hangar::testing::live_pids_mentioning(model_file).empty());
  EXPECT_EQ(post("/models/unload", {{"model", "wrapped"}}).status, 200);
  ASSERT_TRUE(watcher->wait_for_status("wrapped", "unloaded"));
  EXPECT_TRUE(hangar::testing::no_process_mentions(model_file))
      << "the wrapper's server outlived it";
}

TEST(RouterFaultCli, NumericOptionsOutOfRangeAreRefusedAtStart) {
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"--queue-timeout", "nan"},
        {"--queue-timeout", "1e300"},
        {"--load-timeout", "0"},
        {"--queue-max", "-1"},
        {"--models-max", "inf"},
        {"--threads-http", "0"},
        {"--max-body-memory", "0"}}) {
    // A missing models folder makes a router that accepted the number exit too (instead of
    // serving): the message tells which check refused.
    std::vector<std::string> argv = {hangar::testing::hangar_binary(), "serve", "--port", "0",
                                     "--models-dir", "/nonexistent/hangar-models"};
    argv.insert(argv.end(), bad.begin(), bad.end());
    auto r = hangar::testing::run_command(argv);
    EXPECT_NE(r.exit_code, 0) << bad[0] << " " << bad[1];
    EXPECT_NE(r.err.find(bad[0]), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace hangar::router::testing
