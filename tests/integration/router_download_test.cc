// Downloads through the router (issue 13, design §5): a request for a preset model whose
// hf-repo is not cached downloads it once (however many requests wait), then estimates and
// loads it; /models and /models/sse show downloading → loading → loaded; POST /models fetches a
// repository into the cache, where the router lists it as owner/repo:TAG; DELETE /models
// removes it. Tests point HF_ENDPOINT at a fake hub and LLAMA_CACHE and HOME at temp folders.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

#include "fake_hub.h"
#include "integration/router_harness.h"

namespace hangar::router::testing {
namespace {

class RouterDownload : public RouterHarness {
 protected:
  void SetUp() override {
    RouterHarness::SetUp();
    ASSERT_TRUE(hub_.start().ok());
    // The fake worker reads its model file as a script: these "GGUF files" are scripts.
    hub_.add_repo("acme/tiny-GGUF", {{"tiny-Q4_K_M.gguf", R"({"load_ms": 20})", "", true},
                                     {"tiny-Q8_0.gguf", R"({"load_ms": 20})", "", true}});
    hub_.add_repo("acme/other-GGUF", {{"other-Q8_0.gguf", R"({})", "", true}});
    cache_ = dir_ / "cache";
    setenv("HF_ENDPOINT", hub_.endpoint().c_str(), 1);
    setenv("LLAMA_CACHE", cache_.c_str(), 1);
    setenv("HOME", (dir_ / "home").c_str(), 1);
    unsetenv("HF_HUB_CACHE");
    unsetenv("HF_HOME");
    unsetenv("XDG_CACHE_HOME");
    options.sources.scan_cache = true;
    options.sources.download.retry_delay = std::chrono::milliseconds(10);
  }
  hangar::testing::FakeHub hub_;
  std::filesystem::path cache_;
};

TEST_F(RouterDownload, ConcurrentRequestsForAMissingModelCauseOneDownloadAndOneLoad) {
  write_preset("version = 1\n[tiny]\nhf-repo = acme/tiny-GGUF:Q4_K_M\n");
  start();
  EXPECT_EQ(state_of("tiny"), "unloaded");
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&] {
      auto r = http::fetch("POST", url("/v1/chat/completions"),
                           json{{"model", "tiny"},
                                {"messages", {{{"role", "user"}, {"content", "hi"}}}}}
                               .dump(),
                           {{"Content-Type", "application/json"}}, kHangDetector);
      if (r.ok() && r->status == 200) ++ok;
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 8);
  EXPECT_EQ(hub_.seen("tiny-Q4_K_M.gguf").size(), 1u);  // one download
  EXPECT_TRUE(watcher->wait_for_event("tiny", "download_finished"));
  const std::vector<std::string> seen = watcher->statuses("tiny");
  EXPECT_EQ(std::count(seen.begin(), seen.end(), "loading"), 1) << "one load";
  const std::vector<std::string> expected = {"downloading", "unloaded", "loading", "loaded"};
  EXPECT_TRUE(std::search(seen.begin(), seen.end(), expected.begin(), expected.end()) !=
              seen.end())
      << ::testing::PrintToString(seen);
  // The file is in the cache, where llama.cpp would look for it.
  json entry = model_entry("tiny");
  EXPECT_NE(entry["status"]["args"].dump().find(cache_.string()), std::string::npos)
      << entry.dump();
}

TEST_F(RouterDownload, ProgressGrowsWhileDownloadingAndEndsAtTheTotal) {
  // 2 MB sent 64 KiB every 20 ms: about 0.6 s of downloading.
  std::string big = R"({"load_ms": 1})";
  big.resize(2 << 20, ' ');
  hub_.add_repo("acme/big-GGUF", {{"big-Q8_0.gguf", big, "", true}});
  hub_.fault_file("big-Q8_0.gguf", {hangar::testing::FaultKind::kTrickle, 1, 500, 0, 64 << 10,
                                    std::chrono::milliseconds(20)});
  write_preset("version = 1\n[big]\nhf-repo = acme/big-GGUF:Q8_0\n");
  start();
  EXPECT_EQ(post("/models/load", {{"model", "big"}}).status, 200);
  ASSERT_TRUE(watcher->wait_for_status("big", "downloading"));
  json during = model_entry("big");
  EXPECT_EQ(during["status"]["value"], "downloading") << during.dump();
  EXPECT_TRUE(during["status"]["progress"].contains("total")) << during.dump();
  ASSERT_TRUE(watcher->wait_for_status("big", "loaded"));
  const std::vector<json> progress = watcher->events("big", "download_progress");
  ASSERT_GE(progress.size(), 2u);
  uint64_t last = 0;
  for (const json& p : progress) {
    const uint64_t done = p["progress"]["done"].get<uint64_t>();
    EXPECT_GE(done, last) << "progress went backwards";
    last = done;
  }
  EXPECT_EQ(last, big.size());
  EXPECT_EQ(progress.back()["progress"]["total"].get<uint64_t>(), big.size());
}

TEST_F(RouterDownload, PostModelsFetchesIntoTheCacheAndDeleteRemovesIt) {
  start();
  http::Response r = post("/models", {{"model", "acme/other-GGUF:Q8_0"}});
  EXPECT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(watcher->wait_for_event("acme/other-GGUF:Q8_0", "download_finished"));
  ASSERT_TRUE(watcher->wait_for_event("*", "models_reload"));
  json entry = model_entry("acme/other-GGUF:Q8_0");
  ASSERT_FALSE(entry.is_null()) << get("/models").body;
  EXPECT_EQ(entry["source"], "cache");
  EXPECT_EQ(chat("acme/other-GGUF:Q8_0").status, 200);
  // Running: not removed.
  auto busy = http::fetch("DELETE", url("/models?model=acme/other-GGUF:Q8_0"), {}, {},
                          kHangDetector);
  ASSERT_TRUE(busy.ok());
  EXPECT_EQ(busy->status, 400) << busy->body;
  EXPECT_EQ(post("/models/unload", {{"model", "acme/other-GGUF:Q8_0"}}).status, 200);
  ASSERT_TRUE(watcher->wait_for_status("acme/other-GGUF:Q8_0", "unloaded"));
  auto gone = http::fetch("DELETE", url("/models?model=acme/other-GGUF:Q8_0"), {}, {},
                          kHangDetector);
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(gone->status, 200) << gone->body;
  EXPECT_TRUE(model_entry("acme/other-GGUF:Q8_0").is_null());
  // No blob left in the cache.
  size_t blobs = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(cache_)) {
    if (e.is_regular_file() && e.path().parent_path().filename() == "blobs") ++blobs;
  }
  EXPECT_EQ(blobs, 0u);
}

TEST_F(RouterDownload, AFailedDownloadFailsTheWaitingRequestsWithTheReason) {
  write_preset("version = 1\n[tiny]\nhf-repo = acme/tiny-GGUF:Q8_0\n");
  options.sources.download.max_attempts = 1;
  hub_.fault_file("tiny-Q8_0.gguf", {hangar::testing::FaultKind::kCorrupt, 1, 500, 3});
  start();
  http::Response r = chat("tiny");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("could not be downloaded"), std::string::npos) << r.body;
  EXPECT_TRUE(watcher->wait_for_event("tiny", "download_failed"));
  json entry = model_entry("tiny");
  EXPECT_EQ(entry["status"]["value"], "unloaded");
  EXPECT_EQ(entry["status"]["failed"], true);
  // The next request tries again, and the hub now sends the right bytes.
  EXPECT_EQ(chat("tiny").status, 200);
}

TEST_F(RouterDownload, DedupCacheModelsHidesCacheEntriesAPresetServesButTheirNamesResolve) {
  ASSERT_TRUE(download::ensure_downloaded("acme/tiny-GGUF:Q4_K_M", {}).ok());
  write_preset("version = 1\n[tiny]\nhf-repo = acme/tiny-GGUF:Q4_K_M\n");
  start();
  // Without dedup-cache-models both are listed: the preset model and the cache entry.
  EXPECT_FALSE(model_entry("tiny").is_null());
  EXPECT_FALSE(model_entry("acme/tiny-GGUF:Q4_K_M").is_null());
  router.reset();
  watcher.reset();
  write_preset("version = 1\n[*]\ndedup-cache-models = true\n[tiny]\nhf-repo = acme/tiny-GGUF:Q4_K_M\n");
  start();
  EXPECT_FALSE(model_entry("tiny").is_null());
  EXPECT_TRUE(model_entry("acme/tiny-GGUF:Q4_K_M").is_null()) << get("/models").body;
  // The cache's name still reaches the model, through the preset that serves it.
  EXPECT_EQ(chat("acme/tiny-GGUF:Q4_K_M").status, 200);
  EXPECT_EQ(state_of("tiny"), "loaded");
  EXPECT_EQ(hub_.seen("tiny-Q4_K_M.gguf").size(), 1u);  // no second download
}

}  // namespace
}  // namespace hangar::router::testing
