// Misbehaving workers never take the router down (issue 16 items 6 and 18): a loading worker
// that only logs hits --load-timeout; a ready worker that stops answering (SIGSTOP) is killed
// by the liveness check and its request fails instead of hanging; an unload of a hung busy
// worker escalates to SIGKILL; a worker killed mid-stream leaves the other models serving. Each
// leaves no process behind.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>

#include "fault/processes.h"
#include "integration/router_harness.h"

namespace hangar::router::testing {
namespace {

// The pid of a live process whose command line contains `needle`, or 0.
pid_t process_mentioning(const std::string& needle) {
  const std::vector<pid_t> pids = hangar::testing::live_pids_mentioning(needle);
  return pids.empty() ? 0 : pids.front();
}

bool gone(const std::string& needle) { return hangar::testing::no_process_mentions(needle); }

class WorkerFault : public RouterHarness {
 protected:
  std::string model_file(const std::string& m) { return (models_dir_ / (m + ".gguf")).string(); }
};

TEST_F(WorkerFault, ALoadingWorkerThatOnlyLogsHitsTheLoadTimeout) {
  add_model("chatty", {{"hang", true}, {"chatter_ms", 50}});
  options.load_timeout = std::chrono::milliseconds(1000);
  start();
  http::Response r = chat("chatty");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("no progress"), std::string::npos) << r.body;
  json entry = model_entry("chatty");
  EXPECT_EQ(entry["status"]["value"], "unloaded");
  EXPECT_EQ(entry["status"]["failed"], true);
  EXPECT_TRUE(gone(model_file("chatty")));
}

TEST_F(WorkerFault, AStoppedWorkerIsKilledByTheLivenessCheckAndItsRequestFails) {
  add_model("frozen");
  add_model("fine");
  options.liveness_interval = std::chrono::milliseconds(100);
  options.liveness_timeout = std::chrono::milliseconds(200);
  options.liveness_failures = 2;
  start();
  ASSERT_EQ(chat("frozen").status, 200);
  const pid_t pid = process_mentioning(model_file("frozen"));
  ASSERT_NE(pid, 0);
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  // This request would hang forever on the stopped worker; it fails once the worker is killed.
  http::Response r = chat("frozen");
  EXPECT_NE(r.status, 200) << r.body;
  ASSERT_TRUE(watcher->wait_for_status("frozen", "unloaded"));
  json entry = model_entry("frozen");
  EXPECT_EQ(entry["status"]["failed"], true);
  EXPECT_NE(entry["status"]["last_error"].get<std::string>().find("/health"), std::string::npos);
  EXPECT_EQ(chat("fine").status, 200);
  EXPECT_TRUE(gone(model_file("frozen")));
}

TEST_F(WorkerFault, AnUnloadOfAHungBusyWorkerEscalatesToSigkill) {
  add_model("stuck");
  options.liveness_interval = std::chrono::milliseconds(0);  // only the unload path here
  options.stop_timeout = std::chrono::milliseconds(500);
  start();
  StreamClient held(url("/v1/chat/completions"),
                    {{"model", "stuck"},
                     {"messages", {{{"role", "user"}, {"content", "hi"}}}},
                     {"stream", true},
                     {"fake_gate", "never"}});
  ASSERT_TRUE(held.wait_for_text("data:"));
  const pid_t pid = process_mentioning(model_file("stuck"));
  ASSERT_NE(pid, 0);
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  EXPECT_EQ(post("/models/unload", {{"model", "stuck"}}).status, 200);
  // Draining never ends (the request is in flight on a stopped process): after stop-timeout
  // the router stops it anyway, SIGTERM, then SIGKILL.
  ASSERT_TRUE(watcher->wait_for_status("stuck", "unloaded"));
  held.join();
  EXPECT_TRUE(gone(model_file("stuck")));
}

TEST_F(WorkerFault, AWorkerKilledMidStreamLeavesTheOthersServing) {
  add_model("dies");
  add_model("lives");
  start();
  ASSERT_EQ(chat("lives").status, 200);
  StreamClient s(url("/v1/chat/completions"),
                 {{"model", "dies"},
                  {"messages", {{{"role", "user"}, {"content", "a longer prompt here"}}}},
                  {"stream", true},
                  {"fake_crash_after", 1}});
  s.join();
  EXPECT_EQ(s.body().find("[DONE]"), std::string::npos) << "a dead worker's stream cannot end";
  ASSERT_TRUE(watcher->wait_for_status("dies", "unloaded"));
  EXPECT_EQ(model_entry("dies")["status"]["failed"], true);
  EXPECT_EQ(chat("lives").status, 200);
  EXPECT_EQ(state_of("lives"), "loaded");
  EXPECT_TRUE(gone(model_file("dies")));
}

}  // namespace
}  // namespace hangar::router::testing
