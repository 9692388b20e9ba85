// Hostile clients and careless operators against the router (issue 16): an unauthenticated
// client cannot make the router read its body (item 4), CORS preflights and HEAD /health need
// no key (item 19), nonsense numbers on the command line are refused at start (item 20).
#include <gtest/gtest.h>

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
