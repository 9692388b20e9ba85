// Router integration: real router in-process, fake workers with scripted behaviour (issue 5
// "done when"): LRU order, busy models, single-flight loads, queue timeout, crashes, stalls,
// ttl, pin.
#include "integration/router_harness.h"

namespace hangar::router::testing {
namespace {

int metric(const std::string& text, const std::string& name) {
  size_t p = text.find("\n" + name + " ");
  if (p == std::string::npos) return -1;
  return std::atoi(text.c_str() + p + name.size() + 2);
}

TEST_F(RouterHarness, EvictsLeastRecentlyUsedUnderModelsMaxTwo) {
  for (const char* m : {"a", "b", "c"}) add_model(m);
  options.models_max = 2;
  start();
  EXPECT_EQ(chat("a").status, 200);
  EXPECT_EQ(chat("b").status, 200);
  EXPECT_EQ(chat("a").status, 200);  // a is now more recently used than b
  http::Response c = chat("c");
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_NE(c.body.find("c heard: hello"), std::string::npos) << c.body;
  EXPECT_EQ(state_of("a"), "loaded");
  EXPECT_EQ(state_of("b"), "unloaded");
  EXPECT_EQ(state_of("c"), "loaded");
  // b was stopped by us, not failed.
  EXPECT_FALSE(model_entry("b")["status"].contains("failed"));
  // Next: a is LRU (c and then b are newer).
  EXPECT_EQ(chat("b").status, 200);
  EXPECT_EQ(state_of("a"), "unloaded");
  EXPECT_EQ(state_of("c"), "loaded");
}

TEST_F(RouterHarness, BusyModelIsNeverEvictedAndItsStreamCompletes) {
  add_model("a");
  add_model("b");
  options.models_max = 1;
  start();
  json body = {{"model", "a"},
               {"stream", true},
               {"fake_gate", "g1"},
               {"messages", {{{"role", "user"}, {"content", "one two three"}}}}};
  StreamClient stream(url("/v1/chat/completions"), body);
  // The first content chunk has arrived; the worker now holds the rest until released.
  ASSERT_TRUE(stream.wait_for_text("\"a \""));
  std::thread other([&] {
    http::Response b = chat("b");
    EXPECT_EQ(b.status, 200) << b.body;
  });
  ASSERT_TRUE(watcher->wait_for_status("b", "waiting"));
  EXPECT_EQ(state_of("a"), "loaded");  // busy: not a victim
  // Release the gate through the router (the /tokenize fast path of the loaded model).
  http::Response rel = post("/tokenize", {{"model", "a"}, {"fake_release", "g1"}});
  EXPECT_EQ(rel.status, 200) << rel.body;
  stream.join();
  EXPECT_TRUE(stream.result().ok()) << stream.result().message();
  EXPECT_NE(stream.body().find("[DONE]"), std::string::npos) << stream.body();
  EXPECT_NE(stream.body().find("three"), std::string::npos);
  other.join();
  EXPECT_EQ(state_of("a"), "unloaded");
  EXPECT_EQ(state_of("b"), "loaded");
}

TEST_F(RouterHarness, ConcurrentRequestsForOneColdModelCauseOneLoad) {
  add_model("slow", {{"load_ms", 300}});
  start();
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&] {
      if (chat("slow").status == 200) ok.fetch_add(1);
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 4);
  EXPECT_EQ(watcher->count("slow", "loaded"), 1);
  EXPECT_EQ(metric(get("/metrics").body, "hangar_loads_total"), 1);
}

TEST_F(RouterHarness, QueueTimeoutAnswers503WithRetryAfter) {
  add_model("glacial", {{"load_ms", 60000}});
  options.queue_timeout = 1s;
  options.load_timeout = 60s;
  start();
  http::Response r = chat("glacial");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_TRUE(r.headers.has("Retry-After"));
  json j = json::parse(r.body, nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["error"]["type"], "unavailable_error");
  EXPECT_EQ(j["error"]["code"], 503);
}

TEST_F(RouterHarness, FullQueueAnswers503) {
  add_model("glacial", {{"load_ms", 60000}});
  options.queue_max = 1;
  options.load_timeout = 60s;
  start();
  // Holds the only queue place until shutdown (which closes its connection: no assertion).
  std::thread first([&] {
    (void)http::fetch("POST", url("/v1/chat/completions"), R"({"model":"glacial"})", {},
                      kHangDetector);
  });
  ASSERT_TRUE(watcher->wait_for_status("glacial", "loading"));
  http::Response r = chat("glacial");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_TRUE(r.headers.has("Retry-After"));
  router->shutdown(std::chrono::seconds(2));
  first.join();
}

TEST_F(RouterHarness, CrashMidStreamEndsTheStreamAndTheNextRequestReloads) {
  add_model("fragile");
  start();
  json body = {{"model", "fragile"},
               {"stream", true},
               {"fake_gate", "crash"},
               {"fake_crash_after", 2},
               {"messages", {{{"role", "user"}, {"content", "one two three four"}}}}};
  StreamClient stream(url("/v1/chat/completions"), body);
  // Causal: the first chunk reached us; then let the worker go on and die.
  ASSERT_TRUE(stream.wait_for_text("fragile"));
  // The release request itself may lose its answer: the worker dies as soon as the gate opens,
  // possibly before it has written the reply (then the router answers 502 for it).
  const int release = post("/tokenize", {{"model", "fragile"}, {"fake_release", "crash"}}).status;
  EXPECT_TRUE(release == 200 || release == 502) << release;
  stream.join();
  const std::string text = stream.body();
  EXPECT_NE(text.find("fragile"), std::string::npos) << text;  // the first chunks arrived
  EXPECT_EQ(text.find("[DONE]"), std::string::npos) << text;   // but not the end
  EXPECT_TRUE(text.find("error") != std::string::npos || !stream.result().ok()) << text;
  ASSERT_TRUE(watcher->wait_for_status("fragile", "unloaded"));
  json entry = model_entry("fragile");
  EXPECT_EQ(entry["status"].value("failed", false), true) << entry.dump();
  EXPECT_EQ(entry["status"].value("exit_code", 0), 1) << entry.dump();
  EXPECT_NE(entry["status"].value("last_error", "").find("scripted crash mid-stream"),
            std::string::npos)
      << entry.dump();
  http::Response again = chat("fragile");
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(state_of("fragile"), "loaded");
}

TEST_F(RouterHarness, HangingWorkerIsKilledByTheStallTimeout) {
  add_model("stuck", {{"hang", true}});
  options.load_timeout = 1s;
  start();
  http::Response r = chat("stuck");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("load-timeout"), std::string::npos) << r.body;
  json entry = model_entry("stuck");
  EXPECT_EQ(entry["status"].value("value", ""), "unloaded");
  EXPECT_TRUE(entry["status"].value("failed", false));
  EXPECT_EQ(entry["status"].value("exit_code", 0), -9) << entry.dump();
}

TEST_F(RouterHarness, CrashAtLoadKeepsExitCodeAndLastLogLines) {
  add_model("broken", {{"crash_at_load", true}});
  start();
  http::Response r = chat("broken");
  EXPECT_EQ(r.status, 503) << r.body;
  json entry = model_entry("broken");
  EXPECT_TRUE(entry["status"].value("failed", false));
  EXPECT_EQ(entry["status"].value("exit_code", 0), 3);
  EXPECT_NE(entry["status"].value("last_error", "").find("scripted crash at load"),
            std::string::npos)
      << entry.dump();
  // The router serves on.
  add_model("fine");
  EXPECT_EQ(get("/models?reload=1").status, 200);
  EXPECT_EQ(chat("fine").status, 200);
}

TEST_F(RouterHarness, TtlUnloadsAnIdleModel) {
  add_model("brief");
  write_preset("version = 1\n[brief]\nttl = 1\n");
  start();
  EXPECT_EQ(chat("brief").status, 200);
  ASSERT_TRUE(watcher->wait_for_status("brief", "unloaded"));
  EXPECT_EQ(state_of("brief"), "unloaded");
  EXPECT_FALSE(model_entry("brief")["status"].contains("failed"));
}

TEST_F(RouterHarness, PinnedModelIsNeverEvicted) {
  add_model("keep");
  add_model("other");
  write_preset("version = 1\n[keep]\npin = true\n");
  options.models_max = 1;
  options.queue_timeout = 1s;
  start();
  EXPECT_EQ(chat("keep").status, 200);
  // The pinned model fills --models-max: "other" can never fit while it is loaded, so it is
  // refused at once (design §3 5a: 400 on a proxied request), naming the pinned model.
  http::Response r = chat("other");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("'keep'"), std::string::npos) << r.body;
  EXPECT_EQ(state_of("keep"), "loaded");
  // An explicit unload still unloads it; then the other model fits.
  EXPECT_EQ(post("/models/unload", {{"model", "keep"}}).status, 200);
  EXPECT_EQ(chat("other").status, 200);
}

TEST_F(RouterHarness, LoadOnStartupAndWaitingLoad) {
  add_model("early");
  add_model("later");
  write_preset("version = 1\n[early]\nload-on-startup = true\n");
  start();
  // start() admitted it already; no request was needed.
  const std::string early = state_of("early");
  EXPECT_TRUE(early == "loading" || early == "loaded") << early;
  EXPECT_EQ(state_of("later"), "unloaded");
  http::Response r = post("/models/load", {{"model", "later"}, {"wait", true}});
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(state_of("later"), "loaded");
}

}  // namespace
}  // namespace hangar::router::testing
