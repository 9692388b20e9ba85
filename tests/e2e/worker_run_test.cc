// `hangar run` as the router runs it: a socketpair end as --control-fd, port 0, events as JSON
// lines (listening → loading → ready), SIGTERM or EOF on the control fd → exit 0, a bad model →
// an error event and exit 1.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "e2e/worker_harness.h"
#include "http/client.h"
#include "support/test_support.h"

namespace hangar {
namespace {

using e2e::WorkerProcess;
using nlohmann::json;

// Reads events up to "ready"; returns the port (0 on failure).
int wait_ready(WorkerProcess& w) {
  int port = 0;
  for (;;) {
    json ev = w.next_event();
    if (ev.is_null() || ev.is_discarded()) return 0;
    if (ev["event"] == "listening") port = ev["port"].get<int>();
    if (ev["event"] == "loading") {
      EXPECT_GE(ev["progress"].get<double>(), 0.0);
      EXPECT_LE(ev["progress"].get<double>(), 1.0);
    }
    if (ev["event"] == "ready") {
      EXPECT_EQ(ev["model"]["id"], "tiny");
      EXPECT_GT(ev["memory"]["CPU"].get<int64_t>(), 0);
      return port;
    }
    if (ev["event"] == "error") {
      ADD_FAILURE() << ev.dump();
      return 0;
    }
  }
}

TEST(WorkerRunTest, ServesAfterReadyAndExitsZeroOnSigterm) {
  HANGAR_REQUIRE_FIXTURES();
  WorkerProcess w({"-m", fixtures + "/models/llama-spm-q4_0.gguf", "-c", "256", "-np", "2", "-t",
                   "1", "-a", "tiny", "-ngl", "99"});
  const int port = wait_ready(w);
  ASSERT_GT(port, 0);
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  auto h = http::fetch(base + "/health");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->status, 200);
  auto c = http::fetch("POST", base + "/v1/chat/completions",
                       R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":4})", {},
                       std::chrono::seconds(60));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->status, 200) << c->body;
  EXPECT_EQ(w.stop(), 0);  // SIGTERM
}

TEST(WorkerRunTest, ExitsWhenTheControlFdCloses) {
  HANGAR_REQUIRE_FIXTURES();
  WorkerProcess w(
      {"-m", fixtures + "/models/llama-spm-q4_0.gguf", "-c", "128", "-t", "1", "-a", "tiny"});
  ASSERT_GT(wait_ready(w), 0);
  w.close_control();
  // Issue 4: the worker exits within 1 s of the router's end closing (10 s: a hang detector
  // with room for a loaded CI machine; -2 means it did not exit in time).
  EXPECT_EQ(w.wait_exit(10'000), 0);
}

TEST(WorkerRunTest, BadModelReportsAnErrorEventAndExitsOne) {
  WorkerProcess w({"-m", "/nonexistent/model.gguf"});
  bool saw_error = false;
  for (;;) {
    json ev = w.next_event();
    if (ev.is_null()) break;
    if (ev["event"] == "error") {
      saw_error = true;
      EXPECT_NE(ev["message"].get<std::string>().find("/nonexistent/model.gguf"),
                std::string::npos);
    }
  }
  EXPECT_TRUE(saw_error);
  EXPECT_EQ(w.wait_exit(), 1);
}

}  // namespace
}  // namespace hangar
