// `hangar tokenize` end to end on the fixtures' vocab-only GGUF files.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/test_support.h"

namespace hangar {
namespace {

using testing::hangar_binary;
using testing::run_command;

TEST(TokenizeCliTest, PrintsIdsOnOneLineWithBosByDefault) {
  HANGAR_REQUIRE_FIXTURES();
  const std::string vocab = fixtures + "/vocab/ggml-vocab-llama-spm.gguf";
  auto r = run_command({hangar_binary(), "tokenize", "-m", vocab, "Hello world"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1 15043 3186\n");
  r = run_command({hangar_binary(), "tokenize", "-m", vocab, "--no-bos", " Hello"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "29871 15043\n");
}

TEST(TokenizeCliTest, JsonOutputAndSpecialParsing) {
  HANGAR_REQUIRE_FIXTURES();
  const std::string vocab = fixtures + "/vocab/ggml-vocab-qwen2.gguf";
  auto r = run_command(
      {hangar_binary(), "tokenize", "-m", vocab, "--json", "--parse-special", "<|im_start|>user"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("tokens"), nlohmann::json({151644, 872}));
  EXPECT_EQ(j.at("pieces"), nlohmann::json({"<|im_start|>", "user"}));
  r = run_command({hangar_binary(), "tokenize", "-m", vocab, "--json", "<|im_start|>"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).at("tokens"), nlohmann::json({27, 91, 318, 4906, 91, 29}));
}

TEST(TokenizeCliTest, MissingFileIsAClearErrorNotACrash) {
  const auto r = run_command({hangar_binary(), "tokenize", "-m", "/nonexistent/x.gguf", "hi"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/x.gguf"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace hangar
