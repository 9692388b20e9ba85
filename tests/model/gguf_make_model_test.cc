// `hangar make-model` through the binary: a qwen3 model with a fixture vocabulary, read back.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "gguf/gguf.h"
#include "support/test_support.h"

namespace hangar::gguf {
namespace {

TEST(HangarMakeModel, WritesAQwen3ModelWithTheFixtureVocabulary) {
  HANGAR_REQUIRE_FIXTURES();
  const std::string dir = testing::make_temp_dir("gguf-make-model");
  const std::string out = dir + "/q3.gguf";
  const testing::CommandResult r = testing::run_command(
      {testing::hangar_binary(), "make-model", "--arch", "qwen3", "--n-embd", "64", "--n-layer",
       "2", "--n-head", "4", "--n-head-kv", "2", "--head-dim", "32", "--n-ff", "128", "--ctx",
       "512", "--type", "q5_1", "--seed", "7", "--vocab-from",
       fixtures + "/vocab/ggml-vocab-qwen2.gguf", "-o", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto f = GgufFile::open(out);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ((*f)->architecture(), "qwen3");
  EXPECT_EQ((*f)->get_int("qwen3.context_length"), 512);
  EXPECT_EQ((*f)->get_int("qwen3.attention.key_length"), 32);
  EXPECT_EQ(*(*f)->get_string("tokenizer.ggml.pre"), "qwen2");
  EXPECT_EQ((*f)->get_array("tokenizer.ggml.merges")->items.size(),
            (*f)->get_array("tokenizer.ggml.merges")->items.size());
  EXPECT_EQ((*f)->find_tensor("token_embd.weight")->shape, (std::vector<int64_t>{64, 151936}));
  EXPECT_EQ((*f)->find_tensor("blk.1.attn_q.weight")->shape, (std::vector<int64_t>{64, 128}));
  EXPECT_EQ((*f)->find_tensor("blk.1.attn_q.weight")->type, GgmlType::kQ5_1);
  EXPECT_EQ((*f)->find_tensor("blk.1.attn_q_norm.weight")->shape, (std::vector<int64_t>{32}));
  std::remove(out.c_str());

  const testing::CommandResult bad = testing::run_command(
      {testing::hangar_binary(), "make-model", "--type", "q4_k", "-o", out});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("q4_K"), std::string::npos) << bad.err;
  rmdir(dir.c_str());
}

}  // namespace
}  // namespace hangar::gguf
