// `hangar pull` as a user runs it, against the fake hub started in this process: the model lands
// in the cache (LLAMA_CACHE or --cache-dir) and its path is printed; --offline names what is
// missing; progress goes to stderr as plain lines when stderr is not a terminal.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "e2e/router_process.h"
#include "fake_hub.h"
#include "support/test_support.h"

namespace hangar {
namespace {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

class PullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = testing::make_temp_dir("hangar-pull");
    for (const char* v :
         {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HF_TOKEN",
          "MODEL_ENDPOINT", "LLAMA_OFFLINE", "HANGAR_CACHE_DIR", "HANGAR_OFFLINE"}) {
      unsetenv(v);
    }
    setenv("HOME", (tmp_ + "/home").c_str(), 1);
    setenv("LLAMA_CACHE", (tmp_ + "/cache").c_str(), 1);
    ASSERT_TRUE(hub_.start().ok());
    setenv("HF_ENDPOINT", hub_.endpoint().c_str(), 1);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
  std::string tmp_;
  testing::FakeHub hub_;
};

TEST_F(PullTest, DownloadsIntoTheCacheAndPrintsThePath) {
  HANGAR_REQUIRE_FIXTURES();
  const std::string model = fixtures + "/models/llama-spm-q4_0.gguf";
  hub_.add_repo("test/tiny-GGUF",
                {{"tiny-Q8_0.gguf", "", fixtures + "/models/llama-spm-q8_0.gguf", true},
                 {"tiny-Q4_K_M.gguf", "", model, true}});
  auto r = testing::run_command({testing::hangar_binary(), "pull", "test/tiny-GGUF"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string path = trimmed(r.out);
  EXPECT_EQ(path, tmp_ + "/cache/models--test--tiny-GGUF/snapshots/" +
                      hub_.commit_of("test/tiny-GGUF") + "/tiny-Q4_K_M.gguf");
  EXPECT_TRUE(fs::is_symlink(path));
  EXPECT_EQ(read_file(path), read_file(model));
  EXPECT_NE(r.err.find("100.0%"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tiny-Q4_K_M.gguf"), std::string::npos);
  EXPECT_EQ(r.err.find("\r"), std::string::npos);  // not a terminal: plain lines

  // Offline, the cached copy serves; a model never pulled is named in the error.
  auto again = testing::run_command(
      {testing::hangar_binary(), "pull", "--offline", "test/tiny-GGUF:Q4_K_M"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(trimmed(again.out), path);
  auto missing =
      testing::run_command({testing::hangar_binary(), "pull", "--offline", "test/tiny-GGUF:Q8_0"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("test/tiny-GGUF:Q8_0 is not in the cache"), std::string::npos)
      << missing.err;
}

TEST_F(PullTest, CacheDirOverridesTheEnvironment) {
  hub_.add_repo("test/small", {{"small-Q8_0.gguf", std::string(100'000, 'x'), "", true}});
  const std::string dir = tmp_ + "/elsewhere";
  auto r =
      testing::run_command({testing::hangar_binary(), "pull", "--cache-dir", dir, "test/small"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(trimmed(r.out).rfind(dir + "/models--test--small/snapshots/", 0), 0u) << r.out;
  EXPECT_FALSE(fs::exists(tmp_ + "/cache/models--test--small"));
}

TEST_F(PullTest, ErrorsSayWhatIsWrong) {
  auto bad = testing::run_command({testing::hangar_binary(), "pull", "../etc"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("not owner/repo"), std::string::npos) << bad.err;
  auto absent = testing::run_command({testing::hangar_binary(), "pull", "test/absent"});
  EXPECT_EQ(absent.exit_code, 1);
  EXPECT_NE(absent.err.find("404"), std::string::npos) << absent.err;
}

}  // namespace
}  // namespace hangar

namespace hangar {
namespace {

TEST_F(PullTest, RunDashHfDownloadsThenServesTheModel) {
  HANGAR_REQUIRE_FIXTURES();
  hub_.add_repo("test/qwen-GGUF",
                {{"qwen-Q8_0.gguf", "", fixtures + "/models/qwen2-f16.gguf", true}});
  e2e::HangarProcess run({"run", "-hf", "test/qwen-GGUF:Q8_0", "-c", "256", "--host",
                          "127.0.0.1", "--port", "0"});
  const uint16_t port = run.wait_for_port("worker: listening on ");
  ASSERT_NE(port, 0) << run.output();
  ASSERT_TRUE(run.wait_for_line("worker: ready (")) << run.output();
  auto models = http::fetch("GET", "http://127.0.0.1:" + std::to_string(port) + "/v1/models");
  ASSERT_TRUE(models.ok());
  EXPECT_NE(models->body.find("test/qwen-GGUF:Q8_0"), std::string::npos) << models->body;
  EXPECT_EQ(hub_.seen("qwen-Q8_0.gguf").size(), 1u);
  EXPECT_EQ(run.stop(SIGTERM), 0) << run.output();
  // Offline, it starts from the cache without asking the hub.
  e2e::HangarProcess offline({"run", "-hf", "test/qwen-GGUF:Q8_0", "--offline", "-c", "256",
                              "--host", "127.0.0.1", "--port", "0"});
  ASSERT_NE(offline.wait_for_port("worker: listening on "), 0) << offline.output();
  EXPECT_EQ(hub_.seen("/refs").size(), 1u);  // only the first run resolved on the hub
}

TEST_F(PullTest, ServeDownloadOnlyFetchesThePresetModelsAndExits) {
  HANGAR_REQUIRE_FIXTURES();
  hub_.add_repo("test/qwen-GGUF",
                {{"qwen-Q8_0.gguf", "", fixtures + "/models/qwen2-f16.gguf", true}});
  const std::string preset = tmp_ + "/models.ini";
  std::ofstream(preset) << "version = 1\n[qwen]\nhf-repo = test/qwen-GGUF:Q8_0\n"
                        << "[gone]\nhf-repo = test/missing-GGUF:Q8_0\n";
  auto r = testing::run_command(
      {testing::hangar_binary(), "serve", "--models-preset", preset, "--download-only"});
  EXPECT_EQ(r.exit_code, 1) << r.err;  // one of the two does not exist on the hub
  EXPECT_NE(r.err.find("gone"), std::string::npos) << r.err;
  auto listed = testing::run_command({testing::hangar_binary(), "pull", "--offline",
                                      "test/qwen-GGUF:Q8_0"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;  // it is in the cache now
  // `hangar list` shows the cache's models, with their size and source, beside the preset's.
  auto list = testing::run_command({testing::hangar_binary(), "list", "--json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  nlohmann::json models = nlohmann::json::parse(list.out, nullptr, false);
  ASSERT_TRUE(models.is_array()) << list.out;
  bool seen = false;
  for (const auto& m : models) {
    if (m.value("id", "") != "test/qwen-GGUF:Q8_0") continue;
    seen = true;
    EXPECT_EQ(m.value("source", ""), "cache");
    EXPECT_EQ(m.value("size", 0ull), fs::file_size(fixtures + "/models/qwen2-f16.gguf"));
  }
  EXPECT_TRUE(seen) << list.out;
  // --offline: the missing one is named, nothing is asked of the hub.
  const size_t asked = hub_.seen("/refs").size();
  auto offline = testing::run_command({testing::hangar_binary(), "serve", "--models-preset",
                                       preset, "--download-only", "--offline"});
  EXPECT_EQ(offline.exit_code, 1);
  EXPECT_NE(offline.err.find("test/missing-GGUF:Q8_0"), std::string::npos) << offline.err;
  EXPECT_EQ(hub_.seen("/refs").size(), asked);
}

TEST_F(PullTest, ARemotePresetIsFetchedAndItsSectionsServed) {
  HANGAR_REQUIRE_FIXTURES();
  hub_.add_repo("test/qwen-GGUF",
                {{"qwen-Q8_0.gguf", "", fixtures + "/models/qwen2-f16.gguf", true}});
  hub_.add_repo("test/presets", {{"preset.ini",
                                  "version = 1\n[chat]\nhf-repo = test/qwen-GGUF:Q8_0\n"
                                  "ctx-size = 256\n",
                                  "", false}});
  for (const char* flag : {"--models-preset", "-hf"}) {
    auto r = testing::run_command({testing::hangar_binary(), "serve", flag, "test/presets",
                                   "--dry-run", "--json", "--models-memory-margin", "0"});
    EXPECT_EQ(r.exit_code, 0) << flag << ": " << r.err;
    nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.out;
    bool chat = false;
    for (const auto& m : j["models"]) chat = chat || m.value("id", "") == "chat";
    EXPECT_TRUE(chat) << r.out;
  }
  // The preset is in the cache now: offline, it is served from there.
  auto offline = testing::run_command({testing::hangar_binary(), "serve", "--models-preset",
                                       "test/presets", "--offline", "--dry-run"});
  EXPECT_EQ(offline.exit_code, 0) << offline.err;
  EXPECT_NE(offline.out.find("chat"), std::string::npos) << offline.out;
  auto missing = testing::run_command({testing::hangar_binary(), "serve", "--models-preset",
                                       "test/no-such-repo", "--dry-run"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("remote preset test/no-such-repo"), std::string::npos)
      << missing.err;
}

}  // namespace
}  // namespace hangar
