// `hangar generate` end to end on the fixture models: the prompt is tokenized as llama.cpp did
// for the references, greedy output equals the reference ids, and --logits-top reports the
// distribution after the prompt first.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "support/test_support.h"

namespace hangar {
namespace {

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

class EngineGenerateTest : public ::testing::TestWithParam<const char*> {};

TEST_P(EngineGenerateTest, GreedyJsonOutputEqualsReference) {
  HANGAR_REQUIRE_FIXTURES();
  const std::string base = fixtures + "/models/" + GetParam();
  const nlohmann::json ref = read_json(base + ".ref.json");
  ASSERT_FALSE(ref.is_discarded());
  const auto& p = ref["prompts"][0];
  const auto r = testing::run_command({testing::hangar_binary(), "generate", "-m", base + ".gguf", "-p",
                                       p["prompt"].get<std::string>(), "-n", "32", "--temp", "0",
                                       "-t", "2", "--json", "--logits-top", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json out = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(out.is_discarded()) << r.out;
  EXPECT_EQ(out["prompt_tokens"], p["prompt_tokens"]);
  // Generation stops early only at an end-of-generation token.
  const auto gen = p["generated"].get<std::vector<int>>();
  const auto got = out["tokens"].get<std::vector<int>>();
  ASSERT_LE(got.size(), gen.size());
  EXPECT_EQ(got, std::vector<int>(gen.begin(), gen.begin() + got.size()));
  ASSERT_TRUE(out["text"].is_string());
  EXPECT_FALSE(out["text"].get<std::string>().empty());
  ASSERT_GE(out["top"].size(), 1u);
  const size_t n_prompt = p["prompt_tokens"].size();
  EXPECT_EQ(out["top"][0][0]["id"], p["top"][n_prompt - 1][0]["id"]);
  EXPECT_EQ(out["top"][0].size(), 3u);
}

INSTANTIATE_TEST_SUITE_P(Models, EngineGenerateTest,
                         ::testing::Values("llama-spm-f32", "llama3-bpe-f16", "qwen2-f16"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) c = c == '-' ? '_' : c;
                           return n;
                         });

TEST(EngineGenerateTest, MissingModelIsAClearError) {
  const auto r = testing::run_command({testing::hangar_binary(), "generate", "-m", "/nonexistent/x.gguf",
                                       "-p", "hi", "-n", "2"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/x.gguf"), std::string::npos) << r.err;
}

TEST(EngineBenchTest, ReportsPromptAndGenerationSpeed) {
  HANGAR_REQUIRE_FIXTURES();
  const auto r = testing::run_command({testing::hangar_binary(), "bench", "-m",
                                       fixtures + "/models/llama-spm-q4_0.gguf", "-p", "16", "-n",
                                       "4", "-r", "1", "-t", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json out = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(out.is_discarded()) << r.out;
  EXPECT_GT(out["pp_tokens_per_s"].get<double>(), 0.0);
  EXPECT_GT(out["tg_tokens_per_s"].get<double>(), 0.0);
}

}  // namespace
}  // namespace hangar
