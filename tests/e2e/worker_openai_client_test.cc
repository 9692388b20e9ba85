// The official OpenAI client for Node (`openai` on npm, installed in tests/e2e/node by
// scripts/setup) against `hangar run`: a model list, a chat and a streamed chat
// (tests/e2e/node/openai_smoke.mjs). Skipped only when node or the package is missing and CI is
// not "true".
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "e2e/worker_harness.h"

namespace hangar::e2e {
namespace {

// The first executable `node` on PATH, or "".
std::string find_node() {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string candidate = dirs.substr(start, end - start) + "/node";
    if (end > start && access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

bool under_ci() { return std::getenv("CI") && std::string(std::getenv("CI")) == "true"; }

TEST(WorkerOpenAiClientTest, ListsModelsChatsAndStreamsWithTheOfficialClient) {
  HANGAR_REQUIRE_FIXTURES();
  const std::string node_dir = std::string(HANGAR_SOURCE_DIR) + "/tests/e2e/node";
  const std::string node = find_node();
  struct stat st;
  const bool have_client = stat((node_dir + "/node_modules/openai/package.json").c_str(), &st) == 0;
  if (node.empty() || !have_client) {
    const std::string why = node.empty() ? "node is not on PATH"
                                         : node_dir +
                                               "/node_modules/openai is missing "
                                               "(run scripts/setup)";
    if (under_ci()) FAIL() << why << " under CI";
    GTEST_SKIP() << why;
  }

  WorkerProcess w({"-m", fixtures + "/models/qwen2-f16.gguf", "-c", "256", "-np", "2", "-t", "1",
                   "-a", "qwen"});
  const std::string base = w.wait_ready();
  ASSERT_FALSE(base.empty());
  testing::CommandResult r =
      testing::run_command({node, node_dir + "/openai_smoke.mjs", base + "/v1", "qwen"});
  ASSERT_EQ(r.exit_code, 0) << "stdout: " << r.out << "\nstderr: " << r.err;
  const json out = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(out.is_object()) << r.out;
  EXPECT_EQ(out["models"], json::array({"qwen"}));
  ASSERT_TRUE(out["chat"].is_string());
  // temperature 0: the streamed answer equals the whole one.
  EXPECT_EQ(out["streamed"], out["chat"]);
  EXPECT_GE(out["chunks"].get<int>(), 2);  // the role chunk and the finishing chunk at least
  EXPECT_TRUE(out["chat_finish"] == "stop" || out["chat_finish"] == "length") << out.dump();
  EXPECT_EQ(out["stream_finish"], out["chat_finish"]);
  EXPECT_EQ(
      out["usage"]["total_tokens"].get<int>(),
      out["usage"]["prompt_tokens"].get<int>() + out["usage"]["completion_tokens"].get<int>());
  EXPECT_EQ(w.stop(), 0);
}

}  // namespace
}  // namespace hangar::e2e
