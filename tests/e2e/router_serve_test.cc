// `hangar serve` end to end with real `hangar run` workers over fixture models (issue 5, "Done
// when"): three models under --models-max 2 stream the same text through the router as from
// `hangar run` directly, /models shows the LRU states after each step; `hangar list` and
// `GET /models?reload=1` see the models folder; killing the router (SIGKILL) leaves no worker.
#include <gtest/gtest.h>

#include "e2e/router_process.h"

namespace hangar::e2e {
namespace {

const std::vector<std::string> kModels = {"llama-spm-f16", "qwen2-f16", "qwen3-f16"};
constexpr const char* kPrompt = "Tell me about the sea.";
constexpr int kMaxTokens = 12;

// The text `hangar run` streams for `model` when reached directly.
std::string direct_text(const std::filesystem::path& dir, const std::string& model) {
  HangarProcess run({"run", "-m", (dir / (model + ".gguf")).string(), "-c", "512", "--host",
                     "127.0.0.1", "--port", "0", "--alias", model});
  uint16_t port = run.wait_for_port("worker: listening on ");
  EXPECT_NE(port, 0) << run.output();
  if (port == 0) return "";
  // The worker logs "worker: ready (ID)" once the model is loaded and it serves requests.
  EXPECT_TRUE(run.wait_for_line("worker: ready (")) << run.output();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  StreamedChat chat = stream_chat(base, model, kPrompt, kMaxTokens);
  EXPECT_EQ(chat.status, 200) << chat.error;
  EXPECT_TRUE(chat.done) << model;
  EXPECT_EQ(run.stop(SIGTERM), 0) << run.output();
  return chat.text;
}

class RouterServeTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
};

TEST_F(RouterServeTest, ThreeModelsUnderModelsMaxTwoStreamWhatHangarRunStreamsAndEvictLru) {
  HANGAR_REQUIRE_FIXTURES();
  dir_ = make_models_dir(fixtures, kModels);
  std::map<std::string, std::string> expected;
  for (const std::string& m : kModels) {
    expected[m] = direct_text(dir_, m);
    ASSERT_FALSE(expected[m].empty()) << m;
  }

  Serve serve({"--models-dir", dir_.string(), "--models-max", "2", "-c", "512"});
  ASSERT_NE(serve.port(), 0) << serve.process().output();
  const std::string base = serve.url("");
  using States = std::map<std::string, std::string>;
  EXPECT_EQ(model_states(base), (States{{"llama-spm-f16", "unloaded"},
                                        {"qwen2-f16", "unloaded"},
                                        {"qwen3-f16", "unloaded"}}));

  // Each in turn: the third evicts the least recently used (the first).
  const std::vector<States> after = {
      {{"llama-spm-f16", "loaded"}, {"qwen2-f16", "unloaded"}, {"qwen3-f16", "unloaded"}},
      {{"llama-spm-f16", "loaded"}, {"qwen2-f16", "loaded"}, {"qwen3-f16", "unloaded"}},
      {{"llama-spm-f16", "unloaded"}, {"qwen2-f16", "loaded"}, {"qwen3-f16", "loaded"}},
  };
  for (size_t i = 0; i < kModels.size(); ++i) {
    StreamedChat chat = stream_chat(base, kModels[i], kPrompt, kMaxTokens);
    EXPECT_EQ(chat.status, 200) << chat.error;
    EXPECT_TRUE(chat.first_has_role) << kModels[i];
    EXPECT_TRUE(chat.done) << kModels[i];
    EXPECT_EQ(chat.text, expected[kModels[i]]) << kModels[i];
    EXPECT_EQ(model_states(base), after[i]) << "after a request to " << kModels[i];
  }
  // Back to the first: now the second is the least recently used.
  StreamedChat again = stream_chat(base, kModels[0], kPrompt, kMaxTokens);
  EXPECT_EQ(again.text, expected[kModels[0]]);
  EXPECT_EQ(
      model_states(base),
      (States{{"llama-spm-f16", "loaded"}, {"qwen2-f16", "unloaded"}, {"qwen3-f16", "loaded"}}));
  EXPECT_EQ(serve.process().stop(SIGTERM), 0) << serve.process().output();
}

TEST_F(RouterServeTest, KillingTheRouterLeavesNoOrphanWorkers) {
  HANGAR_REQUIRE_FIXTURES();
  dir_ = make_models_dir(fixtures, {"llama-spm-f16", "qwen2-f16"});
  Serve serve({"--models-dir", dir_.string(), "-c", "512"});
  ASSERT_NE(serve.port(), 0) << serve.process().output();
  for (const char* m : {"llama-spm-f16", "qwen2-f16"}) {
    auto r =
        http::fetch("POST", serve.url("/models/load"), json{{"model", m}, {"wait", true}}.dump(),
                    {{"Content-Type", "application/json"}}, kHangDetector);
    ASSERT_TRUE(r.ok() && r->status == 200) << m << " " << (r.ok() ? r->body : "");
  }
  std::vector<pid_t> workers = children_of(serve.process().pid());
  ASSERT_EQ(workers.size(), 2u) << serve.process().output();
  std::vector<int> pidfds;
  for (pid_t w : workers) {
    pidfds.push_back(pidfd_of(w));
    ASSERT_GE(pidfds.back(), 0) << "pidfd_open(" << w << ")";
  }
  EXPECT_EQ(serve.process().stop(SIGKILL), -SIGKILL);
  for (size_t i = 0; i < pidfds.size(); ++i) {
    EXPECT_TRUE(wait_pidfd(pidfds[i], kHangDetector))
        << "worker " << workers[i] << " outlived the router";
    close(pidfds[i]);
  }
}

TEST_F(RouterServeTest, ListShowsEachModelOfTheModelsDirWithItsPath) {
  HANGAR_REQUIRE_FIXTURES();
  dir_ = make_models_dir(fixtures, kModels);
  testing::CommandResult r =
      testing::run_command({testing::hangar_binary(), "list", "--models-dir", dir_.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const std::string& m : kModels) {
    EXPECT_NE(r.out.find(m + " "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find((dir_ / (m + ".gguf")).string()), std::string::npos) << r.out;
  }
  testing::CommandResult j = testing::run_command(
      {testing::hangar_binary(), "list", "--models-dir", dir_.string(), "--json"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  json listing = json::parse(j.out, nullptr, false);
  ASSERT_TRUE(listing.is_array()) << j.out;
  ASSERT_EQ(listing.size(), kModels.size());
  for (const json& m : listing) EXPECT_EQ(m.value("source", ""), "models-dir");
}

TEST_F(RouterServeTest, ReloadQueryPicksUpAddedAndRemovedModelFiles) {
  HANGAR_REQUIRE_FIXTURES();
  dir_ = make_models_dir(fixtures, {"llama-spm-f16", "qwen2-f16"});
  Serve serve({"--models-dir", dir_.string(), "-c", "512"});
  ASSERT_NE(serve.port(), 0) << serve.process().output();
  const std::string base = serve.url("");
  using States = std::map<std::string, std::string>;
  EXPECT_EQ(model_states(base), (States{{"llama-spm-f16", "unloaded"}, {"qwen2-f16", "unloaded"}}));
  StreamedChat chat = stream_chat(base, "qwen2-f16", kPrompt, 4);
  EXPECT_EQ(chat.status, 200) << chat.error;

  std::filesystem::create_symlink(std::filesystem::path(fixtures) / "models" / "qwen3-f16.gguf",
                                  dir_ / "qwen3-f16.gguf");
  std::filesystem::remove(dir_ / "llama-spm-f16.gguf");
  // Without ?reload the list is the one read at start.
  EXPECT_EQ(model_states(base), (States{{"llama-spm-f16", "unloaded"}, {"qwen2-f16", "loaded"}}));
  EXPECT_EQ(model_states(base, "?reload=1"),
            (States{{"qwen2-f16", "loaded"}, {"qwen3-f16", "unloaded"}}));
  StreamedChat added = stream_chat(base, "qwen3-f16", kPrompt, 4);
  EXPECT_EQ(added.status, 200) << added.error;
  StreamedChat removed = stream_chat(base, "llama-spm-f16", kPrompt, 4);
  EXPECT_EQ(removed.status, 400);
  EXPECT_EQ(serve.process().stop(SIGTERM), 0) << serve.process().output();
}

}  // namespace
}  // namespace hangar::e2e
